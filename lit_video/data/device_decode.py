"""Decoding clips where the model runs: `decoder: torchcodec-cuda`.

The CPU path decodes and transforms each clip in a DataLoader worker. On a GPU that path, not the model,
sets the speed of a short-clip fit (one CPU core decodes tens of clips a second; a GPU trains a small
video network on a thousand), while the GPU's own video decoders (NVDEC) stay idle. This path splits the
work instead:

- the workers draw what is random and cheap: each clip's frame indices (from the video's frame count and
  rate, read once per worker from the container's index) and its crop boxes and flip (`ClipTransform.draw_views`),
  and deliver a *plan* (`keys.VIDEO_PATH`, `keys.FRAME_INDICES`, `keys.VIEWS`);
- after the batch reaches the device, `decode_batch` decodes every clip of it with torchcodec on that device
  (NVDEC on a GPU; a thread per clip, so that a step's clips decode at once) and applies the same
  `ClipTransform` there, with the workers' draws: the crops, resizes, flips and normalization run on the GPU.

The frames are the ones the CPU path gives (torchcodec's exact seek mode; the same sampler and draws); only
the colour conversion of the GPU's decoder may differ from FFmpeg's by a few levels.

`decoder: auto` takes this path when the Trainer runs on CUDA, torchcodec decodes there and it measured
faster than the workers would be (`choose_decoder`); the CPU path stays the default everywhere else.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import default_collate

from lit_video.data import keys
from lit_video.errors import LitVideoError, VideoDecodeError
from lit_video.video.backends import DEVICE_DECODERS
from lit_video.video.decode import TorchCodecReader, open_video
from lit_video.video.transforms import ClipTransform, resize_frames

log = logging.getLogger(__name__)

DEVICE_DECODER = DEVICE_DECODERS[0]  # torchcodec-cuda
# Clips of one batch decoded at once: NVDEC engines run several streams each, and torchcodec releases the
# GIL while it decodes.
DECODE_THREADS = 8


@dataclass
class DecodedBatch:
    """What `decode_batch` made of a batch of plans.

    Args:
        video: the clips, as the CPU path's batch holds them: (B,C,T,h,w) training, (B,V,C,T,h,w) evaluation.
        failed: the videos that could not be decoded (each replaced by another clip of the batch).
        cpu_fallback: why a GPU decoder fell back to the CPU for some video (None when none did).
    """

    video: torch.Tensor
    failed: list[str]
    cpu_fallback: str | None


def _decode_video(path: str, frame_indices: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, str | None]:
    """The frames `frame_indices` ((T,) or (N,T)) of a video file, decoded on `device` -> uint8 (T|N,T, H,W,C) and
    the reader's CPU-fallback note."""
    with TorchCodecReader(path, device=device) as reader:
        frames = reader.get_frames(frame_indices.reshape(-1).numpy())  # (N*T,H,W,C)
        fallback = reader.cpu_fallback if device.type == "cuda" else None
    return frames.to(device, non_blocking=True).unflatten(0, tuple(frame_indices.shape)), fallback


def _decode_images(files: Sequence[str], size: Sequence[int], device: torch.device) -> torch.Tensor:
    """A clip's image files decoded on `device` (JPEG with nvJPEG on a GPU, in one batch), resized to `size`
    (the annotations' (height, width)) -> uint8 (T,H,W,C)."""
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg, read_file

    try:
        data = [read_file(file) for file in files]
        if all(file.lower().endswith((".jpg", ".jpeg")) for file in files):
            images = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)  # T x (3,H,W)
        else:  # PNG frames: decoded on the CPU
            images = [decode_image(d, mode=ImageReadMode.RGB).to(device) for d in data]
        frames = torch.stack(images).permute(0, 2, 3, 1)  # (T,H,W,C)
    except (RuntimeError, OSError, ValueError) as err:
        raise VideoDecodeError(files[0], f"a frame of this clip: {type(err).__name__}: {err}") from err
    return resize_frames(frames, size)


