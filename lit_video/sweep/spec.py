"""Sweep specs: a base experiment, a search space over any config key, objectives, sampler, budget.

    experiment: experiments/synthetic/r2plus1d_tiny.yaml   # relative to the spec file or the cwd
    study_name: demo
    storage: null                      # default: sqlite:///<out_dir>/<study_name>.db
    out_dir: outputs/sweeps            # trial folders and the default storage
    overrides: {data.init_args.root: data/synthetic/ucf101}     # fixed for every trial
    search_space:
      data.init_args.clip_len: {type: categorical, choices: [4, 8, 16]}
      data.init_args.stride: {type: int, low: 1, high: 3}
      model.init_args.optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    seeds: [0, 1]                      # repeats of each configuration (a grid dimension)
    objectives: [{metric: val/acc_video_best, direction: maximize}]
    sampler: tpe                       # tpe | grid | random | nsga2
    pruner: median                     # median | hyperband | none (multi-objective: none)
    budget: {max_epochs: 3}            # trainer.* for every trial
    n_trials: 20
    timeout: null                      # seconds
    wandb: {project: lit-video, mode: null, tags: []}   # mode: online | offline | disabled | null (auto)
    heartbeat: {interval: 60, grace_period: 180, max_retry: 3}   # RDB storages: retrying dead workers' trials
    checkpoint_every_n_steps: null     # resume checkpoints: every epoch, and every N steps when set
    slurm: {partition: gpu, time_min: 240, gpus_per_worker: 1}   # --launcher slurm (lit_video.sweep.launch)

Everything is checked by `SweepSpec.load` (spec keys, types; the `wandb:`, `heartbeat:` and `slurm:`
sections by `lit_video.sweep.settings`) and `validate` (every swept and fixed key against the real
config parser, at the extremes of its range) before any trial starts.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lit_video.sweep.settings import (
    HeartbeatSettings,
    SweepSpecError,
    WandbSettings,
    heartbeat_settings,
    positive_int,
    slurm_section,
    wandb_settings,
)

SAMPLERS = ("tpe", "grid", "random", "nsga2")
PRUNERS = ("median", "hyperband", "none")
SPEC_KEYS = {"experiment", "study_name", "storage", "out_dir", "overrides", "search_space", "seeds", "objectives",
             "sampler", "pruner", "budget", "n_trials", "timeout", "wandb", "heartbeat", "checkpoint_every_n_steps",
             "slurm"}
SEED_KEY = "seed_everything"


def short_name(key: str) -> str:
    """`data.init_args.clip_len` -> `clip_len`: what a plot axis or a log line needs."""
    return key.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Param:
    """One swept config key.

    Args:
        key: dotted config key, e.g. "data.init_args.clip_len".
        type: "int", "float" or "categorical".
        low, high: range of int / float parameters (inclusive).
        log: sample on a log scale.
        step: int / float step.
        choices: values of a categorical parameter.
    """

    key: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def grid_values(self) -> list:
        """Every value of a grid dimension (categorical choices, or an int range by its step)."""
        if self.type == "categorical":
            return list(self.choices)
        if self.type == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        raise SweepSpecError(f"search_space.{self.key}: a grid needs categorical or int parameters, not float")

    def extremes(self) -> list:
        """The values that bound the range: each is checked against the config parser."""
        if self.type == "categorical":
            return list(self.choices)
        low = int(self.low) if self.type == "int" else self.low
        high = int(self.high) if self.type == "int" else self.high
        return [low, high]


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str  # "maximize" | "minimize"


@dataclass
class SweepSpec:
    """A parsed sweep spec (see the module docstring for the file format)."""

    path: Path
    experiment: Path
    study_name: str
    storage: str | None
    out_dir: Path
    overrides: dict[str, Any]
    params: list[Param]
    seeds: list[int]
    objectives: list[Objective]
    sampler: str
    pruner: str
    budget: dict[str, Any]
    n_trials: int | None
    timeout: float | None
    wandb: WandbSettings = WandbSettings()
    heartbeat: HeartbeatSettings = HeartbeatSettings()
    checkpoint_every_n_steps: int | None = None
    slurm: dict[str, Any] = field(default_factory=dict)  # as given: the command line may override each key

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @classmethod
    def load(cls, path: str | Path) -> SweepSpec:
        path = Path(path)
        if not path.is_file():
            raise SweepSpecError(f"sweep spec {path} does not exist")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise SweepSpecError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
        if not isinstance(raw, dict):
            raise SweepSpecError(f"{path}: expected a mapping of spec keys")
        unknown = sorted(set(raw) - SPEC_KEYS)
        if unknown:
            raise SweepSpecError(f"{path}: unknown key '{unknown[0]}' (known: {', '.join(sorted(SPEC_KEYS))})")

        def need(key: str):
            if key not in raw or raw[key] in (None, "", [], {}):
                raise SweepSpecError(f"{path}: '{key}' is required")
            return raw[key]

        experiment = Path(need("experiment"))
        if not experiment.is_file() and (path.parent / experiment).is_file():
            experiment = path.parent / experiment
        if not experiment.is_file():
            raise SweepSpecError(f"{path}: experiment: config file {raw['experiment']} does not exist")
        params = [_param(path, key, value) for key, value in (need("search_space") or {}).items()]
        seeds = raw.get("seeds", [0])
        if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
            raise SweepSpecError(f"{path}: seeds: expected a list of integers, got {seeds!r}")
        objectives = [_objective(path, i, o) for i, o in enumerate(need("objectives"))]
        sampler = raw.get("sampler", "tpe")
        if sampler not in SAMPLERS:
            raise SweepSpecError(f"{path}: sampler: '{sampler}' is not one of {', '.join(SAMPLERS)}")
        pruner = raw.get("pruner", "none" if len(objectives) > 1 else "median")
        if pruner not in PRUNERS:
            raise SweepSpecError(f"{path}: pruner: '{pruner}' is not one of {', '.join(PRUNERS)}")
        if len(objectives) > 1 and pruner != "none":
            raise SweepSpecError(f"{path}: pruner: Optuna cannot prune multi-objective studies; use 'none'")
        if sampler == "grid":
            for p in params:
                try:
                    p.grid_values()
                except SweepSpecError as err:
                    raise SweepSpecError(f"{path}: {err}") from None
        budget = raw.get("budget") or {}
        overrides = raw.get("overrides") or {}
        for name, mapping in (("budget", budget), ("overrides", overrides)):
            if not isinstance(mapping, dict):
                raise SweepSpecError(f"{path}: {name}: expected a mapping of config keys to values")
        n_trials = raw.get("n_trials")
        if n_trials is not None and (not isinstance(n_trials, int) or n_trials < 1):
            raise SweepSpecError(f"{path}: n_trials: expected a positive integer, got {n_trials!r}")
        return cls(
            path=path, experiment=experiment, study_name=str(raw.get("study_name") or path.stem),
            storage=raw.get("storage"), out_dir=Path(raw.get("out_dir") or "outputs/sweeps"), overrides=overrides,
            params=params, seeds=seeds, objectives=objectives, sampler=sampler, pruner=pruner, budget=budget,
            n_trials=n_trials, timeout=raw.get("timeout"), wandb=wandb_settings(path, raw.get("wandb")),
            heartbeat=heartbeat_settings(path, raw.get("heartbeat")),
            checkpoint_every_n_steps=positive_int(path, "checkpoint_every_n_steps", raw.get("checkpoint_every_n_steps")),
            slurm=slurm_section(path, raw.get("slurm")),
        )

    def grid(self) -> dict[str, list]:
        """The grid of a grid sweep, seeds included as a dimension."""
        space = {p.key: p.grid_values() for p in self.params}
        space[SEED_KEY] = list(self.seeds)
        return space

    @property
    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid().values())

    def config_args(self, values: dict[str, Any], seed: int, trial_dir: Path | None = None) -> list[str]:
        """Command-line arguments (no subcommand) of one trial's config."""
        args = ["--config", str(self.experiment)]
        fixed = {**self.overrides, **{f"trainer.{k}": v for k, v in self.budget.items()}}
        for key, value in {**fixed, **values, SEED_KEY: seed}.items():
            args += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
        if trial_dir is not None:
            args += ["--trainer.default_root_dir", str(trial_dir)]
        return args

    def validate(self) -> None:
        """Check every fixed and swept key, at the ends of its range, against the config parser."""
        from jsonargparse import ArgumentError

        from lit_video.training import config_error_reason, validate_config

        checks = [({}, "overrides / budget")]
        for p in self.params:
            checks += [({p.key: v}, f"search_space.{p.key}") for v in p.extremes()]
        for values, where in checks:
            try:
                validate_config(self.config_args(values, self.seeds[0]))
            except ArgumentError as err:
                _, reason = config_error_reason(err)
                value = f" = {next(iter(values.values()))!r}" if values else ""
                raise SweepSpecError(f"{self.path}: {where}{value}: {reason}") from None


