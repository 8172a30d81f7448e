"""What every video dataset shares: the format registry, records, the map-style clip dataset, the
DataModule base.

A format file (`lit_video/data/formats/<name>.py`) parses its annotation files into `VideoRecord`s
and registers a `VideoDataModule` subclass with `@register_datamodule`; sampling, decoding,
transforms, corrupt-file handling and loaders live here once (for segmentation formats, in
`lit_video.data.segmentation` on top of this). `VideoRecord` and the listing helpers live in the
light `lit_video.data.records` (no torch).
"""

from __future__ import annotations

import logging
import math
import warnings
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset, default_collate

from lit_video.data import keys
from lit_video.data.device_decode import (
    DEVICE_DECODER,
    VideoMetadataCache,
    check_device_decoder,
    choose_decoder,
    decode_batch,
)
from lit_video.data.records import Listing, VideoRecord, refused_entries, select_heldout, split_existing
from lit_video.errors import DatasetLayoutError, LitVideoError, VideoDecodeError
from lit_video.video.backends import DEVICE_DECODERS
from lit_video.video.decode import DEFAULT_BACKEND, VideoReader, open_video, resolve_backend
from lit_video.video.flow import (
    DEFAULT_BOUND,
    METHODS,
    MODALITIES,
    MODALITY_CHANNELS,
    check_raft_weights,
    flow_folder,
    load_raft,
    raft_flow,
    read_flow,
    read_store_info,
    store_folder,
    stored_pair_count,
)
from lit_video.video.frames import STORE_FILE as FRAMES_STORE_FILE
from lit_video.video.frames import frames_folder, frames_store, open_frames, prepare_command, read_video_info
from lit_video.video.sampling import SAMPLING_MODES, ClipSampler, is_integer
from lit_video.video.transforms import ClipTransform, normalize_clips, rgb_as_255

SUBSETS = ("train", "val", "test")
# Where a video's frames are read from: its file (decoded), or its folder of the frame store that
# `lit-video data prepare --frames` wrote (`lit_video.video.frames`).
STORAGES = ("video", "frames")
# Where flow comes from: the store `lit-video data flow` wrote, or RAFT on the device per batch.
FLOW_SOURCES = ("stored", "raft")
# Batch key of on-the-fly flow: the RGB frames each flow channel is computed between, (..., 3, 2T, H, W):
# the T source frames, then the T frames after them. Consumed by `on_after_batch_transfer`.
FLOW_FRAMES = "flow_frames"

# Decode failures happen inside DataLoader workers, where warnings filters of the parent may swallow
# them; a logger always reaches the inherited stderr.
log = logging.getLogger(__name__)

_DATAMODULES: dict[str, type[VideoDataModule]] = {}


def register_datamodule(name: str):
    """Class decorator: make a DataModule reachable by its format name (`lit-video data ... --format`)."""

    def decorate(cls):
        cls.format_name = name
        _DATAMODULES[name] = cls
        return cls

    return decorate


def _import_formats() -> None:
    """Import every module of `lit_video.data.formats` and every plugin (`lit_video.plugins`); each
    registers its DataModules."""
    import importlib
    import pkgutil

    from lit_video.data import formats
    from lit_video.plugins import load_plugins

    for module in pkgutil.iter_modules(formats.__path__):
        importlib.import_module(f"{formats.__name__}.{module.name}")
    load_plugins()


def datamodule_class(name: str) -> type[VideoDataModule]:
    """The DataModule registered under format `name`; LitVideoError naming the known ones otherwise."""
    _import_formats()
    if name not in _DATAMODULES:
        raise LitVideoError(f"unknown dataset format '{name}'; known formats: {', '.join(sorted(_DATAMODULES))}")
    return _DATAMODULES[name]


def datamodule_names() -> list[str]:
    """Every registered format name, sorted."""
    _import_formats()
    return sorted(_DATAMODULES)


def check_integer(name: str, value: object, least: int = 1, optional: bool = False) -> None:
    """Stop with one line naming `name` unless `value` is an integer (not a bool) >= `least`.

    Args:
        name: the argument, as the configuration spells it.
        value: its value.
        least: the smallest value allowed.
        optional: None is allowed too (and `least` is 1).
    """
    if optional and value is None:
        return
    if not is_integer(value) or value < least:
        wanted = "a positive integer or null" if optional else f"an integer >= {least}"
        raise LitVideoError(f"{name} must be {wanted}, got {value!r}")