def _decode_one(batch: dict, b: int, transform: ClipTransform, device: torch.device) -> tuple[torch.Tensor, str | None]:
    """Sample `b` of a batch of plans -> its transformed clip(s) on `device`, and a CPU-fallback note."""
    views = batch[keys.VIEWS][b]  # (V,5)
    if keys.FRAME_FILES in batch:  # default_collate turned the samples' lists of T files into T lists of B
        files = [per_frame[b] for per_frame in batch[keys.FRAME_FILES]]
        frames, fallback = _decode_images(files, batch[keys.FRAME_SIZE][b].tolist(), device), None
    else:
        frames, fallback = _decode_video(batch[keys.VIDEO_PATH][b], batch[keys.FRAME_INDICES][b], device)
    return transform(frames, views=views), fallback


def decode_batch(batch: dict, transform: ClipTransform, device: torch.device | str,
                 threads: int = DECODE_THREADS) -> DecodedBatch:
    """Decode and transform every clip a batch of plans names, on `device`.

    A video that cannot be decoded is replaced by the next readable clip of the same batch (a warning names it),
    as the CPU path replaces it by the next readable video; a batch with no readable video at all is an error.

    Args:
        batch: collated plans: VIEWS (B,V,5) and either VIDEO_PATH (B paths) with FRAME_INDICES (B,T) or (B,N,T),
            or FRAME_FILES (T lists of B image files) with FRAME_SIZE (B,2).
        transform: the DataModule's clip transform for this subset (its draws come with the plans).
        device: where to decode and transform.
        threads: clips decoded at once.

    Raises:
        LitVideoError: no clip of the batch could be decoded.
    """
    device = torch.device(device)
    count = len(batch[keys.VIEWS])
    # the plans' numbers are used on the host: one copy each, not one per clip
    host = batch | {key: batch[key].cpu() for key in (keys.VIEWS, keys.FRAME_INDICES, keys.FRAME_SIZE) if key in batch}

    def decode(b: int):
        try:
            return _decode_one(host, b, transform, device)
        except VideoDecodeError as err:
            return err

    if count == 1 or threads <= 1:
        results = [decode(b) for b in range(count)]
    else:
        with ThreadPoolExecutor(max_workers=min(threads, count)) as pool:
            results = list(pool.map(decode, range(count)))
    failed = [r for r in results if isinstance(r, VideoDecodeError)]
    for err in failed:
        log.warning("skipping unreadable video %s: %s (replaced by another clip of its batch)", err.path, err.reason)
    if len(failed) == count:
        raise LitVideoError(f"none of the {count} videos of a batch could be decoded on {device}, the first "
                            f"{failed[0].path}: {failed[0].reason}; run `lit-video data check` on the dataset")
    readable = [not isinstance(r, VideoDecodeError) for r in results]
    # an unreadable video's clip is the next readable clip of the batch (the CPU path takes the next video)
    clips = [results[next((b + k) % count for k in range(count) if readable[(b + k) % count])][0]
             for b in range(count)]
    notes = sorted({r[1] for r, ok in zip(results, readable) if ok and r[1]})
    return DecodedBatch(torch.stack(clips), [err.path for err in failed], "; ".join(notes) or None)


class VideoMetadataCache:
    """Frame count, rate and shown size of each video a worker opened, read once per worker: a plan needs them
    every epoch, and reading them costs a scan of the container's index.

    Args:
        backend: the file backend that reads them (torchcodec: the one that will decode the frames, so that both
            count the same frames).
    """

    def __init__(self, backend: str = "torchcodec"):
        self.backend = backend
        self._known: dict[str, tuple[int, float, tuple[int, int]]] = {}

    def __call__(self, path: str) -> tuple[int, float, tuple[int, int]]:
        """(num_frames, fps, (height, width)) of the video at `path` (raises VideoDecodeError)."""
        if path not in self._known:
            with open_video(path, self.backend) as reader:
                self._known[path] = (reader.num_frames, reader.fps, reader.size)
        return self._known[path]


@dataclass
class DecoderChoice:
    """What `choose_decoder` measured and chose.

    Args:
        decoder: the decoder chosen: DEVICE_DECODER, or the file backend the workers use.
        device_clips_per_s: clips/s of the device path (decode + transform on the device, at most what the
            workers plan), or None when it could not run.
        worker_clips_per_s: clips/s of one worker of the CPU path (decode + transform in this process).
        workers: the DataLoader workers the CPU path would run.
        reason: one line on the choice, for the log.
    """

    decoder: str
    device_clips_per_s: float | None
    worker_clips_per_s: float
    workers: int
    reason: str


