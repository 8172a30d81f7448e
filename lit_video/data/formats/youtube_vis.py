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
task the annotation JSON of exactly the videos it evaluates, for the YouTube-VIS AP. The records
and datasets are those of `lit_video.data.vis`.
"""

from __future__ import annotations

import os
import posixpath
from functools import cached_property
from pathlib import Path
from typing import Any

from lit_video.data.base import register_datamodule
from lit_video.data.records import Listing, RefusedEntry, outside_reason, read_json_file, select_heldout
from lit_video.data.rle import segmentation_to_rle
from lit_video.data.segmentation import SegmentationDataModule, check_integer
from lit_video.data.vis import VISClipDataset, VISInstance, VISRecord, VISVideoDataset
from lit_video.errors import DatasetLayoutError, VideoDecodeError
from lit_video.video.decode import FrameFolderReader
from lit_video.video.sampling import is_integer
from lit_video.video.transforms import ClipTransform

VERSIONS = (2019, 2021)
SPLITS = ("train", "valid", "test")
GT_SUFFIX = "_gt"  # synthetic-only: valid / test ground truth beside the released file


# ----------------------------------------------------------------------------------------------- layout


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


def _check_video(path: Path, index: int, video: Any) -> None:
    where = f"{path}: videos[{index}]"
    if not isinstance(video, dict):
        raise DatasetLayoutError(f"{where}: expected an object with id, width, height, length, file_names")
    for key in ("id", "height", "width"):
        if not is_integer(video.get(key)) or (key != "id" and video[key] < 1):
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
        if not (isinstance(category, dict) and is_integer(category.get("id"))
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
            if not is_integer(ann.get(key)):
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


# ----------------------------------------------------------------------------------------------- DataModule


@register_datamodule("youtube-vis")
class YouTubeVISDataModule(SegmentationDataModule):
    """YouTube-VIS 2019 / 2021 in the official layout.

    Args:
        root: folder holding `train/`, `valid/` (and `test/`) and, for 2019, `train.json` etc.
        version: 2019 or 2021: picks the released annotation file names.
        clip_len: frames per training clip.
        max_instances: instances per training clip (a random subset when there are more).
        train_subset: split the training stage reads: "train" (minus the held-out videos).
        val_subset: split the validation stage reads: "train" = the held-out train videos, or "valid" /
            "test" (ground truth only where a `*_gt.json` is present; otherwise predictions only).
        test_subset: split the test and predict stages read (default "valid": the submission).
        val_fraction: fraction of train videos held out when a stage evaluates on "train".
        val_list: a file of held-out train video folder names, one a line; replaces val_fraction.
        split_seed: seed of the held-out draw (deterministic for a given train JSON).
        **kwargs: the clip, transform and loader arguments of `SegmentationDataModule` (`stride`
            counts listed frames, every 5th raw frame; `eval_resolution` None keeps the annotation
            file's size).
    """

    video_dataset_class = VISVideoDataset

    def __init__(self, root: str, version: int = 2021, clip_len: int = 5, max_instances: int = 10,
                 train_subset: str = "train", val_subset: str = "train", test_subset: str = "valid",
                 val_fraction: float = 0.1, val_list: str | None = None, split_seed: int = 0, **kwargs):
        super().__init__(root, clip_len=clip_len, **kwargs)
        if version not in VERSIONS:
            raise DatasetLayoutError(f"version: YouTube-VIS version must be 2019 or 2021, got {version!r}")
        check_integer("max_instances", max_instances)
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
        self.max_instances = max_instances
        self.subsets = {"train": train_subset, "val": val_subset, "test": test_subset}
        self.val_fraction, self.val_list, self.split_seed = val_fraction, val_list, split_seed
        self._files: dict[str, tuple[Path, dict]] = {}  # split -> (file read, its JSON)

    # --- annotation files ------------------------------------------------------------------------

    def annotation_path(self, split: str) -> Path:
        return annotation_path(self.root, split, self.version)

    def frames_dir(self, split: str) -> Path:
        return self.root / split / "JPEGImages"

    def listing_name(self, subset: str) -> str:
        """The annotation file of the split `subset` reads, relative to the root (train: the videos not held
        out)."""
        return self.annotation_path(self.subsets[subset]).relative_to(self.root).as_posix()

    def released_validation_source(self) -> str:
        gt = ground_truth_path(self.root, self.subsets["val"], self.version)
        return (f"{gt.relative_to(self.root).as_posix()} (ground truth of {self.listing_name('val')})"
                if gt.is_file() else f"{self.listing_name('val')} (no ground truth: predictions only)")

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

    def list_records(self, subset: str) -> Listing:
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
        records = Listing()
        for index, video in sorted(enumerate(data["videos"]), key=lambda item: item[1]["id"]):
            folder = posixpath.dirname(video["file_names"][0])
            if split == "train" and (folder in self.heldout) != (subset != "train"):
                continue
            # the folder comes from the file: one with `..`, an absolute one or a link out reads elsewhere
            reason = outside_reason(self.frames_dir(split), self.frames_dir(split) / folder)
            if reason:
                records.refused.append(RefusedEntry(f'{path}: videos[{index}]["file_names"]', folder, reason))
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

    # --- datasets ----------------------------------------------------------------------------------

    def listing(self, subset: str) -> str:
        return f"in {self.annotation_file(self.subsets[subset])[0]}"

    def clip_dataset(self, records: list[VISRecord], transform: ClipTransform, length: int) -> VISClipDataset:
        return VISClipDataset(records, self.sampler, transform, max_instances=self.max_instances, length=length,
                              failures=self.decode_failures, max_retries=self.max_retries)
