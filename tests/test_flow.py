"""Optical flow as data: computing a store (`lit-video data flow`), reading it, flow in batches and transforms."""

from __future__ import annotations

import shutil
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import pytest
import torch
from cli_errors import run_lit_video

from lit_video.data.base import FLOW_FRAMES
from lit_video.data.flow import compute_dataset_flow
from lit_video.data.formats.davis import DAVISDataModule
from lit_video.data.formats.ucf101 import UCF101DataModule
from lit_video.data.synthetic import synthesize
from lit_video.data.synthetic.spec import SynthSpec
from lit_video.data.synthetic.vos import VosSynthSpec, write_davis
from lit_video.errors import LitVideoError
from lit_video.models.registry import build_task_model
from lit_video.training import run_cli
from lit_video.video.decode import open_video
from lit_video.video.flow import (
    FlowComputer,
    farneback_window,
    flow_folder,
    partial_folder,
    raft_flow,
    read_flow,
)
from lit_video.video.transforms import normalize_clips

REPO = Path(__file__).resolve().parents[1]
SIZE = (48, 64)  # (height, width) of the known-motion videos
NUM_FRAMES = 8
PATCH = 20
# (start (x, y), displacement per frame (dx, dy)) of the textured patch of each video, integer and sub-pixel
MOTIONS = [((8, 10), (1.5, -0.75)), ((6, 6), (2.0, 1.0)), ((36, 20), (-1.25, 0.5)), ((20, 8), (0.5, 1.25))]


def moving_patch(start: tuple[float, float], velocity: tuple[float, float], seed: int = 3) -> np.ndarray:
    """A textured PATCH x PATCH square translating by `velocity` pixels per frame over a flat grey background
    -> uint8 (T,H,W,3)."""
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur((rng.random((PATCH + 8, PATCH + 8)) * 255).astype(np.float32), (0, 0), 1.2)
    cover = np.pad(np.ones((PATCH, PATCH), np.float32), 4)
    height, width = SIZE
    frames = np.empty((NUM_FRAMES, height, width, 3), np.uint8)
    for t in range(NUM_FRAMES):
        shift = np.float32([[1, 0, start[0] + velocity[0] * t - 4], [0, 1, start[1] + velocity[1] * t - 4]])
        patch = cv2.warpAffine(texture, shift, (width, height), flags=cv2.INTER_CUBIC)
        alpha = cv2.warpAffine(cover, shift, (width, height), flags=cv2.INTER_LINEAR)
        frames[t] = np.clip(100 * (1 - alpha) + patch * alpha, 0, 255).astype(np.uint8)[..., None]
    return frames


def patch_interior(start, velocity, t: int, margin: int = 5) -> tuple[slice, slice]:
    """(rows, columns) of the pixels at least `margin` inside the patch in frame t."""
    x, y = start[0] + velocity[0] * t, start[1] + velocity[1] * t
    return slice(int(np.ceil(y)) + margin, int(y) + PATCH - margin), slice(int(np.ceil(x)) + margin,
                                                                           int(x) + PATCH - margin)


def write_motion_dataset(root: Path) -> list[str]:
    """A UCF101-layout dataset of 4 videos whose frames show the known motions -> the videos, in MOTIONS order."""
    synthesize("ucf101", root, SynthSpec(num_classes=2, videos_per_class=2, num_frames=NUM_FRAMES, size=SIZE, seed=1))
    datamodule = UCF101DataModule(str(root), num_workers=0)
    videos = sorted({r.path for subset in ("train", "test") for r in datamodule.list_records(subset)})
    for video, (start, velocity) in zip(videos, MOTIONS, strict=True):
        from lit_video.video.encode import write_video

        write_video(video, moving_patch(start, velocity), fps=25, quality="high")
    return videos


@pytest.fixture(scope="module")
def motion_store(tmp_path_factory):
    """(root, videos, result of the `data flow` command): tvl1 flow written by the CLI (2 workers), farneback
    by the Python API."""
    root = tmp_path_factory.mktemp("motion")
    videos = write_motion_dataset(root)
    result = run_lit_video("data", "flow", "--format", "ucf101", "--root", root, "--workers", "2")
    compute_dataset_flow("ucf101", root, "farneback")
    return root, videos, result


