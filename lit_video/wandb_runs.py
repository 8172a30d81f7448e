"""Weights & Biases runs: one for every `lit-video fit|validate|test` and one for every sweep trial, through
Lightning's `WandbLogger`; checkpoints as `model` artifacts; reading offline runs back.

A plain run's W&B run has project `lit-video` (or $WANDB_PROJECT, or `--wandb.project`), group = the stem of
its recipe (`--config experiments/synthetic/vos_stm_tiny.yaml` -> vos_stm_tiny) or `--wandb.group`, job_type
= the subcommand, name = the version of its CSV log folder (version_3), tags = task, model and data format.
Its config is the resolved config, as a sweep trial's, plus the compute profile (`compute/*`, `budget/*`) at
the end of a fit. The best and last checkpoints of each `ModelCheckpoint` are logged as versions of the
artifact `model-<run id>` (aliases `best` and `latest`), with the monitored metric, its score, the epoch
and the step as metadata (and the trial's parameters in a sweep). At each validation and test,
`lit_video.validation_media` logs what the model did (per-video scores, overlays, the confusion matrix) to
whichever W&B logger the trainer has (`media_videos` below).

Runs are offline unless the user has logged in (`wandb login` or WANDB_API_KEY): no account is needed, and
`wandb sync DIR` uploads them later, artifacts included. WANDB_MODE, when set, always wins; WANDB_MODE=disabled
or `--trainer.logger false` starts no run at all. A run never records a password: the command line and
every string of the config are redacted first.

Free of torch and Lightning at import time (`lit-video report` reads offline runs).
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from lit_video.errors import LitVideoError

DEFAULT_PROJECT = "lit-video"
# The subcommands that get a W&B run by default (predict writes files, no metrics).
TRACKED_SUBCOMMANDS = ("fit", "validate", "test")
MODES = ("online", "offline", "disabled", "shared")  # what wandb.init accepts ("dryrun" reads as offline)


@dataclass(frozen=True)
class WandbOptions:
    """The `wandb` section of a `fit|validate|test` config (`--wandb.group NAME`, ...).

    Args:
        project: W&B project; None: $WANDB_PROJECT, else lit-video.
        entity: team or user; None: the logged-in user's default entity.
        group: the run group; None: the stem of the first --config file (e.g. vos_stm_tiny).
        tags: tags added to the task, model and data format.
        mode: online, offline or disabled (no run); None: online when logged in, else offline. WANDB_MODE,
            when set, wins.
        log_model: log the best and last checkpoints as `model` artifacts at the end of a fit.
        media_videos: videos whose predictions are drawn and logged at every validation and test (overlays,
            captions), beside every video's scores and, for classification, the confusion matrix
            (`lit_video.validation_media`); 0 logs none of them.
        media_seed: chooses those videos (by a hash of their ids: the same videos every epoch and every run).
    """

    project: str | None = None
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    mode: Literal["online", "offline", "disabled"] | None = None
    log_model: bool = True
    media_videos: int = 4
    media_seed: int = 0


def logged_in() -> bool:
    """Whether W&B has an API key: WANDB_API_KEY, or a `wandb login` entry in ~/.netrc for the host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def resolve_mode(mode: str | None = None) -> str:
    """The mode a run uses: WANDB_MODE, else `mode`, else online only when logged in (an online run
    without network would wait on the server instead of training)."""
    mode = os.environ.get("WANDB_MODE") or mode or ("online" if logged_in() else "offline")
    return "offline" if mode == "dryrun" else mode


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


