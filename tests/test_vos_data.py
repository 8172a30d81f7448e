"""VOS DataModules: DAVIS and YouTube-VOS layouts parsed exactly, masks that move with their frames,
re-indexed objects, whole-video evaluation samples, one-line errors, corrupt files skipped and counted."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from lit_video.cli import main
from lit_video.data import keys
from lit_video.data.base import datamodule_class
from lit_video.data.formats.davis import DAVISDataModule
from lit_video.data.formats.youtube_vos import YouTubeVOSDataModule
from lit_video.data.masks import VOID, read_mask, read_palette, voc_palette, write_mask
from lit_video.data.synthetic import synthesize
from lit_video.data.synthetic.vos import VosSynthSpec, plan_video
from lit_video.data.vos import id_lookup
from lit_video.errors import LitVideoError
from lit_video.video.transforms import KINETICS_MEAN, KINETICS_STD

# Each object id is painted in its own colour on grey, so a frame's pixels tell which object they show.
COLOURS = {1: (230, 30, 30), 2: (30, 220, 30), 3: (30, 30, 230), 4: (230, 230, 30), 5: (230, 30, 230),
           7: (30, 230, 230)}
GREY = 128
HEIGHT, WIDTH = 48, 64


def boxes(num_frames: int, objects: dict[int, tuple[int, int, int, int, int]], void: bool = False) -> np.ndarray:
    """uint8 (T,H,W) masks of boxes moving right: {id: (top, left, height, width, first frame)};
    `void` adds a 1-px void (255) rim around every box, as DAVIS 2017 annotations have."""
    masks = np.zeros((num_frames, HEIGHT, WIDTH), dtype=np.uint8)
    for t in range(num_frames):
        for object_id, (top, left, height, width, first) in objects.items():
            if t >= first:
                x = left + 2 * t
                masks[t, top:top + height, x:x + width] = object_id
        if void:
            inside = masks[t] != 0
            masks[t][ndimage.binary_dilation(inside) & ~ndimage.binary_erosion(inside)] = VOID
    return masks


def paint(mask: np.ndarray) -> np.ndarray:
    """uint8 (H,W,3): each object in its colour, background and void grey."""
    frame = np.full((*mask.shape, 3), GREY, dtype=np.uint8)
    for object_id, colour in COLOURS.items():
        frame[mask == object_id] = colour
    return frame


def write_frames(folder: Path, names: list[str], masks: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, mask in zip(names, masks):
        Image.fromarray(paint(mask)).save(folder / f"{name}.jpg", quality=95)


def make_davis(root: Path, sequences: dict[str, np.ndarray], image_sets: dict[str, dict[str, list[str]]]) -> Path:
    """A DAVIS root: every frame annotated, frames painted from the masks."""
    for seq, masks in sequences.items():
        names = [f"{t:05d}" for t in range(len(masks))]
        write_frames(root / "JPEGImages" / "480p" / seq, names, masks)
        for name, mask in zip(names, masks):
            write_mask(root / "Annotations" / "480p" / seq / f"{name}.png", mask)
    for year, subsets in image_sets.items():
        for subset, seqs in subsets.items():
            path = root / "ImageSets" / year / f"{subset}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(f"{s}\n" for s in seqs))
    return root


@pytest.fixture(scope="module")
def davis_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("davis")
    sequences = {
        # objects 1-3 from the start, object 7 enters in frame 2 (not a given object)
        "three": boxes(6, {1: (4, 2, 14, 12, 0), 2: (26, 4, 16, 12, 0), 3: (6, 30, 12, 10, 0), 7: (30, 34, 12, 10, 2)},
                       void=True),
        # ids 2 and 5: not contiguous
        "gaps": boxes(5, {2: (4, 4, 18, 14, 0), 5: (24, 30, 18, 14, 0)}, void=True),
        # five objects, for max_objects
        "five": boxes(4, {1: (2, 0, 12, 8, 0), 2: (2, 22, 12, 8, 0), 3: (18, 2, 12, 8, 0), 4: (18, 24, 12, 8, 0),
                          5: (32, 12, 12, 8, 0)}),
    }
    image_sets = {"2017": {"train": ["three", "five"], "val": ["gaps", "three"]},
                  "2016": {"train": ["three"], "val": ["three"]}}
    return make_davis(root, sequences, image_sets)


def unnormalize(video: torch.Tensor) -> torch.Tensor:
    """Normalized float (C,T,H,W) -> [0, 255] float."""
    mean = torch.tensor(KINETICS_MEAN).view(3, 1, 1, 1) * 255
    std = torch.tensor(KINETICS_STD).view(3, 1, 1, 1) * 255
    return video * std + mean


# --------------------------------------------------------------------------------------------- DAVIS


def test_davis_evaluation_sample_is_the_whole_video_with_every_ground_truth(davis_root):
    dm = DAVISDataModule(str(davis_root), num_workers=0)
    assert [r.video_id for r in dm.list_records("val")] == ["gaps", "three"]
    assert [r.video_id for r in dm.list_records("test")] == ["gaps", "three"]  # test = val by default
    dataset = dm.make_dataset("val")
    gaps, three = dataset[0], dataset[1]

    written = np.stack([read_mask(davis_root / "Annotations/480p/gaps" / f"{t:05d}.png") for t in range(5)])
    assert gaps[keys.OBJECT_IDS].tolist() == [2, 5]  # re-indexed 1..2, OBJECT_IDS maps back
    assert gaps[keys.FIRST_FRAMES].tolist() == [0, 0]
    expected = np.select([written == 2, written == 5, written == VOID], [1, 2, VOID], 0)
    assert np.array_equal(gaps[keys.MASKS].numpy(), expected)
    assert gaps[keys.MASKS].dtype == torch.int64 and (gaps[keys.MASKS] == VOID).any()  # void preserved
    assert gaps[keys.FRAME_NAMES] == [f"{t:05d}" for t in range(5)]
    assert gaps[keys.ANNOTATED].tolist() == [True] * 5
    assert gaps[keys.VIDEO].shape == (3, 5, HEIGHT, WIDTH) and gaps[keys.VIDEO].dtype == torch.float32
    assert gaps[keys.VIDEO_ID] == "gaps"

    # object 7 appears in frame 2 but is not given in frame 0: background, as the DAVIS evaluator counts it
    assert three[keys.OBJECT_IDS].tolist() == [1, 2, 3]
    raw7 = read_mask(davis_root / "Annotations/480p/three/00003.png") == 7
    assert raw7.any() and (three[keys.MASKS][3][torch.from_numpy(raw7)] == 0).all()
    # the frames are the JPEGs, at full resolution: object 1's pixels are red
    frame = unnormalize(three[keys.VIDEO])[:, 0]  # (C,H,W)
    inner = ndimage.binary_erosion(three[keys.MASKS][0].numpy() == 1, iterations=2)
    assert np.allclose(frame[:, torch.from_numpy(inner)].mean(1).numpy(), COLOURS[1], atol=12)


def test_davis_eval_resolution_resizes_frames_not_masks(davis_root):
    dm = DAVISDataModule(str(davis_root), eval_resolution=24, num_workers=0)
    sample = dm.make_dataset("val")[0]
    assert sample[keys.VIDEO].shape == (3, 5, 24, 32)
    assert sample[keys.MASKS].shape == (5, HEIGHT, WIDTH)


def test_davis_2016_merges_every_object_into_one(davis_root):
    dm = DAVISDataModule(str(davis_root), year=2016, num_workers=0, resolution=32)
    sample = dm.make_dataset("val")[0]
    raw = np.stack([read_mask(davis_root / "Annotations/480p/three" / f"{t:05d}.png") for t in range(6)])
    assert sample[keys.OBJECT_IDS].tolist() == [1]
    assert np.array_equal(sample[keys.MASKS].numpy(), np.select([raw == VOID, raw != 0], [VOID, 1], 0))
    clip = dm.make_dataset("train")[0]
    assert clip[keys.NUM_OBJECTS] == 1 and clip[keys.OBJECT_IDS].tolist() == [1, 0, 0]
    assert set(clip[keys.MASKS].unique().tolist()) <= {0, 1, VOID}


def test_training_clip_masks_stay_aligned_with_their_frames_through_crop_and_flip(davis_root):
    torch.manual_seed(0)
    dm = DAVISDataModule(str(davis_root), resolution=32, short_side=40, max_objects=3, clip_len=3, num_workers=0)
    dataset = dm.make_dataset("train")
    flips = set()
    for index in range(16):
        sample = dataset[index % 2]
        video, masks = unnormalize(sample[keys.VIDEO]), sample[keys.MASKS]  # (C,T,h,w), (T,h,w)
        count = int(sample[keys.NUM_OBJECTS])
        ids = sample[keys.OBJECT_IDS].tolist()
        assert video.shape == (3, 3, 32, 32) and masks.shape == (3, 32, 32) and masks.dtype == torch.int64
        assert 1 <= count <= 3 and all(i > 0 for i in ids[:count]) and ids[count:] == [0] * (3 - count)
        assert set(masks.unique().tolist()) <= set(range(count + 1)) | {VOID}
        assert set(masks[0].unique().tolist()) & set(range(1, count + 1))  # first frame shows an object
        assert np.all(np.diff(sample[keys.FRAME_INDICES].numpy()) == 1)
        for k in range(1, count + 1):  # pixels labelled k show the colour of dataset object ids[k-1]
            for t in range(3):
                inner = ndimage.binary_erosion(masks[t].numpy() == k, iterations=2)
                if inner.sum() >= 4:
                    colour = video[:, t][:, torch.from_numpy(inner)].mean(1).numpy()
                    assert np.allclose(colour, COLOURS[ids[k - 1]], atol=30), (ids, k, colour)
        # boxes move right; a flipped clip shows them moving left
        columns = [torch.nonzero(masks[t] == 1)[:, 1].float().mean() for t in (0, 2) if (masks[t] == 1).any()]
        if len(columns) == 2:
            flips.add(bool(columns[1] < columns[0]))
    assert flips == {True, False}


def test_training_objects_are_those_of_the_first_frame_and_at_most_max_objects(davis_root):
    torch.manual_seed(1)
    dm = DAVISDataModule(str(davis_root), resolution=[48, 64], short_side=48, max_objects=2, clip_len=4,
                         stride=1, flip=False, num_workers=0)
    dataset = dm.make_dataset("train")
    chosen = set()
    for _ in range(12):
        five = dataset[1]  # "five": five objects in every frame, the crop is the whole frame
        assert five[keys.VIDEO_ID] == "five" and five[keys.NUM_OBJECTS] == 2
        ids = five[keys.OBJECT_IDS].tolist()
        chosen.add(tuple(ids))
        raw = np.stack([read_mask(davis_root / "Annotations/480p/five" / f"{t:05d}.png") for t in range(4)])
        assert np.array_equal(five[keys.MASKS].numpy(), id_lookup(ids)[torch.from_numpy(raw).long()].numpy())
    assert len(chosen) > 2  # a random subset, not always the same objects
    dm3 = DAVISDataModule(str(davis_root), resolution=[48, 64], short_side=48, clip_len=6, flip=False, num_workers=0)
    three = dm3.make_dataset("train")[0]  # all 6 frames: object 7 enters in frame 2, after the first frame
    assert three[keys.OBJECT_IDS].tolist() == [1, 2, 3]
    raw = read_mask(davis_root / "Annotations/480p/three/00002.png")
    assert (three[keys.MASKS][2][torch.from_numpy(raw == 7)] == 0).all()
    assert (three[keys.MASKS] == VOID).any()  # the void rim survives the transform


def test_a_clip_without_an_object_in_its_first_frame_is_redrawn(tmp_path):
    late = boxes(10, {1: (10, 2, 20, 20, 6)})  # empty until frame 6
    corner = np.zeros((4, HEIGHT, WIDTH), np.uint8)
    corner[:, 40:46, 56:62] = 1  # a small object in a corner: most random crops miss it
    root = make_davis(tmp_path, {"late": late, "corner": corner}, {"2017": {"train": ["late", "corner"], "val": ["late"]}})
    dm = DAVISDataModule(str(root), resolution=16, short_side=HEIGHT, clip_len=2, num_workers=0)
    dataset = dm.make_dataset("train")
    torch.manual_seed(2)
    seen = set()
    for _ in range(10):
        for index in (0, 1):
            sample = dataset[index]  # after 10 failed starts an item moves on to another video
            seen.add(sample[keys.VIDEO_ID])
            assert (sample[keys.MASKS][0] == 1).any()
            if sample[keys.VIDEO_ID] == "late":
                assert sample[keys.FRAME_INDICES][0] >= 6
    assert seen == {"late", "corner"}


def test_loaders_collate_with_zero_and_two_workers(davis_root):
    for workers in (0, 2):
        dm = DAVISDataModule(str(davis_root), resolution=32, batch_size=2, num_workers=workers, clips_per_video=3,
                             max_objects=4)
        loader = dm.train_dataloader()
        assert len(loader.dataset) == 6  # 2 videos x 3 clips
        batches = list(loader)
        assert len(batches) == 3
        for batch in batches:
            assert batch[keys.VIDEO].shape == (2, 3, 3, 32, 32) and batch[keys.MASKS].shape == (2, 3, 32, 32)
            assert batch[keys.OBJECT_IDS].shape == (2, 4) and batch[keys.NUM_OBJECTS].shape == (2,)
            assert batch[keys.FRAME_INDICES].shape == (2, 3) and len(batch[keys.VIDEO_ID]) == 2
        videos = list(dm.val_dataloader())
        assert [b[keys.VIDEO_ID] for b in videos] == [["gaps"], ["three"]]
        assert videos[1][keys.VIDEO].shape == (1, 3, 6, HEIGHT, WIDTH)
        assert [n[0] for n in videos[1][keys.FRAME_NAMES]] == [f"{t:05d}" for t in range(6)]
        assert videos[1][keys.OBJECT_IDS].tolist() == [[1, 2, 3]]
    dm = DAVISDataModule(str(davis_root), resolution=32, samples_per_epoch=5, num_workers=0)
    assert len(dm.make_dataset("train")) == 5


def test_palette_prediction_paths_and_written_predictions(davis_root, tmp_path):
    dm = DAVISDataModule(str(davis_root), num_workers=0)
    assert dm.palette == read_palette(davis_root / "Annotations/480p/five/00000.png") == voc_palette()
    assert dm.frames_to_write("gaps") == [f"{t:05d}" for t in range(5)]
    assert dm.prediction_path(tmp_path, "gaps", "00003") == tmp_path / "gaps" / "00003.png"
    prediction = torch.zeros(HEIGHT, WIDTH, dtype=torch.int64)
    prediction[:10] = 1
    prediction[10:20] = 2
    path = dm.write_prediction(tmp_path, "gaps", "00003", prediction, torch.tensor([2, 5]))
    written = read_mask(path)
    assert path == tmp_path / "gaps" / "00003.png" and read_palette(path) == dm.palette
    assert (written[:10] == 2).all() and (written[10:20] == 5).all() and (written[20:] == 0).all()


@pytest.mark.parametrize(
    "break_it, names",
    [
        (lambda root: (root / "ImageSets/2017/val.txt").write_text("gaps\nmissing-seq\n"), ["val.txt:2", "missing-seq"]),
        (lambda root: (root / "ImageSets/2017/val.txt").unlink(), ["ImageSets/2017/val.txt"]),
        (lambda root: __import__("shutil").rmtree(root / "Annotations/480p/gaps"), ["val.txt:1", "Annotations/480p/gaps"]),
        (lambda root: (root / "ImageSets/2017/val.txt").write_text("gaps three\n"), ["val.txt:1"]),
    ],
)
def test_davis_layout_errors_are_one_line_naming_the_file(tmp_path, break_it, names):
    root = make_davis(tmp_path, {"gaps": boxes(2, {1: (4, 4, 10, 10, 0)}), "three": boxes(2, {1: (4, 4, 10, 10, 0)})},
                      {"2017": {"train": ["gaps"], "val": ["gaps"]}})
    break_it(root)
    with pytest.raises(LitVideoError) as err:
        DAVISDataModule(str(root), num_workers=0).list_records("val")
    assert "\n" not in str(err.value) and all(n in str(err.value) for n in names)


def test_bad_arguments_are_one_line_errors(davis_root):
    for bad in (dict(year=2018), dict(max_objects=0), dict(stride_jitter=-1), dict(eval_resolution=0),
                dict(max_objects=True), dict(clip_len=True), dict(samples_per_epoch=False)):  # a bool is no count
        with pytest.raises(LitVideoError) as err:
            DAVISDataModule(str(davis_root), **bad)
        assert "\n" not in str(err.value)


def test_training_clips_draw_from_the_datamodules_one_jittered_sampler(davis_root):
    dm = DAVISDataModule(str(davis_root), clip_len=2, stride=2, stride_jitter=1, resolution=32, num_workers=0)
    dataset = dm.make_dataset("train")
    assert dataset.sampler is dm.sampler and dm.sampler.stride_jitter == 1 and dm.sampler.stride == 2
    torch.manual_seed(4)
    steps = {int(np.diff(dataset[0][keys.FRAME_INDICES].numpy())[0]) for _ in range(30)}
    assert steps == {1, 2, 3}


def test_corrupt_frames_and_masks_are_skipped_counted_and_named(tmp_path, caplog):
    sequences = {name: boxes(4, {1: (8, 4, 20, 16, 0), 2: (10, 34, 20, 14, 0)}) for name in ("good", "badjpg", "badpng")}
    root = make_davis(tmp_path, sequences, {"2017": {"train": list(sequences), "val": list(sequences)}})
    bad_jpeg = root / "JPEGImages/480p/badjpg/00002.jpg"
    bad_jpeg.write_bytes(bad_jpeg.read_bytes()[:200])  # truncated
    bad_png = root / "Annotations/480p/badpng/00001.png"
    bad_png.write_bytes(b"not a png")
    dm = DAVISDataModule(str(root), resolution=32, clip_len=4, batch_size=3, num_workers=0)
    with caplog.at_level(logging.WARNING):
        batches = list(dm.train_dataloader())  # the corrupt videos are replaced, the epoch completes
    assert sum(len(b[keys.VIDEO_ID]) for b in batches) == 3
    assert dm.decode_failures.value == 2
    assert str(bad_jpeg) in caplog.text and str(bad_png) in caplog.text

    # evaluation keeps every video and frame: the frame is replaced by a neighbour, the mask unannotated
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        samples = {s[keys.VIDEO_ID]: s for s in (dm.make_dataset("val")[i] for i in range(3))}
    assert dm.decode_failures.value == 4 and str(bad_jpeg) in caplog.text and str(bad_png) in caplog.text
    assert samples["badjpg"][keys.VIDEO].shape[1] == 4
    assert torch.equal(samples["badjpg"][keys.VIDEO][:, 2], samples["badjpg"][keys.VIDEO][:, 1])
    assert samples["badpng"][keys.ANNOTATED].tolist() == [True, False, True, True]
    assert (samples["badpng"][keys.MASKS][1] == 0).all()

    # `lit-video data check` lists both
    assert main(["data", "check", "--format", "davis", "--root", str(root), "--strict"]) == 1


# --------------------------------------------------------------------------------------- YouTube-VOS


def make_youtube_vos(root: Path) -> Path:
    """train: "tr_a" (frames 00015..00050, names not from 00000), "tr_b" and "tr_c" with masks every 5th
    frame and every raw frame in train_all_frames; valid: "va_a" whose objects 1 and 3 first appear in
    frames 00005 and 00015 (JPEGs from 00000)."""
    meta: dict[str, dict] = {"train": {}, "valid": {}}
    for vid, start in (("tr_a", 15), ("tr_b", 0), ("tr_c", 0)):
        names = [f"{start + 5 * t:05d}" for t in range(8)]
        masks = boxes(8, {1: (4, 2, 14, 12, 0), 4: (26, 4, 16, 12, 3)})
        write_frames(root / "train/JPEGImages" / vid, names, masks)
        raw_names = [f"{n:05d}" for n in range(start, start + 36)]
        write_frames(root / "train_all_frames/JPEGImages" / vid, raw_names, np.repeat(masks, 5, axis=0)[:36])
        for name, mask in zip(names, masks):
            write_mask(root / "train/Annotations" / vid / f"{name}.png", mask)
        meta["train"][vid] = {"objects": {"1": {"category": "cat", "frames": names},
                                          "4": {"category": "dog", "frames": names[3:]}}}
    names = [f"{5 * t:05d}" for t in range(8)]
    masks = boxes(8, {1: (4, 2, 14, 12, 1), 3: (26, 4, 16, 12, 3)})
    write_frames(root / "valid/JPEGImages/va_a", names, masks)
    for name, t, object_id in (("00005", 1, 1), ("00015", 3, 3)):
        write_mask(root / "valid/Annotations/va_a" / f"{name}.png", np.where(masks[t] == object_id, masks[t], 0))
    meta["valid"]["va_a"] = {"objects": {"1": {"category": "cat", "frames": names[1:]},
                                         "3": {"category": "dog", "frames": names[3:]}}}
    for split, videos in meta.items():
        (root / split / "meta.json").write_text(json.dumps({"videos": videos}))
    return root


@pytest.fixture(scope="module")
def ytvos_root(tmp_path_factory) -> Path:
    return make_youtube_vos(tmp_path_factory.mktemp("ytvos"))


def test_youtube_vos_train_clips_step_through_annotated_frames(ytvos_root):
    torch.manual_seed(3)
    dm = YouTubeVOSDataModule(str(ytvos_root), val_fraction=0, resolution=32, stride=2, num_workers=0)
    records = dm.list_records("train")
    assert [r.video_id for r in records] == ["tr_a", "tr_b", "tr_c"]
    assert records[0].objects == ((1, "00015"), (4, "00030"))
    dataset = dm.make_dataset("train")
    for _ in range(6):
        sample = dataset[0]
        assert np.all(np.diff(sample[keys.FRAME_INDICES].numpy()) == 2)  # every 2nd annotated frame
    # all raw frames: the same clips step over 10 raw frames (2 annotated steps of 5)
    dm_all = YouTubeVOSDataModule(str(ytvos_root), val_fraction=0, resolution=32, stride=2, all_frames=True,
                                  stride_jitter=1, num_workers=0)
    steps = set()
    for _ in range(20):
        steps |= set(np.diff(dm_all.make_dataset("train")[0][keys.FRAME_INDICES].numpy()).tolist())
    assert steps == {5, 10, 15}  # stride 2 +- 1 annotated frames


def test_youtube_vos_valid_sample_starts_at_the_first_given_mask(ytvos_root, tmp_path):
    dm = YouTubeVOSDataModule(str(ytvos_root), val_fraction=0, num_workers=0)
    sample = dm.make_dataset("test")[0]
    names = [f"{5 * t:05d}" for t in range(1, 8)]  # from 00005, the first frame meta.json lists
    assert sample[keys.FRAME_NAMES] == names
    assert sample[keys.VIDEO].shape == (3, 7, HEIGHT, WIDTH)
    assert sample[keys.OBJECT_IDS].tolist() == [1, 3] and sample[keys.FIRST_FRAMES].tolist() == [0, 2]
    given1 = read_mask(ytvos_root / "valid/Annotations/va_a/00005.png") == 1
    given3 = read_mask(ytvos_root / "valid/Annotations/va_a/00015.png") == 3
    expected = np.zeros((7, HEIGHT, WIDTH), np.int64)
    expected[0][given1] = 1
    expected[2][given3] = 2
    assert np.array_equal(sample[keys.MASKS].numpy(), expected)
    assert sample[keys.ANNOTATED].tolist() == [True] * 7
    assert dm.frames_to_write("va_a") == names
    assert dm.prediction_path(tmp_path, "va_a", "00010") == tmp_path / "Annotations" / "va_a" / "00010.png"

    # with every raw frame: the video runs on from 00005, only the listed frames are ANNOTATED
    raw = tmp_path / "yt"
    __import__("shutil").copytree(ytvos_root, raw)
    write_frames(raw / "valid_all_frames/JPEGImages/va_a", [f"{n:05d}" for n in range(36)], np.zeros((36, HEIGHT, WIDTH)))
    sample = YouTubeVOSDataModule(str(raw), all_frames=True, val_fraction=0, num_workers=0).make_dataset("test")[0]
    assert sample[keys.FRAME_NAMES] == [f"{n:05d}" for n in range(5, 36)]
    assert sample[keys.FIRST_FRAMES].tolist() == [0, 10]
    assert torch.nonzero(sample[keys.ANNOTATED]).flatten().tolist() == list(range(0, 31, 5))


def test_youtube_vos_held_out_train_videos_are_deterministic_and_disjoint(ytvos_root, tmp_path):
    def split(**kwargs):
        dm = YouTubeVOSDataModule(str(ytvos_root), num_workers=0, **kwargs)
        return [r.video_id for r in dm.list_records("train")], [r.video_id for r in dm.list_records("val")]

    train, val = split(val_fraction=0.34)
    assert len(val) == 1 and sorted(train + val) == ["tr_a", "tr_b", "tr_c"]
    assert split(val_fraction=0.34) == (train, val)
    assert {tuple(split(val_fraction=0.34, split_seed=s)[1]) for s in range(8)} != {tuple(val)}
    listed = tmp_path / "heldout.txt"
    listed.write_text("tr_b\n\ntr_c\n")
    assert split(val_list=str(listed)) == (["tr_a"], ["tr_b", "tr_c"])
    assert split(val_subset="valid") == (["tr_a", "tr_b", "tr_c"], ["va_a"])  # nothing held out

    dm = YouTubeVOSDataModule(str(ytvos_root), val_list=str(listed), num_workers=0)
    held = dm.make_dataset("val")[0]  # tr_b: ground truth every annotated frame, object 4 from frame 3
    assert held[keys.VIDEO_ID] == "tr_b" and held[keys.OBJECT_IDS].tolist() == [1, 4]
    assert held[keys.FIRST_FRAMES].tolist() == [0, 3] and held[keys.ANNOTATED].all()
    raw = np.stack([read_mask(ytvos_root / "train/Annotations/tr_b" / f"{5 * t:05d}.png") for t in range(8)])
    assert np.array_equal(held[keys.MASKS].numpy(), np.select([raw == 1, raw == 4], [1, 2], 0))
    assert dm.frames_to_write("tr_b") == [f"{5 * t:05d}" for t in range(8)]

    listed.write_text("tr_b\nnot_a_video\n")
    with pytest.raises(LitVideoError, match="heldout.txt:2"):
        split(val_list=str(listed))


@pytest.mark.parametrize(
    "meta, names",
    [
        ("{not json", ["meta.json", "not valid JSON"]),
        ('{"vids": {}}', ["meta.json", '"videos"']),
        ('{"videos": {"tr_a": {"objs": {}}}}', ["meta.json", 'videos["tr_a"]']),
        ('{"videos": {"tr_a": {"objects": {"1": {"frames": "00015"}}}}}', ['videos["tr_a"]["objects"]["1"]["frames"]']),
        ('{"videos": {"tr_a": {"objects": {"x": {"frames": ["00015"]}}}}}', ['videos["tr_a"]["objects"]["x"]']),
        ('{"videos": {"nowhere": {"objects": {"1": {"frames": ["00000"]}}}}}', ['videos["nowhere"]', "JPEGImages/nowhere"]),
    ],
)
def test_malformed_meta_json_is_a_one_line_error_naming_the_key(ytvos_root, tmp_path, meta, names):
    root = tmp_path / "yt"
    __import__("shutil").copytree(ytvos_root, root)
    (root / "train/meta.json").write_text(meta)
    with pytest.raises(LitVideoError) as err:
        YouTubeVOSDataModule(str(root), val_fraction=0, num_workers=0).list_records("train")
    assert "\n" not in str(err.value) and all(n in str(err.value) for n in names), str(err.value)


# --------------------------------------------------------------------------- the project's synthetic data


def test_synthetic_davis_end_to_end(tmp_path):
    spec = VosSynthSpec(num_videos=6, num_frames=6, size=(64, 96), seed=4)
    assert main(["data", "synth", "--format", "davis", "--out", str(tmp_path / "d"), "--num-classes", "2",
                 "--videos-per-class", "3", "--num-frames", "6", "--size", "64x96", "--seed", "4"]) == 0
    root = tmp_path / "d"
    dm = datamodule_class("davis")(root=str(root), resolution=48, batch_size=2, num_workers=0)
    batch = next(iter(dm.train_dataloader()))
    assert batch[keys.VIDEO].shape == (2, 3, 3, 48, 48)
    for sample in dm.val_dataloader():
        plan = plan_video(spec, int(sample[keys.VIDEO_ID][0].split("-")[1]), "davis")
        truth = torch.from_numpy(plan.masks(plan.render())).long()  # (T,H,W) dataset ids
        assert sample[keys.OBJECT_IDS][0].tolist() == list(plan.object_ids)
        assert torch.equal(sample[keys.MASKS][0], id_lookup(plan.object_ids)[truth])
        assert [n[0] for n in sample[keys.FRAME_NAMES]] == list(plan.frame_names)
    assert main(["data", "check", "--format", "davis", "--root", str(root), "--strict"]) == 0


def test_synthetic_youtube_vos_valid_objects_and_first_frames(tmp_path):
    spec = VosSynthSpec(num_videos=6, num_frames=6, size=(64, 96), seed=1)
    synthesize("youtube-vos", tmp_path, spec)
    dm = YouTubeVOSDataModule(str(tmp_path), resolution=48, num_workers=0)
    plans = {p.name: p for p in (plan_video(spec, i, "youtube-vos") for i in range(6)) if p.split == "valid"}
    dataset = dm.make_dataset("test")
    assert len(dataset) == len(plans) == 2
    for i in range(len(dataset)):
        sample = dataset[i]
        plan = plans[sample[keys.VIDEO_ID]]
        start = min(plan.first_frames.values())
        assert sample[keys.FRAME_NAMES] == [n for n in plan.frame_names if n >= start]
        assert sample[keys.OBJECT_IDS].tolist() == list(plan.object_ids)
        assert [sample[keys.FRAME_NAMES][t] for t in sample[keys.FIRST_FRAMES].tolist()] == \
            [plan.first_frames[i] for i in plan.object_ids]
    assert len(dm.make_dataset("val")) == 1  # a tenth of 4 train videos, at least one
    assert main(["data", "check", "--format", "youtube-vos", "--root", str(tmp_path)]) == 0
