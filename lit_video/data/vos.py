"""Semi-supervised video object segmentation (VOS) data, shared by DAVIS and YouTube-VOS.

Both store a video as a folder of JPEG frames beside a folder of palette PNG masks (pixel value =
object id, 0 background, 255 void). `formats/davis.py` and `formats/youtube_vos.py` parse their
index files into `VOSRecord`s; everything else lives here once, on the shared segmentation bases
(`lit_video.data.segmentation`):

- training (`VOSClipDataset`): one item = `clip_len` annotated frames of one video, cropped and
  flipped together with their masks by one `ClipTransform`, objects re-indexed 1..K among those in
  the clip's first frame;
- evaluation (`VOSVideoDataset`): one item = a whole video at full annotation resolution, with each
  object's given mask, the ground truth where there is some, and the frame names to write
  predictions under.

A corrupt JPEG or PNG never stops training: a training video with one is skipped (warned, counted
and not retried, as `ClipDataset` does for any video); in an evaluation video the frame is replaced
by its nearest readable neighbour, an unreadable ground-truth mask makes its frame unannotated, and
an object whose given mask is unreadable is left out.
"""

from __future__ import annotations

import logging
import os
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from lit_video.data import keys
from lit_video.data.base import MODALITIES, worker_rng
from lit_video.data.masks import VOID, read_mask, read_palette, voc_palette, write_mask
from lit_video.data.records import VideoRecord
from lit_video.data.segmentation import (
    SegmentationClipDataset,
    SegmentationDataModule,
    SegmentationVideoDataset,
    check_integer,
    choose_at_most,
    padded,
)
from lit_video.errors import DatasetLayoutError, LitVideoError, VideoDecodeError
from lit_video.video.decode import FrameFolderReader
from lit_video.video.sampling import ClipSampler
from lit_video.video.transforms import ClipTransform

log = logging.getLogger(__name__)

MASK_EXTENSION = ".png"


@dataclass(frozen=True)
class VOSRecord(VideoRecord):
    """One video of a VOS split; `path` is its frame folder, `video_id` the folder's name, `label` -1.

    Args:
        annotations: the folder of the video's palette PNG masks (`<frame stem>.png`).
        objects: (dataset id, stem of the frame holding its first given mask) per object, as the
            index file lists them (YouTube-VOS meta.json); empty: the objects in the first frame's
            mask, all given there (DAVIS).
        listed_frames: the frames the index file lists (YouTube-VOS: those a submission must hold).
        full_gt: every annotation PNG holds the ground truth of every object (DAVIS, YouTube-VOS
            train); False: only each object's first-appearance mask exists (YouTube-VOS valid/test).
        merge_objects: single-object evaluation: every non-zero, non-void id is object 1 (DAVIS 2016).
        categories: (dataset id, category) per object that the index file gives one (YouTube-VOS meta.json);
            empty when the format has none.
    """

    annotations: str = ""
    objects: tuple[tuple[int, str], ...] = ()
    listed_frames: tuple[str, ...] = ()
    full_gt: bool = True
    merge_objects: bool = False
    categories: tuple[tuple[int, str], ...] = ()


def file_stems(folder: str | os.PathLike, extensions: Sequence[str]) -> list[str]:
    """Sorted stems of the files in `folder` whose extension is one of `extensions` ([] if no folder)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(os.path.splitext(n)[0] for n in names if os.path.splitext(n)[1].lower() in extensions)


def read_annotation(path: str | os.PathLike, merge_objects: bool = False) -> np.ndarray:
    """Object ids of one annotation PNG -> uint8 (H,W).

    Args:
        path: the PNG.
        merge_objects: map every non-zero, non-void id to 1 (DAVIS 2016 is single-object).

    Raises:
        VideoDecodeError: naming the file, when it is missing or unreadable (skip-and-count).
    """
    try:
        mask = read_mask(path)
    except LitVideoError as err:
        raise VideoDecodeError(str(path), str(err).removeprefix(f"{path}: ")) from None
    if merge_objects:
        mask[(mask != 0) & (mask != VOID)] = 1
    return mask


def object_ids_in(mask: np.ndarray | torch.Tensor) -> list[int]:
    """Sorted object ids present in a mask (background 0 and void excluded)."""
    values = np.unique(np.asarray(mask))
    return [int(v) for v in values if v != 0 and v != VOID]


def id_lookup(object_ids: Sequence[int]) -> torch.Tensor:
    """(256,) int64 table: dataset id object_ids[k] -> k+1, void -> void, any other id -> 0."""
    table = torch.zeros(256, dtype=torch.int64)
    table[VOID] = VOID
    if len(object_ids):
        table[torch.as_tensor(list(object_ids), dtype=torch.int64)] = torch.arange(1, len(object_ids) + 1)
    return table


def _frame_positions(frame_names: Sequence[str]) -> dict[str, int]:
    """Frame stem -> index in a reader's (sorted) frame list."""
    return {os.path.splitext(name)[0]: i for i, name in enumerate(frame_names)}