def test_farneback_follows_a_small_object_over_a_textured_background():
    """A 10 px textured square moving (2.5, 1.5) px over a static textured 48x64 background: with its window
    shrunk to the frame's size, Farneback gives the square its own motion; OpenCV's usual 15 px window mixes
    in the background's zero flow and shortens it by more than 0.4 px."""
    rng = np.random.default_rng(0)
    height, width, side, velocity, start = 48, 64, 10, np.array([2.5, 1.5]), (20, 15)
    background = cv2.GaussianBlur((rng.random((height, width)) * 255).astype(np.float32), (0, 0), 1.5)
    texture = cv2.GaussianBlur((rng.random((side, side)) * 255).astype(np.float32), (0, 0), 1.0)

    def frame(x: float, y: float) -> np.ndarray:
        shift = np.float32([[1, 0, x], [0, 1, y]])
        patch = cv2.warpAffine(texture, shift, (width, height), flags=cv2.INTER_CUBIC)
        alpha = cv2.warpAffine(np.ones((side, side), np.float32), shift, (width, height))
        grey = np.clip(background * (1 - alpha) + patch * alpha, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)

    frames = np.stack([frame(*start), frame(start[0] + velocity[0], start[1] + velocity[1])])
    interior = (slice(start[1] + 2, start[1] + side - 2), slice(start[0] + 2, start[0] + side - 2))

    def error() -> float:
        flow = FlowComputer("farneback")(frames)[0]  # (H,W,2)
        return float(np.abs(np.median(flow[interior].reshape(-1, 2), axis=0) - velocity).max())

    assert farneback_window(height, width) == 5 and farneback_window(480, 854) == 15
    assert error() < 0.25
    with mock.patch("lit_video.video.flow.farneback_window", lambda height, width: 15):
        assert error() > 0.4


@pytest.mark.parametrize("method", ["tvl1", "farneback"])
def test_stored_flow_is_the_true_displacement(motion_store, method):
    root, videos, result = motion_store
    assert result.returncode == 0, result.output
    assert "4 computed, 0 skipped as complete, 0 failed" in result.stdout
    for video, (start, velocity) in zip(videos, MOTIONS, strict=True):
        flow = read_flow(flow_folder(root, video, method), range(NUM_FRAMES - 1))  # (T-1,H,W,2)
        assert flow.shape == (NUM_FRAMES - 1, *SIZE, 2) and flow.dtype == np.float32
        for t in range(NUM_FRAMES - 1):
            interior = flow[t][patch_interior(start, velocity, t)]
            error = np.abs(interior - np.array(velocity, np.float32)).max()
            assert error < 0.5, f"{method} {Path(video).name} pair {t}: {error:.2f} px off {velocity}"
        # an index past the last pair reads the last pair
        np.testing.assert_array_equal(read_flow(flow_folder(root, video, method), [NUM_FRAMES + 3])[0], flow[-1])


