"""Something-Something V2, read as released.

Videos are `20bn-something-something-v2/<id>.webm` (VP9, 12 fps, 240 pixels high; `videos/<id>.webm`
works too). The label files (in `labels/` or in the root) are `labels.json`, an object mapping each
of the 174 templates, written without the brackets, to its class index as a string
(`{"Approaching something with your camera": "0", ...}`), and `something-something-v2-train.json`,
`-validation.json`, `-test.json`: arrays of `{"id": "78687", "label": "holding potato next to vicks
vaporub bottle", "template": "Holding [something] next to [something]", "placeholders": [...]}`. The
class of an entry is its `template` with the square brackets removed; `label` (the filled-in
sentence) is not read. The test list holds ids alone (label -1): its labels were never released, so
the `test` stage reads the validation list by default (`test_list`).

Horizontal flips are off by default: they turn "from left to right" into "from right to left".
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from lit_video.data.base import VideoDataModule, register_datamodule
from lit_video.data.records import (
    Listing,
    RefusedEntry,
    VideoRecord,
    index_video_files,
    outside_reason,
    read_json_file,
)
from lit_video.errors import DatasetLayoutError

VIDEO_DIRS = ("20bn-something-something-v2", "videos")
LABELS_DIR = "labels"
LABELS_FILE = "labels.json"
LIST_FILES = {
    "train": "something-something-v2-train.json",
    "validation": "something-something-v2-validation.json",
    "test": "something-something-v2-test.json",
}
TEST_LISTS = ("validation", "test")


def template_class(template: str) -> str:
    """The class name of a template: "Holding [something] next to [something]" -> "Holding something next
    to something" (as labels.json spells it)."""
    return template.replace("[", "").replace("]", "")


def parse_labels(path: Path) -> list[str]:
    """labels.json -> class names ordered by their index.

    Raises:
        DatasetLayoutError: missing, not JSON, not an object of template -> index, or indices that do not
            run 0..N-1.
    """
    data = read_json_file(path, f"missing Something-Something V2 {LABELS_FILE}")
    if not isinstance(data, dict) or not data:
        raise DatasetLayoutError(f"{path}: expected a JSON object mapping each template to its class index "
                                 f'("Approaching something with your camera": "0", ...)')
    by_index: dict[int, str] = {}
    for name, index in data.items():
        if isinstance(index, bool) or not (isinstance(index, int) or (isinstance(index, str) and index.isdigit())):
            raise DatasetLayoutError(f"{path}: the index of {name!r} must be a number such as \"0\", got {index!r}")
        by_index[int(index)] = name
    if sorted(by_index) != list(range(len(data))):
        raise DatasetLayoutError(f"{path}: class indices must run 0..{len(data) - 1}, each once")
    return [by_index[i] for i in range(len(data))]


def parse_list(path: Path, classes: list[str], videos_dir: Path, files: dict[str, str] | None = None,
               labelled: bool = True) -> Listing:
    """A train / validation list (labelled) or the test list (ids alone) -> records.

    An id with a path in it (a slash, `..`) or whose file leads outside `videos_dir` is left out and
    listed in the result's `refused`.

    Args:
        path: the JSON list.
        classes: class names by index (`parse_labels`).
        videos_dir: the folder of `<id>.webm` files.
        files: stem -> path of the videos present (`index_video_files`); None looks for `<id>.webm`.
        labelled: read each entry's `template` as its class; False gives every video label -1.

    Raises:
        DatasetLayoutError: not a JSON array of objects with an "id", or (labelled) an entry without a
            template or with one that is not in labels.json; one line naming the file and entry index.
    """
    data = read_json_file(path, f"missing Something-Something V2 list {path.name}")
    if not isinstance(data, list):
        raise DatasetLayoutError(f'{path}: expected a JSON array of {{"id": ...}} objects')
    index_of = {name: i for i, name in enumerate(classes)}
    records = Listing()
    for n, entry in enumerate(data):
        where = f"{path}: entry {n}"
        video_id = entry.get("id") if isinstance(entry, dict) else None
        if isinstance(video_id, int) and not isinstance(video_id, bool):
            video_id = str(video_id)
        if not isinstance(video_id, str) or not video_id:
            raise DatasetLayoutError(f'{where}: expected an object with an "id" (a video number), got {entry!r}')
        label = -1
        if labelled:
            template = entry.get("template")
            if not isinstance(template, str):
                raise DatasetLayoutError(f'{where} (id {video_id}): no "template" to take the class from')
            if template_class(template) not in index_of:
                raise DatasetLayoutError(f"{where} (id {video_id}): template {template!r} is not in {LABELS_FILE}")
            label = index_of[template_class(template)]
        video = (files or {}).get(video_id, str(videos_dir / f"{video_id}.webm"))
        # an id names a file in the videos folder: a separator or `..` in it is a path, never a video
        reason = ("is a path, not a video id" if any(c in video_id for c in "/\\") or video_id in (".", "..")
                  else outside_reason(videos_dir, video))
        if reason:
            records.refused.append(RefusedEntry(where, video_id, reason))
            continue
        records.append(VideoRecord(video, label, video_id))
    return records


