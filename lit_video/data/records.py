"""What a dataset's annotation files list: `VideoRecord`, and the helpers that find and check them.

Light on purpose (no torch, no Lightning): the metrics read their JSON files through here, and a
format reads its listings here before any DataModule exists.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lit_video.errors import DatasetLayoutError


def read_text_file(path: str | os.PathLike, missing: str | None = None) -> str:
    """The text of a dataset's list, CSV or JSON file: UTF-8, a leading byte-order mark dropped.

    Every reader of an annotation file goes through here, so that a file in another encoding stops
    with one line naming the file and the line of the first byte that is not UTF-8.

    Args:
        path: the file.
        missing: what the message says when the file is not there; None: the caller checked already.

    Raises:
        DatasetLayoutError: the file is missing, cannot be read, or is not UTF-8 text.
    """
    path = Path(path)
    if missing is not None and not path.is_file():
        raise DatasetLayoutError(f"{path}: {missing}")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DatasetLayoutError(f"{path}: cannot read the file ({err.strerror or err})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise DatasetLayoutError(f"{path}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x} at column {column}); "
                                 "save the file as UTF-8") from None
    return text.removeprefix("\ufeff")


def read_json_file(path: str | os.PathLike, missing: str) -> object:
    """Read a dataset's (or a results') JSON file, or stop with one line naming it.

    Args:
        path: the file.
        missing: what the message says when the file is not there (e.g. "missing YouTube-VOS meta.json").

    Raises:
        DatasetLayoutError: the file is missing, not UTF-8 or not valid JSON.
    """
    text = read_text_file(path, missing)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DatasetLayoutError(f"{path}: not valid JSON ({str(err).splitlines()[0]})") from None


VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi")


def index_video_files(folder: str | os.PathLike) -> dict[str, str]:
    """File stem -> path of every video under `folder` (any depth; the first of a stem wins); {} when there
    is no such folder. Datasets that list videos by id look files up here instead of stat-ing each one."""
    found: dict[str, str] = {}
    for directory, _, files in os.walk(folder):
        for name in sorted(files):
            stem, extension = os.path.splitext(name)
            if extension.lower() in VIDEO_EXTENSIONS:
                found.setdefault(stem, os.path.join(directory, name))
    return found


@dataclass(frozen=True)
class VideoRecord:
    """One video of a dataset split.

    Args:
        path: the video file or frame folder.
        label: 0-based class index, -1 when unlabelled.
        video_id: the dataset's own name for the video.
    """

    path: str
    label: int
    video_id: str


@dataclass(frozen=True)
class RefusedEntry:
    """A listed video that leads outside the folder its listing is relative to; it is never read.

    Args:
        where: the listing and the entry's place in it ("trainlist01.txt:12", 'meta.json: videos["x"]').
        entry: the entry as listed.
        reason: why it is refused.
    """

    where: str
    entry: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.entry!r} {self.reason}"


class Listing(list):
    """The records a listing gives (a plain list of them) and the entries refused while reading it.

    Args:
        records: the records.
        refused: the `RefusedEntry`s left out of `records`.
    """

    def __init__(self, records: Sequence[VideoRecord] = (), refused: Sequence[RefusedEntry] = ()):
        super().__init__(records)
        self.refused = list(refused)


def refused_entries(records: Sequence[VideoRecord]) -> list[RefusedEntry]:
    """The entries refused while listing `records` (none for a plain list)."""
    return list(getattr(records, "refused", []))


def outside_reason(base: str | os.PathLike, path: str | os.PathLike) -> str | None:
    """Why `path` (a listed file or folder) is not inside `base`, or None when it is.

    An absolute entry or one whose `..` climb out of `base` leads outside it as written; a link (the file
    or a folder on the way) that resolves outside the resolved `base` does too. `base` itself may be a
    link: a dataset's video folder is often one, to a bigger disk.

    Args:
        base: the folder the listing is relative to.
        path: the entry joined to `base`.
    """
    base, path = os.path.abspath(base), os.path.abspath(path)  # normalised: `..` taken as written
    if path == base:
        return f"names {base} itself, not a file in it"
    if os.path.commonpath([base, path]) != base:
        return f"leads outside {base}"
    real_base, real = os.path.realpath(base), os.path.realpath(path)
    if os.path.commonpath([real_base, real]) != real_base:
        return f"is a link to {real}, outside {base}"
    return None


def is_plain_name(name: str) -> bool:
    """Whether `name` is a file name without folders (no `/`, `\\`, `..` or `.`): a frame name that a list
    gives and that becomes part of a path read or written."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and "\0" not in name