def _mask_path(record: VOSRecord, stem: str) -> str:
    return os.path.join(record.annotations, stem + MASK_EXTENSION)


def _categories(record: VOSRecord, object_ids: Sequence[int]) -> dict:
    """{OBJECT_CATEGORIES: category of each of `object_ids` ("" for one without)} when the record has
    categories, else {} (the key is left out for formats without them)."""
    if not record.categories:
        return {}
    category_of = dict(record.categories)
    return {keys.OBJECT_CATEGORIES: [category_of.get(i, "") for i in object_ids]}


class VOSClipDataset(SegmentationClipDataset):
    """Training clips: `clip_len` annotated frames of one video, masks transformed with the frames.

    Frames are taken every `stride` ANNOTATED frames (every frame for DAVIS, every 5th raw frame for
    YouTube-VOS train), the stride jittered per clip by the sampler. A clip whose first frame holds
    no object, before or after the crop, is redrawn: `max_retries` starts per video (each with up to
    `crop_retries` crops), then another random video. Unreadable videos are skipped by
    `ClipDataset`'s mechanism.

    Args:
        records: the videos.
        sampler: clip length and (jittered) stride, in annotated frames.
        transform: a training `ClipTransform`.
        max_objects: at most this many objects per clip (a random subset); OBJECT_IDS is padded to it.
        max_videos: videos tried per item before giving up (annotations without objects).
        **kwargs: length, failures, max_retries, crop_retries of `SegmentationClipDataset`.
    """

    def __init__(self, records: Sequence[VOSRecord], sampler: ClipSampler, transform: ClipTransform,
                 max_objects: int = 3, max_videos: int = 5, **kwargs):
        super().__init__(records, sampler, transform, **kwargs)
        self.max_objects, self.max_videos = max_objects, max_videos
        # record index -> (frame files, frame stem -> position, annotated stems), per worker process
        self._listings: dict[int, tuple[list[str], dict[str, int], list[str]]] = {}

    def __getitem__(self, index: int) -> dict:
        video = index % len(self.records)
        for _ in range(self.max_videos):
            sample = super().__getitem__(video)  # replaces unreadable videos; None: no object found
            if sample is not None:
                return sample
            video = int(torch.randint(len(self.records), ()).item())
        raise LitVideoError(
            f"no object in the first frame of {self.max_retries} clips of each of {self.max_videos} videos "
            f"(last: {self.records[video].annotations}); are the annotation masks empty?"
        )

    def load(self, index: int) -> dict | None:
        """A training clip of video `index`, or None when no drawn clip shows an object in its first frame.

        Raises VideoDecodeError for an unreadable frame or mask."""
        record: VOSRecord = self.records[index]
        rng = worker_rng()
        if index not in self._listings:  # each folder is listed once per worker, not once per clip
            frame_names = FrameFolderReader(record.path).frame_names
            position = _frame_positions(frame_names)
            annotated = [s for s in file_stems(record.annotations, (MASK_EXTENSION,)) if s in position]
            if not annotated:
                raise VideoDecodeError(record.annotations, f"no annotation PNG matches a frame of {record.path}")
            self._listings[index] = frame_names, position, annotated
        frame_names, position, annotated = self._listings[index]
        reader = FrameFolderReader(record.path, frame_names=frame_names)
        for _ in range(self.max_retries):
            stems = [annotated[p] for p in self.sampler.train_indices(len(annotated), rng=rng)]  # clip_len stems
            first = read_annotation(_mask_path(record, stems[0]), record.merge_objects)
            if not object_ids_in(first):
                continue  # checked before decoding anything else: most redraws cost one PNG
            masks = {stems[0]: first}
            for stem in stems[1:]:
                if stem not in masks:
                    masks[stem] = read_annotation(_mask_path(record, stem), record.merge_objects)
            if len({m.shape for m in masks.values()}) > 1:
                raise VideoDecodeError(record.annotations, "masks of different sizes in one video")
            clip_masks = torch.from_numpy(np.stack([masks[s] for s in stems])).long()  # (T,H,W)
            frame_indices = np.array([position[s] for s in stems], dtype=np.int64)  # (T,)
            for _ in range(self.crop_retries):  # the crop is chosen on the masks, before any frame is decoded
                views = self.transform.draw_views(1, *clip_masks.shape[1:])  # (1,5)
                crop_masks = self.transform.crop_masks(clip_masks, views)  # (T,h,w)
                present = object_ids_in(crop_masks[0])
                if present:
                    video = self.clip_video(reader, frame_indices, clip_masks.shape[1:], views)
                    return self._sample(record, video, crop_masks, present, frame_indices)
        return None

    def _sample(self, record: VOSRecord, video: dict, masks: torch.Tensor, present: list[int],
                frame_indices: np.ndarray) -> dict:
        """A training sample; `video` holds the clip's fields (`clip_video`)."""
        present = choose_at_most(present, self.max_objects)
        return video | {
            keys.MASKS: id_lookup(present)[masks],  # (T,h,w): 1..K, 0 others and background, 255 void
            keys.NUM_OBJECTS: torch.tensor(len(present), dtype=torch.int64),
            keys.OBJECT_IDS: padded(present, self.max_objects, fill=0),  # (max_objects,), 0 = padding
            keys.VIDEO_ID: record.video_id,
            keys.FRAME_INDICES: torch.from_numpy(frame_indices),
        }


