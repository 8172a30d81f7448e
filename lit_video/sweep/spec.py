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
    budget: {max_epochs: 3}            # trainer.* for every trial, or an equal-compute budget (below)
    micro_batch: null                  # auto: the largest micro-batch that fits, gradients accumulated
    n_trials: 20
    timeout: null                      # seconds
    wandb: {project: lit-video, mode: null, tags: []}   # mode: online | offline | disabled | null (auto)
    heartbeat: {interval: 60, grace_period: 180, max_retry: 3}   # RDB storages: retrying dead workers' trials
    checkpoint_every_n_steps: null     # resume checkpoints: every epoch, and every N steps when set
    slurm: {partition: gpu, time_min: 240, gpus_per_worker: 1}   # --launcher slurm (lit_video.sweep.launch)

`budget:` holds trainer arguments, and may hold one training-compute budget instead of an epoch count:
`train_pflops: 2.0` or `train_device_hours: 1`. Each trial then derives its own `max_steps` from its measured
cost (`lit_video.run_cost`), so that trials of different clip length, resolution or model train with the
same compute. `micro_batch: auto` keeps each trial's batch when it does not fit the device: the largest
micro-batch that fits, with gradients accumulated to the configured batch (`lit_video.micro_batch`).

Everything is checked by `SweepSpec.load` (spec keys, types; the `wandb:`, `heartbeat:` and `slurm:`
sections by `lit_video.sweep.settings`) and `validate` (every swept and fixed key against the real
config parser, at the extremes of its range; with `check_paths`, the dataset root too) before any
trial starts. The file is read by `lit_video.yaml_files.load_yaml`: a key given twice (in
`search_space`, say) or a document of nested aliases is refused.

A study name is also a folder name (`<out_dir>/<study_name>/`, `<out_dir>/<study_name>.db`): it may not
hold a path separator or a control character, nor be `.` or `..` (`check_study_name`, `study_folder`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lit_video.sweep.settings import (
    HeartbeatSettings,
    SweepSpecError,
    WandbSettings,
    heartbeat_settings,
    positive_int,
    slurm_section,
    wandb_settings,
)
from lit_video.yaml_files import YamlFileError, load_yaml

SAMPLERS = ("tpe", "grid", "random", "nsga2")
PRUNERS = ("median", "hyperband", "none")
SPEC_KEYS = {"experiment", "study_name", "storage", "out_dir", "overrides", "search_space", "seeds", "objectives",
             "sampler", "pruner", "budget", "n_trials", "timeout", "wandb", "heartbeat", "checkpoint_every_n_steps",
             "slurm", "micro_batch"}
# `budget:` keys that are not trainer arguments: the compute budget of `lit_video.run_cost.ComputeProfileCallback`
COMPUTE_BUDGET_KEYS = ("train_pflops", "train_device_hours")
# trainer limits a compute budget replaces (it sets max_steps itself and lifts the epoch limit)
BUDGET_REPLACES = ("max_epochs", "max_steps", "max_time", "min_epochs", "min_steps")
SEED_KEY = "seed_everything"
DATA_ROOT_KEY = "data.init_args.root"  # the dataset folder of every DataModule: checked to exist before a sweep
# A study name becomes a folder and a database file name: well under the usual 255-byte file name limit
STUDY_NAME_MAX_BYTES = 200


def check_study_name(name: Any, where: str) -> str:
    """`name` when it can name the study's folder and files, else a SweepSpecError naming `where`.

    Args:
        name: the study name (from the spec's `study_name`, its file name or --study-name).
        where: what to call its source in the error, e.g. "spec.yaml: study_name" or "--study-name".
    """
    problem = None
    if not isinstance(name, str) or not name:
        problem = "expected a non-empty name"
    elif name in (".", ".."):
        problem = "it would name the folder above or the output folder itself"
    elif "/" in name or "\\" in name:
        problem = "it holds a path separator"
    elif any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in name):
        problem = "it holds a control character"
    elif name.startswith("-"):
        problem = "a leading '-' reads as an option on a command line"
    elif len(name.encode()) > STUDY_NAME_MAX_BYTES:
        problem = f"longer than {STUDY_NAME_MAX_BYTES} bytes"
    if problem:
        raise SweepSpecError(f"{where}: {name!r} cannot name the study's folder ({problem}); use a name of letters, "
                             f"digits, '_', '-' and '.'")
    return name


