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
from pathlib import Path

import optuna
import torch

from lit_video.errors import LitVideoError
from lit_video.sweep.profile import ComputeProfileCallback
from lit_video.sweep.spec import SEED_KEY, SweepSpec

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)


def default_storage(spec: SweepSpec) -> str:
    """SQLite next to the outputs: right for one machine (see the README for clusters)."""
    spec.out_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(spec.out_dir / f'{spec.study_name}.db').resolve()}"


def open_storage(url: str):
    """A storage URL, or a path ending in .log / .journal for Optuna's journal file on a shared disk."""
    if url.endswith((".log", ".journal")) and "://" not in url:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(url))
    return url


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
    return optuna.create_study(
        study_name=study_name or spec.study_name,
        storage=open_storage(storage or spec.storage or default_storage(spec)),
        sampler=_sampler(spec),
        pruner=_pruner(spec),
        directions=[o.direction for o in spec.objectives],
        load_if_exists=True,
    )


def failure_reason(err: BaseException) -> str:
    """'infeasible: ...' for out-of-memory, 'failed: ...' for anything else, one line."""
    message = " ".join(str(err).split())[:300]
    if isinstance(err, torch.OutOfMemoryError) or "out of memory" in message.lower():
        return f"infeasible: out of memory ({message})"
    if isinstance(err, FloatingPointError):
        return f"failed: not a number ({message})"
    return f"failed: {type(err).__name__}: {message}"


class TrialRunner:
    """The Optuna objective: builds a trial's config, trains it, returns the objective value(s)."""

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
        cli = None
        try:
            cli = run_cli(spec.config_args(values, seed, trial_dir), run=False)
            callbacks: list[Callback] = []
            pruning = None
            if spec.pruner != "none":
                pruning = PyTorchLightningPruningCallback(trial, monitor=spec.objectives[0].metric)
                callbacks.append(pruning)
            cli.trainer.callbacks.extend(callbacks)
            fit_start = time.perf_counter()
            cli.trainer.fit(cli.model, datamodule=cli.datamodule)
            trial.set_user_attr("fit_time_s", time.perf_counter() - fit_start)
            if pruning is not None:
                pruning.check_pruned()  # under DDP the pruning decision is taken on rank 0
            metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
            profile = next((c.profile for c in cli.trainer.callbacks if isinstance(c, ComputeProfileCallback)), None)
            if profile is not None:
                for key, value in profile.as_metrics().items():
                    trial.set_user_attr(key, value)
                metrics.update(profile.as_metrics())
            results = []
            for objective in spec.objectives:
                if objective.metric not in metrics:
                    raise LitVideoError(f"objective metric '{objective.metric}' was not logged "
                                        f"(logged: {', '.join(sorted(metrics))})")
                value = metrics[objective.metric]
                if math.isnan(value):
                    raise FloatingPointError(f"objective '{objective.metric}' is NaN")
                results.append(value)
            return results if spec.multi_objective else results[0]
        except SystemExit as stop:
            # Lightning answers Ctrl-C with a graceful shutdown and sys.exit(1); Optuna would leave the
            # trial RUNNING forever. Re-raise it as the interrupt it was: the trial is marked failed
            # without a reason, and the next run of the sweep redoes it.
            raise KeyboardInterrupt from stop
        except optuna.TrialPruned:
            trial.set_user_attr("pruned_at_epoch", cli.trainer.current_epoch if cli is not None else None)
            raise
        except Exception as err:
            trial.set_user_attr("failure", failure_reason(err))
            raise
        finally:
            trial.set_user_attr("wall_time_s", time.perf_counter() - start)
            # Free this trial's model, loaders and workers before the next one starts.
            del cli
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def interrupted(trial: optuna.trial.FrozenTrial) -> bool:
    """A trial that failed without a recorded reason: the sweep was stopped (Ctrl-C) while it ran."""
    return trial.state == optuna.trial.TrialState.FAIL and "failure" not in trial.user_attrs


def finished_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that count as done: complete, pruned, or failed for a recorded reason (OOM, NaN, error)."""
    return [t for t in study.get_trials(deepcopy=False, states=FINISHED) if not interrupted(t)]


def run_sweep(spec: SweepSpec, storage: str | None = None, study_name: str | None = None,
              n_trials: int | None = None) -> optuna.Study:
    """Run (or resume) the sweep until `n_trials` trials have finished in the study, or the grid is done.

    Interrupted trials are run again with the same parameters; finished ones never are."""
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
    stop = [_StopAtFinished(target)] if target is not None else []
    study.optimize(TrialRunner(spec), n_trials=remaining, timeout=spec.timeout, catch=(Exception,), callbacks=stop)
    return study


class _StopAtFinished:
    """Stops the study once it holds `target` finished (not interrupted) trials."""

    def __init__(self, target: int):
        self.target = target

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if len(finished_trials(study)) >= self.target:
            study.stop()


def _params_key(params: dict) -> tuple:
    return tuple(sorted(params.items()))
