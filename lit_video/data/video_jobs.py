"""Running one job per video of a dataset (flow, frame extraction, re-encoding): in this process or in a pool
of worker processes, each job's result tallied the same way."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lit_video.errors import LitVideoError, VideoDecodeError

# What a job ends in: (video, status, reason), status "skipped" (complete from an earlier run), "failed" (reason
# says why) or anything else ("done", "computed"): done now.
JobResult = tuple[str, str, str]


@dataclass
class JobTally:
    """What the jobs did: `done` now, `skipped` as complete, and (video, reason) of each that `failed`."""

    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def run_video_jobs(function: Callable[..., str], jobs: Sequence[tuple], *, workers: int = 1,
                   preload: Sequence[str] = (), failure: str = "{video}: {reason}",
                   progress: Callable[[str, str], None] | None = None) -> JobTally:
    """Run `function(*job)` for every job and tally the results; a job that raises fails (warned) and the
    others go on.

    Args:
        function: a module-level function (workers pickle it) of a job's arguments, the video first,
            returning its status ("skipped" when complete already).
        jobs: one picklable argument tuple per video, the video's path first.
        workers: processes running jobs in parallel; 1 runs them here.
        preload: modules the worker processes import once, before any job (the decoders, OpenCV).
        failure: the warning of a failed job, formatted with `video` and `reason`.
        progress: called with (video, status) after each job.
    """
    tally = JobTally()

    def record(result: JobResult) -> None:
        video, status, reason = result
        if status == "failed":
            tally.failed.append((video, reason))
            warnings.warn(failure.format(video=video, reason=reason), stacklevel=4)
        elif status == "skipped":
            tally.skipped += 1
        else:
            tally.done += 1
        if progress is not None:
            progress(video, status)

    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            record(guarded_job((function, job)))
        return tally
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # Workers forked from a clean server process: a fork of a process whose torch has run OpenMP threads can
    # hang in the child; the server imports what the jobs need once for all of them.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(preload))
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
        for result in pool.map(guarded_job, [(function, job) for job in jobs], chunksize=1):
            record(result)
    return tally


def guarded_job(task: tuple[Callable[..., str], tuple]) -> JobResult:
    """(video, status, reason) of `function(*job)`: an unreadable video, or any error of one video (an
    OpenCV or FFmpeg error on odd frames), fails that video and not the run."""
    function, job = task
    try:
        return job[0], function(*job), ""
    except VideoDecodeError as err:
        return job[0], "failed", err.reason
    except Exception as err:  # noqa: BLE001 - one bad video must not stop the rest
        return job[0], "failed", f"{type(err).__name__}: {' '.join(str(err).split())}"


def check_workers(workers: object) -> None:
    """One line naming --workers unless it is a positive integer."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise LitVideoError(f"--workers must be a positive integer, got {workers!r}")


def check_subsets(subsets: Sequence[str] | None) -> None:
    """One line naming --subset unless each is train, val or test."""
    for subset in subsets or ():
        if subset not in ("train", "val", "test"):
            raise LitVideoError(f"--subset must be train, val or test, got {subset!r}")


def dataset_of(datamodule_or_format: Any, root: str | os.PathLike | None, caller: str) -> tuple[Any, str | os.PathLike]:
    """(DataModule, root) of a `VideoDataModule` (root default: its own) or of a format name and its root.

    Args:
        datamodule_or_format: a `VideoDataModule` or a format name.
        root: the dataset root; required with a format name.
        caller: the function's name, for the message when `root` is missing.
    """
    from lit_video.data.base import VideoDataModule, datamodule_class

    if isinstance(datamodule_or_format, VideoDataModule):
        return datamodule_or_format, datamodule_or_format.root if root is None else root
    if root is None:
        raise LitVideoError(f"{caller}: give the dataset root with a format name")
    if not os.path.isdir(root):
        raise LitVideoError(f"--root {root}: no such folder")
    return datamodule_class(datamodule_or_format)(root=str(root), num_workers=0), root
