"""Frame-folder storage of a whole dataset: every video its format lists, extracted once to JPEG frames, in
parallel and resumably (`lit-video data prepare --frames`), for the DataModules' `storage: frames`. How one
video's frames are stored and read is `lit_video.video.frames`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lit_video.data.flow import dataset_videos
from lit_video.data.video_jobs import check_subsets, check_workers, dataset_of, run_video_jobs
from lit_video.errors import LitVideoError
from lit_video.video.frames import (
    DEFAULT_QUALITY,
    check_quality,
    extract_video_frames,
    frames_folder,
    frames_store,
    write_frames_info,
)


@dataclass
class FramesSummary:
    """What `extract_dataset_frames` did.

    Args:
        store: the store folder (`<root>/frames`).
        computed, skipped: videos extracted now, and found complete.
        failed: (video, reason) of each video that could not be decoded or written.
        subsets: the subsets whose listings were read.
    """

    store: Path
    computed: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    subsets: list[str] = field(default_factory=list)


def extract_dataset_frames(datamodule_or_format: Any, root: str | os.PathLike | None = None, *,
                           short_side: int | None = None, quality: int = DEFAULT_QUALITY, workers: int = 1,
                           subsets: Iterable[str] | None = None, decoder: str = "auto", replace: bool = False,
                           progress: Callable[[str, str], None] | None = None) -> FramesSummary:
    """Extract every frame of every video of a dataset to JPEG folders once, in parallel and resumably.

    Args:
        datamodule_or_format: a `VideoDataModule` of a video-file format, or a format name (then `root` is
            required).
        root: the dataset root (default: the DataModule's).
        short_side: frames resized to this short side (never enlarged); None: full size.
        quality: JPEG quality, 1..100.
        workers: processes extracting videos in parallel.
        subsets: the subsets whose videos to extract (default all the dataset has).
        decoder: video backend of the video files.
        replace: a store extracted with another short side or quality is deleted and extracted again
            (else it is refused); a store with the same settings is completed either way.
        progress: called with (video, status) after each video.

    Raises:
        LitVideoError: a bad argument, a frame-folder format, an unlistable dataset, a store with other
            settings, or a store that leads outside the root through a link.
    """
    if short_side is not None and (isinstance(short_side, bool) or not isinstance(short_side, int) or short_side < 1):
        raise LitVideoError(f"--short-side must be a positive integer, got {short_side!r}")
    check_quality(quality)
    check_workers(workers)
    check_subsets(subsets)
    datamodule, root = dataset_of(datamodule_or_format, root, "extract_dataset_frames")
    if "frames" not in datamodule.storages:
        raise LitVideoError(f"--frames: {datamodule.format_name} stores its videos as frame folders already; "
                            "frame storage is for video-file formats")
    videos, read = dataset_videos(datamodule, subsets)
    write_frames_info(root, short_side, quality, replace=replace)
    summary = FramesSummary(frames_store(root), subsets=read)
    jobs = [(video, str(frames_folder(root, video)), short_side, quality, decoder, str(root)) for video in videos]

    tally = run_video_jobs(extract_video_frames, jobs, workers=workers, preload=("lit_video.video.decode", "cv2"),
                           failure="frames of {video} not extracted: {reason}", progress=progress)
    summary.computed, summary.skipped, summary.failed = tally.done, tally.skipped, tally.failed
    return summary
