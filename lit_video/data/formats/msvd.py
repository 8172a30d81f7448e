"""MSVD, the Microsoft Research Video Description Corpus (video captioning), read as released.

Descriptions: `MSR Video Description Corpus.csv` (or `video_corpus.csv`), in the root or in
`annotations/`, header `VideoID,Start,End,WorkerID,Source,AnnotationTime,Language,Description`;
descriptions may be quoted and hold commas, some are empty; only Language == "English" rows are read.
A clip's key is `{VideoID}_{Start}_{End}`, its video `YouTubeClips/{key}.avi`, and
`youtube_mapping.txt` lines `{key} vid{N}` name the 1970 clips. A CSV row whose key has no mapping
line (the corpus describes more clips than were released) counts as an unknown video id.

Splits (Venugopalan et al. 2015): vid1-1200 train, vid1201-1300 val, vid1301-1970 test. The boundaries
are the `train_end`, `val_end`, `test_end` arguments, so a small copy (such as `lit-video data synth
--format msvd`, see `lit_video.data.synthetic.captions.write_msvd`) can name its own.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from lit_video.data.base import register_datamodule
from lit_video.data.captioning import CaptioningDataModule, CaptionListing, build_listing
from lit_video.data.records import RefusedEntry, index_video_files, outside_reason, read_text_file
from lit_video.errors import DatasetLayoutError

# the released file names and corpus header
MSVD_CSV = "MSR Video Description Corpus.csv"
MSVD_MAPPING = "youtube_mapping.txt"
CSV_NAMES = (MSVD_CSV, "video_corpus.csv")
MSVD_COLUMNS = ("VideoID", "Start", "End", "WorkerID", "Source", "AnnotationTime", "Language", "Description")
REQUIRED_COLUMNS = ("VideoID", "Start", "End", "Language", "Description")


def read_corpus(path: Path) -> list[tuple[str, str]]:
    """(clip key, description) of the English rows of the corpus CSV.

    Raises:
        DatasetLayoutError: the file is not a corpus CSV.
    """
    reader = csv.DictReader(io.StringIO(read_text_file(path), newline=""))
    try:
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise DatasetLayoutError(f"{path}: not an MSVD corpus file (missing column(s) {', '.join(missing)}; "
                                     f"expected header {','.join(MSVD_COLUMNS)})")
        reader.fieldnames = header
        rows = []
        for row in reader:
            if (row.get("Language") or "").strip() == "English":
                key = f"{(row['VideoID'] or '').strip()}_{(row['Start'] or '').strip()}_{(row['End'] or '').strip()}"
                rows.append((key, row.get("Description") or ""))
        return rows
    except csv.Error as err:
        raise DatasetLayoutError(f"{path}:{reader.line_num}: not a readable CSV ({str(err).splitlines()[0]})") from None


def read_mapping(path: Path) -> dict[str, int]:
    """clip key -> N of `vid<N>`, from `youtube_mapping.txt`.

    Raises:
        DatasetLayoutError: the file is missing or a line is not `<key> vid<N>`.
    """
    return read_mapping_lines(path)[0]


def read_mapping_lines(path: Path) -> tuple[dict[str, int], dict[str, int]]:
    """(`read_mapping`, clip key -> its line number in the file)."""
    text = read_text_file(path, "missing MSVD youtube_mapping.txt (lines '<key> vid<N>')")
    mapping: dict[str, int] = {}
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not re.fullmatch(r"vid\d+", fields[1]):
            raise DatasetLayoutError(f"{path}:{number}: expected '<key> vid<N>', got {line.strip()[:80]!r}")
        mapping[fields[0]] = int(fields[1][3:])
        lines[fields[0]] = number
    return mapping, lines


@register_datamodule("msvd")
class MSVDDataModule(CaptioningDataModule):
    """MSVD in the released CSV + mapping + YouTubeClips layout.

    Args:
        root: folder holding the corpus CSV, youtube_mapping.txt and YouTubeClips/.
        train_end: last vid number of train (vid1..train_end).
        val_end: last vid number of val (train_end+1..val_end).
        test_end: last vid number of test (val_end+1..test_end).
        **kwargs: tokenizer, caption, clip, loader and decoder arguments of `CaptioningDataModule`.
    """

    def __init__(self, root: str, train_end: int = 1200, val_end: int = 1300, test_end: int = 1970, **kwargs):
        super().__init__(root, **kwargs)
        if not 0 < train_end < val_end < test_end:
            raise DatasetLayoutError(f"MSVD split boundaries must satisfy 0 < train_end < val_end < test_end, "
                                     f"got {train_end}, {val_end}, {test_end}")
        self.bounds = {"train": (1, train_end), "val": (train_end + 1, val_end), "test": (val_end + 1, test_end)}
        self._parsed: tuple[dict[str, int], list[tuple[str, str]], str, Path, dict[str, int]] | None = None

    def listing_name(self, subset: str) -> str:
        first, last = self.bounds[subset]
        return f"{MSVD_MAPPING} vid{first}-vid{last}"

    def corpus_file(self) -> Path:
        for folder in (self.root, self.root / "annotations"):
            for name in CSV_NAMES:
                if (folder / name).is_file():
                    return folder / name
        raise DatasetLayoutError(f"{self.root} is not an MSVD root: no {' or '.join(CSV_NAMES)} in it "
                                 "or in annotations/")

    def _annotations(self) -> tuple[dict[str, int], list[tuple[str, str]], str, Path, dict[str, int]]:
        """(key -> N, English (key, description) rows, the corpus file, the mapping file, key -> its line)."""
        if self._parsed is None:
            corpus = self.corpus_file()
            mapping_path = (corpus.parent / MSVD_MAPPING if (corpus.parent / MSVD_MAPPING).is_file()
                            else self.root / MSVD_MAPPING)
            mapping, lines = read_mapping_lines(mapping_path)
            self._parsed = mapping, read_corpus(corpus), str(corpus), mapping_path, lines
        return self._parsed

    def read_listing(self, subset: str) -> CaptionListing:
        mapping, rows, source, mapping_path, lines = self._annotations()
        folder = self.root / "YouTubeClips"
        files = index_video_files(folder)
        first, last = self.bounds[subset]
        videos, refused = [], []
        for n, key in sorted(((n, key) for key, n in mapping.items() if first <= n <= last)):
            file = files.get(key, str(folder / f"{key}.avi"))
            reason = outside_reason(folder, file)  # the key is the file name: `..` or `/` in it reads elsewhere
            if reason:
                refused.append(RefusedEntry(f"{mapping_path}:{lines[key]}", key, reason))
            else:
                videos.append((f"vid{n}", file))
        # unmapped keys stay as they are: not a listed id, so counted as unknown
        captions = [(f"vid{mapping[key]}" if key in mapping else key, text) for key, text in rows]
        listing = build_listing(source, videos, captions, {f"vid{n}" for n in mapping.values()})
        listing.refused = refused
        return listing