def test_flipped_clip_has_flipped_negated_flow(motion_store):
    root, videos, _ = motion_store
    start, velocity = MOTIONS[0]
    # the whole frame as the crop: the training transform's only draw left is the flip
    datamodule = UCF101DataModule(str(root), modality="rgb+flow", clip_len=4, stride=1, resolution=list(SIZE),
                                  short_side=SIZE[0], flip=True, num_workers=0)
    with open_video(videos[0]) as reader:
        frames = reader.get_frames(np.arange(4))
    flow = torch.from_numpy(read_flow(flow_folder(root, videos[0], "tvl1"), range(4)))
    transform = datamodule.clip_transform(train=True)
    with mock.patch("lit_video.video.transforms.torch.rand", return_value=torch.tensor(0.9)):
        plain = transform(frames, flow=flow)  # (5,T,H,W)
    with mock.patch("lit_video.video.transforms.torch.rand", return_value=torch.tensor(0.0)):
        flipped = transform(frames, flow=flow)
    assert plain.shape == flipped.shape == (5, 4, *SIZE)
    torch.testing.assert_close(plain[3:], flow.permute(3, 0, 1, 2))  # unflipped: the stored flow itself
    torch.testing.assert_close(flipped[:3], plain[:3].flip(-1))
    torch.testing.assert_close(flipped[3], -plain[3].flip(-1))  # x: mirrored and negated
    torch.testing.assert_close(flipped[4], plain[4].flip(-1))  # y: mirrored only
    rows, columns = patch_interior(start, velocity, 0)
    mirrored = slice(SIZE[1] - columns.stop, SIZE[1] - columns.start)
    assert abs(flipped[3, 0, rows, mirrored].mean().item() + velocity[0]) < 0.5

    # a clip delivered at half the size has half the displacement, in its own pixels
    half = UCF101DataModule(str(root), modality="flow", clip_len=4, stride=1, resolution=[24, 32], short_side=24,
                            flip=False, num_workers=0).clip_transform(train=True)(None, flow=flow)
    assert half.shape == (2, 4, 24, 32)
    torch.testing.assert_close(half.mean((-1, -2)), plain[3:].mean((-1, -2)) / 2, atol=0.02, rtol=0)

    # the DataModule's training samples: same frames, flip forced or not
    for drawn, sign in ((0.9, 1.0), (0.0, -1.0)):
        dataset = datamodule.make_dataset("train")
        with mock.patch("lit_video.video.transforms.torch.rand", return_value=torch.tensor(drawn)):
            sample = dataset[0]
        stored = read_flow(flow_folder(root, dataset.records[0].path, "tvl1"), sample["frame_indices"].numpy())
        expected = torch.from_numpy(stored).permute(3, 0, 1, 2)
        if sign < 0:
            expected = expected.flip(-1) * torch.tensor([-1.0, 1.0])[:, None, None, None]
        torch.testing.assert_close(sample["video"][3:], expected)


@pytest.mark.parametrize("normalize_on_device", [False, True])
def test_modality_batches_of_a_classification_dataset(motion_store, normalize_on_device):
    root, _, _ = motion_store
    common = dict(clip_len=3, stride=2, num_clips=2, resolution=list(SIZE), short_side=SIZE[0], batch_size=2,
                  num_workers=0, flow_method="farneback", normalize_on_device=normalize_on_device)
    samples = {}
    for modality, channels in (("rgb", 3), ("flow", 2), ("rgb+flow", 5)):
        datamodule = UCF101DataModule(str(root), modality=modality, **common)
        assert datamodule.in_channels == channels
        batch = datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)
        assert batch["video"].shape == (2, channels, 3, *SIZE) and batch["video"].dtype == torch.float32
        batch = datamodule.on_after_batch_transfer(next(iter(datamodule.val_dataloader())), 0)
        assert batch["video"].shape == (2, 2, channels, 3, *SIZE)  # (B, views, C, T, H, W)
        samples[modality] = batch
    # every view's flow channels are the stored flow of the view's frames, whatever the modality
    first = samples["rgb+flow"]
    for b in range(2):
        folder = flow_folder(root, datamodule.datasets["val"].records[b].path, "farneback")
        for view in range(2):
            stored = read_flow(folder, first["frame_indices"][b, view].numpy())  # (T,H,W,2)
            expected = torch.from_numpy(stored).permute(3, 0, 1, 2)
            torch.testing.assert_close(first["video"][b, view, 3:], expected)
            torch.testing.assert_close(samples["flow"]["video"][b, view], expected)
    torch.testing.assert_close(first["video"][:, :, :3], samples["rgb"]["video"])
    torch.testing.assert_close(first["frame_indices"], samples["rgb"]["frame_indices"])


@pytest.fixture(scope="module")
def davis_flow_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("davis_flow")
    write_davis(root, VosSynthSpec(num_videos=3, num_frames=6, size=SIZE, seed=2))
    compute_dataset_flow("davis", root, "farneback")
    return root


