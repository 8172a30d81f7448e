"""Running a sweep: one Optuna study, each trial a `lit-video fit` of the spec's experiment.

Trials go through the same LightningCLI path as `lit-video fit`; the sweep only adds Optuna's
pruning callback. A trial that runs out of memory, produces NaN or raises is recorded with its
reason (user attribute `failure`) and the sweep goes on, with memory freed in between. Re-running the
same command resumes the study: finished trials count toward `n_trials` and a grid is never re-run.
"""

from __future__ import annotations

import gc
import math
import time
import warnings
from pathlib import Path

import optuna
import torch
import yaml

from lit_video.errors import LitVideoError
from lit_video.sweep.profile import ComputeProfileCallback
from lit_video.sweep.spec import SEED_KEY, SweepSpec, short_name
from lit_video.sweep.storage import open_storage
from lit_video.sweep.tracking import finish_run, trial_logger

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)


def default_storage(spec: SweepSpec) -> str:
    """SQLite next to the outputs: right for one machine (see the README for clusters)."""
    spec.out_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(spec.out_dir / f'{spec.study_name}.db').resolve()}"


def _sampler(spec: SweepSpec, seed: int = 0) -> optuna.samplers.BaseSampler:
    if spec.sampler == "grid":
        return optuna.samplers.GridSampler(spec.grid(), seed=seed)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def load_study(spec: SweepSpec, storage: str | None = None, study_name: str | None = None) -> optuna.Study:
    """Create the spec's study, or open it when it exists; its objectives are named by their metrics."""
    study = optuna.create_study(
        study_name=study_name or spec.study_name,
        storage=open_storage(storage or spec.storage or default_storage(spec)),
        sampler=_sampler(spec),
        pruner=_pruner(spec),
        directions=[o.direction for o in spec.objectives],
        load_if_exists=True,
    )
    names = [o.metric for o in spec.objectives]
    if study.metric_names != names:
        # experimental since Optuna 3.2 and unchanged since; the report and the dashboard show these names
        with warnings.catch_warnings(category=optuna.exceptions.ExperimentalWarning, action="ignore"):
            study.set_metric_names(names)
    return study


def failure_reason(err: BaseException) -> str:
    """'infeasible: ...' for out-of-memory, 'failed: ...' for anything else, one line."""
    message = " ".join(str(err).split())[:300]
    if isinstance(err, torch.OutOfMemoryError) or "out of memory" in message.lower():
        return f"infeasible: out of memory ({message})"
    if isinstance(err, FloatingPointError):
        return f"failed: not a number ({message})"
    return f"failed: {type(err).__name__}: {message}"


