"""Optical flow of a whole dataset: every video its format lists, computed once, in parallel and resumably
(`lit-video data flow`). How one video's flow is computed, stored and read is `lit_video.video.flow`."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lit_video.data.video_jobs import check_subsets, check_workers, dataset_of, run_video_jobs
from lit_video.errors import DatasetLayoutError, LitVideoError
from lit_video.video.flow import (
    DEFAULT_BOUND,
    check_bound,
    check_method,
    check_raft_weights,
    compute_video_flow,
    flow_folder,
    store_folder,
    write_store_info,
)


@dataclass
class FlowSummary:
    """What `compute_dataset_flow` did.

    Args:
        store: the store folder.
        computed, skipped: videos computed now, and found complete.
        failed: (video, reason) of each video that could not be decoded.
        subsets: the subsets whose listings were read.
    """

    store: Path
    computed: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    subsets: list[str] = field(default_factory=list)


def dataset_videos(datamodule, subsets: Iterable[str] | None = None) -> tuple[list[str], list[str]]:
    """(videos, subsets read): every video the format lists in `subsets` (default all three), each once,
    present on disk. A subset the dataset does not have is left out when `subsets` is None.

    Raises:
        LitVideoError: a listing asked for by name cannot be read, or no subset can.
    """
    asked = list(subsets) if subsets else None
    videos: dict[str, None] = {}
    read = []
    for subset in asked or ["train", "val", "test"]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # refused entries: `data check` reports them
                records = datamodule.list_records(subset)
        except DatasetLayoutError:
            if asked:
                raise
            continue
        read.append(subset)
        for record in records:
            if os.path.exists(record.path):
                videos.setdefault(record.path, None)
    if not read:
        datamodule.list_records("train")  # raises the reason the dataset cannot be listed
    return list(videos), read


def compute_dataset_flow(datamodule_or_format: Any, root: str | os.PathLike | None = None, method: str = "tvl1",
                         *, bound: float = DEFAULT_BOUND, short_side: int | None = None, workers: int = 1,
                         weights: str | None = None, subsets: Iterable[str] | None = None, decoder: str = "auto",
                         progress: Callable[[str, str], None] | None = None) -> FlowSummary:
    """Compute the flow of every video of a dataset once, in parallel and resumably (`lit-video data flow`).

    Args:
        datamodule_or_format: a `VideoDataModule`, or a format name (then `root` is required).
        root: the dataset root (default: the DataModule's).
        method: tvl1, farneback or raft.
        bound: pixels mapped to the ends of the 8-bit range; larger flow is clipped.
        short_side: compute on frames resized to this short side (never enlarged); None: full size.
        workers: processes computing videos in parallel (tvl1, farneback); raft runs in this process.
        weights: raft only: a local checkpoint (else torchvision's file in the torch hub cache).
        subsets: the subsets whose videos to compute (default all the dataset has).
        decoder: video backend of video files.
        progress: called with (video, status) after each video.

    Raises:
        LitVideoError: a bad argument, an unlistable dataset, or a store with other settings.
    """
    check_method(method)
    bound = check_bound(bound)
    if short_side is not None and (isinstance(short_side, bool) or not isinstance(short_side, int) or short_side < 1):
        raise LitVideoError(f"--short-side must be a positive integer, got {short_side!r}")
    check_workers(workers)
    if method == "raft":
        check_raft_weights(weights)
    elif weights is not None:
        raise LitVideoError(f"--weights applies to --method raft, not {method}")
    check_subsets(subsets)
    datamodule, root = dataset_of(datamodule_or_format, root, "compute_dataset_flow")
    videos, read = dataset_videos(datamodule, subsets)
    write_store_info(root, method, bound, short_side)
    summary = FlowSummary(store_folder(root, method), subsets=read)
    jobs = [(v, str(flow_folder(root, v, method)), method, bound, short_side, decoder, weights) for v in videos]

    tally = run_video_jobs(compute_video_flow, jobs, workers=1 if method == "raft" else workers,
                           preload=("lit_video.video.decode", "cv2"), failure="flow of {video} not computed: {reason}",
                           progress=progress)
    summary.computed, summary.skipped, summary.failed = tally.done, tally.skipped, tally.failed
    return summary
