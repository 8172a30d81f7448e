"""Weights & Biases for sweeps: one run per trial through Lightning's `WandbLogger`, and reading
offline runs back.

Each trial's run has group = study name, job_type = "trial", name = the trial number; its config is
the trial's full resolved config plus the swept values (`sweep/*`) and the compute profile
(`compute/*`); its summary holds the objective value(s) and the trial's state; its checkpoints are
`model` artifacts whose metadata holds the trial's parameters. Runs are offline unless the user has
logged in (`wandb login` or WANDB_API_KEY): no account is needed, and `wandb sync DIR` uploads them
later. WANDB_MODE, when set, always wins. What plain runs and trials share is `lit_video.wandb_runs`.
"""

from __future__ import annotations

from pathlib import Path

from lit_video import wandb_runs
from lit_video.sweep.settings import WandbSettings
from lit_video.wandb_runs import (  # noqa: F401 - this module's names since before plain runs had W&B
    finish_run,
    logged_in,
    offline_runs,
    read_offline_run,
    redacted_argv,
    wandb_executable,
)

_logger_class = wandb_runs.logger_class


def resolve_mode(settings: WandbSettings) -> str:
    """The mode a trial's run uses: WANDB_MODE, else the spec's, else online only when logged in
    (an online run without network would wait on the server instead of training)."""
    return wandb_runs.resolve_mode(settings.mode)


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
        group=study_name, job_type="trial", tags=[study_name, *settings.tags], mode=mode, log_model=True,
        # The sweep prints its own summary; W&B's start and sync banners would bury it.
        settings={"silent": True},
    )