class TrialRunner:
    """The Optuna objective: builds a trial's config, trains it, returns the objective value(s).

    Every trial also gets a W&B run (see `lit_video.sweep.tracking`) and records in its user
    attributes the compute profile and where its time went: `setup_time_s` (building the config,
    model, data and logger), `profile_time_s`, `fit_time_s` (profile included) and `wall_time_s`.
    """

    def __init__(self, spec: SweepSpec):
        self.spec = spec

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        from lightning.pytorch.callbacks import Callback
        from optuna_integration import PyTorchLightningPruningCallback

        from lit_video.train_cli import run_cli

        spec = self.spec
        values = {p.key: p.suggest(trial) for p in spec.params}
        # The seed is a grid dimension (and a parameter whenever there are repeats), so the report can
        # show the spread over seeds of each configuration.
        sweeps_seed = len(spec.seeds) > 1 or spec.sampler == "grid"
        seed = trial.suggest_categorical(SEED_KEY, spec.seeds) if sweeps_seed else spec.seeds[0]
        trial_dir = spec.out_dir / spec.study_name / f"trial_{trial.number:04d}"
        trial.set_user_attr("trial_dir", str(trial_dir))
        start = time.perf_counter()
        cli = logger = None
        summary: dict[str, object] = {"trial/number": trial.number}
        exit_code = 1
        try:
            cli = run_cli(spec.config_args(values, seed, trial_dir), run=False)
            logger = self._attach_wandb(cli, trial, values, seed)
            callbacks: list[Callback] = []
            pruning = None
            if spec.pruner != "none":
                pruning = PyTorchLightningPruningCallback(trial, monitor=spec.objectives[0].metric)
                callbacks.append(pruning)
            cli.trainer.callbacks.extend(callbacks)
            trial.set_user_attr("setup_time_s", time.perf_counter() - start)
            fit_start = time.perf_counter()
            cli.trainer.fit(cli.model, datamodule=cli.datamodule)
            trial.set_user_attr("fit_time_s", time.perf_counter() - fit_start)
            if pruning is not None:
                pruning.check_pruned()  # under DDP the pruning decision is taken on rank 0
            metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
            metrics.update(_record_profile(trial, cli))
            results = []
            for objective in spec.objectives:
                if objective.metric not in metrics:
                    raise LitVideoError(f"objective metric '{objective.metric}' was not logged "
                                        f"(logged: {', '.join(sorted(metrics))})")
                value = metrics[objective.metric]
                if math.isnan(value):
                    raise FloatingPointError(f"objective '{objective.metric}' is NaN")
                results.append(value)
                summary[f"objective/{objective.metric}"] = value
            summary["trial/state"], exit_code = "complete", 0
            return results if spec.multi_objective else results[0]
        except SystemExit as stop:
            # Lightning answers Ctrl-C with a graceful shutdown and sys.exit(1); Optuna would leave the
            # trial RUNNING forever. Re-raise it as the interrupt it was: the trial is marked failed
            # without a reason, and the next run of the sweep redoes it.
            summary["trial/state"] = "interrupted"
            raise KeyboardInterrupt from stop
        except optuna.TrialPruned:
            epoch = cli.trainer.current_epoch if cli is not None else None
            trial.set_user_attr("pruned_at_epoch", epoch)
            summary.update({"trial/state": "pruned", "trial/pruned_at_epoch": epoch})
            exit_code = 0
            raise
        except Exception as err:
            reason = failure_reason(err)
            trial.set_user_attr("failure", reason)
            summary.update({"trial/state": reason.split(":")[0], "trial/failure": reason})
            raise
        finally:
            if cli is not None:
                _record_profile(trial, cli)  # also for a trial that failed after profiling
            if logger is not None:
                if "compute/params" in trial.user_attrs:
                    logger.log_hyperparams({"compute": _compute_attrs(trial.user_attrs)})
                finish_run(logger, summary, exit_code)
            trial.set_user_attr("wall_time_s", time.perf_counter() - start)
            # Free this trial's model, loaders and workers before the next one starts.
            del cli, logger
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def _attach_wandb(self, cli, trial: optuna.Trial, values: dict, seed: int):
        """Add the trial's W&B run to the trainer's loggers, with the resolved config as its config."""
        spec = self.spec
        logger = trial_logger(spec.wandb, spec.study_name, trial.number, spec.out_dir / spec.study_name)
        if logger is None:
            return None
        cli.trainer.loggers = [*cli.trainer.loggers, logger]
        # The resolved config already holds the task's and DataModule's arguments under model.init_args /
        # data.init_args; Lightning's own copy of them would overwrite the "model" section with the
        # model's registry name.
        cli.model._log_hyperparams = False
        cli.datamodule._log_hyperparams = False
        config = resolved_config(cli)
        config["sweep"] = {"study": spec.study_name, "trial": trial.number, "seed": seed, "values": values}
        logger.log_hyperparams(config)  # starts the run now, so its start-up counts as set-up time
        trial.set_user_attr("wandb_dir", str(Path(logger.experiment.dir).parent)
                            if getattr(logger.experiment, "dir", None) else None)
        return logger


def resolved_config(cli) -> dict:
    """The full config of a built LightningCLI, the values linked at instantiation (num_classes) included."""
    config = yaml.safe_load(cli.parser.dump(cli.config))
    for section, module in (("model", cli.model), ("data", cli.datamodule)):
        init_args = config.get(section, {}).get("init_args")
        if isinstance(init_args, dict):
            for key, value in module.hparams.items():
                if not key.startswith("_") and key not in init_args and isinstance(value, int | float | str | bool):
                    init_args[key] = value
    return config


