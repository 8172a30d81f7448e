"""Frame-exact video decoding behind one interface.

`open_video(path, backend)` returns a `VideoReader` whose `get_frames(indices)` gives exactly the
frames at those (0-based, presentation-order) indices as uint8 (T,H,W,C), whatever the order or
repetition of `indices`. Backends: decord, torchcodec, PyAV, and a reader for folders of JPEG/PNG
frames (DAVIS, YouTube-VOS). Every backend failure is raised as `VideoDecodeError`, which names the
file, so datasets can skip a bad video and say which one it was.

Frames come out as the video is meant to be shown: a display rotation (or mirroring) stored in the
container's display matrix, as phones write it, is applied by every backend, and `size` is the shown
(height, width). The backends disagree on their own -- PyAV gives the stored pixels, decord turns only
MP4/MOV files and torchcodec turns but does not mirror -- so each reader learns the display matrix
through PyAV and corrects what its backend returned.
"""

from __future__ import annotations

import bisect
import contextlib
import importlib
import math
import os
import struct
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
import torch

from lit_video.errors import LitVideoError, VideoDecodeError
from lit_video.video.backends import BACKENDS, DEFAULT_BACKEND

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")

_INSTALL_HINTS = {
    "decord": "pip install decord",
    "torchcodec": "pip install torchcodec (it also needs FFmpeg's libraries: apt-get install ffmpeg, "
    "or conda install ffmpeg)",
    "pyav": "pip install av",
}


class BackendUnavailableError(LitVideoError):
    """The requested decoding backend is not installed or cannot load."""


class VideoReader(ABC):
    """A random-access reader of one video.

    Args:
        path: the video file (or frame folder).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)

    @property
    @abstractmethod
    def num_frames(self) -> int: ...

    @property
    @abstractmethod
    def fps(self) -> float: ...

    @property
    @abstractmethod
    def size(self) -> tuple[int, int]:
        """(height, width) of the decoded frames."""

    @property
    def duration(self) -> float:
        """Seconds, as num_frames / fps."""
        return self.num_frames / self.fps

    def get_frames(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
        """Decode the frames at `indices` (any order, repeats allowed).

        Returns:
            uint8 tensor (T,H,W,C) with T = len(indices), RGB.
        """
        wanted = np.asarray(indices, dtype=np.int64).reshape(-1)
        if wanted.size == 0:
            raise ValueError(f"{self.path}: get_frames needs at least one frame index")
        n = self.num_frames
        if wanted.min() < 0 or wanted.max() >= n:
            bad = int(wanted[(wanted < 0) | (wanted >= n)][0])
            raise IndexError(f"{self.path}: frame index {bad} out of range for a video of {n} frames")
        # Decode each distinct frame once, in presentation order, then put them where they were asked.
        unique, inverse = np.unique(wanted, return_inverse=True)
        try:
            frames = self._decode_sorted(unique)  # (U,H,W,C)
        except VideoDecodeError:
            raise
        except Exception as err:  # each backend raises its own types; report them all the same way
            raise VideoDecodeError(self.path, f"{type(err).__name__}: {err}") from err
        frames = torch.as_tensor(frames)
        if frames.shape[0] != unique.size:
            raise VideoDecodeError(self.path, f"decoded {frames.shape[0]} of {unique.size} requested frames")
        return frames[torch.from_numpy(inverse)]

    @abstractmethod
    def _decode_sorted(self, indices: np.ndarray) -> torch.Tensor | np.ndarray:
        """Decode distinct, ascending frame indices -> uint8 (U,H,W,C)."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold no handle
        pass

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"


def _import_backend(name: str):
    module = {"decord": "decord", "torchcodec": "torchcodec.decoders", "pyav": "av"}[name]
    if name == "decord":
        # decord loads its bundled FFmpeg 4 and libvpx with RTLD_GLOBAL; a PyAV loaded after it binds
        # libvpx symbols to that older copy and its VP9 encoder fails. Loading PyAV first avoids it.
        with contextlib.suppress(ImportError):
            importlib.import_module("av")
    try:
        return importlib.import_module(module)
    except Exception as err:  # ImportError, or OSError/RuntimeError when FFmpeg's libraries are missing
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BackendUnavailableError(
            f"video backend '{name}' is not available ({first_line[:200]}); "
            f"install it with `{_INSTALL_HINTS[name]}` or choose another decoder: {', '.join(BACKENDS)}"
        ) from None