class VOSVideoDataset(SegmentationVideoDataset):
    """Evaluation: one item = one whole video, from the first frame that gives an object's mask.

    Sample keys: VIDEO float (C,T,h,w) (uint8 when `normalize` is False) at the annotations'
    resolution, or short side `eval_resolution`; MASKS int64 (T,H,W) at the annotations' resolution,
    objects 1..K (the ground truth of annotated frames where the dataset has it, otherwise each
    object's given mask at its first frame, 0 elsewhere); ANNOTATED bool (T,); FIRST_FRAMES int64 (K,);
    OBJECT_IDS int64 (K,) (dataset id of object k+1); NUM_OBJECTS int64 (); FRAME_NAMES list of T
    stems; FRAME_INDICES int64 (T,) (positions in the frame folder); VIDEO_ID; OBJECT_CATEGORIES list of K
    category names where the format has categories (YouTube-VOS).
    """

    def _read_masks(self, record: VOSRecord, stems: Sequence[str], masks: dict[str, np.ndarray | None]) -> None:
        """Read the masks of `stems` into `masks` (None where unreadable), each file once."""
        for stem in stems:
            if stem in masks:
                continue
            try:
                masks[stem] = read_annotation(_mask_path(record, stem), record.merge_objects)
            except VideoDecodeError as err:
                masks[stem] = None
                self._unreadable(err, "its frame counts as unannotated")

    def __getitem__(self, index: int) -> dict:
        record: VOSRecord = self.records[index]
        try:
            reader = FrameFolderReader(record.path)
        except VideoDecodeError as err:
            raise DatasetLayoutError(f"{err.path}: {err.reason}") from None
        position = _frame_positions(reader.frame_names)
        all_stems = [os.path.splitext(n)[0] for n in reader.frame_names]
        mask_stems = set(file_stems(record.annotations, (MASK_EXTENSION,)))

        # Objects and the frame of each one's given mask.
        masks: dict[str, np.ndarray | None] = {}  # stem -> uint8 (H,W) ids, None when unreadable
        if record.objects:
            first_of = dict(record.objects)
        else:  # DAVIS: every object is given in the first frame's mask
            self._read_masks(record, all_stems[:1], masks)
            first = masks[all_stems[0]]
            first_of = {i: all_stems[0] for i in (object_ids_in(first) if first is not None else [])}
        for object_id, stem in first_of.items():
            if stem not in position:
                raise DatasetLayoutError(
                    f"{record.path}: object {object_id} of video {record.video_id} is first given in frame "
                    f"{stem}, which has no frame file"
                )
        start = min((position[s] for s in first_of.values()), default=0)
        stems = all_stems[start:]
        num_frames = len(stems)

        wanted = [s for s in stems if s in mask_stems] if record.full_gt else sorted(set(first_of.values()))
        self._read_masks(record, wanted, masks)
        readable = [m for m in masks.values() if m is not None]
        size = readable[0].shape if readable else reader.size
        for stem, mask in masks.items():
            if mask is not None and mask.shape != size:
                self._unreadable(VideoDecodeError(_mask_path(record, stem), f"size {mask.shape} is not {size}"),
                                 "its frame counts as unannotated")
                masks[stem] = None
        given = {i: s for i, s in first_of.items() if masks.get(s) is not None}
        for object_id in sorted(set(first_of) - set(given)):
            log.warning("%s: object %d left out: its given mask is unreadable", record.video_id, object_id)
        object_ids = sorted(given)
        table = id_lookup(object_ids)

        gt = torch.zeros((num_frames, *size), dtype=torch.int64)  # (T,H,W)
        annotated = torch.zeros(num_frames, dtype=torch.bool)  # (T,)
        for t, stem in enumerate(stems):
            if record.full_gt and masks.get(stem) is not None:
                gt[t] = table[torch.from_numpy(masks[stem]).long()]
                annotated[t] = True
        if not record.full_gt:
            listed = set(record.listed_frames)
            annotated = torch.tensor([s in listed for s in stems], dtype=torch.bool)
            for k, object_id in enumerate(object_ids, start=1):
                t = stems.index(given[object_id])
                gt[t][torch.from_numpy(masks[given[object_id]] == object_id)] = k
        first_frames = torch.tensor([stems.index(given[i]) for i in object_ids], dtype=torch.int64)  # (K,)

        frame_indices = np.arange(start, start + num_frames, dtype=np.int64)  # (T,)
        video = self._decode(reader, frame_indices, size)  # (C,T,h,w)
        return {
            keys.VIDEO: video,
            keys.MASKS: gt,
            keys.ANNOTATED: annotated,
            keys.FIRST_FRAMES: first_frames,
            keys.OBJECT_IDS: torch.tensor(object_ids, dtype=torch.int64),
            keys.NUM_OBJECTS: torch.tensor(len(object_ids), dtype=torch.int64),
            keys.FRAME_NAMES: stems,
            keys.FRAME_INDICES: torch.from_numpy(frame_indices),
            keys.VIDEO_ID: record.video_id,
        } | _categories(record, object_ids)