def _param(path: Path, key: str, value: Any) -> Param:
    where = f"{path}: search_space.{key}"
    if not isinstance(value, dict) or "type" not in value:
        raise SweepSpecError(f"{where}: expected {{type: int|float|categorical, ...}}")
    kind = value["type"]
    if kind == "categorical":
        choices = value.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SweepSpecError(f"{where}: categorical needs a non-empty 'choices' list")
        return Param(key, kind, choices=tuple(choices))
    if kind not in ("int", "float"):
        raise SweepSpecError(f"{where}: type '{kind}' is not int, float or categorical")
    try:
        low, high = float(value["low"]), float(value["high"])
    except (KeyError, TypeError, ValueError):
        raise SweepSpecError(f"{where}: {kind} needs numeric 'low' and 'high'") from None
    if low > high or (value.get("log") and low <= 0):
        raise SweepSpecError(f"{where}: need low <= high (and low > 0 with log: true)")
    unknown = set(value) - {"type", "low", "high", "log", "step"}
    if unknown:
        raise SweepSpecError(f"{where}: unknown field '{sorted(unknown)[0]}'")
    return Param(key, kind, low, high, bool(value.get("log", False)), value.get("step"))


def _objective(path: Path, index: int, value: Any) -> Objective:
    if not isinstance(value, dict) or "metric" not in value:
        raise SweepSpecError(f"{path}: objectives[{index}]: expected {{metric: ..., direction: maximize|minimize}}")
    direction = value.get("direction", "maximize")
    if direction not in ("maximize", "minimize"):
        raise SweepSpecError(f"{path}: objectives[{index}].direction: '{direction}' is not maximize or minimize")
    return Objective(str(value["metric"]), direction)