def redact_config(value: Any) -> Any:
    """`value` (a config: dicts, lists, strings, numbers) with every password in its strings masked, the W&B
    API key included (a storage URL or a checkpoint URL may carry one)."""
    from lit_video.sweep.storage import MASK, redact

    if isinstance(value, dict):
        return {key: redact_config(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_config(item) for item in value]
    if isinstance(value, str):
        text = redact(value)
        api_key = os.environ.get("WANDB_API_KEY")
        return text.replace(api_key, MASK) if api_key else text
    return value


@functools.cache
def logger_class() -> type:
    """Lightning's `WandbLogger`, with what lit-video's runs add to it (see `LitVideoWandbLogger` inside)."""
    from lightning.pytorch.loggers import WandbLogger
    from lightning.pytorch.loggers.utilities import _scan_checkpoints
    from lightning.pytorch.utilities import rank_zero_only

    class LitVideoWandbLogger(WandbLogger):
        """`WandbLogger` whose run records the command line without a password, can start with a given config,
        and logs checkpoints with their epoch, step and monitored score as metadata.

        Attributes:
            run_config: the config the run starts with (a plain run's resolved config). When set, Lightning's
                own copy of the task's and DataModule's hyperparameters is not logged: the resolved config
                holds them under model.init_args / data.init_args, and Lightning's would overwrite the
                "model" section with the model's registry name.
            artifact_metadata: added to every checkpoint artifact's metadata (a trial's parameters).
            cost_source: what the fit measured (`ComputeProfileCallback.metrics`), added to the config as
                `compute`, `budget` sections as each stage ends, a failed one included.
        """

        run_config: dict[str, Any] | None = None
        artifact_metadata: dict[str, Any] | None = None
        cost_source: Callable[[], dict[str, Any]] | None = None

        @property
        def experiment(self):
            started = self._experiment is not None
            if not started and self.save_dir:
                Path(self.save_dir).mkdir(parents=True, exist_ok=True)  # else W&B writes to a temporary folder
            with redacted_argv():
                run = super().experiment
            if not started and self.run_config is not None and rank_zero_only.rank == 0:
                run.config.update(self.run_config, allow_val_change=True)
            return run

        @rank_zero_only
        def log_hyperparams(self, params) -> None:
            if self.run_config is not None:
                _ = self.experiment  # Lightning calls this as a stage starts: the run starts with its config
                return
            if isinstance(params, dict):  # a trial's resolved config, redacted as a plain run's
                # the `wandb` section describes the run itself: W&B records its project, group and tags apart
                params = redact_config({key: value for key, value in params.items() if key != "wandb"})
            super().log_hyperparams(params)

        @rank_zero_only
        def update_config(self, params: dict[str, Any]) -> None:
            """Add `params` to the run's config (what `log_hyperparams` does without `run_config`)."""
            super().log_hyperparams(params)

        @rank_zero_only
        def finalize(self, status: str) -> None:
            costs = cost_sections(self.cost_source()) if self.cost_source is not None else {}
            if costs and self._experiment is not None:
                self.update_config(costs)
            super().finalize(status)  # the checkpoint artifacts, after a successful stage only

        def _scan_and_log_checkpoints(self, checkpoint_callback) -> None:
            # Lightning's own, with the checkpoint's epoch and step and the monitor in the metadata
            import wandb

            for mtime, path, score, _ in _scan_checkpoints(checkpoint_callback, self._logged_model_time):
                metadata = {**checkpoint_metadata(path, checkpoint_callback, score), **(self.artifact_metadata or {})}
                if not self._checkpoint_name:
                    self._checkpoint_name = f"model-{self.experiment.id}"
                artifact = wandb.Artifact(name=self._checkpoint_name, type="model", metadata=metadata)
                artifact.add_file(path, name="model.ckpt", policy=self.add_file_policy)
                best = path == checkpoint_callback.best_model_path
                self.experiment.log_artifact(artifact, aliases=["latest", "best"] if best else ["latest"])
                self._logged_model_time[path] = mtime

    return LitVideoWandbLogger


def checkpoint_metadata(path: str | os.PathLike, checkpoint_callback: Any, score: Any) -> dict[str, Any]:
    """A checkpoint artifact's metadata: the monitored metric and mode, its score, the checkpoint's epoch and
    global step (read from the file), its file name and the callback's settings.

    Args:
        path: the checkpoint file.
        checkpoint_callback: the `ModelCheckpoint` that wrote it.
        score: the monitored value it was saved with (a tensor, a number or None).
    """
    score = score.item() if hasattr(score, "item") else score
    epoch, step = _checkpoint_position(path)
    settings = {key: getattr(checkpoint_callback, key) for key in
                ("monitor", "mode", "save_last", "save_top_k", "save_weights_only", "_every_n_train_steps")
                if hasattr(checkpoint_callback, key)}
    return {"monitor": getattr(checkpoint_callback, "monitor", None), "mode": getattr(checkpoint_callback, "mode", None),
            "score": score, "epoch": epoch, "global_step": step, "original_filename": Path(path).name,
            checkpoint_callback.__class__.__name__: settings}  # a weakref proxy: type() would say ProxyType


def _checkpoint_position(path: str | os.PathLike) -> tuple[int | None, int | None]:
    """(epoch, global_step) stored in a Lightning checkpoint, memory-mapped (its weights are not read);
    (None, None) for a file that is not one."""
    import torch

    from lit_video.tasks.optim import OptimizerConfig

    try:
        with torch.serialization.safe_globals([OptimizerConfig]):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - a checkpoint torch cannot map is still logged, without its position
        return None, None
    if not isinstance(checkpoint, dict):
        return None, None
    return checkpoint.get("epoch"), checkpoint.get("global_step")


def finish_run(logger, summary: dict[str, Any], exit_code: int) -> None:
    """Write `summary` and close the logger's run, so that the next logger starts a new one (rank 0 only).

    Lightning's `WandbLogger` never finishes its run, and the next logger would reuse a run left open."""
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank != 0 or logger is None or logger._experiment is None:
        return
    run = logger.experiment
    if summary:
        run.summary.update(summary)
    run.finish(exit_code=exit_code)


def cost_sections(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`compute/*`, `budget/*` and `batch/*` values as config sections: {"compute": {...}, "budget": {...}}."""
    sections: dict[str, dict[str, Any]] = {}
    for key, value in metrics.items():
        section, _, name = key.partition("/")
        if section in ("compute", "budget", "batch") and name:
            sections.setdefault(section, {})[name] = value
    return sections


def resolved_config(parser, config, model, datamodule) -> dict[str, Any]:
    """The full config of a built LightningCLI, the values linked at instantiation (num_classes) included.

    Args:
        parser: the (subcommand's) parser.
        config: its parsed config.
        model, datamodule: the built task and DataModule.
    """
    import yaml

    resolved = yaml.safe_load(parser.dump(config, skip_check=True))
    for section, module in (("model", model), ("data", datamodule)):
        init_args = (resolved.get(section) or {}).get("init_args")
        if isinstance(init_args, dict) and module is not None:
            for key, value in module.hparams.items():
                if not key.startswith("_") and key not in init_args and isinstance(value, int | float | str | bool):
                    init_args[key] = value
    return resolved


def run_tags(model, datamodule) -> list[str]:
    """The task (its module: classification, vos, vis, captioning), the model's registry name and the data
    format (the DataModule's module: ucf101, davis, ...) of a run."""
    def short(obj: Any, package: str) -> str:
        module = type(obj).__module__
        return module.rpartition(".")[2] if module.startswith(package) else type(obj).__name__

    tags = [short(model, "lit_video.tasks.")]
    name = getattr(model, "hparams", {}).get("model")
    if isinstance(name, str):
        tags.append(name)
    if datamodule is not None:
        tags.append(short(datamodule, "lit_video.data."))
    return tags


def recipe_group(config_files: Any) -> str | None:
    """The stem of the first config file given (`--config experiments/x/vos_stm_tiny.yaml` -> vos_stm_tiny)."""
    for path in config_files or []:
        text = str(getattr(path, "relative", None) or path)
        if text:
            return Path(text).stem
    return None


def plain_run_logger(options: WandbOptions | None, subcommand: str, trainer, config: dict[str, Any],
                     group: str | None, tags: list[str], cost_source: Callable[[], dict[str, Any]] | None = None):
    """The W&B logger of a `fit|validate|test` run without a logger of its own, or None when W&B is disabled.

    Args:
        options: the config's `wandb` section.
        subcommand: the run's job_type.
        trainer: the built trainer; its first logger's version names the run, and its default_root_dir holds
            the run (`<default_root_dir>/wandb/offline-run-*` when offline).
        config: the resolved config the run starts with (redacted here).
        group: the recipe's stem, unless `options.group` gives one.
        tags: the task, model and data format.
        cost_source: returns the compute profile's `compute/*` and `budget/*` values.
    """
    options = options or WandbOptions()
    mode = resolve_mode(options.mode)
    if mode not in MODES:  # W&B would stop the run with a traceback once training starts
        raise LitVideoError(f"WANDB_MODE={mode!r}: expected one of {', '.join(MODES)} (or unset it)")
    if mode == "disabled":
        return None
    version = trainer.loggers[0].version if trainer.loggers else None
    name = version if isinstance(version, str) else f"version_{version}" if version is not None else None
    logger = logger_class()(
        name=name, save_dir=str(trainer.default_root_dir), project=options.project or os.environ.get(
            "WANDB_PROJECT") or DEFAULT_PROJECT, entity=options.entity, group=options.group or group,
        job_type=subcommand, tags=list(dict.fromkeys([*tags, *options.tags])), mode=mode,
        log_model=options.log_model and subcommand == "fit")
    logger.run_config = redact_config({key: value for key, value in config.items() if key != "wandb"})
    logger.cost_source = cost_source
    return logger


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


def read_offline_records(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every record of an offline run's `.wandb` log (run, config, history, artifact, ...), read with
    `wandb leet inspect --json`.

    Args:
        run_dir: a `wandb/offline-run-*` folder.
    """
    done = subprocess.run([wandb_executable(), "leet", "inspect", "--json", str(run_dir)], capture_output=True,
                          text=True, timeout=120)
    if done.returncode != 0:
        raise LitVideoError(f"cannot read W&B run {run_dir}: {done.stderr.strip().splitlines()[-1:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def offline_runs(save_dir: str | Path) -> list[Path]:
    """The offline run folders under a W&B save directory (a sweep's study folder, a run's default_root_dir),
    oldest first."""
    return sorted(Path(save_dir).glob("wandb/offline-run-*"))