def test_modality_batches_of_a_vos_dataset(davis_flow_root):
    root = davis_flow_root
    for modality, channels in (("rgb", 3), ("flow", 2), ("rgb+flow", 5)):
        datamodule = DAVISDataModule(str(root), modality=modality, flow_method="farneback", clip_len=3,
                                     resolution=32, batch_size=2, num_workers=0)
        batch = next(iter(datamodule.train_dataloader()))
        assert batch["video"].shape == (2, channels, 3, 32, 32)
        assert batch["masks"].shape == (2, 3, 32, 32)
    # evaluation: the whole video, flow of each frame at the frame's position in its folder
    dataset = datamodule.make_dataset("val")
    sample = dataset[0]
    stored = read_flow(flow_folder(root, dataset.records[0].path, "farneback"), sample["frame_indices"].numpy())
    assert sample["video"].shape == (5, len(sample["frame_indices"]), *SIZE)
    torch.testing.assert_close(sample["video"][3:], torch.from_numpy(stored).permute(3, 0, 1, 2))
    rgb = DAVISDataModule(str(root), num_workers=0).make_dataset("val")[0]["video"]
    torch.testing.assert_close(sample["video"][:3], rgb)
    # at a smaller evaluation resolution the vectors shrink with the frames
    small = DAVISDataModule(str(root), modality="flow", flow_method="farneback", eval_resolution=24,
                            num_workers=0).make_dataset("val")[0]["video"]
    assert small.shape == (2, len(sample["frame_indices"]), 24, 32)
    torch.testing.assert_close(small.mean((-1, -2)), sample["video"][3:].mean((-1, -2)) / 2, atol=0.03, rtol=0)


def test_interrupted_computation_resumes_to_the_clean_result(tmp_path):
    root = tmp_path / "data"
    videos = write_motion_dataset(root)
    clean = tmp_path / "clean"
    shutil.copytree(root, clean)

    def interrupt_after_two(video, status):
        if interrupt_after_two.seen == 1:
            raise KeyboardInterrupt
        interrupt_after_two.seen += 1

    interrupt_after_two.seen = 0
    with pytest.raises(KeyboardInterrupt):
        compute_dataset_flow("ucf101", root, "farneback", progress=interrupt_after_two)
    done = [v for v in videos if flow_folder(root, v, "farneback").is_dir()]
    assert len(done) == 2
    # a video whose computation was cut short: its partial folder is redone, never taken as complete
    pending = [v for v in videos if v not in done]
    partial = partial_folder(flow_folder(root, pending[0], "farneback"))
    partial.mkdir(parents=True)
    (partial / "flow_x_00001.jpg").write_bytes(b"cut short")

    resumed = compute_dataset_flow("ucf101", root, "farneback", workers=2)
    assert (resumed.computed, resumed.skipped, resumed.failed) == (2, 2, [])
    assert not partial.exists()
    again = compute_dataset_flow("ucf101", root, "farneback")
    assert (again.computed, again.skipped) == (0, 4)

    compute_dataset_flow("ucf101", clean, "farneback")
    for video in videos:
        folder = flow_folder(root, video, "farneback")
        reference = flow_folder(clean, Path(clean) / Path(video).relative_to(root), "farneback")
        assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in reference.iterdir())
        np.testing.assert_array_equal(read_flow(folder, range(NUM_FRAMES)), read_flow(reference, range(NUM_FRAMES)))
    leftovers = [p for p in (root / "flow").rglob("*") if p.name.endswith(".partial")]
    assert leftovers == []


