"""Frame-exact video decoding behind one interface.

`open_video(path, backend)` returns a `VideoReader` whose `get_frames(indices)` gives exactly the
frames at those (0-based, presentation-order) indices as uint8 (T,H,W,C), whatever the order or
repetition of `indices`. Backends: decord, torchcodec, PyAV, and a reader for folders of JPEG/PNG
frames (DAVIS, YouTube-VOS). Every backend failure is raised as `VideoDecodeError`, which names the
file, so datasets can skip a bad video and say which one it was.
"""

from __future__ import annotations

import bisect
import contextlib
import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import cached_property
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
        return (self._stream.codec_context.height, self._stream.codec_context.width)

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
            out.append(frame.to_ndarray(format="rgb24"))
        return np.stack(out)

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

    @property
    def num_frames(self) -> int:
        return self._num_frames

    @property
    def fps(self) -> float:
        return self._fps

    @cached_property
    def size(self) -> tuple[int, int]:
        height, width, _ = self._reader[0].shape
        self._reader.seek(0)
        return (int(height), int(width))

    def _decode_sorted(self, indices: np.ndarray) -> np.ndarray:
        return self._reader.get_batch(indices.tolist()).asnumpy()


class TorchCodecReader(VideoReader):
    """torchcodec reader in exact seek mode (scans the file once at open for frame-accurate seeks)."""

    def __init__(self, path, num_threads: int = 1):
        super().__init__(path)
        decoders = _import_backend("torchcodec")
        try:
            self._decoder = decoders.VideoDecoder(
                self.path, seek_mode="exact", dimension_order="NHWC", num_ffmpeg_threads=int(num_threads)
            )
            meta = self._decoder.metadata
            self._num_frames = int(meta.num_frames)
            self._fps = float(meta.average_fps)
            self._size = (int(meta.height), int(meta.width))
        except Exception as err:
            raise VideoDecodeError(self.path, f"{type(err).__name__}: {err}") from err
        if self._num_frames == 0:
            raise VideoDecodeError(self.path, "no frames")

    @property
    def num_frames(self) -> int:
        return self._num_frames

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def _decode_sorted(self, indices: np.ndarray) -> torch.Tensor:
        return self._decoder.get_frames_at(indices=indices.tolist()).data


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

    def _decode_one(self, index: int) -> np.ndarray:
        from PIL import Image

        file = os.path.join(self.path, self.frame_names[index])
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