def study_folder(spec: SweepSpec, study_name: str | None = None) -> Path:
    """`<out_dir>/<study_name>`: the trial folders, W&B runs and SLURM logs of a study.

    Args:
        spec: the loaded sweep spec.
        study_name: default: the spec's.

    Raises:
        SweepSpecError: a study name that would point outside out_dir (see `check_study_name`).
    """
    name = spec.study_name if study_name is None else study_name
    return spec.out_dir / check_study_name(name, "study name")


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

    def distribution(self):
        """The Optuna distribution `suggest` samples from (a study holds one per parameter name)."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.type == "categorical":
            return CategoricalDistribution(list(self.choices))
        if self.type == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def contains(self, value: Any) -> bool:
        """Whether `value` is one this parameter can take (a choice, or a number in its range on its step)."""
        if self.type == "categorical":
            return any(value == c and type(value) is type(c) for c in self.choices)
        if not _number(value) or (self.type == "int" and not float(value).is_integer()):
            return False
        if self.step:
            steps = (value - self.low) / self.step
            if abs(steps - round(steps)) > 1e-9:
                return False
        return self.low <= value <= self.high

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
    micro_batch: str | None = None  # "auto", or None: each trial trains at its configured batch

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @classmethod
    def load(cls, path: str | Path) -> SweepSpec:
        path = Path(path)
        if not path.is_file():
            raise SweepSpecError(f"sweep spec {path} does not exist")
        try:
            raw = load_yaml(path)  # a repeated key or a document of nested aliases: one line
        except YamlFileError as err:
            raise SweepSpecError(str(err)) from None
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            raise SweepSpecError(f"{path}: expected a mapping of spec keys")
        unknown = sorted(set(raw) - SPEC_KEYS)
        if unknown:
            raise SweepSpecError(f"{path}: unknown key '{unknown[0]}' (known: {', '.join(sorted(SPEC_KEYS))})")

        def need(key: str):
            if key not in raw or raw[key] in (None, "", [], {}):
                raise SweepSpecError(f"{path}: '{key}' is required")
            return raw[key]

        for key in ("experiment", "storage", "out_dir"):
            if raw.get(key) is not None and not isinstance(raw[key], str):
                raise SweepSpecError(f"{path}: {key}: expected a path or URL as text, got {raw[key]!r}")
        experiment = Path(need("experiment"))
        if not experiment.is_file() and (path.parent / experiment).is_file():
            experiment = path.parent / experiment
        if not experiment.is_file():
            raise SweepSpecError(f"{path}: experiment: config file {raw['experiment']} does not exist")
        study_name = raw.get("study_name")
        if study_name is not None and (isinstance(study_name, bool) or not isinstance(study_name, str | int)):
            raise SweepSpecError(f"{path}: study_name: expected a name, got {study_name!r}")
        study_name = check_study_name(str(study_name) if study_name is not None else path.stem, f"{path}: study_name")
        space = need("search_space")
        if not isinstance(space, dict):
            raise SweepSpecError(f"{path}: search_space: expected a mapping of config keys to {{type: int|float|"
                                 f"categorical, ...}}, got a {type(space).__name__}")
        params = [_param(path, str(key), value) for key, value in space.items()]
        seeds = raw.get("seeds", [0])
        if (not isinstance(seeds, list) or not seeds
                or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
            raise SweepSpecError(f"{path}: seeds: expected a list of integers, got {seeds!r}")
        if len(set(seeds)) < len(seeds):
            raise SweepSpecError(f"{path}: seeds: {next(s for s in seeds if seeds.count(s) > 1)} is given twice")
        objectives = need("objectives")
        if not isinstance(objectives, list):
            raise SweepSpecError(f"{path}: objectives: expected a list of {{metric: ..., direction: "
                                 f"maximize|minimize}}, got {objectives!r}")
        objectives = [_objective(path, i, o) for i, o in enumerate(objectives)]
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
        _check_compute_budget(path, budget, overrides)
        micro_batch = raw.get("micro_batch")
        if micro_batch not in (None, "auto"):
            raise SweepSpecError(f"{path}: micro_batch: expected auto or null, got {micro_batch!r}")
        n_trials = positive_int(path, "n_trials", raw.get("n_trials"))
        timeout = raw.get("timeout")
        if timeout is not None and not (_number(timeout) and 0 < timeout < math.inf):
            raise SweepSpecError(f"{path}: timeout: expected a positive number of seconds (or null), got {timeout!r}")
        return cls(
            path=path, experiment=experiment, study_name=study_name,
            storage=raw.get("storage"), out_dir=Path(raw.get("out_dir") or "outputs/sweeps"), overrides=overrides,
            params=params, seeds=seeds, objectives=objectives, sampler=sampler, pruner=pruner, budget=budget,
            n_trials=n_trials, timeout=timeout, wandb=wandb_settings(path, raw.get("wandb")),
            heartbeat=heartbeat_settings(path, raw.get("heartbeat")),
            checkpoint_every_n_steps=positive_int(path, "checkpoint_every_n_steps", raw.get("checkpoint_every_n_steps")),
            slurm=slurm_section(path, raw.get("slurm")), micro_batch=micro_batch,
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
        fixed = {**self.overrides, **self.budget_args()}
        for key, value in {**fixed, **values, SEED_KEY: seed}.items():
            args += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
        if trial_dir is not None:
            args += ["--trainer.default_root_dir", str(trial_dir)]
        return args

    @property
    def compute_budget(self) -> dict[str, float]:
        """The training-compute budget of every trial ({"train_pflops": 2.0}), or {}."""
        return {key: value for key, value in self.budget.items() if key in COMPUTE_BUDGET_KEYS}

    def budget_args(self) -> dict[str, Any]:
        """The budget as config keys: trainer arguments, and the compute budget for the compute profile."""
        return {(f"compute_profile.{k}" if k in COMPUTE_BUDGET_KEYS else f"trainer.{k}"): v
                for k, v in self.budget.items()}

    def hashes(self) -> dict[str, str]:
        """Short hashes of what makes a study's trials comparable: the search space (seeds included), the
        base experiment's content, the fixed overrides (budget included) and the objectives."""
        experiment = load_yaml(self.experiment)
        parts = {
            "search_space": {"params": {p.key: {k: v for k, v in asdict(p).items() if k != "key"}
                                        for p in self.params}, "seeds": self.seeds},
            "experiment": experiment,
            # micro_batch only when set: a study recorded before the key existed keeps its hash
            "overrides": {**self.overrides, **self.budget_args(),
                          **({"micro_batch": self.micro_batch} if self.micro_batch else {})},
            "objectives": [asdict(o) for o in self.objectives],
        }
        return {part: hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]
                for part, value in parts.items()}

    def validate(self, check_paths: bool = False) -> None:
        """Check every fixed and swept key, at the ends of its range, against the config parser.

        Args:
            check_paths: also check that the dataset root (`data.init_args.root`, fixed or swept) is a
                folder, read from the working folder as the trials will; otherwise every trial would
                fail on it.
        """
        from jsonargparse import ArgumentError

        from lit_video.training import parse_config

        checks = [({}, "overrides / budget")]
        for p in self.params:
            checks += [({p.key: v}, f"search_space.{p.key}") for v in p.extremes()]
        checked_roots: set[str] = set()
        for values, where in checks:
            value = f" = {next(iter(values.values()))!r}" if values else ""
            try:
                _, config = parse_config(self.config_args(values, self.seeds[0]))
            except ArgumentError as err:
                raise SweepSpecError(f"{self.path}: {where}{value}: {_parser_reason(err)}") from None
            root = config.get(DATA_ROOT_KEY)
            if check_paths and isinstance(root, str) and root not in checked_roots:
                checked_roots.add(root)
                if not Path(root).is_dir():
                    source = (f"{where}{value}" if DATA_ROOT_KEY in values
                              else f"overrides.{DATA_ROOT_KEY}" if DATA_ROOT_KEY in self.overrides
                              else f"experiment {self.experiment}: {DATA_ROOT_KEY}")
                    relative = "" if Path(root).is_absolute() else f" (relative to the working folder {Path.cwd()})"
                    raise SweepSpecError(f"{self.path}: {source}: dataset root {root} does not exist or is not a "
                                         f"folder{relative}")


