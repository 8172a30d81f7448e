"""`lit-video data prepare --reencode`: a new root with the same layout whose videos keep every frame and the
frame rate, get the short side and keyframe spacing asked for, and show the same pictures; resumable, never
touching the original, and refusing bad settings in one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from cli_errors import assert_one_line_error, run_lit_video
from test_bad_input_data import snapshot

from lit_video.cli import main
from lit_video.data.base import datamodule_class
from lit_video.data.flow import dataset_videos
from lit_video.data.prepare import REENCODE_MARKER, ReencodeSettings, reencode_dataset
from lit_video.video.decode import PyAVReader

SETTINGS = ReencodeSettings(short_side=48, keyframe_interval=8)


@pytest.fixture(scope="module")
def reencoded(kinetics_root, tmp_path_factory) -> tuple[Path, Path, dict]:
    """(original root, re-encoded root, the original's snapshot taken before) of the synthetic Kinetics copy:
    H.264 in MP4 with one keyframe per clip and B-frames, as raw Kinetics downloads often are."""
    before = snapshot(kinetics_root)
    out = tmp_path_factory.mktemp("reencoded") / "kinetics"
    summary = reencode_dataset("kinetics", kinetics_root, out, SETTINGS)
    assert summary.encoded > 0 and not summary.failed and summary.skipped == 0
    return kinetics_root, out, before


def listed_videos(root: Path) -> list[str]:
    return dataset_videos(datamodule_class("kinetics")(root=str(root), num_workers=0))[0]


def keyframes(path: str) -> list[int]:
    """Display indices of the keyframes of a video's first stream, read from its packets."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
        order = sorted(range(len(packets)), key=lambda i: packets[i].pts)
        return sorted(order.index(i) for i, p in enumerate(packets) if p.is_keyframe)


def test_every_video_keeps_its_frames_and_rate_and_gets_the_size_and_keyframes_asked(reencoded):
    root, out, before = reencoded
    videos = listed_videos(root)
    assert sorted(Path(v).relative_to(root) for v in videos) == sorted(
        Path(v).relative_to(out) for v in listed_videos(out))
    for video in videos:
        copy = str(out / Path(video).relative_to(root))
        with PyAVReader(video) as original, PyAVReader(copy) as encoded:
            assert encoded.num_frames == original.num_frames
            assert encoded.fps == pytest.approx(original.fps)
            height, width = encoded.size
            assert min(height, width) == SETTINGS.short_side
            assert width / height == pytest.approx(original.size[1] / original.size[0], abs=0.05)
            assert keyframes(copy) == list(range(0, encoded.num_frames, SETTINGS.keyframe_interval))
        assert keyframes(video) == [0]  # what made random access slow
    assert snapshot(root) == before  # the original is never written to


def test_a_clip_shows_the_same_pictures_as_the_original(reencoded):
    root, out, _ = reencoded
    indices = [3, 4, 5, 14, 15]
    for video in listed_videos(root)[:6]:
        with PyAVReader(str(out / Path(video).relative_to(root))) as encoded:
            frames = np.asarray(encoded.get_frames(indices)).astype(np.float32)
        with PyAVReader(video) as original:  # every frame of the original at the new size
            shrunk = np.stack(list(original.iter_frames(frames.shape[1:3]))).astype(np.float32)
        error = np.abs(frames - shrunk[indices]).mean()
        assert error < 8, f"{video}: mean abs error {error:.1f} of 255"  # x264 at CRF 23, on tiny frames
        # the right frames, not neighbours: the moving shapes make a frame six steps away far off
        assert error < 0.6 * np.abs(frames - shrunk[[i + 6 for i in indices]]).mean()


def test_the_lists_are_copied_and_the_new_root_reads_as_the_format(reencoded):
    root, out, _ = reencoded
    for name in ("train.csv", "validate.csv", "test.csv"):
        assert (out / name).read_bytes() == (root / name).read_bytes()
    datamodule = datamodule_class("kinetics")(root=str(out), num_workers=0, batch_size=2, clip_len=4,
                                              resolution=32)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert tuple(batch["video"].shape[:3]) == (2, 3, 4)


def test_a_rerun_skips_what_is_done_and_redoes_what_is_not(reencoded, tmp_path):
    root, out, _ = reencoded
    resumed = tmp_path / "resumed"
    shutil.copytree(out, resumed)
    done = sorted(resumed.rglob("*.mp4"))
    done[0].unlink()  # as if the run had stopped before it
    (done[1].parent / f".{done[1].stem}.partial.mp4").write_bytes(b"cut short")  # a write cut short
    summary = reencode_dataset("kinetics", root, resumed, SETTINGS)
    assert (summary.encoded, summary.skipped, summary.failed) == (1, len(done) - 1, [])
    with PyAVReader(str(done[0])) as reader:
        assert min(reader.size) == SETTINGS.short_side


def test_a_new_frame_rate_resamples_the_frames(kinetics_root, tmp_path):
    video = listed_videos(kinetics_root)[0]
    summary = reencode_dataset("kinetics", kinetics_root, tmp_path / "half",
                               ReencodeSettings(short_side=32, keyframe_interval=4, fps=12.5))
    assert not summary.failed
    with PyAVReader(video) as original, PyAVReader(str(tmp_path / "half" / Path(video).relative_to(kinetics_root))) as half:
        assert original.fps == 25 and half.fps == pytest.approx(12.5)
        assert half.num_frames == original.num_frames // 2
        # output frame j shows source frame 2j
        shown = np.asarray(half.get_frames([3])).astype(np.float32)[0]
        source = np.stack(list(original.iter_frames(shown.shape[:2]))).astype(np.float32)
        assert np.abs(shown - source[6]).mean() < 0.6 * np.abs(shown - source[3]).mean()


def test_prepare_checks_reencodes_and_checks_the_new_root(ucf101_root, tmp_path):
    out = tmp_path / "ucf101_256"
    result = run_lit_video("data", "prepare", "--format", "ucf101", "--root", ucf101_root, "--reencode", "--out", out,
                           "--short-side", "32", "--keyframe-interval", "4", "--workers", "2", "--frames")
    assert result.returncode == 0, result.output
    assert f"checking ucf101 {out}" in result.stdout and "0 failed" in result.stdout
    assert (out / REENCODE_MARKER).is_file() and (out / "ucfTrainTestlist" / "classInd.txt").is_file()
    # the frames of the re-encoded videos, at their size
    first = next((out / "frames" / "UCF-101").rglob("00000.jpg"))
    assert min(cv2.imread(str(first)).shape[:2]) == 32
    again = run_lit_video("data", "prepare", "--format", "ucf101", "--root", ucf101_root, "--reencode", "--out", out,
                          "--short-side", "32", "--keyframe-interval", "4")
    assert again.returncode == 0 and "0 encoded" in again.stdout, again.output


BAD_PREPARE = [
    (["--reencode"], ["--out"]),
    (["--short-side", "128"], ["--short-side", "--reencode"]),
    (["--reencode", "--out", "{root}/inside"], ["--out", "outside the dataset root"]),
    (["--reencode", "--out", "{tmp}/o", "--keyframe-interval", "0"], ["--keyframe-interval"]),
    (["--reencode", "--out", "{tmp}/o", "--short-side", "wide"], ["--short-side"]),
    (["--reencode", "--out", "{tmp}/o", "--quality", "best"], ["--quality", "normal"]),
    (["--reencode", "--out", "{tmp}/o", "--fps", "-3"], ["--fps"]),
    (["--reencode", "--out", "{tmp}/taken"], ["--out", "not an empty folder"]),
    (["--reencode", "--out", "{tmp}/other", "--short-side", "64"], ["other settings", "short_side 48 -> 64"]),
]


def _bad_prepare_folders(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / REENCODE_MARKER).write_text('{"short_side": 48, "keyframe_interval": 16, "fps": null, '
                                                      '"quality": "normal"}')


@pytest.mark.parametrize("extra, fragments", BAD_PREPARE)
def test_bad_prepare_arguments_are_refused_in_one_line(extra, fragments, ucf101_root, tmp_path, capsys):
    """Each refusal through the CLI's own entry point in this process (the subprocess test below checks
    the whole contract, traceback-free, on two of them)."""
    _bad_prepare_folders(tmp_path)
    before = snapshot(ucf101_root)
    args = [a.format(root=ucf101_root, tmp=tmp_path) for a in extra]
    assert main(["data", "prepare", "--format", "ucf101", "--root", str(ucf101_root), *args]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("lit-video: error:")]
    assert len(errors) == 1 and all(f.lower() in errors[0].lower() for f in fragments), errors
    assert snapshot(ucf101_root) == before
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("case", [2, 8])
def test_prepare_refusals_are_one_line_from_the_command(case, ucf101_root, tmp_path):
    _bad_prepare_folders(tmp_path)
    extra, fragments = BAD_PREPARE[case]
    args = [a.format(root=ucf101_root, tmp=tmp_path) for a in extra]
    assert_one_line_error(run_lit_video("data", "prepare", "--format", "ucf101", "--root", ucf101_root, *args),
                          *fragments)


def test_frame_folder_formats_have_nothing_to_reencode(davis_root, tmp_path, capsys):
    assert main(["data", "prepare", "--format", "davis", "--root", str(davis_root), "--reencode", "--out",
                 str(tmp_path / "d")]) == 2
    assert "davis stores frames as images" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_a_damaged_video_fails_alone(kinetics_root, tmp_path):
    root = tmp_path / "kinetics"
    shutil.copytree(kinetics_root, root)
    damaged = Path(listed_videos(root)[0])
    damaged.write_bytes(damaged.read_bytes()[:300])  # a download cut short
    with pytest.warns(UserWarning, match="not re-encoded"):
        summary = reencode_dataset("kinetics", root, tmp_path / "out", SETTINGS)
    assert [video for video, _ in summary.failed] == [str(damaged)]
    assert summary.encoded == len(listed_videos(root)) - 1
    assert not (tmp_path / "out" / damaged.relative_to(root)).exists()
