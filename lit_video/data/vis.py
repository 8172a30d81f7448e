"""Video instance segmentation (VIS) data: records, their label maps, training clips and whole videos.

`formats/youtube_vis.py` reads the YouTube-VIS annotation JSON into `VISRecord`s; the datasets here
build samples from them on the shared segmentation bases (`lit_video.data.segmentation`).

Instances go through the joint clip transforms as one label map per frame (instance k at value k,
0 background), so every random crop, resize and flip moves them with their frames. A pixel covered
by two annotated instances (rare: the annotations of a frame seldom overlap) goes to the one of
smaller area in that frame, the one more likely in front and the one that would lose more.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lit_video.data import keys
from lit_video.data.base import worker_rng
from lit_video.data.records import VideoRecord
from lit_video.data.rle import decode_segmentation
from lit_video.data.segmentation import (
    SegmentationClipDataset,
    SegmentationVideoDataset,
    choose_at_most,
    padded,
)
from lit_video.errors import DatasetLayoutError
from lit_video.video.decode import FrameFolderReader
from lit_video.video.sampling import ClipSampler
from lit_video.video.transforms import ClipTransform


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
    """One video of a VIS split; `path` is its frame folder, `video_id` the folder's name, `label` -1.

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


class VISClipDataset(SegmentationClipDataset):
    """Training clips: `clip_len` listed frames of one video with its instances, transformed together.

    Frames are taken every `stride` listed frames (every 5th raw frame), the stride jittered per clip
    by the sampler. A clip start is redrawn (up to `max_retries` times) while no instance appears in
    the clip, and the crop (up to `crop_retries` times) while the crop leaves none; after that an
    empty clip is returned, a legitimate VIS sample (every query is "no object"). Instances absent
    from every frame of the crop are dropped; the rest are re-indexed 1..K (a random `max_instances`
    when there are more). An unreadable frame skips the video by `ClipDataset`'s mechanism (warned,
    counted).

    Args:
        records: the videos.
        sampler: clip length and (jittered) stride, in listed frames.
        transform: a training `ClipTransform`.
        max_instances: instances per clip; OBJECT_IDS and CATEGORIES are padded to it.
        **kwargs: length, failures, max_retries, crop_retries of `SegmentationClipDataset`.
    """

    def __init__(self, records: Sequence[VISRecord], sampler: ClipSampler, transform: ClipTransform,
                 max_instances: int = 10, **kwargs):
        super().__init__(records, sampler, transform, **kwargs)
        self.max_instances = max_instances

    def load(self, index: int) -> dict:
        """A training clip of video `index` (raises VideoDecodeError for an unreadable frame)."""
        record: VISRecord = self.records[index]
        rng = worker_rng()
        for _ in range(self.max_retries):
            frame_indices = self.sampler.train_indices(len(record.frame_files), rng=rng)  # (T,)
            # checked on the JSON alone: a redraw decodes nothing
            if any(inst.segmentations[t] is not None for inst in record.instances for t in frame_indices):
                break
        labels = instance_labels(record, frame_indices)  # (T,H,W)
        reader = FrameFolderReader(record.path, frame_names=list(record.frame_files))
        for _ in range(self.crop_retries):  # the crop is chosen on the masks, before any frame is decoded
            views = self.transform.draw_views(1, *labels.shape[1:])  # (1,5)
            masks = self.transform.crop_masks(labels, views)  # (T,h,w)
            # instance k+1 of record.instances, in order (a count per value: cheaper than sorting the pixels)
            present = (masks.flatten().bincount()[1:].nonzero()[:, 0] + 1).tolist()
            if present:
                break
        video = self.clip_video(reader, frame_indices, labels.shape[1:], views)
        present = choose_at_most(present, self.max_instances)
        table = torch.zeros(len(record.instances) + 1, dtype=torch.int64)  # record's k+1 -> clip's 1..K
        table[torch.tensor(present, dtype=torch.int64)] = torch.arange(1, len(present) + 1)
        kept = [record.instances[v - 1] for v in present]
        return video | {  # VIDEO (C,T,h,w), or the plan of a clip decoded on the device
            keys.MASKS: table[masks],  # (T,h,w): instances 1..K, 0 background
            keys.NUM_OBJECTS: torch.tensor(len(present), dtype=torch.int64),
            # (max_instances,) each: annotation ids, 0 = padding; 0-based classes, -1 = padding
            keys.OBJECT_IDS: padded([i.annotation_id for i in kept], self.max_instances, fill=0),
            keys.CATEGORIES: padded([i.label for i in kept], self.max_instances, fill=-1),
            keys.VIDEO_ID: record.video_id,
            keys.ANNOTATION_VIDEO_ID: torch.tensor(record.annotation_video_id, dtype=torch.int64),
            keys.FRAME_INDICES: torch.from_numpy(np.asarray(frame_indices, dtype=np.int64)),
        }


class VISVideoDataset(SegmentationVideoDataset):
    """Evaluation: one item = one whole video (every listed frame); an unreadable frame is replaced by
    its nearest readable one and counted.

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