def available_backends() -> list[str]:
    """The file backends that import on this machine, in preference order."""
    found = []
    for name in BACKENDS:
        try:
            _import_backend(name)
        except BackendUnavailableError:
            continue
        found.append(name)
    return found


# An orientation is (quarter turns counter-clockwise, mirrored left-right after the turn): the eight ways
# to show a stored picture upright that a display matrix can ask for (rotations by 90-degree steps,
# optionally mirrored).
Orientation = tuple[int, bool]
UPRIGHT: Orientation = (0, False)
_ORIENTATIONS: tuple[Orientation, ...] = tuple((turns, mirror) for mirror in (False, True) for turns in range(4))
# A picture that each of the eight orientations changes differently: comparing where its entries land
# tells orientations apart without any algebra that could get a sign wrong.
_PROBE_PICTURE = np.arange(6).reshape(1, 2, 3, 1)


def orient(frames: np.ndarray | torch.Tensor, orientation: Orientation) -> np.ndarray | torch.Tensor:
    """Turn and mirror frames.

    Args:
        frames: (T,H,W,C), numpy or torch.
        orientation: (quarter turns counter-clockwise, mirror left-right after the turn).

    Returns:
        The frames as shown, contiguous, of the input's type.
    """
    turns, mirror = orientation[0] % 4, orientation[1]
    if (turns, mirror) == UPRIGHT:
        return frames
    if isinstance(frames, torch.Tensor):
        frames = torch.rot90(frames, turns, dims=(1, 2)) if turns else frames
        return torch.flip(frames, dims=(2,)) if mirror else frames.contiguous()
    frames = np.rot90(frames, turns, axes=(1, 2))
    # torch.as_tensor refuses the negative strides of numpy's views: copy
    return np.ascontiguousarray(frames[:, :, ::-1] if mirror else frames)


def correction(applied: Orientation, wanted: Orientation) -> Orientation:
    """The orientation that turns frames a backend returned in `applied` into frames in `wanted`.

    Args:
        applied: what the backend did to the stored pictures.
        wanted: how the pictures are meant to be shown.
    """
    start, target = orient(_PROBE_PICTURE, applied), orient(_PROBE_PICTURE, wanted)
    for candidate in _ORIENTATIONS:
        shown = orient(start, candidate)
        if shown.shape == target.shape and np.array_equal(shown, target):
            return candidate
    raise AssertionError(f"no orientation turns {applied} into {wanted}")


def shown_size(size: tuple[int, int], orientation: Orientation) -> tuple[int, int]:
    """(height, width) of a picture of `size` once shown in `orientation`."""
    return (size[1], size[0]) if orientation[0] % 2 else (size[0], size[1])


def display_rotation(matrix: Sequence[int]) -> float:
    """The counter-clockwise turn in degrees that FFmpeg reads from a display matrix
    (av_display_rotation_get): what torchcodec and decord apply; it ignores any mirroring."""
    scale_x, scale_y = math.hypot(matrix[0], matrix[3]), math.hypot(matrix[1], matrix[4])
    if not scale_x or not scale_y:
        return 0.0
    return -math.degrees(math.atan2(matrix[1] / scale_y, matrix[0] / scale_x))


def turned(degrees: float | None) -> Orientation:
    """The orientation of a plain counter-clockwise turn, rounded to a multiple of 90 degrees (halves away
    from zero, as FFmpeg and torchcodec round)."""
    quarters = (degrees or 0.0) / 90
    return (int(math.copysign(math.floor(abs(quarters) + 0.5), quarters)) % 4, False)


@lru_cache(maxsize=64)
def orientation_from_display_matrix(matrix: tuple[int, ...]) -> Orientation:
    """How to show a picture whose display matrix is `matrix` (FFmpeg's AV_PKT_DATA_DISPLAYMATRIX).

    The matrix maps a stored pixel (x, y) to the shown one, (x', y') = (x y) [[a, b], [c, d]] with
    a, b, c, d = matrix[0], matrix[1], matrix[3], matrix[4]. A negative determinant means a mirror
    image: negating the first column (mirroring x' back) leaves the plain turn. A turn that is not a
    multiple of 90 degrees is rounded to the nearest one, as the FFmpeg-based decoders do.

    Args:
        matrix: the nine int32 entries.
    """
    a, b, c, d = (float(matrix[i]) for i in (0, 1, 3, 4))
    mirror = a * d - b * c < 0
    if mirror:
        a, c = -a, -c
    return (turned(display_rotation((a, b, 0, c, d)))[0], mirror)