def check_clip_arguments(clip_len: object, stride: object, num_clips: object, num_crops: object, resolution: object,
                         short_side: object, train_short_side_range: object, target_fps: object,
                         frame_sampling: object, batch_size: object, num_workers: object) -> None:
    """The checks of `VideoDataModule`'s clip, transform and loader arguments, each naming the argument
    (`fit --data.init_args.batch_size 0` and `data iterate --batch-size 0` alike stop with one line).

    Raises:
        LitVideoError: the first argument out of range.
    """
    for name, value, least in (("clip_len", clip_len, 1), ("stride", stride, 1), ("num_clips", num_clips, 1),
                               ("batch_size", batch_size, 1), ("num_workers", num_workers, 0)):
        check_integer(name, value, least)
    if num_crops not in (1, 3) or not is_integer(num_crops):
        raise LitVideoError(f"num_crops must be 1 or 3, got {num_crops!r}")
    sides = [resolution, resolution] if is_integer(resolution) else resolution
    if not (isinstance(sides, list | tuple) and len(sides) == 2 and all(is_integer(v) and v >= 1 for v in sides)):
        raise LitVideoError(f"resolution must be a positive integer or [height, width] of positive integers, "
                            f"got {resolution!r}")
    check_integer("short_side", short_side, optional=True)
    if train_short_side_range is not None and not (
            isinstance(train_short_side_range, list | tuple) and len(train_short_side_range) == 2
            and all(is_integer(v) and v >= 1 for v in train_short_side_range)
            and train_short_side_range[0] <= train_short_side_range[1]):
        raise LitVideoError(f"train_short_side_range must be [min, max] with 1 <= min <= max, "
                            f"got {train_short_side_range!r}")
    if target_fps is not None and (isinstance(target_fps, bool) or not isinstance(target_fps, int | float)
                                   or not math.isfinite(target_fps) or target_fps <= 0):
        raise LitVideoError(f"target_fps must be a positive number or null, got {target_fps!r}")
    if frame_sampling not in SAMPLING_MODES:
        raise LitVideoError(f"frame_sampling must be one of {', '.join(SAMPLING_MODES)}, got {frame_sampling!r}")


def check_modality_arguments(modality: object, flow_method: object, flow_source: object, raft_weights: object,
                             supported: Sequence[str] = MODALITIES, format_name: str = "") -> None:
    """The checks of the modality arguments of a DataModule, each naming the argument.

    Args:
        modality, flow_method, flow_source, raft_weights: the DataModule's arguments.
        supported: the modalities the format reads.
        format_name: the format, for the message.

    Raises:
        LitVideoError: the first argument that is not what it must be.
    """
    if modality not in MODALITIES:
        raise LitVideoError(f"modality must be one of {', '.join(MODALITIES)}, got {modality!r}")
    if modality not in supported:
        raise LitVideoError(f"modality {modality!r}: the {format_name or 'this'} DataModule reads "
                            f"{', '.join(supported)} only")
    if flow_method not in METHODS:
        raise LitVideoError(f"flow_method must be one of {', '.join(METHODS)}, got {flow_method!r}")
    if flow_source not in FLOW_SOURCES:
        raise LitVideoError(f"flow_source must be one of {', '.join(FLOW_SOURCES)} (flow read from the store "
                            f"`lit-video data flow` wrote, or computed by RAFT on the device), got {flow_source!r}")
    if raft_weights is not None and not isinstance(raft_weights, str | Path):
        raise LitVideoError(f"raft_weights must be a checkpoint file or null, got {raft_weights!r}")
    if modality != "rgb" and flow_source == "raft":
        check_raft_weights(raft_weights, where="raft_weights")


def check_storage(storage: object, supported: Sequence[str] = STORAGES, format_name: str = "") -> None:
    """One line naming `storage` unless the format reads its videos from there.

    Args:
        storage: the DataModule's argument.
        supported: the storages the format reads.
        format_name: the format, for the message.
    """
    if storage not in STORAGES:
        raise LitVideoError(f"storage must be one of {', '.join(STORAGES)} (decode the video files, or read the frame "
                            f"folders `lit-video data prepare --frames` wrote), got {storage!r}")
    if storage not in supported:
        raise LitVideoError(f"storage {storage!r}: the {format_name or 'this'} DataModule reads frame folders already; "
                            f"leave storage at {supported[0]}")


@dataclass(frozen=True)
class FlowInput:
    """What a dataset reads beside (or instead of) the RGB frames of a clip.

    Args:
        modality: rgb+flow or flow.
        root: the dataset root (the store is `<root>/flow/<method>`).
        method: the stored flow's method.
        source: "stored" reads the store; "raft" delivers the frame pairs (FLOW_FRAMES) for the device.
        bound: the store's quantisation bound.
    """

    modality: str
    root: str
    method: str = "tvl1"
    source: str = "stored"
    bound: float = DEFAULT_BOUND

    @property
    def reads_rgb(self) -> bool:
        """Whether the RGB frames are decoded: the RGB channels, or the frames RAFT runs on."""
        return self.modality != "flow" or self.source == "raft"

    def read(self, reader: VideoReader, frame_indices: np.ndarray, video_path: str | None = None) -> ClipInputs:
        """The inputs of the clip(s) of `frame_indices` (any shape (..., T)) of the video `reader` reads.

        Args:
            reader: the video's frames.
            frame_indices: (..., T) frame indices.
            video_path: the video whose stored flow is read; default `reader.path` (a frame store's reader
                reads the video's frame folder, not the video).
        """
        flat = frame_indices.reshape(-1)
        frames = flow = pairs = None
        if self.reads_rgb:
            frames = reader.get_frames(flat).unflatten(0, frame_indices.shape)  # (...,T,H,W,C)
        if self.source == "stored":
            folder = flow_folder(self.root, video_path or reader.path, self.method)
            values = read_flow(folder, flat, self.bound, num_pairs=stored_pair_count(str(folder)))
            flow = torch.from_numpy(values).unflatten(0, frame_indices.shape)  # (...,T,h,w,2)
        else:
            first, second = flow_pair_indices(flat, reader.num_frames)
            pairs = reader.get_frames(np.concatenate([first, second])).unflatten(0, (2, *frame_indices.shape))
            pairs = torch.cat([pairs[0], pairs[1]], dim=-4)  # (...,2T,H,W,C): sources, then targets
        return ClipInputs(frames, flow, pairs)


