"""Frame-folder storage: a video-file dataset extracted once to JPEG folders (`extract_dataset_frames`) and read
by the same DataModules with `storage: frames`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import read_marker
from PIL import Image

from lit_video.data.base import datamodule_class
from lit_video.data.flow import compute_dataset_flow
from lit_video.data.frames import extract_dataset_frames
from lit_video.errors import DatasetLayoutError, LitVideoError
from lit_video.video.frames import VIDEO_FILE, frames_folder, frames_store


def copy_dataset(source: Path, folder: Path) -> Path:
    """A copy of a shared dataset fixture that a test may write a store into."""
    return Path(shutil.copytree(source, folder / "ucf101"))


def datamodule(root: Path, storage: str, **kwargs):
    return datamodule_class("ucf101")(root=str(root), num_workers=0, storage=storage, normalize_on_device=True,
                                      **kwargs)


def one_line_error(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.fixture(scope="module")
def stored_root(tmp_path_factory, ucf101_root, marked_videos) -> Path:
    """A UCF101 copy with its frame store; its first training video is replaced by a frame-marked one (the
    frame index written in blocks of each frame), so that the stored frames can be identified exactly."""
    root = copy_dataset(ucf101_root, tmp_path_factory.mktemp("frame_store"))
    first = datamodule(root, "video").records("train")[0]
    shutil.copyfile(marked_videos["avi"][0], first.path)
    summary = extract_dataset_frames("ucf101", root)
    assert (summary.computed, summary.skipped, summary.failed) == (40, 0, [])
    return root


@pytest.mark.parametrize("subset", ["train", "val"])
def test_frames_give_the_clips_the_videos_give(stored_root, subset):
    kwargs = dict(clip_len=8, stride=2, num_clips=2, target_fps=None)
    from_videos = datamodule(stored_root, "video", **kwargs).make_dataset(subset)
    from_frames = datamodule(stored_root, "frames", **kwargs).make_dataset(subset)
    assert [r.path for r in from_frames.records] == [r.path for r in from_videos.records]
    for index in range(len(from_videos)):
        torch.manual_seed(index)  # the same random clip start, crop and flip
        expected = from_videos[index]
        torch.manual_seed(index)
        got = from_frames[index]
        assert torch.equal(got["frame_indices"], expected["frame_indices"])
        assert got["video"].shape == expected["video"].shape and got["video"].dtype == torch.uint8
        # the synthetic noise textures are JPEG's worst case: about 4/255 at quality 90 (smooth video: < 1)
        difference = (got["video"].float() - expected["video"].float()).abs().mean().item()
        assert difference < 5.5, (index, difference)
    # frame identity, exactly: the marked video's stored frames are the frames the sampler asked for
    marked = next(i for i, r in enumerate(from_frames.records) if r.path == from_videos.records[0].path) \
        if subset == "train" else None
    if marked is not None:
        indices = from_frames[marked]["frame_indices"].reshape(-1)
        with from_frames.open(from_frames.records[marked]) as reader:
            assert reader.num_frames == 150 and reader.fps == pytest.approx(25)
            frames = reader.get_frames(indices).numpy()
        assert [read_marker(frame) for frame in frames] == indices.tolist()


def test_target_fps_samples_the_same_frames(stored_root):
    kwargs = dict(clip_len=4, stride=1, target_fps=12.5)
    from_videos = datamodule(stored_root, "video", **kwargs).make_dataset("train")
    from_frames = datamodule(stored_root, "frames", **kwargs).make_dataset("train")
    torch.manual_seed(0)
    expected = from_videos[0]["frame_indices"]
    torch.manual_seed(0)
    assert torch.equal(from_frames[0]["frame_indices"], expected)
    assert (np.diff(expected.numpy()) == 2).all()  # 25 fps read at 12.5: every other frame


def test_store_layout_records_what_a_reader_needs(stored_root):
    video = datamodule(stored_root, "video").records("train")[0].path
    folder = frames_folder(stored_root, video)
    assert folder == stored_root / "frames" / Path(video).relative_to(stored_root).with_suffix("")
    info = json.loads((folder / VIDEO_FILE).read_text())
    assert (info["num_frames"], info["fps"], info["height"], info["width"]) == (150, 25.0, 64, 96)
    assert sorted(p.name for p in folder.glob("*.jpg"))[:2] == ["00000.jpg", "00001.jpg"]
    assert len(list(folder.glob("*.jpg"))) == 150
    store = json.loads((frames_store(stored_root) / "frames.json").read_text())
    assert (store["short_side"], store["jpeg_quality"]) == (None, 90)


def test_a_rerun_skips_complete_folders_and_redoes_an_incomplete_one(ucf101_root, tmp_path):
    root = copy_dataset(ucf101_root, tmp_path)
    videos = [r.path for r in datamodule(root, "video").records("test")]
    first = extract_dataset_frames("ucf101", root, subsets=["test"])
    assert (first.computed, first.skipped, first.subsets) == (len(videos), 0, ["test"])
    seen = []
    again = extract_dataset_frames("ucf101", root, subsets=["test"], progress=lambda v, s: seen.append(s))
    assert (again.computed, again.skipped) == (0, len(videos)) and seen == ["skipped"] * len(videos)
    # an interrupted video: frames written, its video.json not yet; one frame missing
    folder = frames_folder(root, videos[1])
    (folder / VIDEO_FILE).unlink()
    (folder / "00003.jpg").unlink()
    with pytest.warns(UserWarning, match=f"1 of {len(videos)} listed videos have no complete frame folder"):
        assert len(datamodule(root, "frames").records("test")) == len(videos) - 1
    resumed = extract_dataset_frames("ucf101", root, subsets=["test"])
    assert (resumed.computed, resumed.skipped) == (1, len(videos) - 1)
    assert (folder / "00003.jpg").is_file() and (folder / VIDEO_FILE).is_file()


def test_short_side_shrinks_never_enlarges_and_other_settings_are_refused(ucf101_root, tmp_path):
    root = copy_dataset(ucf101_root, tmp_path)
    extract_dataset_frames("ucf101", root, short_side=32, subsets=["test"])
    video = datamodule(root, "video").records("test")[0].path
    folder = frames_folder(root, video)
    assert Image.open(folder / "00000.jpg").size == (40, 32)  # (width, height) of 64x80 at short side 32
    assert json.loads((folder / VIDEO_FILE).read_text())["height"] == 32
    with pytest.raises(LitVideoError) as error:
        extract_dataset_frames("ucf101", root, short_side=100, subsets=["test"])
    assert "holds frames extracted with short_side 32, not 100" in one_line_error(error)
    with pytest.raises(LitVideoError) as error:
        extract_dataset_frames("ucf101", root, short_side=32, quality=80, subsets=["test"])
    assert "jpeg_quality 90, not 80" in one_line_error(error)
    replaced = extract_dataset_frames("ucf101", root, short_side=100, subsets=["test"], replace=True)
    assert replaced.skipped == 0 and replaced.computed > 0
    assert Image.open(folder / "00000.jpg").size == (80, 64)  # never enlarged


def test_missing_folders_are_skipped_and_the_videos_themselves_are_not_needed(ucf101_root, tmp_path):
    root = copy_dataset(ucf101_root, tmp_path)
    extract_dataset_frames("ucf101", root, subsets=["test"])
    records = datamodule(root, "video").records("test")
    shutil.rmtree(frames_folder(root, records[0].path))
    for record in records:  # the frames replace the videos: they may be deleted
        Path(record.path).unlink()
    with pytest.warns(UserWarning) as caught:
        dataset = datamodule(root, "frames").make_dataset("test")
    message = str(caught[0].message)
    assert f"1 of {len(records)} listed videos have no complete frame folder" in message
    assert str(frames_folder(root, records[0].path)) in message and "lit-video data prepare" in message
    assert len(dataset) == len(records) - 1 and dataset[0]["video"].shape[-3] == 8


def test_a_dataset_without_a_frame_store_is_one_line(ucf101_root):
    with pytest.raises(DatasetLayoutError) as error:
        datamodule(ucf101_root, "frames").make_dataset("train")
    message = one_line_error(error)
    assert str(ucf101_root / "frames" / "frames.json") in message
    assert f"lit-video data prepare --format ucf101 --root {ucf101_root} --frames" in message


@pytest.mark.parametrize("arguments, fragment", [
    (dict(short_side=0), "--short-side must be a positive integer, got 0"),
    (dict(quality=101), "--quality must be a JPEG quality, an integer from 1 to 100, got 101"),
    (dict(workers=0), "--workers must be a positive integer, got 0"),
    (dict(subsets=["dev"]), "--subset must be train, val or test, got 'dev'"),
])
def test_bad_arguments_are_one_line(ucf101_root, arguments, fragment):
    with pytest.raises(LitVideoError) as error:
        extract_dataset_frames("ucf101", ucf101_root, **arguments)
    assert fragment in one_line_error(error)
    assert not (ucf101_root / "frames").exists()


def test_frame_folder_formats_refuse_frame_storage(davis_root):
    with pytest.raises(LitVideoError) as error:
        datamodule_class("davis")(root=str(davis_root), storage="frames")
    assert "storage 'frames': the davis DataModule reads frame folders already" in one_line_error(error)
    with pytest.raises(LitVideoError) as error:
        extract_dataset_frames("davis", davis_root)
    assert "davis stores its videos as frame folders already" in one_line_error(error)


def test_links_out_of_the_root_are_never_followed(ucf101_root, tmp_path):
    root = copy_dataset(ucf101_root, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "frames").symlink_to(outside, target_is_directory=True)
    with pytest.raises(LitVideoError) as error:
        extract_dataset_frames("ucf101", root, subsets=["test"])
    assert "leads outside the dataset root" in one_line_error(error)
    (root / "frames").unlink()
    # one class folder of the store linked out of the root: its videos fail, the rest are written
    video = Path(datamodule(root, "video").records("test")[0].path)
    linked = frames_folder(root, video).parent
    linked.parent.mkdir(parents=True)
    linked.symlink_to(outside, target_is_directory=True)
    with pytest.warns(UserWarning, match="leading outside"):
        summary = extract_dataset_frames("ucf101", root, subsets=["test"])
    assert summary.failed and all(Path(v).parent == video.parent for v, _ in summary.failed)
    assert summary.computed > 0 and list(outside.iterdir()) == []


def test_stored_flow_is_read_beside_stored_frames(ucf101_root, tmp_path):
    root = copy_dataset(ucf101_root, tmp_path)
    extract_dataset_frames("ucf101", root, subsets=["test"])
    compute_dataset_flow("ucf101", root, "farneback", subsets=["test"])
    kwargs = dict(modality="rgb+flow", flow_method="farneback", clip_len=4)
    from_videos = datamodule(root, "video", **kwargs).make_dataset("val")
    from_frames = datamodule(root, "frames", **kwargs).make_dataset("val")
    expected, got = from_videos[0]["video"], from_frames[0]["video"]  # (views, 5, T, H, W)
    assert torch.equal(got[:, 3:], expected[:, 3:])  # the same stored flow, the video's own
    assert (got[:, :3] - expected[:, :3]).abs().mean() < 5.5