def _check_compute_budget(path: Path, budget: dict, overrides: dict) -> None:
    """At most one compute budget, a positive number, and no trainer limit beside it that it would override."""
    given = [key for key in COMPUTE_BUDGET_KEYS if key in budget]
    if len(given) > 1:
        raise SweepSpecError(f"{path}: budget: give train_pflops or train_device_hours, not both")
    if not given:
        return
    value = budget[given[0]]
    if not _number(value) or not 0 < value < math.inf:
        raise SweepSpecError(f"{path}: budget.{given[0]}: expected a positive number, got {value!r}")
    limits = [key for key in BUDGET_REPLACES if key in budget or f"trainer.{key}" in overrides]
    if limits:
        raise SweepSpecError(f"{path}: budget.{given[0]} sets every trial's steps from its measured cost; leave out "
                             f"{limits[0]} (the experiment's own epoch limit is lifted)")


def _parser_reason(err: BaseException) -> str:
    """The line of a jsonargparse error that says why a value does not parse, however deeply the key is
    nested (e.g. "expected int, got abc" for `data.init_args.clip_len: abc`)."""
    from lit_video.training import config_error_reason

    _, reason = config_error_reason(err)
    if reason and not reason.startswith("Parser key"):
        return reason
    noise = ("Parser key", "Problem with given class_path", "Does not validate against any of the Union subtypes",
             "Subtypes:", "Errors:", "Given value type:", "Given value:", "Expected a <class 'NoneType'>")
    for line in str(err).splitlines():
        text = line.strip().removeprefix("- ").strip()
        if text and not text.startswith(noise):
            expected = re.fullmatch(r"Expected a <class '([\w.]+)'>\. Got value: (.*)", text)
            return f"expected {expected[1]}, got {expected[2]}" if expected else text
    return reason or " ".join(str(err).split())[:300]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _param(path: Path, key: str, value: Any) -> Param:
    where = f"{path}: search_space.{key}"
    if not isinstance(value, dict) or "type" not in value:
        raise SweepSpecError(f"{where}: expected {{type: int|float|categorical, ...}}")
    kind = value["type"]
    known = {"categorical": {"type", "choices"}}.get(kind, {"type", "low", "high", "log", "step"})
    unknown = set(value) - known
    if kind == "categorical":
        if unknown:
            raise SweepSpecError(f"{where}: unknown field '{sorted(map(str, unknown))[0]}' (categorical takes "
                                 f"'choices')")
        choices = value.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SweepSpecError(f"{where}: categorical needs a non-empty 'choices' list")
        repeated = [c for i, c in enumerate(choices) if c in choices[:i]]
        if repeated:
            raise SweepSpecError(f"{where}: choices: {repeated[0]!r} is given twice")
        return Param(key, kind, choices=tuple(choices))
    if kind not in ("int", "float"):
        raise SweepSpecError(f"{where}: type '{kind}' is not int, float or categorical")
    if unknown:
        raise SweepSpecError(f"{where}: unknown field '{sorted(map(str, unknown))[0]}'")
    if not all(_number(value.get(end)) for end in ("low", "high")):
        raise SweepSpecError(f"{where}: {kind} needs numeric 'low' and 'high'")
    low, high = float(value["low"]), float(value["high"])
    if kind == "int" and not (low.is_integer() and high.is_integer()):
        raise SweepSpecError(f"{where}: int needs whole numbers for 'low' and 'high', got {value['low']!r} and "
                             f"{value['high']!r}")
    log = value.get("log", False)
    if not isinstance(log, bool):
        raise SweepSpecError(f"{where}.log: expected true or false, got {log!r}")
    if low > high or (log and low <= 0):
        raise SweepSpecError(f"{where}: need low <= high (and low > 0 with log: true)")
    step = value.get("step")
    if step is not None:
        if not _number(step) or step <= 0 or (kind == "int" and not float(step).is_integer()):
            expected = "a positive integer" if kind == "int" else "a positive number"
            raise SweepSpecError(f"{where}.step: expected {expected}, got {step!r}")
        if log:
            raise SweepSpecError(f"{where}: step and log: true cannot be combined (Optuna samples a log range "
                                 f"without a step)")
    return Param(key, kind, low, high, log, step)


def _objective(path: Path, index: int, value: Any) -> Objective:
    if not isinstance(value, dict) or "metric" not in value:
        raise SweepSpecError(f"{path}: objectives[{index}]: expected {{metric: ..., direction: maximize|minimize}}")
    direction = value.get("direction", "maximize")
    if direction not in ("maximize", "minimize"):
        raise SweepSpecError(f"{path}: objectives[{index}].direction: '{direction}' is not maximize or minimize")
    return Objective(str(value["metric"]), direction)
