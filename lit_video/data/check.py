"""`lit-video data check`: which listed videos are missing or unreadable, per subset.

Each DataModule says why one of its videos cannot be read (`VideoDataModule.probe`: a video file's
first, middle and last frames by default; frames and masks for the segmentation formats). Entries
that lead outside the dataset are never read: each is listed with its file and line (`refused`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from tqdm import tqdm

from lit_video.data.base import SUBSETS, VideoDataModule
from lit_video.data.records import RefusedEntry, refused_entries


@dataclass
class SubsetReport:
    """What `check_datamodule` found in one subset."""

    listed: int = 0
    missing: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)  # path -> reason
    refused: list[RefusedEntry] = field(default_factory=list)  # entries leading outside the dataset, not read

    @property
    def readable(self) -> int:
        return self.listed - len(self.missing) - len(self.unreadable)


def check_datamodule(datamodule: VideoDataModule, show_progress: bool = True) -> dict[str, SubsetReport]:
    """Scan every subset's listed videos; each distinct file is probed once.

    Raises DatasetLayoutError when the annotation files themselves are missing or malformed."""
    listings = {subset: datamodule.list_records(subset) for subset in SUBSETS}
    by_path = {r.path: r for records in listings.values() for r in records}
    problems: dict[str, str | None] = {}
    for path in tqdm(sorted(by_path), desc="checking videos", unit="video", disable=not show_progress):
        problems[path] = "missing" if not os.path.exists(path) else datamodule.probe(by_path[path])
    reports = {}
    for subset, records in listings.items():
        report = SubsetReport(listed=len(records), refused=refused_entries(records))
        for record in records:
            reason = problems[record.path]
            if reason == "missing":
                report.missing.append(record.path)
            elif reason is not None:
                report.unreadable[record.path] = reason
        reports[subset] = report
    return reports


def format_report(reports: dict[str, SubsetReport]) -> str:
    """A table of the counts per subset, then the unreadable and (the first 50) missing files."""
    lines = [f"{'subset':<8}{'listed':>8}{'readable':>10}{'missing':>9}{'unreadable':>12}"]
    for subset, r in reports.items():
        lines.append(f"{subset:<8}{r.listed:>8}{r.readable:>10}{len(r.missing):>9}{len(r.unreadable):>12}")
    unreadable = {p: why for r in reports.values() for p, why in r.unreadable.items()}
    missing = sorted({p for r in reports.values() for p in r.missing})
    if unreadable:
        lines.append("unreadable files:")
        lines += [f"  {p}: {why}" for p, why in sorted(unreadable.items())]
    if missing:
        lines.append(f"missing files ({len(missing)}):")
        lines += [f"  {p}" for p in missing[:50]]
        if len(missing) > 50:
            lines.append(f"  ... and {len(missing) - 50} more")
    refused = all_refused(reports)
    if refused:
        lines.append(f"entries leading outside the dataset, not read ({len(refused)}):")
        lines += [f"  {entry}" for entry in refused]
    return "\n".join(lines)


def all_refused(reports: dict[str, SubsetReport]) -> list[RefusedEntry]:
    """The refused entries of every subset, each once (UCF101's val and test read one list), in order."""
    return list(dict.fromkeys(entry for r in reports.values() for entry in r.refused))
