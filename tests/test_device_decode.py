"""The device decode path (decoder torchcodec-cuda): the workers deliver plans, the batch is decoded and
transformed where the model runs. Without a GPU the same code runs on the CPU device here, and must give the
very clips the worker path gives; benchmarks/gpu_check.py's decode part checks the GPU itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from lit_video.cli import main
from lit_video.data import keys
from lit_video.data.base import datamodule_class
from lit_video.data.device_decode import DEVICE_DECODER, choose_decoder, decode_batch
from lit_video.errors import LitVideoError

LOADER = dict(clip_len=8, stride=2, resolution=48, batch_size=4, num_workers=0)
ROOT = Path(__file__).resolve().parents[1]


def first_batch(format_name: str, root: Path, subset: str, decoder: str, seed: int = 1, **options) -> dict:
    datamodule = datamodule_class(format_name)(root=str(root), decoder=decoder, **(LOADER | options))
    loader = getattr(datamodule, f"{subset}_dataloader")()
    torch.manual_seed(seed)  # the same videos, clips and crops whichever path delivers them
    return datamodule, next(iter(loader))


@pytest.mark.parametrize("subset", ["train", "val"])
@pytest.mark.parametrize("normalize_on_device", [False, True])
def test_the_device_path_gives_the_clips_the_workers_give(kinetics_root, subset, normalize_on_device):
    options = dict(num_clips=2, num_crops=3, train_short_side_range=[56, 72], normalize_on_device=normalize_on_device)
    _, expected = first_batch("kinetics", kinetics_root, subset, "pyav", **options)
    datamodule, plans = first_batch("kinetics", kinetics_root, subset, DEVICE_DECODER, **options)
    assert keys.VIDEO not in plans  # the workers decoded nothing
    views = plans[keys.VIEWS]  # (B, V, 5): training one view per clip, evaluation 2 clips x 3 crops
    assert views.shape == (4, 1 if subset == "train" else 6, 5)
    assert plans[keys.VIDEO_ID] == expected[keys.VIDEO_ID]
    assert torch.equal(plans[keys.FRAME_INDICES], expected[keys.FRAME_INDICES])
    decoded = datamodule.decode_on(plans, "cpu")
    video, reference = decoded[keys.VIDEO], expected[keys.VIDEO]
    if normalize_on_device:  # the worker path leaves that to on_after_batch_transfer
        reference = datamodule.on_after_batch_transfer(expected, 0)[keys.VIDEO]
    assert video.dtype == torch.float32 and video.shape == reference.shape
    # torchcodec and PyAV decode these H.264 files (B-frames, one keyframe per video) to the same pixels
    assert torch.allclose(video, reference, atol=1e-5)
    assert keys.VIEWS not in decoded and keys.VIDEO_PATH not in decoded
    assert datamodule.decode_path == f"{DEVICE_DECODER} on cpu"


def test_captioning_plans_keep_their_captions(msrvtt_root):
    _, expected = first_batch("msrvtt", msrvtt_root, "train", "pyav")
    datamodule, plans = first_batch("msrvtt", msrvtt_root, "train", DEVICE_DECODER)
    assert torch.equal(plans[keys.CAPTION_TOKENS], expected[keys.CAPTION_TOKENS])
    assert torch.allclose(datamodule.decode_on(plans, "cpu")[keys.VIDEO], expected[keys.VIDEO], atol=1e-5)


def test_an_unreadable_video_is_replaced_by_another_clip_of_its_batch(kinetics_root, tmp_path):
    datamodule, plans = first_batch("kinetics", kinetics_root, "train", DEVICE_DECODER)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(Path(plans[keys.VIDEO_PATH][1]).read_bytes()[:600])  # the header, then nothing
    plans[keys.VIDEO_PATH][1] = str(broken)
    decoded = decode_batch(plans, datamodule.clip_transform(train=True), "cpu")
    assert decoded.failed == [str(broken)]
    assert torch.equal(decoded.video[1], decoded.video[2])  # replaced by the next readable clip of the batch
    assert not torch.equal(decoded.video[1], decoded.video[0])
    datamodule.decode_on(dict(plans), "cpu")
    assert datamodule.decode_failures.value == 1
    plans[keys.VIDEO_PATH] = [str(broken)] * len(plans[keys.VIDEO_PATH])
    with pytest.raises(LitVideoError, match="none of the 4 videos of a batch could be decoded.*broken.mp4"):
        decode_batch(plans, datamodule.clip_transform(train=True), "cpu")


def test_a_video_that_cannot_be_opened_is_skipped_by_the_workers(kinetics_root, tmp_path):
    root = tmp_path / "kinetics"
    shutil.copytree(kinetics_root, root)
    videos = sorted((root / "train").rglob("*.mp4"))
    videos[0].write_bytes(b"not a video")
    datamodule = datamodule_class("kinetics")(root=str(root), decoder=DEVICE_DECODER, **LOADER)
    datamodule.setup("fit")
    dataset = datamodule.datasets["train"]
    broken = next(i for i, r in enumerate(dataset.records) if r.path == str(videos[0]))
    sample = dataset[broken]
    assert sample[keys.VIDEO_PATH] != str(videos[0])
    assert datamodule.decode_failures.value == 1


@pytest.mark.parametrize("options, fragment", [
    (dict(modality="flow"), "decodes RGB clips only, not modality flow"),
    (dict(storage="frames"), "decodes the video files, not storage frames"),
])
def test_settings_the_device_path_does_not_serve_are_one_line(ucf101_root, options, fragment):
    with pytest.raises(LitVideoError, match=fragment):
        datamodule_class("ucf101")(root=str(ucf101_root), decoder=DEVICE_DECODER, **options)


@pytest.mark.parametrize("format_name", ["davis", "youtube-vis"])
def test_frame_folder_clips_decode_on_the_device_with_the_masks_the_workers_give(request, format_name):
    """VOS and VIS training clips: the workers read the masks and choose the crop on them; the JPEG frames are
    decoded (nvJPEG on a GPU) and transformed on the device: the same clips and masks as the worker path."""
    root = request.getfixturevalue({"davis": "davis_root", "youtube-vis": "ytvis_root"}[format_name])
    options = dict(batch_size=3, num_workers=0, resolution=64)
    _, expected = first_batch(format_name, root, "train", "auto", seed=3, **options)
    datamodule, plans = first_batch(format_name, root, "train", DEVICE_DECODER, seed=3, **options)
    assert keys.VIDEO not in plans and len(plans[keys.FRAME_FILES]) == expected[keys.VIDEO].shape[2]  # T lists
    assert plans[keys.FRAME_FILES][0][0].endswith(".jpg")
    decoded = datamodule.decode_on(plans, "cpu")
    assert set(decoded) == set(expected)
    for key, value in expected.items():
        if isinstance(value, torch.Tensor):
            assert torch.allclose(decoded[key].float(), value.float(), atol=1e-5), key
        else:
            assert decoded[key] == value, key
    # a broken frame: its clip is replaced by the next readable clip of the batch
    _, plans = first_batch(format_name, root, "train", DEVICE_DECODER, seed=3, **options)
    broken = Path(request.getfixturevalue("tmp_path")) / "00000.jpg"
    broken.write_bytes(b"\xff\xd8 not a JPEG")
    first_frames = list(plans[keys.FRAME_FILES][0])  # frame 0 of each clip of the batch
    first_frames[1] = str(broken)
    plans[keys.FRAME_FILES][0] = tuple(first_frames)
    result = decode_batch(plans, datamodule.clip_transform(train=True), "cpu")
    assert result.failed == [str(broken)]
    assert torch.equal(result.video[1], result.video[2]) and not torch.equal(result.video[1], result.video[0])


def test_a_fit_on_the_cpu_refuses_the_gpu_decoder_in_one_line(ucf101_root, tmp_path, capsys):
    status = main(["fit", "--config", str(ROOT / "experiments" / "synthetic" / "r2plus1d_tiny.yaml"),
                   "--data.init_args.root", str(ucf101_root), "--data.init_args.decoder", DEVICE_DECODER,
                   "--data.init_args.num_workers", "0", "--trainer.accelerator", "cpu", "--trainer.max_steps", "1",
                   "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path)])
    error = capsys.readouterr().err.strip().splitlines()
    assert status != 0
    assert error[-1].endswith(f"decoder {DEVICE_DECODER}: decodes on a CUDA GPU, but this run's device is cpu; use "
                              "decoder auto (it takes the GPU path only on a GPU) or a file backend")
    assert "Traceback" not in "\n".join(error)


def test_choose_decoder_measures_both_paths_and_keeps_its_rule(kinetics_root):
    datamodule = datamodule_class("kinetics")(root=str(kinetics_root), decoder="pyav", **LOADER)
    datamodule.setup("fit")
    dataset = datamodule.datasets["train"]
    choice = choose_decoder(dataset, "pyav", torch.device("cpu"), 2, datamodule.decode_on, clips=6, batch_size=3)
    assert choice.device_clips_per_s > 0 and choice.worker_clips_per_s > 0 and choice.workers == 2
    faster = choice.device_clips_per_s > choice.worker_clips_per_s * 2
    assert choice.decoder == (DEVICE_DECODER if faster else "pyav")
    assert f"{choice.workers} workers" in choice.reason and "measured on 6 clips" in choice.reason
    assert not dataset.device_decode  # measuring leaves the dataset as it was
    # no single device beats a million workers' bound
    many = choose_decoder(dataset, "pyav", torch.device("cpu"), 10**6, datamodule.decode_on, clips=3, batch_size=3)
    assert many.decoder == "pyav"


def test_auto_measures_only_on_a_gpu_and_only_where_the_path_applies(kinetics_root, davis_root, ucf101_root):
    kinetics = datamodule_class("kinetics")(root=str(kinetics_root), **LOADER)
    kinetics.setup("fit")
    assert kinetics.auto_device_decoding(torch.device("cuda"))
    assert not kinetics.auto_device_decoding(torch.device("cpu"))
    named = datamodule_class("kinetics")(root=str(kinetics_root), decoder="pyav", **LOADER)
    named.setup("fit")
    assert not named.auto_device_decoding(torch.device("cuda"))  # a named backend is kept
    davis = datamodule_class("davis")(root=str(davis_root))  # frame folders: their JPEGs decode on the GPU
    davis.setup("fit")
    assert davis.auto_device_decoding(torch.device("cuda"))
    frames = datamodule_class("ucf101")(root=str(ucf101_root), storage="frames", **LOADER)
    assert not frames.auto_device_decoding(torch.device("cuda"))
    flow = datamodule_class("ucf101")(root=str(ucf101_root), modality="flow", **LOADER)
    assert not flow.auto_device_decoding(torch.device("cuda"))


def test_decode_path_says_where_clips_are_decoded(ucf101_root):
    assert datamodule_class("ucf101")(root=str(ucf101_root), decoder="pyav", num_workers=3).decode_path == \
        "pyav in 3 workers"
    assert datamodule_class("ucf101")(root=str(ucf101_root), decoder="decord", num_workers=0).decode_path == \
        "decord in the main process"
    assert datamodule_class("ucf101")(root=str(ucf101_root), decoder=DEVICE_DECODER).decode_path == \
        f"{DEVICE_DECODER} on the Trainer's device"


def test_data_iterate_refuses_the_gpu_decoder_without_a_gpu(ucf101_root, capsys):
    status = main(["data", "iterate", "--format", "ucf101", "--root", str(ucf101_root), "--decoder", DEVICE_DECODER,
                   "--num-workers", "0"])
    assert status != 0
    assert "decodes on a CUDA GPU, but this run's device is cpu" in capsys.readouterr().err
