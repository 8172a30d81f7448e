"""What video object segmentation (VOS) and video instance segmentation (VIS) data share.

Both read a video as a folder of frames with one label map per frame (object or instance k at value
k, 0 background) and train on clips whose masks go through the same joint transform as their frames:

- `SegmentationClipDataset`: training clips of fixed shape, `length` items per epoch, the stride
  jittered by the `ClipSampler`; an unreadable video is skipped by `ClipDataset`'s mechanism;
- `SegmentationVideoDataset`: one whole video per item for evaluation, decoded frame by frame, an
  unreadable frame replaced by its nearest readable neighbour (warned and counted);
- `SegmentationDataModule`: the arguments both kinds of dataset take, their checks, and the loaders
  (training batches of clips, evaluation batches of one whole video).

A format provides its records (`list_records`), `clip_dataset` and `video_dataset_class`.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Sequence
from functools import cached_property
from typing import ClassVar

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as F

from lit_video.data import keys
from lit_video.data.base import (
    FLOW_FRAMES,
    ClipDataset,
    ClipInputs,
    DecodeFailureCounter,
    FlowInput,
    VideoDataModule,
    check_integer,
)
from lit_video.data.records import VideoRecord
from lit_video.errors import DatasetLayoutError, LitVideoError, VideoDecodeError
from lit_video.video.decode import DEFAULT_BACKEND, FrameFolderReader
from lit_video.video.flow import flow_folder, read_flow, resize_flow, stored_pair_count
from lit_video.video.sampling import ClipSampler
from lit_video.video.transforms import ClipTransform, normalize_clips, resize_frames

log = logging.getLogger(__name__)


def choose_at_most(present: list[int], limit: int) -> list[int]:
    """`present` when it holds at most `limit` ids, else a random `limit` of them (torch's generator), sorted."""
    if len(present) <= limit:
        return present
    return sorted(present[i] for i in torch.randperm(len(present))[:limit].tolist())


def padded(values: Sequence[int], length: int, fill: int) -> torch.Tensor:
    """int64 (length,): `values`, then `fill` (the fixed-size OBJECT_IDS and CATEGORIES of a training clip)."""
    out = torch.full((length,), fill, dtype=torch.int64)
    out[: len(values)] = torch.tensor(list(values), dtype=torch.int64)
    return out


class SegmentationClipDataset(ClipDataset):
    """Training clips of a segmentation dataset: item i is a clip of video i % len(records).

    Subclasses implement `load(index)`, drawing frames with `self.sampler.train_indices` (which
    jitters the stride) and redrawing a clip start up to `max_retries` times and a crop up to
    `crop_retries` times while the clip shows nothing to segment.

    Args:
        records: the videos.
        sampler: clip length and (jittered) stride, in annotated frames.
        transform: a training `ClipTransform` (random crop, flip, scale jitter), applied to frames
            and masks together.
        length: items per epoch (default one per video).
        failures: shared counter of unreadable videos.
        max_retries: clip starts tried per video.
        crop_retries: crops tried per decoded clip.
        flow: optical flow read beside the frames (a subclass's `load` reads it through `self.flow`);
            None: RGB only. The DataModule sets it on the dataset `clip_dataset` returns.
    """

    def __init__(self, records: Sequence[VideoRecord], sampler: ClipSampler, transform: ClipTransform,
                 length: int | None = None, failures: DecodeFailureCounter | None = None, max_retries: int = 10,
                 crop_retries: int = 3, flow: FlowInput | None = None):
        super().__init__(records, sampler, transform, train=True, failures=failures, flow=flow)
        self.length = length or len(self.records)
        self.max_retries, self.crop_retries = max_retries, crop_retries

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        return super().__getitem__(index % len(self.records))

    def clip_video(self, reader: FrameFolderReader, frame_indices: np.ndarray, size: Sequence[int],
                   views: torch.Tensor) -> dict:
        """The video fields of a training clip whose view is drawn already (chosen on its masks).

        Args:
            reader: the video's frame folder.
            frame_indices: (T,) positions in the folder.
            size: the annotations' (height, width), which the frames are resized to first.
            views: (1,5) the transform's draws (`draw_views`).

        Returns:
            VIDEO (C,T,h,w) (and on-the-fly flow's FLOW_FRAMES); with device_decode, the plan for the device:
            FRAME_FILES (T paths), FRAME_SIZE, VIEWS.
        """
        if self.device_decode:
            return {keys.FRAME_FILES: [reader.frame_path(int(i)) for i in frame_indices],
                    keys.FRAME_SIZE: torch.tensor(list(size), dtype=torch.int64), keys.VIEWS: views}
        video, _, flow_frames = self.read_inputs(reader, frame_indices, size).transform(self.transform, views=views)
        # on-the-fly flow's frame pairs, turned into flow channels on the device
        return {keys.VIDEO: video} | ({} if flow_frames is None else {FLOW_FRAMES: flow_frames})

    def read_inputs(self, reader: FrameFolderReader, frame_indices: np.ndarray, size: Sequence[int]) -> ClipInputs:
        """The clip's frames (resized to `size`, the annotations' (height, width)), and its flow as `self.flow`
        says (resized to the same grid by the transform)."""
        if self.flow is None:
            return ClipInputs(resize_frames(reader.get_frames(frame_indices), size))
        inputs = self.flow.read(reader, frame_indices)
        return ClipInputs(None if inputs.frames is None else resize_frames(inputs.frames, size), inputs.flow,
                          None if inputs.pairs is None else resize_frames(inputs.pairs, size))


class SegmentationVideoDataset(Dataset):
    """Evaluation: one item = one whole video; subclasses build the sample in `__getitem__`.

    Args:
        records: the videos.
        eval_resolution: resize the frames (not the masks) so their short side is this; None = full.
        normalize: return normalized float video; False: uint8, normalized later on the device.
        failures: shared counter of unreadable files.
        flow: stored optical flow appended to (or replacing) the RGB channels by `_decode`; None (and
            on-the-fly flow, which the DataModule computes from the consecutive frames): RGB only.
    """

    def __init__(self, records: Sequence[VideoRecord], eval_resolution: int | None = None, normalize: bool = True,
                 failures: DecodeFailureCounter | None = None, flow: FlowInput | None = None):
        self.records = list(records)
        self.eval_resolution = eval_resolution
        self.normalize = normalize
        self.failures = failures or DecodeFailureCounter()
        self.flow = flow

    def __len__(self) -> int:
        return len(self.records)

    def _unreadable(self, err: VideoDecodeError, consequence: str) -> None:
        self.failures.increment()
        log.warning("unreadable file %s (%s): %s", err.path, err.reason, consequence)

    def _decode(self, reader: FrameFolderReader, frame_indices: np.ndarray, size: Sequence[int]) -> torch.Tensor:
        """Every frame at `size` -> (C,T,h,w); an unreadable frame is replaced by its nearest readable one.

        With stored flow, its channels (the flow of the same frames, in pixels of the delivered grid) follow
        the RGB ones (modality rgb+flow) or replace them (flow)."""
        stored = self.flow is not None and self.flow.source == "stored"
        if stored and self.flow.modality == "flow":
            return self._stored_flow(reader, frame_indices, size)
        video = self._decode_rgb(reader, frame_indices, size)
        if not stored:
            return video
        video = video.float() if not video.is_floating_point() else video  # RGB in [0, 255] without normalize
        return torch.cat([video, self._stored_flow(reader, frame_indices, size)])

    def _stored_flow(self, reader: FrameFolderReader, frame_indices: np.ndarray, size: Sequence[int]) -> torch.Tensor:
        """The stored flow of `frame_indices` -> float (2,T,h,w) on the grid of the delivered frames."""
        folder = flow_folder(self.flow.root, reader.path, self.flow.method)
        flow = torch.from_numpy(read_flow(folder, frame_indices, self.flow.bound, num_pairs=stored_pair_count(str(folder))))
        flow = resize_flow(flow.permute(0, 3, 1, 2), self._delivered_size(size))  # (T,2,h,w)
        return flow.transpose(0, 1).contiguous()

    def _delivered_size(self, size: Sequence[int]) -> tuple[int, int]:
        """The (height, width) evaluation frames of annotation size `size` are delivered at."""
        if not self.eval_resolution:
            return tuple(size)
        height, width = size
        scale = self.eval_resolution / min(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))

    def _decode_rgb(self, reader: FrameFolderReader, frame_indices: np.ndarray, size: Sequence[int]) -> torch.Tensor:
        frames: list[torch.Tensor | None] = []
        for index in frame_indices.tolist():
            try:
                frames.append(resize_frames(reader.get_frames([index]), size)[0])  # (H,W,C)
            except VideoDecodeError as err:
                frames.append(None)
                self._unreadable(err, "replaced by the nearest readable frame")
        readable = [t for t, f in enumerate(frames) if f is not None]
        if not readable:
            raise LitVideoError(f"{reader.path}: no frame of the video can be decoded")
        for t, frame in enumerate(frames):
            if frame is None:
                frames[t] = frames[min(readable, key=lambda r: (abs(r - t), r))]
        video = torch.stack(frames).permute(3, 0, 1, 2)  # (C,T,H,W) uint8
        if self.eval_resolution:
            resized = list(self._delivered_size(size))
            video = F.resize(video.transpose(0, 1), resized, antialias=True).transpose(0, 1)  # (C,T,h,w)
        return normalize_clips(video) if self.normalize else video.contiguous()