def _frame_display_matrix(frame) -> tuple[int, ...] | None:
    """The display matrix a decoded PyAV frame carries (FFmpeg attaches the stream's to every frame)."""
    for data in frame.side_data:
        kind = getattr(data.type, "name", str(data.type))
        if str(kind).upper().endswith("DISPLAYMATRIX"):
            raw = bytes(data)
            if len(raw) >= 36:
                return struct.unpack("=9i", raw[:36])
    return None


@dataclass(frozen=True)
class DisplayInfo:
    """How a video file's stored pictures are meant to be shown, as FFmpeg (through PyAV) reads them.

    Args:
        stored_size: (height, width) of the stored pictures.
        matrix: the display matrix, or None when the file has none.
        demuxer: the container format's FFmpeg name.
    """

    stored_size: tuple[int, int]
    matrix: tuple[int, ...] | None
    demuxer: str

    @property
    def orientation(self) -> Orientation:
        return orientation_from_display_matrix(self.matrix) if self.matrix else UPRIGHT

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) as shown."""
        return shown_size(self.stored_size, self.orientation)

    @property
    def ffmpeg_turn(self) -> Orientation:
        """The plain turn that FFmpeg-based decoders apply for this matrix (no mirroring)."""
        return turned(display_rotation(self.matrix)) if self.matrix else UPRIGHT


# Probes by (path, size, modification time): opening a large MP4 with PyAV and decoding its first frame
# costs tens of milliseconds, and a dataset opens the same files every epoch.
_DISPLAY_CACHE: dict[tuple[str, int, int], DisplayInfo | None] = {}
_DISPLAY_CACHE_LIMIT = 65536


def probe_display(path: str | os.PathLike) -> DisplayInfo | None:
    """Read the display matrix of a video file's first video stream with PyAV (decodes one frame).

    Returns:
        The display information, or None when PyAV cannot read a frame of the file (the caller then
        keeps its backend's own orientation).
    """
    try:
        stat = os.stat(path)
    except OSError:
        return None
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _DISPLAY_CACHE:
        if len(_DISPLAY_CACHE) >= _DISPLAY_CACHE_LIMIT:
            _DISPLAY_CACHE.clear()
        _DISPLAY_CACHE[key] = _read_display(path)
    return _DISPLAY_CACHE[key]


def _read_display(path: str | os.PathLike) -> DisplayInfo | None:
    try:
        av = _import_backend("pyav")
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            # one thread: frame threading would hold the first frame back for more packets
            stream.codec_context.thread_count = 1
            frame = next(container.decode(stream), None)
            if frame is None:
                return None
            return DisplayInfo((frame.height, frame.width), _frame_display_matrix(frame), container.format.name)
    except Exception:  # a file PyAV cannot read: the backend's own error, if any, is the one to report
        return None


class PyAVReader(VideoReader):
    """PyAV (FFmpeg) reader: seeks to the keyframe before each run of wanted frames, decodes forward.

    Frames are identified by presentation timestamp through an index of the stream's packets built
    at open time (demuxing only, no decoding), so the result is frame-exact for B-frames, long GOPs
    and containers whose frames carry no timestamps of their own (AVI).
    """

    def __init__(self, path, num_threads: int = 1):
        super().__init__(path)
        av = _import_backend("pyav")
        try:
            self._container = av.open(self.path)
            if not self._container.streams.video:
                raise VideoDecodeError(self.path, "no video stream")
            self._stream = self._container.streams.video[0]
            self._stream.codec_context.thread_count = max(0, int(num_threads))
            self._build_index()
            # how to show the stored pictures: read from the first frame decoded (frames carry the
            # display matrix; the stream's is not readable through PyAV without decoding)
            self._orientation: Orientation | None = None
        except VideoDecodeError:
            self.close()
            raise
        except Exception as err:
            self.close()
            raise VideoDecodeError(self.path, f"{type(err).__name__}: {err}") from err

    def _build_index(self) -> None:
        timestamps, key_timestamps = [], []
        for packet in self._container.demux(self._stream):
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None or packet.size == 0 or packet.is_discard:
                # Flush packets and dropped-frame placeholders carry no picture; discard-flagged ones
                # (before an MP4 edit list's start) are decoded but never shown.
                continue
            timestamps.append(ts)
            if packet.is_keyframe:
                key_timestamps.append(ts)
        if not timestamps:
            raise VideoDecodeError(self.path, "no decodable video packets")
        self._pts = sorted(timestamps)  # presentation order
        self._index_of_pts = {ts: i for i, ts in enumerate(self._pts)}
        keys = sorted(self._index_of_pts[ts] for ts in key_timestamps)
        self._keyframe_indices = keys if keys and keys[0] == 0 else [0, *keys]

    @property
    def num_frames(self) -> int:
        return len(self._pts)

    @cached_property
    def fps(self) -> float:
        rate = self._stream.average_rate or self._stream.guessed_rate or self._stream.base_rate
        if rate:
            return float(rate)
        span = (self._pts[-1] - self._pts[0]) * float(self._stream.time_base)
        return (len(self._pts) - 1) / span if span > 0 else 25.0

    @property
    def size(self) -> tuple[int, int]:
        if self._orientation is None:
            self.get_frames([0])  # learns the display orientation
        stored = (self._stream.codec_context.height, self._stream.codec_context.width)
        return shown_size(stored, self._orientation or UPRIGHT)

    def _keyframe_at_or_before(self, index: int) -> int:
        return self._keyframe_indices[bisect.bisect_right(self._keyframe_indices, index) - 1]

    def _decode_from(self, keyframe: int):
        """Yield (frame_index, av.VideoFrame) in presentation order, starting at `keyframe`."""
        self._container.seek(self._pts[keyframe], stream=self._stream, backward=True, any_frame=False)
        position = keyframe - 1
        for frame in self._container.decode(self._stream):
            ts = frame.pts if frame.pts is not None else frame.dts
            # Timestamps identify the frame; where a container gives none, count from the keyframe.
            position = self._index_of_pts.get(ts, position + 1) if ts is not None else position + 1
            yield position, frame

    def _decode_sorted(self, indices: np.ndarray) -> np.ndarray:
        out: list[np.ndarray] = []
        decoder, position = None, -1
        for target in indices.tolist():
            keyframe = self._keyframe_at_or_before(target)
            # Seek when the decoder is behind a keyframe that precedes the target: decoding from that
            # keyframe is never slower than decoding everything in between.
            if decoder is None or keyframe > position:
                decoder = self._decode_from(keyframe)
            for position, frame in decoder:  # noqa: B007 - `frame` is the one kept after the break
                if position >= target:
                    break
            else:
                raise VideoDecodeError(self.path, f"frame {target} could not be decoded (file truncated?)")
            if position != target:
                raise VideoDecodeError(self.path, f"frame {target} is missing from the stream")
            if self._orientation is None:
                matrix = _frame_display_matrix(frame)
                self._orientation = orientation_from_display_matrix(matrix) if matrix else UPRIGHT
            out.append(frame.to_ndarray(format="rgb24"))
        return orient(np.stack(out), self._orientation)

    def iter_frames(self, size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
        """Every frame in presentation order, decoded once from the start: uint8 (H,W,3) RGB as shown.

        Args:
            size: (height, width) as shown to resize each frame to (area interpolation, in FFmpeg's swscale
                together with the colour conversion); None: the stored size.

        Raises:
            VideoDecodeError: a frame is missing or the file ends early.
        """
        expected = 0
        for position, frame in self._decode_from(0):
            if position < expected:
                continue  # a frame decoded twice (a container's duplicate timestamp)
            if position != expected:
                raise VideoDecodeError(self.path, f"frame {expected} is missing from the stream")
            if self._orientation is None:
                matrix = _frame_display_matrix(frame)
                self._orientation = orientation_from_display_matrix(matrix) if matrix else UPRIGHT
            if size is None:
                image = frame.to_ndarray(format="rgb24")
            else:  # the stored picture's size: a quarter turn swaps height and width, and is its own inverse
                height, width = shown_size(size, self._orientation)
                image = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()
            yield orient(image[None], self._orientation)[0]
            expected += 1
        if expected != self.num_frames:
            raise VideoDecodeError(self.path, f"only {expected} of {self.num_frames} frames could be decoded "
                                              "(file truncated?)")

    def close(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            container.close()
            self._container = None


class DecordReader(VideoReader):
    """decord reader (`get_batch`). Fast on short-GOP files; see the README for its known limits."""

    def __init__(self, path, num_threads: int = 1):
        super().__init__(path)
        decord = _import_backend("decord")
        try:
            self._reader = decord.VideoReader(self.path, ctx=decord.cpu(0), num_threads=int(num_threads))
            self._num_frames = len(self._reader)
            self._fps = float(self._reader.get_avg_fps())
        except Exception as err:
            raise VideoDecodeError(self.path, f"{type(err).__name__}: {err}") from err
        if self._num_frames == 0:
            raise VideoDecodeError(self.path, "no frames")
        self._display = probe_display(self.path)
        self._correction: Orientation | None = None if self._display else UPRIGHT

    @property
    def num_frames(self) -> int:
        return self._num_frames

    @property
    def fps(self) -> float:
        return self._fps

    @cached_property
    def size(self) -> tuple[int, int]:
        if self._display is not None:
            return self._display.size
        height, width, _ = self._reader[0].shape
        self._reader.seek(0)
        return (int(height), int(width))

    def _applied(self, returned_size: tuple[int, int]) -> Orientation:
        """The turn decord applied, given the (height, width) of the frames it returned.

        decord applies the display matrix only where its bundled FFmpeg 4 exports it (the MP4/QuickTime
        demuxer; not Matroska/WebM), as a plain turn that ignores mirroring. A quarter turn shows in the
        frame size, which settles it; a half turn does not, and is told by the container.
        """
        display = self._display
        turn = display.ffmpeg_turn
        if turn[0] % 2 and display.stored_size[0] != display.stored_size[1]:
            return turn if returned_size != display.stored_size else UPRIGHT
        return turn if "mov" in display.demuxer.split(",") else UPRIGHT

    def _decode_sorted(self, indices: np.ndarray) -> np.ndarray:
        frames = self._reader.get_batch(indices.tolist()).asnumpy()
        if self._correction is None:
            self._correction = correction(self._applied(tuple(frames.shape[1:3])), self._display.orientation)
        return orient(frames, self._correction)


class TorchCodecReader(VideoReader):
    """torchcodec reader in exact seek mode (scans the file once at open for frame-accurate seeks).

    Args:
        path: the video file.
        num_threads: FFmpeg's decoding threads (CPU decoding).
        device: where frames are decoded and returned: "cpu", or a CUDA device, which decodes on the GPU's
            video decoder (NVDEC) and falls back to the CPU for a codec it lacks (`cpu_fallback` says).
    """

    def __init__(self, path, num_threads: int = 1, device: str | torch.device = "cpu"):
        super().__init__(path)
        decoders = _import_backend("torchcodec")
        try:
            self._decoder = decoders.VideoDecoder(
                self.path, seek_mode="exact", dimension_order="NHWC", num_ffmpeg_threads=int(num_threads),
                device=str(device),
            )
            meta = self._decoder.metadata
            self._num_frames = int(meta.num_frames)
            self._fps = float(meta.average_fps)
            self._size = (int(meta.height), int(meta.width))
            # torchcodec >= 0.11 turns frames by the rotation it reports (no mirroring); older ones do not
            applied = turned(getattr(meta, "rotation", None))
        except Exception as err:
            raise VideoDecodeError(self.path, f"{type(err).__name__}: {err}") from err
        if self._num_frames == 0:
            raise VideoDecodeError(self.path, "no frames")
        display = probe_display(self.path)
        self._correction = correction(applied, display.orientation) if display else UPRIGHT
        if display is not None:
            self._size = display.size

    @property
    def num_frames(self) -> int:
        return self._num_frames

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    @property
    def cpu_fallback(self) -> str | None:
        """Why frames of a GPU decoder were decoded on the CPU (e.g. a codec NVDEC lacks), or None."""
        status = getattr(self._decoder, "cpu_fallback", None)
        return str(status) if status else None

    def _decode_sorted(self, indices: np.ndarray) -> torch.Tensor:
        return orient(self._decoder.get_frames_at(indices=indices.tolist()).data, self._correction)


@lru_cache(maxsize=1)
def _jpeg_decoder():
    """file -> (H,W,3) uint8 RGB through TorchCodec's JPEG decoder, or None where TorchCodec (or the
    FFmpeg it loads) is missing: PIL then reads every frame.

    It gives PIL's pixels, grey and CMYK files included, in about 0.6 of PIL's time (96x128 frames: 0.28
    against 0.46 ms). TorchVision's image decoders, which did this before, are deprecated since 0.29 in
    favour of TorchCodec's (and warned on every frame)."""
    try:
        decode_jpeg = _import_backend("torchcodec").decode_jpeg
    except BackendUnavailableError:
        return None

    def decode(file: str) -> np.ndarray:
        with open(file, "rb") as handle:  # handed the bytes rather than the path: 0.28 against 0.36 ms
            data = handle.read()
        return decode_jpeg(data, mode="RGB").permute(1, 2, 0).numpy()  # (3,H,W) -> (H,W,3)

    return decode


