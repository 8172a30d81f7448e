"""Kinetics-400/600/700, read as released.

Annotation CSVs (`train.csv`, `validate.csv`, `test.csv`, or `kinetics_{train,val,test}.csv`, in the
root or in `annotations/`) have the header `label,youtube_id,time_start,time_end,split[,is_cc]`;
labels with spaces are quoted; test CSVs without labels are read as unlabelled (-1). Clip files are
`{youtube_id}_{time_start:06d}_{time_end:06d}.mp4`, flat in `<split>/` or in `<split>/<label>/`
(spaces in the label may be `_`): the split folder is scanned once, so any of these works. Clips
listed but not downloaded (5-10% of any real copy) are skipped and counted.

The `test` stage reads the val CSV by default (`split`), and so does validation: to select models on
other videos, `val_fraction` holds out training clips (drawn per class over the LISTED clips, so copies
missing different files agree on the split).
"""

from __future__ import annotations

import csv
import io
from functools import cached_property
from pathlib import Path

from lit_video.data.base import VideoDataModule, register_datamodule
from lit_video.data.records import (
    Listing,
    RefusedEntry,
    VideoRecord,
    index_video_files,
    outside_reason,
    read_text_file,
)
from lit_video.errors import DatasetLayoutError

CSV_NAMES = {
    "train": ("train.csv", "kinetics_train.csv"),
    "val": ("validate.csv", "val.csv", "kinetics_val.csv", "kinetics_validate.csv"),
    "test": ("test.csv", "kinetics_test.csv"),
}
VIDEO_DIRS = {"train": ("train",), "val": ("val", "validate", "valid"), "test": ("test",)}
REQUIRED_COLUMNS = ("youtube_id", "time_start", "time_end")


def clip_stem(youtube_id: str, time_start: int, time_end: int) -> str:
    return f"{youtube_id}_{time_start:06d}_{time_end:06d}"


def read_annotations(path: Path) -> list[dict[str, str]]:
    """Rows of a Kinetics CSV, checked for the required columns.

    Raises:
        DatasetLayoutError: the file is not UTF-8, not a CSV, or lacks a required column.
    """
    reader = csv.DictReader(io.StringIO(read_text_file(path), newline=""))
    try:
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise DatasetLayoutError(
                f"{path}: not a Kinetics annotation file (missing column(s) {', '.join(missing)}; expected "
                f"header label,youtube_id,time_start,time_end,split)"
            )
        reader.fieldnames = header
        return [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    except csv.Error as err:
        raise DatasetLayoutError(f"{path}:{reader.line_num}: not a readable CSV row ({err})") from None


@register_datamodule("kinetics")
class KineticsDataModule(VideoDataModule):
    """Kinetics-400/600/700 in the official CSV + clip-file layout (the version follows the CSVs).

    Args:
        root: folder holding the CSVs (or `annotations/`) and the `train/`, `val/`, `test/` clip folders.
        split: the list the `test` stage reads: "val" (labelled in every release) or "test".
        **kwargs: clip, loader, decoder and held-out split (val_fraction, split_seed, val_list)
            arguments of `VideoDataModule`.
    """

    def __init__(self, root: str, split: str = "val", **kwargs):
        super().__init__(root, **kwargs)
        if split not in ("val", "test"):
            raise DatasetLayoutError(f"Kinetics split must be 'val' or 'test', got {split!r}")
        self.split = split

    def annotation_file(self, subset: str) -> Path:
        for folder in (self.root, self.root / "annotations"):
            for name in CSV_NAMES[subset]:
                if (folder / name).is_file():
                    return folder / name
        raise DatasetLayoutError(
            f"{self.root} is not a Kinetics root: no {subset} annotation CSV "
            f"({' or '.join(CSV_NAMES[subset])}) in it or in annotations/"
        )

    def listing_name(self, subset: str) -> str:
        subset = self.split if subset == "test" else subset
        try:
            return self.annotation_file(subset).name
        except DatasetLayoutError:  # a description must not fail: name the file it would read first
            return CSV_NAMES[subset][0]

    @property
    def validation_source(self) -> str:
        if self.validates_on_test:
            return (f"{self.listing_name('val')}: Kinetics' validation list, which `test` reads too (split "
                    f"{self.split!r}); set val_fraction to hold out training clips")
        return super().validation_source

    def videos_dir(self, subset: str) -> Path:
        for name in VIDEO_DIRS[subset]:
            if (self.root / name).is_dir():
                return self.root / name
        return self.root / VIDEO_DIRS[subset][0]  # absent: every clip of the subset counts as missing

    @cached_property
    def classes(self) -> list[str]:
        path = self.annotation_file("train")
        labels = {row.get("label", "") for row in read_annotations(path)}
        labels.discard("")
        if not labels:
            raise DatasetLayoutError(f"{path}: no labels in the training annotations")
        return sorted(labels)

    def list_records(self, subset: str) -> Listing:
        if subset == "test":
            subset = self.split
        path = self.annotation_file(subset)
        folder = self.videos_dir(subset)
        files = index_video_files(folder) if folder.is_dir() else {}
        index_of = {name: i for i, name in enumerate(self.classes)}
        records = Listing()
        for line, row in enumerate(read_annotations(path), start=2):
            try:
                stem = clip_stem(row["youtube_id"], int(float(row["time_start"])), int(float(row["time_end"])))
            except ValueError:
                raise DatasetLayoutError(f"{path}:{line}: time_start/time_end must be numbers") from None
            label_name = row.get("label", "")
            if label_name and label_name not in index_of:
                raise DatasetLayoutError(f"{path}:{line}: label {label_name!r} does not occur in the training CSV")
            label = index_of[label_name] if label_name else -1
            video = files.get(stem, str(folder / f"{stem}.mp4"))
            reason = outside_reason(folder, video)  # the id is part of the file name: `..` or `/` in it
            if reason:
                records.refused.append(RefusedEntry(f"{path}:{line}", row["youtube_id"], reason))
                continue
            records.append(VideoRecord(video, label, stem))
        return records