class SegmentationDataModule(VideoDataModule):
    """Base DataModule of the segmentation formats (VOS and VIS): frame folders with label maps.

    Training batches hold `batch_size` clips of fixed shape; evaluation loaders (val, test, predict)
    hold one whole video per batch. Both use the default collation, which turns the evaluation
    sample's FRAME_NAMES into T one-name tuples: the stems are `[n[0] for n in batch[FRAME_NAMES]]`.

    Args:
        root: the dataset folder, laid out as the official release.
        clip_len: frames per training clip.
        stride: ANNOTATED (listed) frames between consecutive clip frames.
        stride_jitter: each training clip's stride is drawn from [stride - jitter, stride + jitter].
        resolution: training crop, int or [height, width].
        eval_resolution: evaluation frames are resized to this short side; None keeps the annotations'
            resolution. Masks always stay at the annotations' resolution.
        clips_per_video: training clips drawn from each video per epoch (DAVIS train has 60 videos).
        samples_per_epoch: training clips per epoch, over all videos; overrides clips_per_video.
        short_side: training frames' short side before the crop; default 8/7 of the crop.
        train_short_side_range: optional [min, max] random short side for training (scale jitter).
        flip: random horizontal flips for training.
        batch_size: training clips per batch.
        num_workers: DataLoader worker processes.
        decoder: torchcodec-cuda decodes the training clips' JPEG frames on the GPU (nvJPEG) and crops, resizes,
            flips and normalizes them there (the workers read the masks and choose the crops); evaluation videos
            are read in the workers. auto measures that path on a GPU as for video files; a worker backend
            (pyav, ...) is unused by frame folders, accepted for the generic `lit-video data` commands.
        pin_memory: pin host memory for faster copies to the GPU.
        normalize_on_device: workers return uint8 video, normalized once on the device (a quarter of
            the bytes; whole evaluation videos are large).
        max_retries: training clip starts tried per video while a clip shows nothing to segment.
        modality, flow_method, flow_source, raft_weights: optical flow beside or instead of the RGB
            channels, as `VideoDataModule` (the formats that read it list it in `modalities`).
        storage: "video" only: the frame folders are the dataset's own storage; "frames" (the frame store of
            video-file formats) is refused in one line.
    """

    video_dataset_class: ClassVar[type[SegmentationVideoDataset]]
    # A format's datasets read flow once they say so (VOS); the others refuse any other modality in one line.
    modalities: ClassVar[tuple[str, ...]] = ("rgb",)
    # Their videos are frame folders already: no frame store to read instead.
    storages: ClassVar[tuple[str, ...]] = ("video",)
    # the formats that validate on held-out training videos (YouTube-VOS, YouTube-VIS) draw them themselves
    draws_heldout = False
    stratify_heldout = False  # their videos have no class

    def __init__(
        self,
        root: str,
        clip_len: int = 3,
        stride: int = 1,
        stride_jitter: int = 0,
        resolution: int | list[int] = 384,
        eval_resolution: int | None = None,
        clips_per_video: int = 1,
        samples_per_epoch: int | None = None,
        short_side: int | None = None,
        train_short_side_range: list[int] | None = None,
        flip: bool = True,
        batch_size: int = 4,
        num_workers: int = 2,
        decoder: str = DEFAULT_BACKEND,
        pin_memory: bool = True,
        normalize_on_device: bool = False,
        max_retries: int = 10,
        modality: str = "rgb",
        flow_method: str = "tvl1",
        flow_source: str = "stored",
        raft_weights: str | None = None,
        storage: str = "video",
    ):
        super().__init__(
            root, clip_len=clip_len, stride=stride, resolution=resolution, short_side=short_side,
            train_short_side_range=train_short_side_range, flip=flip, batch_size=batch_size,
            num_workers=num_workers, decoder=decoder, pin_memory=pin_memory, normalize_on_device=normalize_on_device,
            modality=modality, flow_method=flow_method, flow_source=flow_source, raft_weights=raft_weights,
            storage=storage,
        )
        for name, value, least in (("clip_len", clip_len, 1), ("stride", stride, 1), ("stride_jitter", stride_jitter, 0),
                                   ("clips_per_video", clips_per_video, 1), ("max_retries", max_retries, 1)):
            check_integer(name, value, least)
        check_integer("eval_resolution", eval_resolution, optional=True)
        check_integer("samples_per_epoch", samples_per_epoch, optional=True)
        self.stride_jitter = stride_jitter
        self.eval_resolution = eval_resolution
        self.clips_per_video = clips_per_video
        self.samples_per_epoch = samples_per_epoch
        self.max_retries = max_retries

    # --- what a format provides -----------------------------------------------------------------

    @abstractmethod
    def clip_dataset(self, records: list[VideoRecord], transform: ClipTransform,
                     length: int) -> SegmentationClipDataset:
        """The training dataset of `records`, `length` clips per epoch, drawn with `self.sampler`."""

    def listing(self, subset: str) -> str:
        """Where the videos of `subset` are listed, for the message when there are none."""
        return f"under {self.root}"

    @property
    def validation_source(self) -> str:
        """Held-out training videos when the format validates on its train split (YouTube-VOS, YouTube-VIS
        draw them themselves), else `released_validation_source`; said when `test` reads the same split."""
        subsets = getattr(self, "subsets", {})
        source = (self.heldout_source(self.listing_name("train")) if subsets.get("val") == "train"
                  else self.released_validation_source())
        return f"{source}; the split `test` reads too" if self.validates_on_test else source

    def released_validation_source(self) -> str:
        """`validation_source` of a validation split the dataset releases: its listing by default."""
        return self.listing_name("val")

    # --- shared --------------------------------------------------------------------------------

    @cached_property
    def sampler(self) -> ClipSampler:
        """Training clips: `clip_len` annotated frames, `stride` apart, jittered by `stride_jitter`."""
        return ClipSampler(self.clip_len, self.stride, stride_jitter=self.stride_jitter)

    def make_dataset(self, subset: str) -> Dataset:
        records = self.records(subset)
        if not records:
            raise DatasetLayoutError(f"{self.format_name} {subset}: no videos listed {self.listing(subset)}")
        flow = self.flow_input(records, subset)
        if subset != "train":
            return self.video_dataset_class(records, self.eval_resolution, normalize=not self.normalize_on_device,
                                            failures=self.decode_failures, flow=flow)
        dataset = self.clip_dataset(records, self.clip_transform(train=True),
                                    length=self.samples_per_epoch or self.clips_per_video * len(records))
        dataset.flow = flow
        dataset.device_decode = self.device_decoder is not None  # training clips; evaluation videos stay on the CPU
        return dataset

    def _loader(self, subset: str, shuffle: bool) -> DataLoader:
        if subset == "train":
            return super()._loader(subset, shuffle)
        if subset not in self.datasets:
            self.datasets[subset] = self.make_dataset(subset)
        # One whole video per batch: videos differ in length and size.
        return DataLoader(
            self.datasets[subset],
            batch_size=1,
            shuffle=False,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )
