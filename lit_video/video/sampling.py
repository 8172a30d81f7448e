"""Clip index arithmetic, in frames.

A clip is `clip_len` frames taken every `stride` frames: it spans `(clip_len - 1) * stride + 1`
source frames. With `stride_jitter`, each training clip draws its own stride from
[stride - jitter, stride + jitter] (at least 1); evaluation clips keep `stride`. With `target_fps`,
`stride` counts frames at the target rate, so a 30 fps and a 25 fps video give clips of the same
duration (the source step is `stride * fps / target_fps`).
A video shorter than a clip is padded, never dropped: the indices past its end repeat the last
frame ("repeat") or wrap around to the start ("loop").

The "uniform" mode (TSN-style segment sampling, what captioning models use) instead spreads
`clip_len` frames over the WHOLE video, one from each of `clip_len` equal segments: a random frame of
each segment for training, the same offset within every segment for each evaluation view. `stride`
and `target_fps` do not apply there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAD_MODES = ("repeat", "loop")
SAMPLING_MODES = ("strided", "uniform")


@dataclass(frozen=True)
class ClipSampler:
    """Where the frames of training and evaluation clips come from.

    Args:
        clip_len: frames per clip.
        stride: distance between consecutive clip frames (in target-fps frames when target_fps is set).
        stride_jitter: each training clip's stride is drawn uniformly from [stride - jitter,
            stride + jitter], at least 1 (segmentation datasets: more motion per clip).
        num_clips: evaluation views per video, spaced uniformly over its length.
        target_fps: resample to this frame rate first; None keeps each video's own rate.
        pad_mode: how a video shorter than a clip is padded: "repeat" the last frame or "loop".
        mode: "strided" (a clip of consecutive strided frames) or "uniform" (one frame from each of
            clip_len equal segments of the whole video).
    """

    clip_len: int
    stride: int = 1
    num_clips: int = 1
    target_fps: float | None = None
    pad_mode: str = "repeat"
    mode: str = "strided"
    stride_jitter: int = 0

    def __post_init__(self):
        for name, least in (("clip_len", 1), ("stride", 1), ("num_clips", 1), ("stride_jitter", 0)):
            value = getattr(self, name)
            if not is_integer(value) or value < least:
                wanted = "a positive integer" if least else "an integer >= 0"
                raise ValueError(f"{name} must be {wanted}, got {value!r}")
        if self.target_fps is not None and self.target_fps <= 0:
            raise ValueError(f"target_fps must be positive, got {self.target_fps!r}")
        if self.pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {self.pad_mode!r}")
        if self.mode not in SAMPLING_MODES:
            raise ValueError(f"frame sampling mode must be one of {SAMPLING_MODES}, got {self.mode!r}")

    def step(self, fps: float | None = None, stride: int | None = None) -> float:
        """Source frames between consecutive clip frames (`stride`: a drawn one instead of `self.stride`)."""
        stride = self.stride if stride is None else stride
        if self.target_fps is None or not fps:
            return float(stride)
        return stride * fps / self.target_fps

    def span(self, fps: float | None = None, stride: int | None = None) -> float:
        """Source frames covered by one clip, first to last inclusive."""
        return (self.clip_len - 1) * self.step(fps, stride) + 1

    def draw_stride(self, rng: np.random.Generator) -> int:
        """A training clip's stride: uniform in [stride - jitter, stride + jitter], at least 1."""
        if not self.stride_jitter:
            return self.stride
        low, high = max(1, self.stride - self.stride_jitter), self.stride + self.stride_jitter
        return int(rng.integers(low, high + 1))

    def _clip_at(self, start: float, num_frames: int, fps: float | None, stride: int | None = None) -> np.ndarray:
        offsets = np.arange(self.clip_len) * self.step(fps, stride)  # (clip_len,)
        indices = np.floor(start + offsets + 1e-6).astype(np.int64)
        if self.pad_mode == "loop":
            return indices % num_frames
        return np.minimum(indices, num_frames - 1)

    def train_indices(self, num_frames: int, fps: float | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
        """One clip at a uniformly random start, with a drawn stride when jittered (uniform mode: a
        random frame of each segment) -> int64 (clip_len,)."""
        _check_length(num_frames)
        rng = rng if rng is not None else np.random.default_rng()
        if self.mode == "uniform":
            return self._segment_frames(rng.uniform(0.0, 1.0, self.clip_len), num_frames)
        stride = self.draw_stride(rng)
        # every whole start from 0 to the last one whose clip ends inside the video, equally likely
        last_start = int(np.floor(num_frames - self.span(fps, stride) + 1e-6))
        start = int(rng.integers(0, last_start + 1)) if last_start > 0 else 0
        return self._clip_at(start, num_frames, fps, stride)

    def eval_indices(self, num_frames: int, fps: float | None = None) -> np.ndarray:
        """`num_clips` clips with uniformly spaced starts, the first at frame 0 and the last ending at
        the video's last frame (one centred clip when num_clips == 1) -> int64 (num_clips, clip_len).
        Uniform mode: view v takes the frame at (v + 0.5) / num_clips of each segment (the centres for one view)."""
        _check_length(num_frames)
        if self.mode == "uniform":
            offsets = (np.arange(self.num_clips) + 0.5) / self.num_clips
            return np.stack([self._segment_frames(np.full(self.clip_len, o), num_frames) for o in offsets])
        max_start = max(num_frames - self.span(fps), 0.0)
        if self.num_clips == 1:
            starts = np.array([max_start / 2])
        else:
            starts = np.linspace(0.0, max_start, self.num_clips)
        return np.stack([self._clip_at(np.floor(s), num_frames, fps) for s in starts])

    def _segment_frames(self, offsets: np.ndarray, num_frames: int) -> np.ndarray:
        """Frame at fraction `offsets[k]` of segment k of clip_len equal segments -> int64 (clip_len,).
        A video of fewer frames than segments repeats frames (in order), whatever the pad mode."""
        segment = num_frames / self.clip_len
        positions = (np.arange(self.clip_len) + offsets) * segment  # (clip_len,)
        return np.minimum(np.floor(positions + 1e-6).astype(np.int64), num_frames - 1)


def is_integer(value: object) -> bool:
    """An int (numpy's too), not a bool: `True` is no clip length or stride."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_length(num_frames: int) -> None:
    if num_frames < 1:
        raise ValueError(f"cannot sample clips from a video of {num_frames} frames")