class FrameFolderReader(VideoReader):
    """A folder of image files, one per frame, in file-name order (DAVIS, YouTube-VOS layouts).

    Args:
        path: the folder.
        fps: the frame rate to report (image folders carry none).
        frame_names: the folder's frame files, sorted, when the caller has listed them already (a
            dataset that reads the same folder every epoch lists it once).
    """

    def __init__(self, path, fps: float = 30.0, frame_names: list[str] | None = None):
        super().__init__(path)
        try:
            names = frame_names if frame_names is not None else sorted(
                n for n in os.listdir(self.path) if n.lower().endswith(FRAME_EXTENSIONS))
        except OSError as err:
            raise VideoDecodeError(self.path, err.strerror or str(err)) from err
        if not names:
            raise VideoDecodeError(self.path, f"no frame files ({', '.join(FRAME_EXTENSIONS)})")
        self.frame_names = names
        self._fps = float(fps)

    @property
    def num_frames(self) -> int:
        return len(self.frame_names)

    @property
    def fps(self) -> float:
        return self._fps

    @cached_property
    def size(self) -> tuple[int, int]:
        return tuple(self._decode_one(0).shape[:2])

    def frame_path(self, index: int) -> str:
        """The image file of frame `index`."""
        return os.path.join(self.path, self.frame_names[index])

    def _decode_one(self, index: int) -> np.ndarray:
        from PIL import Image

        file = self.frame_path(index)
        decode_jpeg = _jpeg_decoder()
        if decode_jpeg is not None and file.lower().endswith((".jpg", ".jpeg")):
            # a file the JPEG decoder refuses gets PIL's reading and PIL's error
            with contextlib.suppress(RuntimeError, OSError):
                return decode_jpeg(file)
        try:
            with Image.open(file) as image:
                return np.asarray(image.convert("RGB"))  # (H,W,C)
        except Exception as err:
            raise VideoDecodeError(file, f"{type(err).__name__}: {err}") from err

    def _decode_sorted(self, indices: np.ndarray) -> np.ndarray:
        return np.stack([self._decode_one(i) for i in indices.tolist()])


