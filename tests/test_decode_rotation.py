"""Videos with a display rotation (what phones write) come out of every backend as they are shown."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import torch
from conftest import marked_frames, read_marker

from lit_video.video import decode
from lit_video.video.decode import BACKENDS, available_backends, open_video, orientation_from_display_matrix
from lit_video.video.encode import write_video

INSTALLED = available_backends()
NUM_FRAMES = 24
# Scrambled, repeated, both ends; with a keyframe every 8 frames this seeks backwards and forwards.
INDICES = [17, 3, 3, 23, 0, 9, 8, 16, 1, 22, 12]


def _backend(name):
    return pytest.param(name, marks=pytest.mark.skipif(name not in INSTALLED, reason=f"{name} not installed"))


def shown(frames: np.ndarray, degrees: float, mirror: bool = False) -> np.ndarray:
    """Frames as a player shows them: turned `degrees` counter-clockwise, then mirrored left-right."""
    frames = np.rot90(frames, round(degrees / 90) % 4, axes=(1, 2))
    return frames[:, :, ::-1] if mirror else frames


def stored(frame: np.ndarray, degrees: float, mirror: bool = False) -> np.ndarray:
    """One shown frame turned back to how it is stored (where the frame-index marker can be read)."""
    frame = frame[:, ::-1] if mirror else frame
    return np.rot90(frame, -round(degrees / 90) % 4)


# (container, display rotation in degrees counter-clockwise or None for no display matrix, mirrored):
# every rotation in both signs in MP4; Matroska/WebM (whose display matrix decord's FFmpeg does not read)
# for the quarter and half turns; mirror images (a negative-determinant matrix) in both families.
CASES = [
    *[("mp4", degrees, False) for degrees in (None, 0, 90, 180, 270, -90, -180, -270)],
    *[(extension, degrees, False) for extension in ("mkv", "webm") for degrees in (90, 180, -90)],
    *[(extension, degrees, True) for extension in ("mp4", "webm") for degrees in (0, 90, 180, 270)],
]


def _case_id(case) -> str:
    extension, degrees, mirror = case
    return f"{extension}-{'none' if degrees is None else degrees}{'-mirror' if mirror else ''}"


@pytest.fixture(scope="module")
def display_videos(tmp_path_factory) -> tuple[dict[tuple, object], np.ndarray]:
    """One short marked video per case, its pixels stored unturned -> ({case: path}, written frames)."""
    folder = tmp_path_factory.mktemp("display")
    written = marked_frames(NUM_FRAMES, seed=4)
    videos = {}
    for case in CASES:
        extension, degrees, mirror = case
        path = folder / f"{_case_id(case)}.{extension}"
        write_video(path, written, fps=25, quality="high", gop_size=8, max_b_frames=0 if extension == "webm" else 2,
                    display_rotation=degrees, display_mirror=mirror)
        videos[case] = path
    return videos, written


@pytest.mark.parametrize("case", CASES, ids=_case_id)
@pytest.mark.parametrize("backend", [_backend(b) for b in BACKENDS])
def test_every_backend_returns_frames_as_shown(display_videos, backend, case):
    videos, written = display_videos
    _, degrees, mirror = case
    expected = shown(written, degrees or 0, mirror)
    with open_video(videos[case], backend) as reader:
        assert reader.size == expected.shape[1:3]
        assert reader.num_frames == NUM_FRAMES
        frames = reader.get_frames(INDICES).numpy()
    assert frames.shape == (len(INDICES), *expected.shape[1:])
    assert [read_marker(stored(f, degrees or 0, mirror)) for f in frames] == INDICES
    for frame, index in zip(frames.astype(np.int16), INDICES, strict=True):
        error = np.abs(frame - expected[index]).mean()
        assert error < 6 and error < np.abs(frame - expected[(index + 1) % NUM_FRAMES]).mean()


@pytest.mark.skipif(len(INSTALLED) < 2, reason="needs two backends")
@pytest.mark.parametrize("case", [c for c in CASES if c[1] not in (None, 0)], ids=_case_id)
def test_backends_and_auto_return_the_same_pixels(display_videos, case):
    """Which backend `auto` picks must not change what a model sees: the same pixels from every one."""
    videos, _ = display_videos
    results = {}
    for backend in (*INSTALLED, "auto"):
        with open_video(videos[case], backend) as reader:
            results[backend] = (reader.size, reader.get_frames(INDICES))
    reference_size, reference = results["auto"]
    for backend, (size, frames) in results.items():
        assert size == reference_size, backend
        assert torch.equal(frames, reference), backend


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command")
@pytest.mark.parametrize("backend", [_backend(b) for b in BACKENDS])
def test_frames_match_the_ffmpeg_command_s_autorotation(tmp_path, display_videos, backend):
    """The ffmpeg command turns a video by its display matrix when it re-encodes it (autorotate): its output,
    with the turn baked into the pixels and no matrix left, is how FFmpeg itself shows the file. This checks
    the sense of the turn independently of how the test videos were written."""
    videos, _ = display_videos
    for degrees in (90, -90, 180):
        upright = tmp_path / f"autorotated{degrees}.mp4"
        command = ["ffmpeg", "-v", "error", "-y", "-i", str(videos[("mp4", degrees, False)]), "-c:v", "libx264",
                   "-crf", "4", "-preset", "veryfast", "-bf", "0", "-pix_fmt", "yuv420p", str(upright)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-500:]
        with open_video(upright, "pyav") as reader:
            expected = reader.get_frames(INDICES).numpy().astype(np.int16)
        with open_video(videos[("mp4", degrees, False)], backend) as reader:
            assert reader.size == expected.shape[1:3]
            frames = reader.get_frames(INDICES).numpy().astype(np.int16)
        assert frames.shape == expected.shape
        assert np.abs(frames - expected).mean() < 4
        assert [read_marker(stored(f, degrees)) for f in frames.astype(np.uint8)] == INDICES


def test_display_matrices_as_files_carry_them():
    """FFmpeg's matrices (16.16 fixed point; x' = a x + c y, y' = b x + d y) as phones and tools write them."""
    one = 1 << 16
    w = 1 << 30
    assert orientation_from_display_matrix((one, 0, 0, 0, one, 0, 0, 0, w)) == (0, False)
    # an iPhone's portrait video: "rotation of -90.00 degrees" in ffprobe, shown turned clockwise
    assert orientation_from_display_matrix((0, one, 0, -one, 0, 0, 0, 0, w)) == (3, False)
    assert orientation_from_display_matrix((0, -one, 0, one, 0, 0, 0, 0, w)) == (1, False)
    assert orientation_from_display_matrix((-one, 0, 0, 0, -one, 0, 0, 0, w)) == (2, False)
    # mirror images: left-right (a < 0), top-bottom (= turned half way, then mirrored left-right)
    assert orientation_from_display_matrix((-one, 0, 0, 0, one, 0, 0, 0, w)) == (0, True)
    assert orientation_from_display_matrix((one, 0, 0, 0, -one, 0, 0, 0, w)) == (2, True)
    # a turn off the right angles is rounded to the nearest one; no usable matrix means upright
    cos, sin = round(one * np.cos(np.radians(80))), round(one * np.sin(np.radians(80)))
    assert orientation_from_display_matrix((cos, -sin, 0, sin, cos, 0, 0, 0, w)) == (1, False)
    assert orientation_from_display_matrix((0,) * 9) == (0, False)


