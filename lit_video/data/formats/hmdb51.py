"""HMDB51, read as released: the class folders of `hmdb51_org.rar` + `testTrainMulti_7030_splits/`.

Videos are `<class>/<video>.avi` (e.g. `brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi`), in a
`videos/` or `hmdb51_org/` folder of the root, or in the root itself. The splits folder holds one file
per class and split, `<class>_test_split<N>.txt` (N = 1, 2, 3), with one line per video of the class:
`<video file name> <flag> `, flag 1 = training, 2 = testing, 0 = not used in this split (the released
files end each line with a space). The classes are the classes of the split files, sorted by name, and
the labels their 0-based places (the sorted class folders of mmaction2 and torchvision's HMDB51).

HMDB51 has no validation list: by default `val` and `test` both read the split's test videos, as the
literature does. With `val_fraction` (or `val_list`), validation reads whole source movies held out of
the training videos instead, and only `test` reads the test videos.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path

from lit_video.data.base import VideoDataModule, register_datamodule
from lit_video.data.records import (
    Listing,
    RefusedEntry,
    VideoRecord,
    is_plain_name,
    outside_reason,
    read_text_file,
)
from lit_video.errors import DatasetLayoutError

SPLITS_DIR = "testTrainMulti_7030_splits"
# Where the class folders may be: the root's `videos/` or `hmdb51_org/` folder, else the root itself.
VIDEOS_DIRS = ("videos", "hmdb51_org")
SPLITS = (1, 2, 3)
# The flag of a video in a split file: which subset reads it (0: no subset of this split).
FLAGS = {"0": None, "1": "train", "2": "test"}
SPLIT_FILE = re.compile(r"(?P<cls>.+)_test_split(?P<split>[123])\.txt")


def split_file_name(class_name: str, split: int) -> str:
    """`brush_hair`, 1 -> `brush_hair_test_split1.txt`."""
    return f"{class_name}_test_split{split}.txt"


def find_classes(splits_dir: Path) -> list[str]:
    """The class names of the split files in `splits_dir` (of any split), sorted: index = label.

    Raises:
        DatasetLayoutError: the folder holds no split file.
    """
    found = {match["cls"] for path in splits_dir.iterdir() if (match := SPLIT_FILE.fullmatch(path.name))}
    if not found:
        raise DatasetLayoutError(f"{splits_dir}: no HMDB51 split files (<class>_test_split<1-3>.txt) in it")
    return sorted(found)


def parse_split_file(path: Path, class_name: str, label: int, videos_dir: Path) -> dict[str, Listing]:
    """One class's split file -> the records of each subset it flags ("train": 1, "test": 2; 0 is left out).

    An entry whose file is a link that leads outside `videos_dir` is left out and listed in the
    listing's `refused`.

    Args:
        path: `<class>_test_split<N>.txt`.
        class_name: the class the file lists (its videos are in `videos_dir/<class_name>/`).
        label: the class's 0-based label.
        videos_dir: the folder of the class folders.

    Raises:
        DatasetLayoutError: the file is missing, or a line is not `<video file name> <0|1|2>`.
    """
    text = read_text_file(path, missing=f"missing HMDB51 split file (expected one per class and split in "
                                        f"{SPLITS_DIR}/)")
    subsets = {"train": Listing(), "test": Listing()}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()  # the released lines end in a space (and some copies in \r\n)
        if not line:
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2 or parts[1] not in FLAGS:
            raise DatasetLayoutError(f"{path}:{number}: expected '<video file name> <flag 0, 1 or 2>', got {line!r}")
        name, flag = parts
        if not is_plain_name(name):
            raise DatasetLayoutError(f"{path}:{number}: {name!r} is not a file name (a video of the class folder, "
                                     "without folders or '..')")
        subset = FLAGS[flag]
        if subset is None:
            continue
        video = videos_dir / class_name / name
        reason = outside_reason(videos_dir, video)
        if reason:
            subsets[subset].refused.append(RefusedEntry(f"{path}:{number}", name, reason))
            continue
        subsets[subset].append(VideoRecord(path=str(video), label=label, video_id=Path(name).stem))
    return subsets


@register_datamodule("hmdb51")
class HMDB51DataModule(VideoDataModule):
    """HMDB51 in its released layout.

    A held-out validation split (`val_fraction`) keeps source movies whole: in each class, that fraction
    of the movies the training videos come from (at least one, never all) is drawn with `split_seed`, and
    every training clip of a drawn movie validates instead of training. A `val_list` names videos; the
    whole movie of each is held out.

    Args:
        root: folder holding `testTrainMulti_7030_splits/` and the class folders (in `videos/`,
            `hmdb51_org/` or the root itself).
        split: official train/test split, 1, 2 or 3.
        **kwargs: clip, loader, decoder and held-out split (val_fraction, split_seed, val_list)
            arguments of `VideoDataModule`.
    """

    heldout_unit = "source movies"

    def __init__(self, root: str, split: int = 1, **kwargs):
        super().__init__(root, **kwargs)
        if split not in SPLITS or isinstance(split, bool):
            raise DatasetLayoutError(f"HMDB51 split must be 1, 2 or 3, got {split!r}")
        self.split = split

    @cached_property
    def splits_dir(self) -> Path:
        splits = self.root / SPLITS_DIR
        if not splits.is_dir():
            raise DatasetLayoutError(
                f"{self.root} is not an HMDB51 root: expected {SPLITS_DIR}/ (<class>_test_split1.txt, ...) and the "
                f"class folders of videos (<class>/*.avi) beside it, in videos/, hmdb51_org/ or the root itself"
            )
        return splits

    @cached_property
    def videos_dir(self) -> Path:
        """`videos/` or `hmdb51_org/` where the root has one, otherwise the root."""
        return next((self.root / name for name in VIDEOS_DIRS if (self.root / name).is_dir()), self.root)

    @cached_property
    def classes(self) -> list[str]:
        return find_classes(self.splits_dir)

    def listing_name(self, subset: str) -> str:
        flag = 1 if subset == "train" else 2
        return f"{SPLITS_DIR}/*_test_split{self.split}.txt (flag {flag})"

    @cached_property
    def split_listings(self) -> dict[str, Listing]:
        """The split's records of each subset ("train", "test"), class by class in label order."""
        listings = {"train": Listing(), "test": Listing()}
        for label, name in enumerate(self.classes):
            for subset, listing in parse_split_file(self.splits_dir / split_file_name(name, self.split), name, label,
                                                    self.videos_dir).items():
                listings[subset].extend(listing)
                listings[subset].refused.extend(listing.refused)
        return listings

    def list_records(self, subset: str) -> Listing:
        listing = self.split_listings["train" if subset == "train" else "test"]
        return Listing(listing, listing.refused)

    def heldout_key(self, record: VideoRecord) -> str:
        """`<movie>_<class>`: the source movie of the clip, everything of its name before `_<class>_` (a clip
        named otherwise is its own movie)."""
        class_name = self.classes[record.label]
        movie, found, _ = record.video_id.rpartition(f"_{class_name}_")
        return f"{movie}_{class_name}" if found and movie else record.video_id

    @property
    def validation_source(self) -> str:
        if self.validates_on_test:
            return (f"{self.listing_name('val')}: HMDB51's TEST videos (it has no validation list; set val_fraction "
                    "to hold out training movies)")
        return super().validation_source