_READERS = {"pyav": PyAVReader, "decord": DecordReader, "torchcodec": TorchCodecReader}


def resolve_backend(backend: str = DEFAULT_BACKEND) -> str:
    """Map "auto" to the first installed backend; check that a named one is known and importable."""
    if backend == "auto":
        for name in BACKENDS:
            try:
                _import_backend(name)
                return name
            except BackendUnavailableError:
                continue
        raise BackendUnavailableError(f"no video backend is installed; install one of: {', '.join(BACKENDS)}")
    if backend not in _READERS:
        raise LitVideoError(f"unknown decoder '{backend}'; choose one of: auto, {', '.join(BACKENDS)}")
    _import_backend(backend)
    return backend


def open_video(
    path: str | os.PathLike, backend: str = DEFAULT_BACKEND, num_threads: int = 1, fps: float = 30.0
) -> VideoReader:
    """Open a video file, or a folder of frames, for random access.

    Args:
        path: a video file (mp4, avi, webm, mkv, ...) or a folder of JPEG/PNG frames.
        backend: "auto", "pyav", "torchcodec" or "decord"; ignored for frame folders.
        num_threads: decoder threads; 1 suits DataLoader workers, which already run in parallel.
        fps: frame rate reported for frame folders.
    """
    path = Path(path)
    if path.is_dir():
        return FrameFolderReader(path, fps=fps)
    if not path.is_file():
        raise VideoDecodeError(str(path), "no such file")
    return _READERS[resolve_backend(backend)](path, num_threads=num_threads)
