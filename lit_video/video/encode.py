"""Writing video files with PyAV (bundled FFmpeg): synthetic datasets and test fixtures.

Codecs follow the container the way the real datasets use them: `.avi` -> MPEG-4 part 2 (as
UCF101's XviD files), `.mp4` / `.mkv` -> H.264, `.webm` -> VP9.
"""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import torch

_CODECS = {".avi": "mpeg4", ".mp4": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9"}
WRITABLE_EXTENSIONS = tuple(_CODECS)  # the containers `VideoWriter` encodes to


class VideoWriter:
    """Encode frames one at a time to `path`; the codec is chosen by the file extension.

    Keyframes come exactly every `gop_size` frames (no extra ones at scene changes), so a reader's seek
    never decodes more than `gop_size` - 1 frames it does not want.

    Args:
        path: output file (.avi, .mp4, .mkv or .webm).
        size: (height, width) of every frame; both even (4:2:0 chroma).
        fps: frame rate.
        gop_size: frames between keyframes (a long GOP makes random access hard: good for tests).
        max_b_frames: B-frames between references (reordering makes decode order != display order).
        quality: "high" (near-lossless, for frame-exact tests) or "normal" (dataset-like bit rates).
        display_rotation: if given, a display matrix is stored that asks players to turn the frames this
            many degrees counter-clockwise (what phones write for portrait video); the pixels are stored
            as given. Not for .avi, which cannot carry one.
        display_mirror: with `display_rotation`, also mirror left-right after the turn.
    """

    def __init__(self, path: str | os.PathLike, size: tuple[int, int], fps: float = 25.0, gop_size: int = 12,
                 max_b_frames: int = 0, quality: str = "high", display_rotation: float | None = None,
                 display_mirror: bool = False):
        import av

        height, width = size
        extension = os.path.splitext(str(path))[1].lower()
        if extension not in _CODECS:
            raise ValueError(f"cannot choose a codec for '{extension}' (known: {', '.join(_CODECS)})")
        codec = _CODECS[extension]
        if display_rotation is not None and extension == ".avi":
            raise ValueError(f"{path}: an .avi file cannot carry a display rotation; use .mp4, .mkv or .webm")
        if display_mirror and display_rotation is None:
            raise ValueError("display_mirror needs a display_rotation (0 for a mirror alone)")
        if height % 2 or width % 2 or height < 2 or width < 2:
            raise ValueError(f"{path}: frames must have an even height and width, got {height}x{width}")
        self.path, self.size, self.frames_written = path, (height, width), 0
        rate = Fraction(fps).limit_denominator(1001)
        self._container = av.open(str(path), mode="w")
        try:
            stream = self._container.add_stream(codec, rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.gop_size = gop_size
            stream.codec_context.max_b_frames = max_b_frames
            pixels = width * height * float(fps)
            if codec == "libx264":
                options = {"crf": "4" if quality == "high" else "23", "preset": "veryfast", "bf": str(max_b_frames),
                           "keyint_min": str(gop_size), "sc_threshold": "0"}
            elif codec == "libvpx-vp9":
                options = {"crf": "8" if quality == "high" else "32", "b:v": "0", "deadline": "realtime",
                           "cpu-used": "8", "lag-in-frames": "0", "keyint_min": str(gop_size)}
            else:  # mpeg4 ignores qscale through PyAV: quality is set by bit rate
                stream.bit_rate = int(pixels * (2.0 if quality == "high" else 0.25))
                options = {"sc_threshold": "1000000000"}  # no keyframes at scene changes
            stream.options = options
            if display_rotation is not None:
                if not hasattr(stream, "set_display_rotation"):
                    raise ValueError(f"writing a display rotation needs a newer PyAV than {av.__version__}")
                stream.set_display_rotation(float(display_rotation), hflip=bool(display_mirror))
        except BaseException:
            self._container.close()
            raise
        self._stream = stream

    def write(self, image: np.ndarray) -> None:
        """Append one uint8 (H,W,3) RGB frame of the writer's size."""
        import av

        if image.shape != (*self.size, 3) or image.dtype != np.uint8:
            raise ValueError(f"{self.path}: frames must be uint8 {(*self.size, 3)}, got {image.dtype} "
                             f"{tuple(image.shape)}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        self._container.mux(self._stream.encode(frame))
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and close the file."""
        if self._container is None:
            return
        try:
            self._container.mux(self._stream.encode(None))
        finally:
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray | torch.Tensor,
    fps: float = 25.0,
    gop_size: int = 12,
    max_b_frames: int = 0,
    quality: str = "high",
    display_rotation: float | None = None,
    display_mirror: bool = False,
) -> None:
    """Encode uint8 (T,H,W,C) RGB frames to `path` (a `VideoWriter` of the same arguments).

    Args:
        path: output file (.avi, .mp4, .mkv or .webm).
        frames: uint8 (T,H,W,C) RGB; H and W must be even (4:2:0 chroma).
        fps, gop_size, max_b_frames, quality, display_rotation, display_mirror: as `VideoWriter`.
    """
    frames = np.ascontiguousarray(torch.as_tensor(frames).numpy() if isinstance(frames, torch.Tensor) else frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T,H,W,3), got {frames.dtype} {tuple(frames.shape)}")
    if len(frames) == 0:
        raise ValueError("no frames to write")
    with VideoWriter(path, frames.shape[1:3], fps, gop_size, max_b_frames, quality, display_rotation,
                     display_mirror) as writer:
        for image in frames:
            writer.write(image)