@register_datamodule("ssv2")
class SSv2DataModule(VideoDataModule):
    """Something-Something V2 in its released layout (174 template classes).

    Args:
        root: folder holding `20bn-something-something-v2/` (or `videos/`) and `labels/` (or the label
            files themselves).
        test_list: the list the `test` stage reads: "validation" (default; the test labels were never
            released) or "test" (ids alone, label -1, for predictions).
        flip: random horizontal flips when training; off by default, since a flip turns "from left to
            right" into "from right to left" and so changes the class.
        **kwargs: clip, loader, decoder and held-out split (val_fraction, split_seed, val_list)
            arguments of `VideoDataModule`.
    """

    def __init__(self, root: str, test_list: str = "validation", flip: bool = False, **kwargs):
        super().__init__(root, flip=flip, **kwargs)
        if test_list not in TEST_LISTS:
            raise DatasetLayoutError(f"SSv2 test_list must be 'validation' or 'test', got {test_list!r}")
        self.test_list = test_list

    def label_file(self, name: str) -> Path:
        """`labels/<name>`, or `<name>` in the root; the first of them when neither exists."""
        for folder in (self.root / LABELS_DIR, self.root):
            if (folder / name).is_file():
                return folder / name
        return self.root / LABELS_DIR / name

    @cached_property
    def videos_dir(self) -> Path:
        for name in VIDEO_DIRS:
            if (self.root / name).is_dir():
                return self.root / name
        raise DatasetLayoutError(f"{self.root} is not a Something-Something V2 root: expected a "
                                 f"{VIDEO_DIRS[0]}/ (or {VIDEO_DIRS[1]}/) folder of <id>.webm videos")

    @cached_property
    def video_files(self) -> dict[str, str]:
        """Stem -> path of every video present, scanned once (the release is one folder of 220,847 files)."""
        return index_video_files(self.videos_dir)

    @cached_property
    def classes(self) -> list[str]:
        return parse_labels(self.label_file(LABELS_FILE))

    def list_file(self, subset: str) -> str:
        """The key of LIST_FILES that `subset` reads."""
        return {"train": "train", "val": "validation", "test": self.test_list}[subset]

    def listing_name(self, subset: str) -> str:
        return LIST_FILES[self.list_file(subset)]

    @property
    def validation_source(self) -> str:
        if self.validates_on_test:
            return (f"{self.listing_name('val')}: SSv2's validation list, which `test` reads too (its test labels "
                    "were never released); set val_fraction to hold out training videos")
        return super().validation_source

    def list_records(self, subset: str) -> Listing:
        path = self.label_file(self.listing_name(subset))
        if not path.is_file():
            raise DatasetLayoutError(f"{self.root} is not a Something-Something V2 root: no {path.name} in "
                                     f"{LABELS_DIR}/ or in the root")
        labelled = self.list_file(subset) != "test"
        classes = self.classes if labelled else []
        return parse_list(path, classes, self.videos_dir, self.video_files, labelled=labelled)