def split_existing(records: Sequence[VideoRecord], what: str) -> list[VideoRecord]:
    """Keep the records whose file exists; say once how many are missing (they are skipped, not fatal).

    Args:
        records: listed videos.
        what: a name for the listing in the warning, e.g. "UCF101 split 1 train".
    """
    present = [r for r in records if os.path.exists(r.path)]
    missing = len(records) - len(present)
    if missing:
        first = next(r.path for r in records if not os.path.exists(r.path))
        warnings.warn(
            f"{what}: {missing} of {len(records)} listed videos are missing and skipped (first: {first})",
            stacklevel=2,
        )
    return present


def select_heldout(videos: Sequence[str], val_fraction: float, val_list: str | os.PathLike | None,
                   split_seed: int, listing: str | os.PathLike, groups: Mapping[str, str] | None = None,
                   strata: Mapping[str, object] | None = None) -> frozenset[str]:
    """Training videos held out for validation (datasets whose validation split has no ground truth, or
    whose only other list is the test list).

    The draw is a seeded permutation of the SORTED units (videos, or their groups), so the same ids come
    out for every run, worker and machine that reads the same listing.

    Args:
        videos: ids of the training videos.
        val_fraction: fraction held out, at least one and at most all but one unit (per stratum) when > 0.
        val_list: a file of held-out video ids, one a line; replaces val_fraction. With `groups`, the
            whole group of each listed video is held out.
        split_seed: seed of the draw.
        listing: the annotation file listing `videos`, named in errors.
        groups: video id -> the unit held out whole (e.g. UCF101's recording group, whose clips share actor
            and background); None: each video is its own unit.
        strata: video id -> its stratum (e.g. its class): the fraction is drawn in each stratum separately,
            strata in sorted order; None: over all units at once.

    Raises:
        DatasetLayoutError: val_list is missing or names a video that `listing` does not list.
    """
    videos = sorted(videos)
    if groups is None and strata is None:
        return _select_units(videos, val_fraction, val_list, split_seed, listing)
    group_of = groups or {v: v for v in videos}
    members: dict[str, list[str]] = {}
    for video in videos:
        members.setdefault(group_of[video], []).append(video)
    if val_list is not None:
        listed = _select_units(videos, val_fraction, val_list, split_seed, listing)
        return frozenset(v for video in listed for v in members[group_of[video]])
    by_stratum: dict[object, list[str]] = {}
    for unit, unit_videos in members.items():
        by_stratum.setdefault(strata[unit_videos[0]] if strata else None, []).append(unit)
    rng = np.random.default_rng(split_seed)  # one generator, strata in sorted order: reproducible
    held: set[str] = set()
    for stratum in sorted(by_stratum, key=repr) if strata else [None]:
        units = sorted(by_stratum[stratum])
        order = rng.permutation(len(units))
        held.update(v for i in order[:_heldout_count(val_fraction, len(units))] for v in members[units[i]])
    return frozenset(held)


def _heldout_count(val_fraction: float, units: int) -> int:
    """How many of `units` a fraction holds out: at least one and at most all but one when > 0."""
    count = int(round(val_fraction * units))
    if val_fraction > 0 and units > 1:
        count = min(max(count, 1), units - 1)  # a small copy still validates and still trains
    return count


def _select_units(videos: list[str], val_fraction: float, val_list: str | os.PathLike | None, split_seed: int,
                  listing: str | os.PathLike) -> frozenset[str]:
    """`select_heldout` over single videos: the ids of `val_list`, or a seeded draw of the sorted `videos`."""
    if val_list is not None:
        path, known = Path(val_list), set(videos)
        if not path.is_file():
            raise DatasetLayoutError(f"{path}: val_list file not found")
        ids = []
        for number, line in enumerate(read_text_file(path).splitlines(), start=1):
            vid = line.strip()
            if vid and vid not in known:
                raise DatasetLayoutError(f"{path}:{number}: video {vid!r} is not in {listing}")
            ids += [vid] if vid else []
        return frozenset(ids)
    # A permutation of the SORTED ids: the same videos for every run, worker and machine.
    order = np.random.default_rng(split_seed).permutation(len(videos))
    return frozenset(videos[i] for i in order[:_heldout_count(val_fraction, len(videos))])