def test_flow_on_the_fly_with_raft(motion_store, davis_flow_root, tmp_path):
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    model = raft_small(weights=None).eval()
    weights = tmp_path / "raft_small.pth"
    torch.save(model.state_dict(), weights)
    root, _, _ = motion_store
    for modality, channels, size in (("rgb+flow", 5, 2), ("flow", 2, 1)):
        datamodule = UCF101DataModule(str(root), modality=modality, flow_source="raft", raft_weights=str(weights),
                                      clip_len=2, stride=3, resolution=32, batch_size=size, num_workers=0)
        batch = next(iter(datamodule.train_dataloader()))
        assert batch["video"].shape == (size, 3, 2, 32, 32)  # RGB; the flow is made on the device
        assert batch[FLOW_FRAMES].shape == (size, 3, 4, 32, 32)  # each frame, then the frame after it
        rgb, pairs = batch["video"].clone(), batch[FLOW_FRAMES]
        out = datamodule.on_after_batch_transfer(batch, 0)
        assert FLOW_FRAMES not in out and out["video"].shape == (size, channels, 2, 32, 32)
        # channel order: R, G, B, then the flow of frame t -> the frame after it
        from_255 = pairs * torch.tensor([0.22803, 0.22145, 0.216989])[:, None, None, None] * 255 + \
            torch.tensor([0.43216, 0.394666, 0.37645])[:, None, None, None] * 255
        last = size - 1
        expected = raft_flow(model, from_255[last, :, 1].unsqueeze(0), from_255[last, :, 3].unsqueeze(0))[0]
        torch.testing.assert_close(out["video"][last, -2:, 1], expected, atol=1e-3, rtol=1e-3)
        if modality == "rgb+flow":
            torch.testing.assert_close(out["video"][:, :3], rgb)
    # whole evaluation videos: the flow of consecutive frames, computed from the video itself
    datamodule = DAVISDataModule(str(davis_flow_root), modality="rgb+flow", flow_source="raft",
                                 raft_weights=str(weights), num_workers=0, normalize_on_device=True)
    sample = datamodule.make_dataset("val")[0]
    video = sample["video"][None]  # (1,3,T,H,W) uint8
    out = datamodule.on_after_batch_transfer({"video": video}, 0)["video"]
    assert out.shape == (1, 5, video.shape[2], *SIZE)
    torch.testing.assert_close(out[:, :3], normalize_clips(video.clone()))
    last = raft_flow(model, video[0, :, -2][None], video[0, :, -1][None])[0]
    torch.testing.assert_close(out[0, 3:, -1], last, atol=1e-3, rtol=1e-3)  # the last frame: the pair leading to it


def test_models_without_modality_refuse_flow():
    with pytest.raises(LitVideoError, match=r"c3d.*'flow'.*frame_late"):
        build_task_model("c3d", "classification", num_classes=3, modality="flow")
    model = build_task_model("frame_late", "classification", {"backbone": "small", "width": 8}, num_classes=3,
                             modality="rgb+flow")
    assert model(torch.zeros(1, 5, 2, 32, 32)).shape == (1, 3)


def test_fit_with_flow_through_the_cli(motion_store, tmp_path):
    root, _, _ = motion_store
    cli = run_cli(["fit", "--config", str(REPO / "experiments/synthetic/frame_late_tiny.yaml"),
                   "--data.init_args.root", str(root), "--data.init_args.modality", "flow",
                   "--data.init_args.flow_method", "farneback", "--data.init_args.num_workers", "0",
                   "--data.init_args.resolution", "32", "--data.init_args.clip_len", "3",
                   "--data.init_args.batch_size", "2", "--data.init_args.num_clips", "1",
                   "--model.init_args.model_kwargs", "{backbone: small, width: 8}",
                   "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", "--trainer.logger", "false",
                   "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path),
                   "--compute_profile.enabled", "false"])
    assert cli.model.hparams.modality == "flow" and cli.model.model.modality == "flow"
    assert cli.model.example_input_array.shape[1] == 2
    assert cli.trainer.global_step == 2
    # its checkpoint reads flow: evaluating it on RGB data is refused in one line, not a state_dict mismatch
    checkpoint = next(tmp_path.rglob("*.ckpt"))
    with pytest.raises(LitVideoError, match="checkpoint's model has modality 'flow' but the data gives 'rgb'"):
        run_cli(["validate", "--config", str(REPO / "experiments/synthetic/frame_late_tiny.yaml"),
                 "--data.init_args.root", str(root), "--data.init_args.num_workers", "0",
                 "--model.init_args.model_kwargs", "{backbone: small, width: 8}", "--ckpt_path", str(checkpoint), "--compute_profile.enabled", "false"])
