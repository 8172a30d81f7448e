"""YouTube-VOS 2018 / 2019 (semi-supervised VOS), read as released.

`{train,valid,test}/JPEGImages/<vid>/<5 digits>.jpg`, `{split}/Annotations/<vid>/<frame>.png`
(palette), `{split}/meta.json` = `{"videos": {vid: {"objects": {"<id>": {"category", "frames":
[...]}}}}}`; the categories are read too (evaluation samples carry them, and `seen_categories` is the
set of the training videos': YouTube-VOS reports J and F on objects of seen and of unseen categories). Train has masks of every 5th frame, frame names need not start at 00000; valid and test
give only each object's first-appearance mask, and objects may first appear mid-video. The official
`{split}_all_frames/JPEGImages` (every raw frame) is read instead with `all_frames=True`.

Valid has no full ground truth, so validation during training reads a held-out part of train
(`val_fraction` of its videos, drawn with `split_seed`, or the ids of a `val_list` file); the train
stage then leaves those videos out. Predictions for the submission server go to
`<out>/Annotations/<vid>/<frame>.png`, for the frames meta.json lists.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from lit_video.data.base import register_datamodule
from lit_video.data.records import (
    Listing,
    RefusedEntry,
    is_plain_name,
    outside_reason,
    read_json_file,
    select_heldout,
)
from lit_video.data.vos import MASK_EXTENSION, VOSDataModule, VOSRecord, file_stems
from lit_video.errors import DatasetLayoutError

YEARS = (2018, 2019)
SPLITS = ("train", "valid", "test")


def parse_meta(path: Path) -> dict[str, dict[int, list[str]]]:
    """meta.json -> {video id: {object id: sorted frame stems}}, checked key by key.

    Raises:
        DatasetLayoutError: one line naming the file and the offending key.
    """
    return read_meta(path)[0]


def read_meta(path: Path) -> tuple[dict[str, dict[int, list[str]]], dict[str, dict[int, str]]]:
    """meta.json -> ({video id: {object id: sorted frame stems}}, {video id: {object id: category}}), checked
    key by key; an object without "category" is left out of the second.

    Raises:
        DatasetLayoutError: one line naming the file and the offending key.
    """
    meta = read_json_file(path, "missing YouTube-VOS meta.json")
    videos = meta.get("videos") if isinstance(meta, dict) else None
    if not isinstance(videos, dict):
        raise DatasetLayoutError(f'{path}: expected {{"videos": {{video id: {{"objects": ...}}}}}} at the top level')
    parsed: dict[str, dict[int, list[str]]] = {}
    categories: dict[str, dict[int, str]] = {}
    for vid, video in videos.items():
        objects = video.get("objects") if isinstance(video, dict) else None
        if not isinstance(objects, dict):
            raise DatasetLayoutError(f'{path}: videos["{vid}"] has no "objects" mapping')
        parsed[vid], categories[vid] = {}, {}
        for key, obj in objects.items():
            where = f'videos["{vid}"]["objects"]["{key}"]'
            if not str(key).isdigit() or not 0 < int(key) < 255:
                raise DatasetLayoutError(f"{path}: {where}: object ids must be integers 1..254")
            frames = obj.get("frames") if isinstance(obj, dict) else None
            if not isinstance(frames, list) or not frames or not all(isinstance(f, str) for f in frames):
                raise DatasetLayoutError(f'{path}: {where}["frames"] must be a non-empty list of frame names')
            parsed[vid][int(key)] = sorted(frames)
            if "category" in obj:
                if not isinstance(obj["category"], str) or not obj["category"]:
                    raise DatasetLayoutError(f'{path}: {where}["category"] must be a category name (a non-empty '
                                             f'string), got {obj["category"]!r}')
                categories[vid][int(key)] = obj["category"]
    return parsed, categories


@register_datamodule("youtube-vos")
class YouTubeVOSDataModule(VOSDataModule):
    """YouTube-VOS in its official layout.

    Args:
        root: folder holding `train/` and `valid/` (and `test/`, `*_all_frames/` when present).
        year: 2018 or 2019 (informational: both share the layout).
        train_subset: split the training stage reads: "train" (minus the held-out videos).
        val_subset: split the validation stage reads: "train" = the held-out train videos (full ground
            truth every 5th frame), or "valid" / "test" (first masks only).
        test_subset: split the test and predict stages read (default "valid": the submission).
        val_fraction: fraction of train videos held out when a stage evaluates on "train".
        val_list: a file of held-out train video ids, one a line; replaces val_fraction.
        split_seed: seed of the held-out draw (deterministic for a given train/meta.json).
        all_frames: read frames from `<split>_all_frames/JPEGImages` (every raw frame).
        **kwargs: the clip, transform and loader arguments of `VOSDataModule`.
    """

    prediction_layout = "youtube-vos"

    def __init__(self, root: str, year: int = 2019, train_subset: str = "train", val_subset: str = "train",
                 test_subset: str = "valid", val_fraction: float = 0.1, val_list: str | None = None,
                 split_seed: int = 0, all_frames: bool = False, **kwargs):
        super().__init__(root, **kwargs)
        if year not in YEARS:
            raise DatasetLayoutError(f"YouTube-VOS year must be 2018 or 2019, got {year!r}")
        for stage, name in (("train_subset", train_subset), ("val_subset", val_subset), ("test_subset", test_subset)):
            if name not in SPLITS:
                raise DatasetLayoutError(f"YouTube-VOS {stage} must be one of {', '.join(SPLITS)}, got {name!r}")
        if train_subset != "train":
            raise DatasetLayoutError(f"YouTube-VOS trains on 'train' (the only split with full masks), got {train_subset!r}")
        if not 0.0 <= val_fraction < 1.0:
            raise DatasetLayoutError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
        self.year = year
        self.subsets = {"train": train_subset, "val": val_subset, "test": test_subset}
        self.val_fraction, self.val_list, self.split_seed = val_fraction, val_list, split_seed
        self.all_frames = all_frames
        self._meta: dict[str, dict[str, dict[int, list[str]]]] = {}  # split -> parsed meta.json
        self._categories: dict[str, dict[str, dict[int, str]]] = {}  # split -> its objects' categories

    def listing_name(self, subset: str) -> str:
        """`<split>/meta.json` of the split `subset` reads (train: the videos not held out)."""
        return f"{self.subsets[subset]}/meta.json"

    def released_validation_source(self) -> str:
        return f"{self.listing_name('val')} (each object's first mask only, no ground truth after it)"

    def meta_path(self, split: str) -> Path:
        return self.root / split / "meta.json"

    def frames_dir(self, split: str) -> Path:
        return self.root / (f"{split}_all_frames" if self.all_frames else split) / "JPEGImages"

    def annotations_dir(self, split: str) -> Path:
        return self.root / split / "Annotations"

    def meta(self, split: str) -> dict[str, dict[int, list[str]]]:
        """The parsed meta.json of `split` (read once)."""
        if split not in self._meta:
            self._meta[split], self._categories[split] = read_meta(self.meta_path(split))
        return self._meta[split]

    def categories(self, split: str) -> dict[str, dict[int, str]]:
        """{video id: {object id: category}} of `split`'s meta.json (objects without one left out)."""
        self.meta(split)
        return self._categories[split]

    @property
    def seen_categories(self) -> frozenset[str] | None:
        """The categories of the objects of the training videos (train minus the held-out ones): an evaluated
        object of another category is "unseen", as YouTube-VOS reports its valid scores. None when there is
        no train/meta.json or it gives no categories."""
        if not self.meta_path("train").is_file():
            return None
        categories = self.categories("train")
        if not any(categories.values()):
            return None
        return frozenset(c for vid, objects in categories.items() if vid not in self.heldout for c in objects.values())

    @cached_property
    def heldout(self) -> frozenset[str]:
        """Train video ids held out for evaluation; empty unless a stage evaluates on "train"."""
        if "train" not in (self.subsets["val"], self.subsets["test"]):
            return frozenset()
        return select_heldout(list(self.meta("train")), self.val_fraction, self.val_list, self.split_seed,
                              self.meta_path("train"))

    def list_records(self, subset: str) -> Listing:
        split = self.subsets[subset]
        meta = self.meta(split)
        videos = sorted(meta)
        if split == "train":
            evaluating = subset != "train"
            videos = [v for v in videos if (v in self.heldout) == evaluating]
            if evaluating and not videos:
                raise DatasetLayoutError(
                    f"YouTube-VOS {subset} reads held-out train videos, but none are held out: set val_fraction > 0 "
                    f"or val_list, or {subset}_subset to 'valid'"
                )
        records = Listing()
        for vid in videos:
            frames, annotations = self.frames_dir(split) / vid, self.annotations_dir(split) / vid
            # the id is a folder name: one with `..` or `/`, or a link out, would read another folder
            reason = outside_reason(self.frames_dir(split), frames) or outside_reason(self.annotations_dir(split),
                                                                                      annotations)
            # frame names become mask and prediction file names: a `/` or `..` in one reads or writes elsewhere
            bad = next((s for stems in meta[vid].values() for s in stems if not is_plain_name(s)), None)
            if reason or bad is not None:
                entry = vid if reason else bad
                reason = reason or "is not a frame name (a file name without folders)"
                records.refused.append(RefusedEntry(f'{self.meta_path(split)}: videos["{vid}"]', entry, reason))
                continue
            for folder in (frames, annotations):
                if not folder.is_dir():
                    raise DatasetLayoutError(f'{self.meta_path(split)}: videos["{vid}"]: no folder {folder}')
            objects = meta[vid]
            records.append(VOSRecord(
                str(frames), -1, vid, annotations=str(annotations),
                objects=tuple((object_id, stems[0]) for object_id, stems in sorted(objects.items())),
                listed_frames=tuple(sorted({s for stems in objects.values() for s in stems})),
                full_gt=split == "train",
                categories=tuple(sorted(self.categories(split)[vid].items())),
            ))
        return records

    def annotation_folders(self) -> list[Path]:
        return [self.annotations_dir(split) for split in SPLITS]

    def prediction_path(self, out_dir: str | os.PathLike, video_id: str, frame_name: str) -> Path:
        """`<out_dir>/Annotations/<vid>/<frame>.png`: zip `<out_dir>/Annotations` for the submission server."""
        return Path(out_dir) / "Annotations" / video_id / f"{frame_name}.png"

    def frames_to_write(self, video_id: str) -> list[str]:
        """The frames meta.json lists for the video (valid / test: those the server scores); for a
        held-out train video, its annotated frames."""
        for stage in ("test", "val"):
            split = self.subsets[stage]
            if video_id in self.meta(split):
                if split == "train":
                    return file_stems(self.annotations_dir(split) / video_id, (MASK_EXTENSION,))
                return sorted({s for stems in self.meta(split)[video_id].values() for s in stems})
        raise DatasetLayoutError(
            f"video {video_id!r} is in neither {self.meta_path(self.subsets['test'])} nor "
            f"{self.meta_path(self.subsets['val'])}"
        )
