"""The settings sections of a sweep spec (`wandb:`, `heartbeat:`, `slurm:`) and their checks.

Each section is a frozen record that the part of the sweep using it reads: `WandbSettings` the trial's
W&B run (`lit_video.sweep.tracking`), `HeartbeatSettings` the study's storage
(`lit_video.sweep.storage`), `SlurmSettings` the SLURM launcher (`lit_video.sweep.launch`). They live
here, below all of those and the spec parser, so that each imports them without importing the
others. Free of torch, Lightning and Optuna.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lit_video.errors import LitVideoError

WANDB_MODES = ("online", "offline", "disabled")


class SweepSpecError(LitVideoError):
    """A sweep spec that cannot run; the message names the file and the key."""


@dataclass(frozen=True)
class WandbSettings:
    """The `wandb:` section of a sweep spec.

    Args:
        project: W&B project of every trial's run.
        entity: team or user (default: the logged-in user's default entity).
        mode: "online", "offline", "disabled" (no run at all), or None: online when logged in, else
            offline. The WANDB_MODE environment variable overrides it.
        tags: tags of every run (the study name is always added).
    """

    project: str = "lit-video"
    entity: str | None = None
    mode: str | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class HeartbeatSettings:
    """The `heartbeat:` section: heartbeats of an RDB storage (Optuna's `heartbeat_interval` /
    `grace_period`).

    Args:
        interval: seconds between a running trial's heartbeats; None switches heartbeats off.
        grace_period: seconds without a heartbeat after which a trial counts as dead (> interval).
        max_retry: how many times a dead trial is queued again; None: without limit.
    """

    interval: int | None = 60
    grace_period: int = 180
    max_retry: int | None = 3


@dataclass(frozen=True)
class SlurmSettings:
    """The `slurm:` section: resources of each SLURM worker job; None leaves a resource to the
    partition's default.

    Args:
        partition: the SLURM partition (sbatch --partition).
        time_min: time limit of one job in minutes; a job at its limit is requeued and goes on.
        gpus_per_worker: GPUs per job (sbatch --gpus-per-node).
        cpus_per_worker: CPU cores per job (sbatch --cpus-per-task): DataLoader workers + 1.
        mem_gb: memory per job in GB (sbatch --mem).
        sbatch: any other sbatch option without its leading --, e.g. {"account": "x", "qos": "y"};
            a value of true gives a flag without a value.
    """

    partition: str | None = None
    time_min: int = 60
    gpus_per_worker: int | None = None
    cpus_per_worker: int | None = None
    mem_gb: float | None = None
    sbatch: dict[str, Any] = field(default_factory=dict)


SLURM_KEYS = tuple(f.name for f in dataclasses.fields(SlurmSettings))


def positive_int(path: Path, key: str, value: Any) -> int | None:
    """`value` when it is None or a positive integer (not a bool), else a SweepSpecError naming `key`."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise SweepSpecError(f"{path}: {key}: expected a positive integer, got {value!r}")
    return value


def _check_keys(path: Path, section: str, value: Any, known: tuple[str, ...]) -> None:
    """A mapping whose keys are all in `known`, else one line naming the first unknown key."""
    if not isinstance(value, dict) or set(value) - set(known):
        unknown = sorted(set(value) - set(known)) if isinstance(value, dict) else []
        detail = f"unknown key '{unknown[0]}'" if unknown else "expected a mapping"
        raise SweepSpecError(f"{path}: {section}: {detail} (known: {', '.join(sorted(known))})")


def _fields(record: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(record))


def wandb_settings(path: Path, value: Any) -> WandbSettings:
    """The checked `wandb:` section (`value`, as read from YAML) of the spec at `path`; defaults when absent."""
    if value is None:
        return WandbSettings()
    _check_keys(path, "wandb", value, _fields(WandbSettings))
    if value.get("mode") not in (None, *WANDB_MODES):
        raise SweepSpecError(f"{path}: wandb.mode: '{value['mode']}' is not one of {', '.join(WANDB_MODES)}")
    tags = value.get("tags") or []
    if not isinstance(tags, list):
        raise SweepSpecError(f"{path}: wandb.tags: expected a list, got {tags!r}")
    return WandbSettings(project=str(value.get("project") or "lit-video"), entity=value.get("entity"),
                         mode=value.get("mode"), tags=tuple(str(t) for t in tags))


def heartbeat_settings(path: Path, value: Any) -> HeartbeatSettings:
    """The checked `heartbeat:` section (`value`, as read from YAML) of the spec at `path`; defaults when absent."""
    if value is None:
        return HeartbeatSettings()
    _check_keys(path, "heartbeat", value, _fields(HeartbeatSettings))
    default = HeartbeatSettings()
    interval = positive_int(path, "heartbeat.interval", value.get("interval", default.interval))
    grace = positive_int(path, "heartbeat.grace_period", value.get("grace_period", default.grace_period))
    if interval is not None and grace <= interval:
        raise SweepSpecError(f"{path}: heartbeat.grace_period ({grace}) must be longer than heartbeat.interval "
                             f"({interval})")
    max_retry = value.get("max_retry", default.max_retry)
    if max_retry is not None and (not isinstance(max_retry, int) or max_retry < 0):
        raise SweepSpecError(f"{path}: heartbeat.max_retry: expected a non-negative integer, got {max_retry!r}")
    return HeartbeatSettings(interval=interval, grace_period=grace, max_retry=max_retry)


def _slurm_problem(key: str, value: Any) -> str | None:
    """What is wrong with one `slurm:` value, or None."""
    def integer(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if key == "partition" and not (isinstance(value, str) and value):
        return f"expected a partition name, got {value!r}"
    if key in ("time_min", "cpus_per_worker") and not (integer(value) and value >= 1):
        return f"expected a positive integer, got {value!r}"
    if key == "gpus_per_worker" and not (integer(value) and value >= 0):
        return f"expected a non-negative integer, got {value!r}"
    if key == "mem_gb" and not ((integer(value) or isinstance(value, float)) and value > 0):
        return f"expected a positive number of GB, got {value!r}"
    if key == "sbatch":
        if not isinstance(value, dict):
            return f"expected a mapping of sbatch options to values, got {value!r}"
        for option, setting in value.items():
            if not isinstance(option, str) or option.startswith("-") or not isinstance(setting, str | int | float):
                return f"expected option names without -- and scalar values, got {option!r}: {setting!r}"
    return None


def slurm_section(path: Path, value: Any) -> dict[str, Any]:
    """The checked `slurm:` section of the spec at `path` as given (keys of `SlurmSettings`); {} when
    absent. It stays a mapping: the launcher lays the command line's values over it
    (`lit_video.sweep.launch.merge_settings`), and only the keys given there count.

    Args:
        path: the spec file, named in error messages.
        value: the section as read from the YAML file.
    """
    if value is None:
        return {}
    known = ", ".join(SLURM_KEYS)
    if not isinstance(value, dict):
        raise SweepSpecError(f"{path}: slurm: expected a mapping (known: {known})")
    for key, setting in value.items():
        if key not in SLURM_KEYS:
            raise SweepSpecError(f"{path}: slurm: unknown key '{key}' (known: {known})")
        problem = _slurm_problem(key, setting)
        if problem:
            raise SweepSpecError(f"{path}: slurm.{key}: {problem}")
    return dict(value)