def _record_profile(trial: optuna.Trial, cli) -> dict[str, float]:
    """Copy the compute profile (if it ran) and its own duration into the trial's user attributes."""
    callback = next((c for c in cli.trainer.callbacks if isinstance(c, ComputeProfileCallback)), None)
    if callback is None or callback.profile is None:
        return {}
    metrics = callback.profile.as_metrics()
    for key, value in metrics.items():
        trial.set_user_attr(key, value)
    trial.set_user_attr("profile_time_s", callback.seconds)
    return metrics


def _compute_attrs(attrs: dict) -> dict:
    return {key.removeprefix("compute/"): value for key, value in attrs.items() if key.startswith("compute/")}


def interrupted(trial: optuna.trial.FrozenTrial) -> bool:
    """A trial that failed without a recorded reason: the sweep was stopped (Ctrl-C) while it ran."""
    return trial.state == optuna.trial.TrialState.FAIL and "failure" not in trial.user_attrs


def finished_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that count as done: complete, pruned, or failed for a recorded reason (OOM, NaN, error)."""
    return [t for t in study.get_trials(deepcopy=False, states=FINISHED) if not interrupted(t)]


def run_sweep(spec: SweepSpec, storage: str | None = None, study_name: str | None = None,
              n_trials: int | None = None, verbose: bool = False) -> optuna.Study:
    """Run (or resume) the sweep until `n_trials` trials have finished in the study, or the grid is done.

    Interrupted trials are run again with the same parameters; finished ones never are.

    Args:
        spec: a loaded sweep spec (validated here before any trial starts).
        storage, study_name: override the spec's.
        n_trials: finished trials the study should hold (default: the spec's, or the grid's size).
        verbose: print one line per finished trial (outcome, values, time).
    """
    spec.validate()
    study = load_study(spec, storage, study_name)
    target = n_trials or spec.n_trials or (spec.grid_size if spec.sampler == "grid" else None)
    done = {_params_key(t.params) for t in finished_trials(study)}
    # Optuna's GridSampler counts a failed trial's grid point as visited; an interrupted one must be
    # redone, so it is queued again (each point once).
    waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    done |= {_params_key(t.system_attrs.get("fixed_params", {})) for t in waiting}  # queued by an earlier run
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)):
        key = _params_key(trial.params)
        if interrupted(trial) and key not in done and trial.params:
            study.enqueue_trial(trial.params)  # not skip_if_exists: the failed trial itself has these params
            done.add(key)
    finished = len(finished_trials(study))
    if target is not None and finished >= target:
        return study
    remaining = None if target is None else target - finished
    # With several workers on one study each stops once the study as a whole has `target` finished trials.
    callbacks = [_StopAtFinished(target)] if target is not None else []
    if verbose:
        callbacks.append(_print_trial)
    study.optimize(TrialRunner(spec), n_trials=remaining, timeout=spec.timeout, catch=(Exception,),
                   callbacks=callbacks)
    return study


def _print_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """One line per finished trial, e.g. 'trial 3 complete: val/acc_video_best=0.9143 (clip_len=8) in 41 s'."""
    params = ", ".join(f"{short_name(k)}={v}" for k, v in trial.params.items())
    if trial.values is not None:
        outcome = ", ".join(f"{name}={value:.4g}" for name, value in zip(study.metric_names or [], trial.values))
    else:
        outcome = trial.user_attrs.get("failure") or (
            f"pruned at epoch {trial.user_attrs.get('pruned_at_epoch')}" if trial.state.name == "PRUNED" else "stopped")
    seconds = trial.user_attrs.get("wall_time_s", 0.0)
    print(f"trial {trial.number} {trial.state.name.lower()}: {outcome} ({params}) in {seconds:.0f} s", flush=True)


class _StopAtFinished:
    """Stops the study once it holds `target` finished (not interrupted) trials."""

    def __init__(self, target: int):
        self.target = target

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if len(finished_trials(study)) >= self.target:
            study.stop()


def _params_key(params: dict) -> tuple:
    return tuple(sorted(params.items()))
