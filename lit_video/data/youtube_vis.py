"""YouTube-VIS 2019 / 2021 (video instance segmentation), read as released.

Frames: `{train,valid,test}/JPEGImages/<video>/<frame>.jpg`, every 5th frame of the video. The
annotation JSON is `<split>.json` beside the split folders (2019) or `<split>/instances.json` (2021):
`{videos: [{id, width, height, length, file_names: ["<video>/00000.jpg", ...]}], annotations: [{id,
video_id, category_id, segmentations, areas, bboxes, iscrowd, ...}], categories: [{id, name, ...}]}`.
An annotation has one segmentation per listed frame: uncompressed RLE (`{"counts": [ints], "size":
[h, w]}`, as train ships), compressed RLE (counts a string), polygons, or null where the instance is
absent; `lit_video.data.rle` checks and decodes them. valid and test ship without annotations; synthetic
copies also hold their ground truth in `<annotation file stem>_gt.json` (e.g. `valid/instances_gt.json`),
which is read when present.

Validation during training reads held-out train videos (`val_fraction` of them, or a `val_list`),
as YouTube-VOS does, or "valid" when its ground truth is there. `ground_truth(subset)` gives the
task the annotation JSON of exactly the videos it evaluates, for the YouTube-VIS AP.

Instances go through the joint clip transforms as one label map per frame (instance k at value k,
0 background), so every random crop, resize and flip moves them with their frames. A pixel covered
by two annotated instances (rare: the annotations of a frame seldom overlap) goes to the one of
smaller area in that frame, the one more likely in front and the one that would lose more.
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lit_video.data import keys
from lit_video.data.base import (
    ClipDataset,
    DecodeFailureCounter,
    VideoDataModule,
    VideoRecord,
    read_json_file,
    register_datamodule,
    select_heldout,
)
from lit_video.data.rle import decode_segmentation, segmentation_to_rle
from lit_video.data.synthetic import SynthSpec
from lit_video.data.vos import VOSVideoDataset, _resize_frames
from lit_video.errors import DatasetLayoutError, LitVideoError, VideoDecodeError
from lit_video.video.decode import DEFAULT_BACKEND, FrameFolderReader
from lit_video.video.sampling import ClipSampler
from lit_video.video.transforms import ClipTransform

log = logging.getLogger(__name__)

VERSIONS = (2019, 2021)
SPLITS = ("train", "valid", "test")
GT_SUFFIX = "_gt"  # synthetic-only: valid / test ground truth beside the released file


# ----------------------------------------------------------------------------------------------- format


def annotation_path(root: str | os.PathLike, split: str, version: int) -> Path:
    """The released annotation JSON of `split`: `<root>/<split>.json` (2019), `<root>/<split>/instances.json`
    (2021)."""
    if version == 2019:
        return Path(root) / f"{split}.json"
    return Path(root) / split / "instances.json"


def ground_truth_path(root: str | os.PathLike, split: str, version: int) -> Path:
    """Where a synthetic copy keeps the ground truth of a split released without it (`valid_gt.json`,
    `valid/instances_gt.json`)."""
    path = annotation_path(root, split, version)
    return path.with_name(f"{path.stem}{GT_SUFFIX}{path.suffix}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_video(path: Path, index: int, video: Any) -> None:
    where = f"{path}: videos[{index}]"
    if not isinstance(video, dict):
        raise DatasetLayoutError(f"{where}: expected an object with id, width, height, length, file_names")
    for key in ("id", "height", "width"):
        if not _is_int(video.get(key)) or (key != "id" and video[key] < 1):
            raise DatasetLayoutError(f'{where}["{key}"]: expected a positive integer, got {video.get(key)!r}')
    names = video.get("file_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DatasetLayoutError(f'{where}["file_names"]: expected a non-empty list of "<video>/<frame>.jpg"')
    folders = {posixpath.dirname(n) for n in names}
    if len(folders) != 1 or "" in folders:
        raise DatasetLayoutError(f'{where}["file_names"]: every frame must be "<video folder>/<file>", '
                                 "in one folder")
    if "length" in video and video["length"] != len(names):
        raise DatasetLayoutError(f'{where}["length"]: {video["length"]!r}, but file_names lists '
                                 f"{len(names)} frames")


def _check_segmentation(where: str, segmentation: Any, height: int, width: int) -> None:
    """Raises DatasetLayoutError naming `where` when the segmentation is not one of a height x width frame."""
    try:
        segmentation_to_rle(segmentation, height, width)
    except ValueError as err:
        raise DatasetLayoutError(f"{where}: {err}") from None


def read_annotation_file(path: Path, need_annotations: bool, hint: str = "") -> dict:
    """Read and check a YouTube-VIS JSON; returns it as read ("annotations" absent or null: no ground truth).

    Args:
        path: the file.
        need_annotations: a file without an "annotations" list is an error (train).
        hint: appended to the message of a missing file.

    Raises:
        DatasetLayoutError: one line naming the file and the offending key.
    """
    data = read_json_file(path, f"missing YouTube-VIS annotation file{hint}")
    if not isinstance(data, dict):
        raise DatasetLayoutError(f"{path}: expected an object with videos, annotations and categories")
    for key in ("videos", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetLayoutError(f'{path}: "{key}": missing or not a list')

    categories = set()
    for index, category in enumerate(data["categories"]):
        if not (isinstance(category, dict) and _is_int(category.get("id"))
                and isinstance(category.get("name"), str)):
            raise DatasetLayoutError(f"{path}: categories[{index}]: expected {{id: int, name: str, ...}}")
        if category["id"] in categories:
            raise DatasetLayoutError(f'{path}: categories[{index}]["id"]: {category["id"]} is listed twice')
        categories.add(category["id"])

    videos: dict[int, dict] = {}
    for index, video in enumerate(data["videos"]):
        _check_video(path, index, video)
        if video["id"] in videos:
            raise DatasetLayoutError(f'{path}: videos[{index}]["id"]: {video["id"]} is listed twice')
        videos[video["id"]] = video

    annotations = data.get("annotations")
    if annotations is None and need_annotations:
        raise DatasetLayoutError(f'{path}: "annotations": missing (a training file must have them)')
    annotations = [] if annotations is None else annotations
    if not isinstance(annotations, list):
        raise DatasetLayoutError(f'{path}: "annotations": expected a list')
    seen = set()
    for index, ann in enumerate(annotations):
        where = f"{path}: annotations[{index}]"
        if not isinstance(ann, dict):
            raise DatasetLayoutError(f"{where}: expected an object with id, video_id, category_id and "
                                     "segmentations")
        for key in ("id", "video_id", "category_id"):
            if not _is_int(ann.get(key)):
                raise DatasetLayoutError(f'{where}["{key}"]: expected an integer, got {ann.get(key)!r}')
        if ann["id"] in seen:
            raise DatasetLayoutError(f'{where}["id"]: {ann["id"]} is used twice')
        seen.add(ann["id"])
        if ann["video_id"] not in videos:
            raise DatasetLayoutError(f'{where}["video_id"]: {ann["video_id"]} is not in videos')
        if ann["category_id"] not in categories:
            raise DatasetLayoutError(f'{where}["category_id"]: {ann["category_id"]} is not in categories')
        video = videos[ann["video_id"]]
        segmentations = ann.get("segmentations")
        if not isinstance(segmentations, list) or len(segmentations) != len(video["file_names"]):
            count = len(segmentations) if isinstance(segmentations, list) else "no"
            raise DatasetLayoutError(f'{where}["segmentations"]: {count} entries for a video of '
                                     f'{len(video["file_names"])} frames (one per frame, null where absent)')
        for t, segmentation in enumerate(segmentations):
            key = f'{where}["segmentations"][{t}]'
            _check_segmentation(key, segmentation, video["height"], video["width"])
    return data


# ----------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class VISInstance:
    """One annotated instance of a video.

    Args:
        annotation_id: its id in the annotation file.
        category_id: its category id in the annotation file.
        label: 0-based index of the category in the DataModule's `classes`.
        segmentations: the JSON segmentation of each listed frame, None where absent.
        where: "<file>: annotations[i]", for error messages.
    """

    annotation_id: int
    category_id: int
    label: int
    segmentations: tuple[Any, ...]
    where: str = ""


@dataclass(frozen=True)
class VISRecord(VideoRecord):
    """One video; `path` is its frame folder, `video_id` the folder's name and `label` -1.

    Args:
        annotation_video_id: the video's id in the annotation file.
        frame_files: the listed frame files, in order (file names inside `path`).
        height, width: the video's size as the annotation file gives it.
        instances: the annotated instances, by annotation id; empty when the split has no ground truth.
    """

    annotation_video_id: int = 0
    frame_files: tuple[str, ...] = ()
    height: int = 0
    width: int = 0
    instances: tuple[VISInstance, ...] = ()


def instance_labels(record: VISRecord, frame_indices: Sequence[int]) -> torch.Tensor:
    """int64 (T,H,W) label map of the listed frames `frame_indices`: instance k of `record.instances` at
    value k+1, 0 background; where instances overlap, the smaller one in that frame wins."""
    labels = np.zeros((len(frame_indices), record.height, record.width), dtype=np.int64)  # (T,H,W)
    for i, t in enumerate(frame_indices):
        decoded = []
        for k, instance in enumerate(record.instances):
            try:  # checked when the file was read, so this is not expected to fail
                mask = decode_segmentation(instance.segmentations[t], record.height, record.width)
            except ValueError as err:
                raise DatasetLayoutError(f'{instance.where}["segmentations"][{t}]: {err}') from None
            if mask is not None:
                decoded.append((int(mask.sum()), k, mask))
        # largest first: smaller ones paint over
        for _, k, mask in sorted(decoded, key=lambda item: -item[0]):
            labels[i][mask] = k + 1
    return torch.from_numpy(labels)


# ----------------------------------------------------------------------------------------------- datasets


class VISClipDataset(ClipDataset):
    """Training clips: `clip_len` listed frames of one video with its instances, transformed together.

    Frames are taken every `stride` listed frames (every 5th raw frame), the stride jittered per clip.
    A clip start is redrawn (up to `max_retries` times) while no instance appears in the clip, and the
    crop (up to `crop_retries` times) while the crop leaves none; after that an empty clip is returned,
    a legitimate VIS sample (every query is "no object"). Instances absent from every frame of the crop
    are dropped; the rest are re-indexed 1..K (a random `max_instances` when there are more). An
    unreadable frame skips the video by `ClipDataset`'s mechanism (warned, counted).

    Args:
        records: the videos.
        clip_len: frames per clip.
        stride: listed frames between consecutive clip frames.
        transform: a training `ClipTransform`.
        stride_jitter: each clip's stride is drawn from [stride - jitter, stride + jitter] (at least 1).
        max_instances: instances per clip; OBJECT_IDS and CATEGORIES are padded to it.
        length: items per epoch (default one per video); item i is a clip of video i % len(records).
        failures: shared counter of unreadable videos.
        max_retries: clip starts tried per item while the clip holds no instance.
        crop_retries: crops tried while the crop holds no instance.
    """

    def __init__(self, records: Sequence[VISRecord], clip_len: int, stride: int, transform: ClipTransform,
                 stride_jitter: int = 0, max_instances: int = 10, length: int | None = None,
                 failures: DecodeFailureCounter | None = None, max_retries: int = 10, crop_retries: int = 3):
        super().__init__(records, ClipSampler(clip_len, stride), transform, train=True, failures=failures)
        self.stride_jitter, self.max_instances = stride_jitter, max_instances
        self.length = length or len(self.records)
        self.max_retries, self.crop_retries = max_retries, crop_retries

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        return super().__getitem__(index % len(self.records))

    def load(self, index: int) -> dict:
        """A training clip of video `index` (raises VideoDecodeError for an unreadable frame)."""
        record: VISRecord = self.records[index]
        # Draw from torch's generator: DataLoader seeds it per worker, seed_everything seeds it.
        rng = np.random.default_rng(int(torch.randint(2**62, ()).item()))
        low, high = max(1, self.sampler.stride - self.stride_jitter), self.sampler.stride + self.stride_jitter
        for _ in range(self.max_retries):
            sampler = ClipSampler(self.sampler.clip_len, int(rng.integers(low, high + 1)))
            frame_indices = sampler.train_indices(len(record.frame_files), rng=rng)  # (T,)
            # checked on the JSON alone: a redraw decodes nothing
            if any(inst.segmentations[t] is not None for inst in record.instances for t in frame_indices):
                break
        labels = instance_labels(record, frame_indices)  # (T,H,W)
        reader = FrameFolderReader(record.path, frame_names=list(record.frame_files))
        # (T,H,W,C), at the annotations' size should a copy's JPEGs differ from it
        frames = _resize_frames(reader.get_frames(frame_indices), labels.shape[1:])
        for _ in range(self.crop_retries):
            video, masks = self.transform(frames, labels)  # (C,T,h,w), (T,h,w)
            present = [int(v) for v in masks.unique().tolist() if v != 0]  # instance k+1 of record.instances
            if present:
                break
        if len(present) > self.max_instances:
            present = sorted(present[i] for i in torch.randperm(len(present))[: self.max_instances].tolist())
        table = torch.zeros(len(record.instances) + 1, dtype=torch.int64)  # record's k+1 -> clip's 1..K
        table[torch.tensor(present, dtype=torch.int64)] = torch.arange(1, len(present) + 1)
        object_ids = torch.zeros(self.max_instances, dtype=torch.int64)  # (max_instances,), 0 = padding
        categories = torch.full((self.max_instances,), -1, dtype=torch.int64)  # (max_instances,), -1: padding
        object_ids[: len(present)] = torch.tensor([record.instances[v - 1].annotation_id for v in present],
                                                  dtype=torch.int64)
        categories[: len(present)] = torch.tensor([record.instances[v - 1].label for v in present],
                                                  dtype=torch.int64)
        return {
            keys.VIDEO: video,  # (C,T,h,w)
            keys.MASKS: table[masks],  # (T,h,w): instances 1..K, 0 background
            keys.NUM_OBJECTS: torch.tensor(len(present), dtype=torch.int64),
            keys.OBJECT_IDS: object_ids,
            keys.CATEGORIES: categories,
            keys.VIDEO_ID: record.video_id,
            keys.ANNOTATION_VIDEO_ID: torch.tensor(record.annotation_video_id, dtype=torch.int64),
            keys.FRAME_INDICES: torch.from_numpy(np.asarray(frame_indices, dtype=np.int64)),
        }


class VISVideoDataset(VOSVideoDataset):
    """Evaluation: one item = one whole video (every listed frame), decoded as VOS evaluation videos are
    (an unreadable frame is replaced by its nearest readable one and counted).

    Sample keys: VIDEO float (C,T,h,w) (uint8 when `normalize` is False) at the annotation file's size,
    or short side `eval_resolution`; MASKS int64 (T,H,W) at the annotation file's size, instances 1..K
    (all 0 without ground truth); OBJECT_IDS int64 (K,) annotation ids; CATEGORIES int64 (K,) 0-based
    class indices; NUM_OBJECTS int64 (); ORIGINAL_SIZE int64 (2,) (H, W) to write predictions at;
    ANNOTATION_VIDEO_ID int64 (); VIDEO_ID (folder name); FRAME_NAMES list of T stems; FRAME_INDICES
    int64 (T,) (positions in the listed frames).
    """

    def __getitem__(self, index: int) -> dict:
        record: VISRecord = self.records[index]
        reader = FrameFolderReader(record.path, frame_names=list(record.frame_files))
        frame_indices = np.arange(len(record.frame_files), dtype=np.int64)  # (T,)
        size = (record.height, record.width)
        video = self._decode(reader, frame_indices, size)  # (C,T,h,w)
        return {
            keys.VIDEO: video,
            keys.MASKS: instance_labels(record, frame_indices),  # (T,H,W)
            keys.OBJECT_IDS: torch.tensor([i.annotation_id for i in record.instances], dtype=torch.int64),
            keys.CATEGORIES: torch.tensor([i.label for i in record.instances], dtype=torch.int64),
            keys.NUM_OBJECTS: torch.tensor(len(record.instances), dtype=torch.int64),
            keys.ORIGINAL_SIZE: torch.tensor(size, dtype=torch.int64),
            keys.ANNOTATION_VIDEO_ID: torch.tensor(record.annotation_video_id, dtype=torch.int64),
            keys.VIDEO_ID: record.video_id,
            keys.FRAME_NAMES: [os.path.splitext(name)[0] for name in record.frame_files],
            keys.FRAME_INDICES: torch.from_numpy(frame_indices),
        }


# ----------------------------------------------------------------------------------------------- DataModule


@register_datamodule("youtube-vis")
class YouTubeVISDataModule(VideoDataModule):
    """YouTube-VIS 2019 / 2021 in the official layout.

    Training batches hold `batch_size` clips of fixed shape; evaluation loaders (val, test, predict)
    hold one whole video per batch (default collation: the stems are `[n[0] for n in batch[FRAME_NAMES]]`).

    Args:
        root: folder holding `train/`, `valid/` (and `test/`) and, for 2019, `train.json` etc.
        version: 2019 or 2021: picks the released annotation file names.
        clip_len: frames per training clip.
        stride: listed frames (every 5th raw frame) between consecutive clip frames.
        stride_jitter: each training clip's stride is drawn from [stride - jitter, stride + jitter].
        resolution: training crop, int or [height, width].
        eval_resolution: evaluation frames are resized to this short side; None keeps the annotation
            file's size. Masks always stay at that size.
        max_instances: instances per training clip (a random subset when there are more).
        clips_per_video: training clips drawn from each video per epoch.
        samples_per_epoch: training clips per epoch, over all videos; overrides clips_per_video.
        short_side: training frames' short side before the crop; default 8/7 of the crop.
        train_short_side_range: optional [min, max] random short side for training (scale jitter).
        flip: random horizontal flips for training.
        batch_size: training clips per batch.
        num_workers: DataLoader worker processes.
        decoder: unused by frame folders; accepted for the generic `lit-video data` commands.
        pin_memory: pin host memory for faster copies to the GPU.
        normalize_on_device: workers return uint8 video, normalized once on the device.
        max_retries: training clip starts tried per item while a clip holds no instance.
        train_subset: split the training stage reads: "train" (minus the held-out videos).
        val_subset: split the validation stage reads: "train" = the held-out train videos, or "valid" /
            "test" (ground truth only where a `*_gt.json` is present; otherwise predictions only).
        test_subset: split the test and predict stages read (default "valid": the submission).
        val_fraction: fraction of train videos held out when a stage evaluates on "train".
        val_list: a file of held-out train video folder names, one a line; replaces val_fraction.
        split_seed: seed of the held-out draw (deterministic for a given train JSON).
    """

    def __init__(
        self,
        root: str,
        version: int = 2021,
        clip_len: int = 5,
        stride: int = 1,
        stride_jitter: int = 0,
        resolution: int | list[int] = 384,
        eval_resolution: int | None = None,
        max_instances: int = 10,
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
        train_subset: str = "train",
        val_subset: str = "train",
        test_subset: str = "valid",
        val_fraction: float = 0.1,
        val_list: str | None = None,
        split_seed: int = 0,
    ):
        super().__init__(
            root, clip_len=clip_len, stride=stride, resolution=resolution, short_side=short_side,
            train_short_side_range=train_short_side_range, flip=flip, batch_size=batch_size,
            num_workers=num_workers, decoder=decoder, pin_memory=pin_memory,
            normalize_on_device=normalize_on_device,
        )
        if version not in VERSIONS:
            raise DatasetLayoutError(f"version: YouTube-VIS version must be 2019 or 2021, got {version!r}")
        for name, value, least in (("clip_len", clip_len, 1), ("stride", stride, 1),
                                   ("stride_jitter", stride_jitter, 0), ("max_instances", max_instances, 1),
                                   ("clips_per_video", clips_per_video, 1), ("max_retries", max_retries, 1)):
            if not _is_int(value) or value < least:
                raise LitVideoError(f"{name} must be an integer >= {least}, got {value!r}")
        for name, value in (("eval_resolution", eval_resolution), ("samples_per_epoch", samples_per_epoch)):
            if value is not None and (not _is_int(value) or value < 1):
                raise LitVideoError(f"{name} must be a positive integer or null, got {value!r}")
        stages = (("train_subset", train_subset), ("val_subset", val_subset), ("test_subset", test_subset))
        for stage, name in stages:
            if name not in SPLITS:
                raise DatasetLayoutError(f"{stage}: YouTube-VIS splits are {', '.join(SPLITS)}, got {name!r}")
        if train_subset != "train":
            raise DatasetLayoutError("train_subset: YouTube-VIS trains on 'train' (the only annotated "
                                     f"split), got {train_subset!r}")
        if not 0.0 <= val_fraction < 1.0:
            raise DatasetLayoutError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
        self.version = version
        self.stride_jitter, self.eval_resolution = stride_jitter, eval_resolution
        self.max_instances, self.clips_per_video = max_instances, clips_per_video
        self.samples_per_epoch, self.max_retries = samples_per_epoch, max_retries
        self.subsets = {"train": train_subset, "val": val_subset, "test": test_subset}
        self.val_fraction, self.val_list, self.split_seed = val_fraction, val_list, split_seed
        self._files: dict[str, tuple[Path, dict]] = {}  # split -> (file read, its JSON)

    # --- annotation files ------------------------------------------------------------------------

    def annotation_path(self, split: str) -> Path:
        return annotation_path(self.root, split, self.version)

    def frames_dir(self, split: str) -> Path:
        return self.root / split / "JPEGImages"

    def annotation_file(self, split: str) -> tuple[Path, dict]:
        """(path, checked JSON) of `split`, read once: the ground truth file of a split released without
        annotations when there is one (synthetic copies), else the released file."""
        if split not in self._files:
            gt = ground_truth_path(self.root, split, self.version)
            if split != "train" and gt.is_file():
                self._files[split] = gt, read_annotation_file(gt, need_annotations=True)
            else:
                path = self.annotation_path(split)
                other_version = 2019 if self.version == 2021 else 2021
                other = annotation_path(self.root, split, other_version)
                hint = f" (found {other}: set version: {other_version})" if other.is_file() else ""
                data = read_annotation_file(path, need_annotations=split == "train", hint=hint)
                self._files[split] = path, data
        return self._files[split]

    @cached_property
    def categories(self) -> list[dict]:
        """The categories, by id: those of train (what a model learns), or of the test split without train."""
        split = "train" if self.annotation_path("train").is_file() else self.subsets["test"]
        return sorted(self.annotation_file(split)[1]["categories"], key=lambda c: c["id"])

    @property
    def classes(self) -> list[str]:
        """Category names; index = the 0-based class of CATEGORIES."""
        return [c["name"] for c in self.categories]

    @property
    def category_ids(self) -> list[int]:
        """The annotation file's category id of each class index (results.json's category_id)."""
        return [c["id"] for c in self.categories]

    @cached_property
    def heldout(self) -> frozenset[str]:
        """Train video folder names held out for evaluation; empty unless a stage evaluates on "train"."""
        if "train" not in (self.subsets["val"], self.subsets["test"]):
            return frozenset()
        path, data = self.annotation_file("train")
        folders = [posixpath.dirname(v["file_names"][0]) for v in data["videos"]]
        return select_heldout(folders, self.val_fraction, self.val_list, self.split_seed, path)

    # --- records ---------------------------------------------------------------------------------

    def list_records(self, subset: str) -> list[VISRecord]:
        split = self.subsets[subset]
        path, data = self.annotation_file(split)
        labels = {c: k for k, c in enumerate(self.category_ids)}
        by_video: dict[int, list[VISInstance]] = {}
        for index, ann in sorted(enumerate(data.get("annotations") or []), key=lambda item: item[1]["id"]):
            where = f"{path}: annotations[{index}]"
            if ann["category_id"] not in labels:
                raise DatasetLayoutError(f'{where}["category_id"]: {ann["category_id"]} is not a category of '
                                         f"{self.annotation_file('train')[0]}")
            # an empty segmentation ([], {}) is null, as in the evaluation; None makes that one test
            segmentations = tuple(s if s else None for s in ann["segmentations"])
            instance = VISInstance(ann["id"], ann["category_id"], labels[ann["category_id"]], segmentations,
                                   where)
            by_video.setdefault(ann["video_id"], []).append(instance)
        records = []
        for video in sorted(data["videos"], key=lambda v: v["id"]):
            folder = posixpath.dirname(video["file_names"][0])
            if split == "train" and (folder in self.heldout) != (subset != "train"):
                continue
            records.append(VISRecord(
                str(self.frames_dir(split) / folder), -1, folder, annotation_video_id=video["id"],
                frame_files=tuple(posixpath.basename(n) for n in video["file_names"]),
                height=video["height"], width=video["width"], instances=tuple(by_video.get(video["id"], ())),
            ))
        if split == "train" and subset != "train" and not records:
            raise DatasetLayoutError(
                f"YouTube-VIS {subset} reads held-out train videos, but none are held out: set "
                f"val_fraction > 0 or val_list, or {subset}_subset to 'valid'"
            )
        return records

    def ground_truth(self, subset: str) -> dict | None:
        """The annotation JSON (info, licenses, videos, annotations, categories) of exactly the videos
        `subset` evaluates, as the file gives them; None when its split has no ground truth. The dicts
        are the DataModule's own: copy before changing them."""
        data = self.annotation_file(self.subsets[subset])[1]
        if data.get("annotations") is None:
            return None  # valid / test as released
        records = self.datasets[subset].records if subset in self.datasets else self.records(subset)
        ids = {r.annotation_video_id for r in records}
        return {
            "info": data.get("info", {}),
            "licenses": data.get("licenses", []),
            "videos": [v for v in data["videos"] if v["id"] in ids],
            "annotations": [a for a in data["annotations"] if a["video_id"] in ids],
            "categories": data["categories"],
        }

    def probe(self, record: VISRecord) -> str | None:
        """Every listed frame file is there and the first, middle and last decode; None when so."""
        try:
            present = set(FrameFolderReader(record.path).frame_names)
            missing = [name for name in record.frame_files if name not in present]
            if missing:
                return (f"{len(missing)} of {len(record.frame_files)} listed frames missing "
                        f"(first: {os.path.join(record.path, missing[0])})")
            last = len(record.frame_files) - 1
            listed = FrameFolderReader(record.path, frame_names=list(record.frame_files))
            listed.get_frames([0, last // 2, last])
        except VideoDecodeError as err:
            return f"{err.path}: {err.reason}"
        return None

    # --- datasets and loaders --------------------------------------------------------------------

    def make_dataset(self, subset: str) -> Dataset:
        records = self.records(subset)
        if not records:
            path = self.annotation_file(self.subsets[subset])[0]
            raise DatasetLayoutError(f"youtube-vis {subset}: no videos listed in {path}")
        if subset != "train":
            return VISVideoDataset(records, self.eval_resolution, normalize=not self.normalize_on_device,
                                   failures=self.decode_failures)
        transform = ClipTransform(
            self.resolution, train=True, short_side=self.short_side,
            short_side_range=self.train_short_side_range, flip=self.flip,
            normalize=not self.normalize_on_device,
        )
        return VISClipDataset(
            records, self.clip_len, self.stride, transform, stride_jitter=self.stride_jitter,
            max_instances=self.max_instances,
            length=self.samples_per_epoch or self.clips_per_video * len(records),
            failures=self.decode_failures, max_retries=self.max_retries,
        )

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

    @classmethod
    def synthesize(cls, out: Path, spec: SynthSpec, progress: Callable[[], None] = lambda: None,
                   valid_every: int | None = None, category_colours: bool | None = None) -> None:
        """See the base class; `category_colours`: each category also has its own hue (`VisSynthSpec`)."""
        from lit_video.data.synthetic_vis import as_vis_spec, write_youtube_vis

        spec = as_vis_spec(spec, valid_every=valid_every, category_colours=category_colours)
        write_youtube_vis(Path(out), spec, progress=progress)