def flow_pair_indices(frame_indices: np.ndarray, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The (from, to) frames of the flow at each frame: (s, s + 1), the last frame taking the pair that
    leads to it (as a store's last pair does); a one-frame video pairs the frame with itself."""
    first = np.clip(frame_indices, 0, max(num_frames - 2, 0))
    return first, np.minimum(first + 1, num_frames - 1)


@dataclass
class ClipInputs:
    """A clip's decoded inputs, shaped (...,T,...) alike: uint8 frames (...,T,H,W,3) or None, stored flow
    float (...,T,h,w,2) or None, and for on-the-fly flow the uint8 frame pairs (...,2T,H,W,3) or None."""

    frames: torch.Tensor | None
    flow: torch.Tensor | None = None
    pairs: torch.Tensor | None = None

    def __getitem__(self, index) -> ClipInputs:
        """The inputs of one clip of several (e.g. `[0]`)."""
        return ClipInputs(*(None if x is None else x[index] for x in (self.frames, self.flow, self.pairs)))

    def transform(self, transform: ClipTransform, masks: torch.Tensor | None = None, views: torch.Tensor | None = None):
        """Apply `transform` to frames, flow (and masks) with one random draw (or the draws `views`).

        Returns:
            (video, masks or None, flow frames or None): video (...,C,T,h,w) as the transform gives it; the
            pairs (...,3,2T,h,w) cropped and flipped as the frames, for FLOW_FRAMES.
        """
        frames, length = self.frames, None
        if self.pairs is not None:  # one draw for the frames and the pairs: transformed as one longer clip
            length = frames.shape[-4]
            frames = torch.cat([frames, self.pairs], dim=-4)
            masks = None if masks is None else torch.cat([masks, masks, masks], dim=-3)
        result = transform(frames, masks, flow=self.flow, views=views)
        video, out_masks = result if masks is not None else (result, None)
        if length is None:
            return video, out_masks, None
        flow_frames = video[..., length:, :, :].contiguous()
        video = video[..., :length, :, :].contiguous()
        return video, None if out_masks is None else out_masks[..., :length, :, :].contiguous(), flow_frames


def check_heldout_arguments(val_fraction: object, split_seed: object, val_list: object) -> None:
    """The checks of the held-out validation arguments, each naming the argument.

    Raises:
        LitVideoError: the first argument that is not what it must be.
    """
    if (isinstance(val_fraction, bool) or not isinstance(val_fraction, int | float) or not math.isfinite(val_fraction)
            or not 0 <= val_fraction < 1):
        raise LitVideoError(f"val_fraction must be a number in [0, 1) (the fraction of the training list held out "
                            f"for validation; 0 validates on the format's own list), got {val_fraction!r}")
    check_integer("split_seed", split_seed, least=0)
    if val_list is not None and not (isinstance(val_list, str | Path) and Path(val_list).is_file()):
        raise LitVideoError(f"val_list must be a file of held-out training video ids, one a line; "
                            f"{str(val_list)!r} is not a file")


def probe_video(path: str, decoder: str) -> str | None:
    """None when the first, middle and last frames of a video file decode; otherwise the reason."""
    try:
        with open_video(path, decoder) as reader:
            last = reader.num_frames - 1
            reader.get_frames([0, last // 2, last])
    except VideoDecodeError as err:
        return err.reason
    return None


def worker_rng() -> np.random.Generator:
    """A numpy generator seeded from torch's: DataLoader seeds torch per worker, seed_everything seeds it."""
    return np.random.default_rng(int(torch.randint(2**62, ()).item()))


class DecodeFailureCounter:
    """Counts videos that failed to decode, across DataLoader worker processes (shared memory)."""

    def __init__(self):
        self._count = torch.zeros(1, dtype=torch.int64).share_memory_()

    def increment(self) -> None:
        self._count += 1  # an occasional lost update between workers is acceptable for a diagnostic

    @property
    def value(self) -> int:
        return int(self._count.item())


class ClipDataset(Dataset):
    """Map-style dataset of clips: one random clip per video for training, all views for evaluation.

    A video that cannot be decoded is replaced by the next readable one (a warning names it, the
    shared counter counts it, and the worker remembers it so it is not retried every epoch).

    Args:
        records: the videos.
        sampler: where each clip's frames come from (`ClipSampler`: clip_len, stride and its jitter,
            num_clips, target_fps).
        transform: clip transform; its `train` flag must match `train`.
        train: one random clip per item; otherwise `num_clips` x crops views, (V,C,T,H,W).
        decoder: video backend name.
        failures: shared decode-failure counter.
        max_replacements: consecutive unreadable videos tolerated before giving up.
        flow: what is read beside the RGB frames (optical flow); None: RGB only.
        frames_root: read each video's frame folder in the frame store of this dataset root instead of
            decoding its file (storage frames); None decodes the files.
        device_decode: deliver each clip's plan (file, frame indices, the transform's draws) for
            `lit_video.data.device_decode.decode_batch` to decode on the Trainer's device, instead of the clip.
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        sampler: ClipSampler,
        transform: ClipTransform,
        train: bool,
        decoder: str = DEFAULT_BACKEND,
        failures: DecodeFailureCounter | None = None,
        max_replacements: int = 16,
        flow: FlowInput | None = None,
        frames_root: str | None = None,
        device_decode: bool = False,
    ):
        self.records = list(records)
        self.sampler = sampler
        self.transform = transform
        self.train = train
        self.decoder = decoder
        self.failures = failures or DecodeFailureCounter()
        self.max_replacements = max_replacements
        self.flow = flow
        self.frames_root = frames_root
        self.device_decode = device_decode
        self._metadata = VideoMetadataCache()  # per worker process: plans need each video's frame count and size
        self._unreadable: set[int] = set()  # per worker process

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        for offset in range(min(self.max_replacements + 1, len(self.records))):
            candidate = (index + offset) % len(self.records)
            if candidate in self._unreadable:
                continue
            try:
                return self.load(candidate)
            except VideoDecodeError as err:
                self._unreadable.add(candidate)
                self.failures.increment()
                log.warning("skipping unreadable video %s: %s", err.path, err.reason)
        raise LitVideoError(
            f"{self.max_replacements + 1} consecutive videos could not be decoded, starting at "
            f"{self.records[index].path}; run `lit-video data check` on the dataset"
        )

    def open(self, record: VideoRecord) -> VideoReader:
        """The reader of a record's frames: its video file, or its folder of the frame store (at the video's
        own frame rate, so that the sampler draws the same frames from both)."""
        if self.frames_root is None:
            return open_video(record.path, self.decoder)
        return open_frames(frames_folder(self.frames_root, record.path))

    def load(self, index: int) -> dict:
        """Decode and transform the sample of record `index` (raises VideoDecodeError)."""
        record = self.records[index]
        if self.device_decode:
            return self.plan(index)
        with self.open(record) as reader:
            frame_indices = self.frame_indices(reader.num_frames, reader.fps)  # (1|num_clips, T)
            if self.flow is None:
                inputs = ClipInputs(reader.get_frames(frame_indices.reshape(-1)).unflatten(0, frame_indices.shape))
            else:  # flow of the same source frames (and RGB unless modality is flow)
                inputs = self.flow.read(reader, frame_indices, record.path)  # (num_clips,T,...)
        # training: (C,T,h,w); evaluation: every clip x crop view, (num_clips*crops,C,T,h,w)
        video, _, flow_frames = inputs[0].transform(self.transform) if self.train else inputs.transform(self.transform)
        sample = {
            keys.VIDEO: video,
            keys.LABEL: torch.tensor(record.label, dtype=torch.int64),
            keys.VIDEO_ID: record.video_id,
            keys.VIDEO_INDEX: torch.tensor(index, dtype=torch.int64),
            keys.FRAME_INDICES: torch.from_numpy(frame_indices[0] if self.train else frame_indices),
        }
        if flow_frames is not None:
            sample[FLOW_FRAMES] = flow_frames
        return sample

    def frame_indices(self, num_frames: int, fps: float) -> np.ndarray:
        """The source frames of a sample: (1,T) one random clip (training), (num_clips,T) the views."""
        if self.train:
            return self.sampler.train_indices(num_frames, fps, worker_rng())[None]
        return self.sampler.eval_indices(num_frames, fps)

    def plan(self, index: int) -> dict:
        """The sample of record `index` as a plan for the device to decode (device_decode): its file, frame
        indices and the transform's draws, without decoding a frame (raises VideoDecodeError when the video
        cannot be opened)."""
        record = self.records[index]
        num_frames, fps, (height, width) = self._metadata(record.path)
        frame_indices = self.frame_indices(num_frames, fps)
        return {
            keys.VIDEO_PATH: record.path,
            keys.FRAME_INDICES: torch.from_numpy(frame_indices[0] if self.train else frame_indices),
            keys.VIEWS: self.transform.draw_views(len(frame_indices), height, width),  # (V,5)
            keys.LABEL: torch.tensor(record.label, dtype=torch.int64),
            keys.VIDEO_ID: record.video_id,
            keys.VIDEO_INDEX: torch.tensor(index, dtype=torch.int64),
        }


class VideoDataModule(L.LightningDataModule):
    """Base DataModule of every dataset format: records, clip sampling, transforms and loaders.

    The arguments are those of clip classification; captioning and segmentation formats build on them.

    Args:
        root: the dataset folder, laid out as the official release.
        clip_len: frames per clip.
        stride: frames between consecutive clip frames.
        num_clips: evaluation clips per video (multi-view testing).
        num_crops: evaluation crops per clip: 1 (center) or 3.
        resolution: crop size in pixels (int, or [height, width]).
        short_side: short side after resizing; default 8/7 of the crop.
        train_short_side_range: optional [min, max] random short side for training (scale jitter).
        flip: random horizontal flips for training. Turn off when a class depends on left/right
            direction (the synthetic motion classes, Something-Something-style labels).
        target_fps: resample videos to this frame rate before striding; None keeps their own.
        frame_sampling: "strided" (clips of `clip_len` frames `stride` apart) or "uniform" (`clip_len`
            frames spread over the whole video, one from each equal segment; stride does not apply).
        batch_size: clips per batch (evaluation batches hold videos, each with all its views).
        num_workers: DataLoader worker processes.
        decoder: video backend of the DataLoader workers: auto, pyav, torchcodec or decord; or torchcodec-cuda,
            which decodes and transforms each batch on the Trainer's GPU (`lit_video.data.device_decode`).
            auto takes torchcodec-cuda when the Trainer runs on CUDA, torchcodec decodes there and it measures
            faster than the workers at the start of the fit; elsewhere the first installed of torchcodec, decord
            and pyav, in the workers.
        pin_memory: pin host memory for faster copies to the GPU.
        normalize_on_device: workers return uint8 clips and the batch is normalized after it reaches
            the device (in a Trainer): a quarter of the bytes through worker queues and to the GPU.
            Outside a Trainer the loaders then yield uint8 (B,C,T,H,W).
        val_fraction: > 0: validate on this fraction of the TRAINING list, held out of training (drawn in
            each class, by `heldout_key`: a video, or a format's group of related videos); `test` still reads
            the format's test list. 0 validates on the format's own validation list (for a format without one,
            such as UCF101, its test list: see `validation_source`).
        split_seed: seed of the held-out draw: the same videos in every process, worker and machine.
        val_list: a file of held-out training video ids, one a line; replaces val_fraction.
        modality: what a clip's channels hold: "rgb" (3), "flow" (2: optical flow x, y in pixels of the
            delivered clip) or "rgb+flow" (5). Flow channel t is the flow from the clip's frame t to the
            source frame after it (`lit_video.video.flow`).
        flow_method: the stored flow to read: tvl1, farneback or raft (`lit-video data flow --method`).
        flow_source: "stored" reads `<root>/flow/<flow_method>`; "raft" computes the flow on the device in
            `on_after_batch_transfer` with torchvision's RAFT from the batch's frames (for GPUs; slow on a CPU).
        raft_weights: the RAFT checkpoint of flow_source raft; None reads torchvision's file from the torch
            hub cache (nothing is downloaded).
        storage: "video" decodes the video files; "frames" reads each video's JPEG folder under
            `<root>/frames` (`lit-video data prepare --frames`) at the video's frame rate: the same clips, no
            decoding. A video without a complete folder is skipped with a warning, as a missing video is.
    """

    format_name: ClassVar[str] = ""
    # The modalities the format's datasets read.
    modalities: ClassVar[tuple[str, ...]] = MODALITIES
    # Where the format's datasets read frames from (`storage`): frame-folder formats have only their folders.
    storages: ClassVar[tuple[str, ...]] = STORAGES
    # The base draws the held-out validation split (val_fraction / val_list) from the training list. False
    # where a format family reads its validation videos its own way (the segmentation formats).
    draws_heldout: ClassVar[bool] = True
    # The held-out fraction is drawn in each class separately (False where videos have no class).
    stratify_heldout: ClassVar[bool] = True
    # What `heldout_key` returns, for `validation_source`.
    heldout_unit: ClassVar[str] = "videos"
    # Arguments left out of the hyperparameters the loggers record (where the task records a value of its own
    # under the same name: Lightning refuses to log two different values for one key).
    unlogged_arguments: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        root: str,
        clip_len: int = 8,
        stride: int = 2,
        num_clips: int = 1,
        num_crops: int = 1,
        resolution: int | list[int] = 112,
        short_side: int | None = None,
        train_short_side_range: list[int] | None = None,
        flip: bool = True,
        target_fps: float | None = None,
        frame_sampling: str = "strided",
        batch_size: int = 8,
        num_workers: int = 2,
        decoder: str = DEFAULT_BACKEND,
        pin_memory: bool = True,
        normalize_on_device: bool = False,
        val_fraction: float = 0.0,
        split_seed: int = 0,
        val_list: str | None = None,
        modality: str = "rgb",
        flow_method: str = "tvl1",
        flow_source: str = "stored",
        raft_weights: str | None = None,
        storage: str = "video",
    ):
        super().__init__()
        self.save_hyperparameters(ignore=list(self.unlogged_arguments))
        check_clip_arguments(clip_len, stride, num_clips, num_crops, resolution, short_side, train_short_side_range,
                             target_fps, frame_sampling, batch_size, num_workers)
        check_heldout_arguments(val_fraction, split_seed, val_list)
        check_modality_arguments(modality, flow_method, flow_source, raft_weights, self.modalities, self.format_name)
        self.modality, self.flow_method, self.flow_source = modality, flow_method, flow_source
        self.raft_weights = None if raft_weights is None else str(raft_weights)
        check_storage(storage, self.storages, self.format_name)
        self.storage = storage
        self._raft = None  # on-the-fly flow: the RAFT model, loaded at the first batch
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetLayoutError(f"dataset root {self.root} does not exist or is not a folder")
        self.clip_len, self.stride, self.num_clips, self.num_crops = clip_len, stride, num_clips, num_crops
        self.resolution = resolution if isinstance(resolution, int) else tuple(resolution)
        self.short_side = short_side
        self.train_short_side_range = tuple(train_short_side_range) if train_short_side_range else None
        self.flip = flip
        self.target_fps = target_fps
        self.frame_sampling = frame_sampling
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.requested_decoder = decoder
        self.device_decoder: str | None = None  # set: clips are decoded on the Trainer's device
        if decoder in DEVICE_DECODERS:
            self.check_device_decoding(decoder)
            self.device_decoder = decoder
            decoder = "torchcodec"  # the workers read each video's frame count and size with it
        self.decoder = resolve_backend(decoder)
        self._decoded_on: torch.device | None = None
        self._cpu_fallback: str | None = None
        self.pin_memory = pin_memory
        self.normalize_on_device = normalize_on_device
        self.val_fraction, self.split_seed, self.val_list = val_fraction, split_seed, val_list
        self.decode_failures = DecodeFailureCounter()
        self.datasets: dict[str, ClipDataset] = {}

    def check_device_decoding(self, decoder: str) -> None:
        """Refuse, in one line, a device decoder with settings it does not serve."""
        if self.modality != "rgb":
            raise LitVideoError(f"decoder {decoder}: decodes RGB clips only, not modality {self.modality}; use "
                                "decoder auto")
        if self.storage != "video":
            raise LitVideoError(f"decoder {decoder}: decodes the video files, not storage {self.storage}; use "
                                "storage video")

    # --- what a dataset file provides -------------------------------------------------------------

    @property
    @abstractmethod
    def classes(self) -> list[str]:
        """Class names; index = label."""

    @abstractmethod
    def list_records(self, subset: str) -> list[VideoRecord]:
        """Every video the annotation files list for `subset` (train / val / test), present or not.

        Raises DatasetLayoutError when the annotation files are missing or malformed."""

    def listing_name(self, subset: str) -> str:
        """The annotation file (or part of one) that lists `subset`, for people: "trainlist01.txt".

        Formats override it; two subsets read the same list exactly when their names are equal."""
        return f"the {self.format_name} {subset} list"

    def heldout_key(self, record: VideoRecord) -> str:
        """The unit a held-out split keeps whole: the video itself by default; a format whose videos come
        in groups that share content (UCF101's recording groups) returns the group, so no group is in
        both training and validation."""
        return record.video_id

    # --- shared --------------------------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        """Channels of a clip: 3 (rgb), 2 (flow) or 5 (rgb+flow)."""
        return MODALITY_CHANNELS[self.modality]

    def flow_command(self) -> str:
        """The command that writes the flow store this DataModule reads."""
        return f"lit-video data flow --format {self.format_name} --root {self.root} --method {self.flow_method}"

    def flow_input(self, records: Sequence[VideoRecord], subset: str) -> FlowInput | None:
        """What `subset`'s datasets read beside RGB; None for modality rgb.

        Raises:
            DatasetLayoutError: stored flow is read and the store, or some video's flow, is missing: one line
                naming the count, the first missing folder and the command that computes it.
        """
        if self.modality == "rgb":
            return None
        if self.flow_source == "raft":
            return FlowInput(self.modality, str(self.root), self.flow_method, "raft")
        store = store_folder(self.root, self.flow_method)
        if not (store / "flow.json").exists():
            raise DatasetLayoutError(f"modality {self.modality}: no stored {self.flow_method} flow for {self.root} "
                                     f"({store / 'flow.json'} is missing); compute it with `{self.flow_command()}`")
        bound = read_store_info(self.root, self.flow_method)["bound"]
        missing = [folder for folder in (flow_folder(self.root, r.path, self.flow_method) for r in records)
                   if not folder.is_dir()]
        if missing:
            raise DatasetLayoutError(f"modality {self.modality}: {len(missing)} of {len(records)} {subset} videos have no "
                                     f"stored {self.flow_method} flow (first: {missing[0]}); compute it with "
                                     f"`{self.flow_command()}`")
        return FlowInput(self.modality, str(self.root), self.flow_method, "stored", bound)

    @property
    def holds_out_validation(self) -> bool:
        """Whether validation reads videos held out of the training list (val_fraction > 0 or a val_list)."""
        return self.draws_heldout and (self.val_fraction > 0 or self.val_list is not None)

    @cached_property
    def heldout(self) -> frozenset[str]:
        """Ids of the training videos held out for validation (empty without val_fraction / val_list).

        Drawn from the LISTED training videos, present or not, so that copies missing different files
        still agree on the split."""
        if not self.holds_out_validation:
            return frozenset()
        listed = self.list_records("train")
        ids = [r.video_id for r in listed]
        held = select_heldout(ids, self.val_fraction, self.val_list, self.split_seed, self.listing_name("train"),
                              groups={r.video_id: self.heldout_key(r) for r in listed},
                              strata={r.video_id: r.label for r in listed} if self.stratify_heldout else None)
        if not held:
            raise DatasetLayoutError(f"{self.val_list or self.listing_name('train')}: no training video is held out "
                                     "for validation; give a val_list that names some, or a larger val_fraction")
        return held

    def listed_records(self, subset: str) -> list[VideoRecord]:
        """Every video `subset` reads, present or not: the format's own listing, or, when validation holds
        out training videos, train = the training list without them, val = them, test = the test list.

        Args:
            subset: train, val or test.
        """
        if subset == "test" or not self.holds_out_validation:
            return self.list_records(subset)
        listed, held, validating = self.list_records("train"), self.heldout, subset == "val"
        # the training listing's refused entries belong to the training subset only: warned about once
        return Listing([r for r in listed if (r.video_id in held) == validating],
                       () if validating else refused_entries(listed))

    @property
    def validates_on_test(self) -> bool:
        """Whether validation reads the list that `test` reads (model selection on the test set)."""
        return not self.holds_out_validation and self.listing_name("val") == self.listing_name("test")

    @property
    def validation_source(self) -> str:
        """One line saying where `val/*` metrics come from."""
        if self.holds_out_validation:
            return self.heldout_source(self.listing_name("train"))
        if self.validates_on_test:
            hint = "; set val_fraction to hold out training videos instead" if self.draws_heldout else ""
            return f"{self.listing_name('val')}: the list `test` reads too{hint}"
        return self.listing_name("val")

    def heldout_source(self, training_list: str) -> str:
        """`validation_source` of a held-out split of `training_list`."""
        if self.val_list is not None:
            what = "the videos" if self.heldout_unit == "videos" else f"the {self.heldout_unit} of the videos"
            return f"{what} listed in {self.val_list}, held out of {training_list}"
        per_class = ", per class" if self.stratify_heldout else ""
        return (f"held-out {100 * self.val_fraction:g}% of the {self.heldout_unit} of {training_list}{per_class} "
                f"(split_seed {self.split_seed})")

    @cached_property
    def sampler(self) -> ClipSampler:
        try:
            return ClipSampler(self.clip_len, self.stride, self.num_clips, self.target_fps, mode=self.frame_sampling)
        except ValueError as err:
            raise LitVideoError(f"data.init_args: {err}") from None

    def records(self, subset: str) -> list[VideoRecord]:
        """The listed videos of `subset` (`listed_records`) whose files exist (missing ones are counted and reported), without
        the entries that lead outside the dataset (skipped, counted in one warning)."""
        listed = self.listed_records(subset)
        what = f"{self.format_name} {self.root} {subset}"
        refused = refused_entries(listed)
        if refused:
            warnings.warn(f"{what}: {len(refused)} listed {'entry leads' if len(refused) == 1 else 'entries lead'} "
                          f"outside the dataset and {'is' if len(refused) == 1 else 'are'} skipped (first: "
                          f"{refused[0]}); `lit-video data check` lists them", stacklevel=2)
        if self.storage == "frames":
            return self.stored_frames(listed, what)
        return split_existing(listed, what)

    def stored_frames(self, records: Sequence[VideoRecord], what: str) -> list[VideoRecord]:
        """The records whose frame folder is complete (storage frames; the video files need not be there);
        the others are skipped and counted in one warning.

        Raises:
            DatasetLayoutError: the dataset has no frame store at all.
        """
        command = prepare_command(self.format_name, self.root)
        store = frames_store(self.root)
        if not (store / FRAMES_STORE_FILE).is_file():
            raise DatasetLayoutError(f"storage frames: no frame store for {self.root} ({store / FRAMES_STORE_FILE} is "
                                     f"missing); extract the frames with `{command}`")
        present, first_missing = [], None
        for record in records:
            folder = frames_folder(self.root, record.path)
            if read_video_info(folder) is not None:
                present.append(record)
            elif first_missing is None:
                first_missing = folder
        if first_missing is not None:
            warnings.warn(f"{what}: {len(records) - len(present)} of {len(records)} listed videos have no complete "
                          f"frame folder and are skipped (first: {first_missing}); extract them with `{command}`",
                          stacklevel=3)
        return present

    def probe(self, record: VideoRecord) -> str | None:
        """Why a listed video cannot be read, or None (`lit-video data check`; the file exists).

        The default decodes its first, middle and last frames; a dataset with more files per video
        (masks) overrides it."""
        return probe_video(record.path, self.decoder)

    def clip_transform(self, train: bool) -> ClipTransform:
        """The transform of training clips (random crop, flip, scale jitter) or of evaluation views."""
        return ClipTransform(
            self.resolution,
            train=train,
            short_side=self.short_side,
            short_side_range=self.train_short_side_range,
            flip=self.flip,
            num_crops=self.num_crops,
            normalize=not self.normalize_on_device,
        )

    def make_dataset(self, subset: str) -> ClipDataset:
        train = subset == "train"
        records = self.records(subset)
        if not records:
            raise DatasetLayoutError(f"{self.format_name} {subset}: no video files found under {self.root}")
        return ClipDataset(records, self.sampler, self.clip_transform(train), train=train, decoder=self.decoder,
                           failures=self.decode_failures, flow=self.flow_input(records, subset),
                           frames_root=str(self.root) if self.storage == "frames" else None,
                           device_decode=self.device_decoder is not None)

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for subset in wanted.get(stage, SUBSETS) if stage else SUBSETS:
            if subset not in self.datasets:
                self.datasets[subset] = self.make_dataset(subset)
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return
        device = trainer.strategy.root_device
        if self.device_decoder is not None:
            check_device_decoder(device)
        elif stage == "fit" and self.auto_device_decoding(device):
            choice = choose_decoder(self.datasets["train"], self.decoder, device, self.num_workers, self.decode_on,
                                    self.collate_fn() or default_collate, batch_size=self.batch_size)
            rank_zero_info(choice.reason)
            # every process decodes the same way: the first one's measurement decides
            if trainer.strategy.broadcast(choice.decoder, src=0) == DEVICE_DECODER:
                self.device_decoder = DEVICE_DECODER
                for dataset in self.datasets.values():
                    dataset.device_decode = True

    def auto_device_decoding(self, device: torch.device) -> bool:
        """Whether `decoder: auto` measures the device path against the workers: on a CUDA device, for RGB clips
        of video files or frame folders (not the frame store)."""
        return (self.requested_decoder == "auto" and device.type == "cuda" and self.modality == "rgb"
                and self.storage == "video" and isinstance(self.datasets.get("train"), ClipDataset))

    @property
    def decode_path(self) -> str:
        """Where and how clips are decoded, for the compute record: e.g. "pyav in 4 workers",
        "torchcodec-cuda on cuda:0"."""
        if self.device_decoder is not None:
            where = self._decoded_on or "the Trainer's device"
            fallback = f" (decoded on the CPU: {self._cpu_fallback})" if self._cpu_fallback else ""
            return f"{self.device_decoder} on {where}{fallback}"
        source = "JPEG frames" if self.storage == "frames" else self.decoder
        workers = f"{self.num_workers} workers" if self.num_workers else "the main process"
        return f"{source} in {workers}"

    def decode_on(self, batch: dict, device: torch.device | str) -> dict:
        """A batch of plans (device decoding) -> the batch the model takes: its clips decoded, transformed and
        normalized on `device` (VIDEO), the plans' fields removed.

        Args:
            batch: collated plans (`ClipDataset.plan`), on any device.
            device: where to decode.
        """
        # (B,T) training clips, (B,N,T) evaluation views; frame-folder plans are training clips
        train = keys.FRAME_FILES in batch or batch[keys.FRAME_INDICES].dim() == 2
        transform = self.clip_transform(train)
        decoded = decode_batch(batch, transform, device)
        for _ in decoded.failed:
            self.decode_failures.increment()
        self._decoded_on = torch.device(device)
        self._cpu_fallback = self._cpu_fallback or decoded.cpu_fallback
        video = decoded.video  # uint8 when the DataModule normalizes on the device, as it does here
        batch[keys.VIDEO] = normalize_clips(video) if video.dtype == torch.uint8 else video
        for key in (keys.VIEWS, keys.VIDEO_PATH, keys.FRAME_FILES, keys.FRAME_SIZE):
            batch.pop(key, None)
        return batch

    def _loader(self, subset: str, shuffle: bool) -> DataLoader:
        if subset not in self.datasets:
            self.datasets[subset] = self.make_dataset(subset)
        dataset = self.datasets[subset]
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            # Dropping a ragged last training batch keeps BatchNorm statistics sane, unless it is all there is.
            drop_last=shuffle and len(dataset) > self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
            collate_fn=self.collate_fn(),
        )

    def collate_fn(self) -> Callable[[list[dict]], dict] | None:
        """How samples become a batch; None is torch's default_collate. A dataset with ragged fields
        (captioning's lists of references) returns its own (a module-level function: workers pickle it)."""
        return None

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        if isinstance(batch, dict) and keys.VIEWS in batch:  # plans: decode on the device they were moved to
            device = batch[keys.VIEWS].device
            check_device_decoder(device)
            return self.decode_on(batch, device)
        video = batch.get(keys.VIDEO) if isinstance(batch, dict) else None  # the summary passes bare tensors
        if not isinstance(video, torch.Tensor):
            return batch
        if self.modality != "rgb" and self.flow_source == "raft":
            batch[keys.VIDEO] = self.flow_on_device(video, batch.pop(FLOW_FRAMES, None))
        elif self.normalize_on_device and video.dtype == torch.uint8:
            batch[keys.VIDEO] = normalize_clips(video)  # (..., C, T, H, W)
        elif self.normalize_on_device and self.modality == "rgb+flow" and video.is_floating_point():
            # the workers left the RGB channels in [0, 255] beside the float flow: normalized here, in place
            normalize_clips(video[..., :3, :, :, :])
        return batch

    def flow_on_device(self, video: torch.Tensor, flow_frames: torch.Tensor | None) -> torch.Tensor:
        """The batch's video with RAFT flow channels (flow_source raft), computed where the batch is.

        Args:
            video: RGB (..., 3, T, H, W), normalized float or uint8 (normalize_on_device).
            flow_frames: (..., 3, 2T, H, W) the frames each flow channel is computed between (as `video`),
                or None when the frames of `video` are consecutive (whole evaluation videos).

        Returns:
            (..., C, T, H, W): the flow (C = 2) or the normalized RGB then the flow (C = 5).
        """
        if self._raft is None:
            self._raft = load_raft(self.raft_weights)
        self._raft.to(video.device)
        frames = video.shape[-3]
        if flow_frames is None:  # consecutive frames: each frame's pair is (t, t + 1), the last one (T-2, T-1)
            first = torch.from_numpy(flow_pair_indices(np.arange(frames), frames)[0]).to(video.device)
            flow_frames = torch.cat([video.index_select(-3, first), video.index_select(-3, first + 1)], dim=-3)
        pairs = rgb_as_255(flow_frames)  # (...,3,2T,H,W)
        leading, (height, width) = pairs.shape[:-4], pairs.shape[-2:]
        pairs = pairs.reshape(-1, 3, 2, frames, height, width).permute(2, 0, 3, 1, 4, 5)  # (2,N,T,3,H,W)
        first, second = pairs[0].reshape(-1, 3, height, width), pairs[1].reshape(-1, 3, height, width)
        flow = torch.cat([raft_flow(self._raft, first[i:i + 16], second[i:i + 16])
                          for i in range(0, len(first), 16)])  # (N*T,2,H,W)
        flow = flow.reshape(-1, frames, 2, height, width).transpose(1, 2).reshape(*leading, 2, frames, height, width)
        if self.modality == "flow":
            return flow
        rgb = normalize_clips(video) if video.dtype == torch.uint8 else video
        return torch.cat([rgb, flow.to(rgb.dtype)], dim=-4)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