class VOSDataModule(SegmentationDataModule):
    """Base DataModule for semi-supervised VOS datasets (JPEG frame folders + palette PNG masks).

    A format file provides `list_records`, `annotation_folders`, `prediction_path` and
    `frames_to_write`.

    Args:
        root: the dataset folder, laid out as the official release.
        clip_len: frames per training clip (STM trains on 3).
        max_objects: objects per training clip (a random subset when there are more).
        **kwargs: the clip, transform and loader arguments of `SegmentationDataModule`.
    """

    prediction_layout: ClassVar[str] = ""
    video_dataset_class = VOSVideoDataset
    modalities = MODALITIES  # training clips and evaluation videos carry flow channels

    def __init__(self, root: str, clip_len: int = 3, max_objects: int = 3, **kwargs):
        super().__init__(root, clip_len=clip_len, **kwargs)
        check_integer("max_objects", max_objects)
        self.max_objects = max_objects

    # --- what a format file provides --------------------------------------------------------------

    @abstractmethod
    def list_records(self, subset: str) -> list[VOSRecord]:
        """Every video of `subset` (train / val / test). Raises DatasetLayoutError naming the file or key
        when an index file is missing or malformed or lists a video without its folders."""

    @abstractmethod
    def annotation_folders(self) -> list[Path]:
        """Folders of per-video annotation folders, searched in order for the palette."""

    @abstractmethod
    def prediction_path(self, out_dir: str | os.PathLike, video_id: str, frame_name: str) -> Path:
        """Where the predicted mask of frame `frame_name` (a stem) of `video_id` goes under `out_dir`, in
        the layout the dataset's evaluator or submission server reads."""

    @abstractmethod
    def frames_to_write(self, video_id: str) -> list[str]:
        """Stems of the frames whose predictions a result folder must hold for `video_id`."""

    # --- shared --------------------------------------------------------------------------------

    @property
    def classes(self) -> list[str]:
        """VOS is class-agnostic: objects are identified by their given first mask."""
        return []

    @property
    def seen_categories(self) -> frozenset[str] | None:
        """The object categories of the training videos (YouTube-VOS "seen" categories: an evaluated object
        of another category is "unseen"); None for a format without categories."""
        return None

    @cached_property
    def palette(self) -> list[int]:
        """Flat RGB palette of the dataset's annotations (the first one found), for writing predictions;
        the VOC palette when there is none."""
        for folder in self.annotation_folders():
            for video in sorted(os.listdir(folder)) if folder.is_dir() else []:
                stems = file_stems(folder / video, (MASK_EXTENSION,))
                if stems:
                    try:
                        palette = read_palette(folder / video / (stems[0] + MASK_EXTENSION))
                    except OSError:
                        continue
                    return palette or voc_palette()
        return voc_palette()

    def write_prediction(self, out_dir: str | os.PathLike, video_id: str, frame_name: str,
                         mask: np.ndarray | torch.Tensor, object_ids: Sequence[int] | torch.Tensor) -> Path:
        """Write a predicted mask of objects 1..K as the dataset's ids, in the dataset's palette.

        Args:
            out_dir: the result folder.
            video_id, frame_name: the video and the frame's stem.
            mask: (H,W) integers, object k at value k (0 background).
            object_ids: (K,) dataset id of each object k, as the sample's OBJECT_IDS.

        Returns:
            the file written (`prediction_path`).
        """
        table = np.zeros(256, dtype=np.uint8)
        ids = np.asarray(torch.as_tensor(object_ids).cpu(), dtype=np.int64)
        table[1: len(ids) + 1] = ids
        path = self.prediction_path(out_dir, video_id, frame_name)
        write_mask(path, table[np.asarray(torch.as_tensor(mask).cpu(), dtype=np.int64)], self.palette)
        return path

    def probe(self, record: VOSRecord) -> str | None:
        """Decode the first, middle and last frames and read every mask; None when all are readable."""
        try:
            reader = FrameFolderReader(record.path)
            last = reader.num_frames - 1
            reader.get_frames([0, last // 2, last])
            stems = file_stems(record.annotations, (MASK_EXTENSION,))
            if not stems:
                return f"no annotation PNGs in {record.annotations}"
            needed = {s for _, s in record.objects} - set(stems)
            if needed:
                return f"missing given mask {_mask_path(record, sorted(needed)[0])}"
            sizes = {read_annotation(_mask_path(record, s)).shape for s in stems}
        except VideoDecodeError as err:
            return f"{err.path}: {err.reason}"
        if len(sizes) > 1:
            return f"masks of different sizes in {record.annotations}: {sorted(sizes)}"
        return None

    def clip_dataset(self, records: list[VOSRecord], transform: ClipTransform, length: int) -> VOSClipDataset:
        return VOSClipDataset(records, self.sampler, transform, max_objects=self.max_objects, length=length,
                              failures=self.decode_failures, max_retries=self.max_retries)
