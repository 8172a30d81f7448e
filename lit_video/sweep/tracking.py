"""Weights & Biases for sweeps: one run per trial through Lightning's `WandbLogger`, and reading
offline runs back.

Each trial's run has group = study name, job_type = "trial", name = the trial number; its config is
the trial's full resolved config plus the swept values (`sweep/*`) and the compute profile
(`compute/*`); its summary holds the objective value(s) and the trial's state. Runs are offline unless
the user has logged in (`wandb login` or WANDB_API_KEY): no account is needed, and `wandb sync DIR`
uploads them later. WANDB_MODE, when set, always wins.
"""

from __future__ import annotations

import contextlib
import functools
import json
import netrc
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lit_video.errors import LitVideoError
from lit_video.sweep.settings import WandbSettings


def logged_in() -> bool:
    """Whether W&B has an API key: WANDB_API_KEY, or a `wandb login` entry in ~/.netrc for the host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def resolve_mode(settings: WandbSettings) -> str:
    """The mode a trial's run uses: WANDB_MODE, else the spec's, else online only when logged in
    (an online run without network would wait on the server instead of training)."""
    mode = os.environ.get("WANDB_MODE") or settings.mode or ("online" if logged_in() else "offline")
    return "offline" if mode == "dryrun" else mode


def trial_logger(settings: WandbSettings, study_name: str, trial_number: int, save_dir: Path):
    """A `WandbLogger` for one trial, or None when W&B is disabled.

    Args:
        settings: the spec's `wandb:` section.
        study_name: the run group.
        trial_number: the run name.
        save_dir: where runs are written (`<save_dir>/wandb/offline-run-*` when offline).
    """
    mode = resolve_mode(settings)
    if mode == "disabled":
        return None
    save_dir.mkdir(parents=True, exist_ok=True)
    return _logger_class()(
        name=str(trial_number), save_dir=str(save_dir), project=settings.project, entity=settings.entity,
        group=study_name, job_type="trial", tags=[study_name, *settings.tags], mode=mode,
        # The sweep prints its own summary; W&B's start and sync banners would bury it.
        settings={"silent": True},
    )


@functools.cache
def _logger_class() -> type:
    """Lightning's `WandbLogger`, but the run records the command line without a password.

    W&B copies sys.argv into the run's metadata when the run starts; `lit-video sweep --storage URL`
    would put the storage's password there."""
    from lightning.pytorch.loggers import WandbLogger

    class RedactedArgvWandbLogger(WandbLogger):
        @property
        def experiment(self):
            with redacted_argv():
                return super().experiment

    return RedactedArgvWandbLogger


@contextlib.contextmanager
def redacted_argv() -> Iterator[None]:
    """sys.argv with every password replaced by *** while the block runs (restored after it: DDP
    starts its other ranks with the real command line)."""
    from lit_video.sweep.storage import redact

    saved = list(sys.argv)
    sys.argv[:] = [redact(arg) for arg in saved]
    try:
        yield
    finally:
        sys.argv[:] = saved


def finish_run(logger, summary: dict[str, Any], exit_code: int) -> None:
    """Write the trial's summary and close its run, so the next trial starts a new one (rank 0 only).

    Lightning's `WandbLogger` never finishes its run, and the next logger would reuse a run left open."""
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank != 0 or logger is None:
        return
    run = logger.experiment
    run.summary.update(summary)
    run.finish(exit_code=exit_code)


def wandb_executable() -> str:
    """The `wandb` command installed beside this Python (the one whose run format we write)."""
    beside = Path(sys.executable).parent / "wandb"
    found = str(beside) if beside.is_file() else shutil.which("wandb")
    if found is None:
        raise LitVideoError("the wandb command is not installed: pip install wandb")
    return found


def read_offline_run(run_dir: str | Path) -> dict[str, Any]:
    """An offline run's state, config and summary, read with `wandb leet inspect --summary --json`.

    Args:
        run_dir: a `wandb/offline-run-*` folder.
    """
    run_dir = Path(run_dir)
    done = subprocess.run([wandb_executable(), "leet", "inspect", "--summary", "--json", str(run_dir)],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise LitVideoError(f"cannot read W&B run {run_dir}: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout)


def offline_runs(save_dir: str | Path) -> list[Path]:
    """The offline run folders under a sweep's W&B directory, oldest first."""
    return sorted(Path(save_dir).glob("wandb/offline-run-*"))
