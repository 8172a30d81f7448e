"""What a dataset's annotation files list: `VideoRecord`, and the helpers that find and check them.

Light on purpose (no torch, no Lightning): the metrics read their JSON files through here, and a
format reads its listings here before any DataModule exists.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lit_video.errors import DatasetLayoutError


def read_json_file(path: str | os.PathLike, missing: str) -> object:
    """Read a dataset's (or a results') JSON file, or stop with one line naming it.

    Args:
        path: the file.
        missing: what the message says when the file is not there (e.g. "missing YouTube-VOS meta.json").

    Raises:
        DatasetLayoutError: the file is missing or not valid JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetLayoutError(f"{path}: {missing}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
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
                   split_seed: int, listing: str | os.PathLike) -> frozenset[str]:
    """Training videos held out for validation (datasets whose validation split has no ground truth).

    Args:
        videos: ids of the training videos.
        val_fraction: fraction held out, at least one and at most all but one when > 0.
        val_list: a file of held-out ids, one a line; replaces val_fraction.
        split_seed: seed of the draw: the same ids for every run, worker and machine.
        listing: the annotation file listing `videos`, named in errors.

    Raises:
        DatasetLayoutError: val_list is missing or names a video that `listing` does not list.
    """
    videos = sorted(videos)
    if val_list is not None:
        path, known = Path(val_list), set(videos)
        if not path.is_file():
            raise DatasetLayoutError(f"{path}: val_list file not found")
        ids = []
        for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
            vid = line.strip()
            if vid and vid not in known:
                raise DatasetLayoutError(f"{path}:{number}: video {vid!r} is not in {listing}")
            ids += [vid] if vid else []
        return frozenset(ids)
    count = int(round(val_fraction * len(videos)))
    if val_fraction > 0 and len(videos) > 1:
        count = min(max(count, 1), len(videos) - 1)  # a small copy still validates and still trains
    # A permutation of the SORTED ids: the same videos for every run, worker and machine.
    order = np.random.default_rng(split_seed).permutation(len(videos))
    return frozenset(videos[i] for i in order[:count])
