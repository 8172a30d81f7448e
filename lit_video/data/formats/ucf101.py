"""UCF101, read as released: `UCF-101/<Class>/v_<Class>_gXX_cYY.avi` + `ucfTrainTestlist/`.

`classInd.txt` lines are `1 ApplyEyeMakeup` (1-based); `trainlist0N.txt` lines are
`ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1` (1-based label); `testlist0N.txt` lines are the path
alone (the label comes from the class folder). The official files have `\\r\\n` line endings.
Labels are 0-based here. UCF101 has no validation list: by default `val` and `test` both read the
split's test list, as the literature does, so validation metrics are test metrics. With `val_fraction`
(or `val_list`), validation reads whole recording groups held out of the training list instead, and
only `test` reads the test list: choose hyperparameters that way.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path

from lit_video.data.base import VideoDataModule, register_datamodule
from lit_video.data.records import Listing, RefusedEntry, VideoRecord, outside_reason, read_text_file
from lit_video.errors import DatasetLayoutError

LISTS_DIR = "ucfTrainTestlist"
VIDEOS_DIRS = ("UCF-101", "UCF101")
NUM_GROUPS = 25  # of recording groups per class (g01..g25)
# Official splits hold out groups 1-7, 8-14 and 15-21 for testing.
TEST_GROUPS = {1: range(1, 8), 2: range(8, 15), 3: range(15, 22)}
# `v_<Class>_gXX_cYY`: the clips of group XX of a class share actor and background.
VIDEO_NAME = re.compile(r"v_(?P<cls>.+)_g(?P<group>\d+)_c\d+")


def _lines(path: Path) -> list[tuple[int, str]]:
    """(line number, stripped text) of the non-empty lines; tolerates \\r\\n and a UTF-8 BOM."""
    if not path.is_file():
        raise DatasetLayoutError(f"missing UCF101 list file {path}")
    text = read_text_file(path)
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def parse_class_index(path: Path) -> list[str]:
    """classInd.txt -> class names ordered by their 0-based label."""
    by_number: dict[int, str] = {}
    for n, line in _lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DatasetLayoutError(f"{path}:{n}: expected '<1-based index> <ClassName>', got {line!r}")
        by_number[int(parts[0])] = parts[1]
    if sorted(by_number) != list(range(1, len(by_number) + 1)):
        raise DatasetLayoutError(f"{path}: class indices must run 1..{len(by_number)} without gaps")
    return [by_number[i] for i in range(1, len(by_number) + 1)]


def parse_split_list(path: Path, classes: list[str], videos_dir: Path) -> Listing:
    """A trainlist (path + 1-based label) or testlist (path only) -> records with 0-based labels.

    An entry that leads outside `videos_dir` (`..`, an absolute path, a link out) is left out and
    listed in the result's `refused`."""
    index_of = {name.lower(): i for i, name in enumerate(classes)}
    records = Listing()
    for n, line in _lines(path):
        parts = line.split()
        relative = parts[0].replace("\\", "/")
        folder = relative.split("/")[0]
        if len(parts) > 2 or "/" not in relative:
            raise DatasetLayoutError(f"{path}:{n}: expected '<Class>/<video>.avi [label]', got {line!r}")
        reason = outside_reason(videos_dir, videos_dir / relative)
        if reason:
            records.refused.append(RefusedEntry(f"{path}:{n}", parts[0], reason))
            continue
        if len(parts) == 2:
            if not parts[1].isdigit() or not 1 <= int(parts[1]) <= len(classes):
                raise DatasetLayoutError(f"{path}:{n}: label {parts[1]!r} is not in 1..{len(classes)}")
            label = int(parts[1]) - 1
        elif folder.lower() in index_of:
            label = index_of[folder.lower()]
        else:
            raise DatasetLayoutError(f"{path}:{n}: class folder {folder!r} is not in classInd.txt")
        video_id = Path(relative).stem
        records.append(VideoRecord(path=str(videos_dir / relative), label=label, video_id=video_id))
    return records


@register_datamodule("ucf101")
class UCF101DataModule(VideoDataModule):
    """UCF101 in its official layout.

    A held-out validation split (`val_fraction`) keeps recording groups whole: in each class, that
    fraction of the groups the training list holds (at least one, never all) is drawn with
    `split_seed`, and every clip of a drawn group validates instead of training. A `val_list` names
    videos; the whole group of each is held out.

    Args:
        root: folder holding `UCF-101/` and `ucfTrainTestlist/`.
        split: official train/test split, 1, 2 or 3.
        **kwargs: clip, loader, decoder and held-out split (val_fraction, split_seed, val_list)
            arguments of `VideoDataModule`.
    """

    heldout_unit = "recording groups"

    def __init__(self, root: str, split: int = 1, **kwargs):
        super().__init__(root, **kwargs)
        if split not in TEST_GROUPS:
            raise DatasetLayoutError(f"UCF101 split must be 1, 2 or 3, got {split!r}")
        self.split = split

    @cached_property
    def lists_dir(self) -> Path:
        lists = self.root / LISTS_DIR
        if not lists.is_dir():
            raise DatasetLayoutError(
                f"{self.root} is not a UCF101 root: expected {LISTS_DIR}/ (classInd.txt, trainlist01.txt, "
                f"testlist01.txt, ...) and UCF-101/<Class>/*.avi beside it"
            )
        return lists

    @cached_property
    def videos_dir(self) -> Path:
        for name in VIDEOS_DIRS:
            if (self.root / name).is_dir():
                return self.root / name
        raise DatasetLayoutError(f"{self.root} is not a UCF101 root: expected a UCF-101/ folder of class folders")

    @cached_property
    def classes(self) -> list[str]:
        return parse_class_index(self.lists_dir / "classInd.txt")

    def listing_name(self, subset: str) -> str:
        return f"{'trainlist' if subset == 'train' else 'testlist'}{self.split:02d}.txt"

    def list_records(self, subset: str) -> Listing:
        return parse_split_list(self.lists_dir / self.listing_name(subset), self.classes, self.videos_dir)

    def heldout_key(self, record: VideoRecord) -> str:
        """`<Class>_gXX`: the recording group of the clip (a clip named otherwise is its own group)."""
        match = VIDEO_NAME.fullmatch(record.video_id)
        return f"{match['cls']}_g{int(match['group']):02d}" if match else record.video_id

    @property
    def validation_source(self) -> str:
        if self.validates_on_test:
            return (f"{self.listing_name('val')}: UCF101's TEST list (it has no validation list; set val_fraction "
                    "to hold out training groups)")
        return super().validation_source