def test_without_pyav_view_backends_keep_their_own_orientation(monkeypatch, display_videos):
    """When PyAV cannot read a file that another backend can, that backend's frames are returned as they are."""
    videos, written = display_videos
    monkeypatch.setattr(decode, "probe_display", lambda path: None)
    for backend in [b for b in INSTALLED if b != "pyav"]:
        with open_video(videos[("mp4", None, False)], backend) as reader:
            assert reader.size == (64, 96)
            assert [read_marker(f) for f in reader.get_frames([5, 2]).numpy()] == [5, 2]


def test_a_rewritten_file_is_probed_again(tmp_path):
    """The display matrix is remembered per file version: a file replaced by one without a rotation is upright."""
    path = tmp_path / "replaced.mp4"
    frames = marked_frames(4)
    write_video(path, frames, display_rotation=90)
    backend = INSTALLED[0]
    with open_video(path, backend) as reader:
        assert reader.size == (96, 64)
    write_video(path, frames)
    with open_video(path, backend) as reader:
        assert reader.size == (64, 96)
        assert read_marker(reader.get_frames([3]).numpy()[0]) == 3


def test_write_video_refuses_a_rotation_it_cannot_store(tmp_path):
    frames = marked_frames(2)
    with pytest.raises(ValueError, match="cannot carry a display rotation"):
        write_video(tmp_path / "x.avi", frames, display_rotation=90)
    with pytest.raises(ValueError, match="display_mirror needs a display_rotation"):
        write_video(tmp_path / "x.mp4", frames, display_mirror=True)