def _clips_per_s(run, count: int) -> float:
    start = time.perf_counter()
    run()
    return count / max(time.perf_counter() - start, 1e-9)


def choose_decoder(dataset, file_backend: str, device: torch.device, num_workers: int,
                   decode: Callable[[dict, torch.device], dict], collate: Callable[[list[dict]], dict] = default_collate,
                   clips: int = 16, batch_size: int = 8) -> DecoderChoice:
    """Measure both paths on the first `clips` training samples and choose the faster.

    The CPU path's rate is one process's rate times the workers (an upper bound: workers share memory bandwidth
    and the host's other work); the device path's is measured as it runs, batched by `batch_size`, after one
    batch of warm-up (decoder start-up), and bounded by the rate the workers make its plans at (reading a
    segmentation clip's masks and choosing its crop is work left to them). The device path is chosen only when
    it is faster than the CPU path's bound.

    Args:
        dataset: the training `ClipDataset` (its samples are made in this process here, decoded and as plans).
        file_backend: the CPU path's backend.
        device: the Trainer's device.
        num_workers: the CPU path's DataLoader workers (0 counts as 1: the main process decodes).
        decode: (batch of plans, device) -> the decoded batch (`VideoDataModule.decode_on`).
        collate: how the DataModule's loader collates samples.
        clips: samples measured per path.
        batch_size: clips decoded at once by the device path.
    """
    workers = max(num_workers, 1)
    count = min(clips, len(dataset))
    indices = list(range(count))
    saved = dataset.device_decode
    try:
        dataset.device_decode = False
        for i in indices:  # warm-up: imports, and what a worker reads once per video (listings, indexes)
            dataset[i]
        worker_rate = _clips_per_s(lambda: [dataset[i] for i in indices], count)
        dataset.device_decode = True
        plans: list[dict] = []
        plan_rate = _clips_per_s(lambda: plans.extend(dataset[i] for i in indices), count)
    finally:
        dataset.device_decode = saved
    batches = [collate(plans[i:i + batch_size]) for i in range(0, count, batch_size)]
    try:
        decode(dict(batches[0]), device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

        def run():
            for batch in batches:
                decode(dict(batch), device)
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        # the device decodes what the workers plan: its rate is bounded by theirs
        device_rate = min(_clips_per_s(run, count), plan_rate * workers)
    except (LitVideoError, RuntimeError) as err:
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        return DecoderChoice(file_backend, None, worker_rate, workers,
                             f"decoder auto: {file_backend} in {workers} workers ({DEVICE_DECODER} cannot decode on "
                             f"{device}: {first_line})")
    cpu_rate = worker_rate * workers
    chosen = DEVICE_DECODER if device_rate > cpu_rate else file_backend
    return DecoderChoice(chosen, device_rate, worker_rate, workers,
                         f"decoder auto: {chosen} ({DEVICE_DECODER} on {device} decoded {device_rate:.0f} clips/s; "
                         f"{file_backend} {worker_rate:.0f} clips/s per worker x {workers} workers = {cpu_rate:.0f}, "
                         f"measured on {count} clips)")


def check_device_decoder(device: torch.device) -> None:
    """Refuse `decoder: torchcodec-cuda` where the run's device (the Trainer's) is not a CUDA GPU, in one line."""
    if device.type != "cuda":
        raise LitVideoError(f"decoder {DEVICE_DECODER}: decodes on a CUDA GPU, but this run's device is {device}; "
                            "use decoder auto (it takes the GPU path only on a GPU) or a file backend")


def cuda_decode_problem() -> str | None:
    """Why torchcodec cannot decode on CUDA here (no GPU, a torchcodec built without CUDA, FFmpeg without NVDEC
    support), or None when a one-frame video decodes there. Nothing is written outside a temporary folder."""
    if not torch.cuda.is_available():
        return "no CUDA device"
    import tempfile

    from lit_video.video.encode import VideoWriter

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "probe.mp4")
        with VideoWriter(path, fps=25, size=(64, 64)) as writer:
            for _ in range(2):
                writer.write(np.zeros((64, 64, 3), dtype=np.uint8))
        try:
            with TorchCodecReader(path, device="cuda") as reader:
                reader.get_frames([0])
                return reader.cpu_fallback
        except Exception as err:  # torchcodec's own errors: report their first line
            return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
