"""Running a sweep: one Optuna study, each trial a `lit-video fit` of the spec's experiment.

Trials go through the same LightningCLI path as `lit-video fit`; the sweep only adds Optuna's
pruning callback, a checkpoint to resume from and a W&B run. A trial that runs out of memory,
produces NaN or raises is recorded with its reason (user attribute `failure`) and the sweep goes on,
with memory freed in between. Re-running the same command resumes the study: finished trials count
toward `n_trials` and a grid is never re-run.

Many workers (processes, nodes) may run one study at once:
- a grid is queued once, by the worker that creates the study; workers only claim queued trials
  (an atomic state change in the storage), so no point runs twice;
- with an RDB storage, running trials send heartbeats; a trial whose worker died is marked failed by
  another worker after the grace period and queued again with the same parameters;
- SIGTERM / SIGUSR1 (preemption) stops the trial at the end of its current step with a checkpoint;
  it is queued again and the worker exits;
- an interrupted trial (Ctrl-C) is queued again too. A queued retry resumes from the newest
  checkpoint of the trials it retries.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
import torch
import yaml
from lightning.pytorch.callbacks import Callback

from lit_video.errors import LitVideoError
from lit_video.sweep.profile import ComputeProfileCallback
from lit_video.sweep.spec import SEED_KEY, SweepSpec, short_name
from lit_video.sweep.storage import open_storage, redact, resolve_storage
from lit_video.sweep.tracking import finish_run, trial_logger

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
RUNNING, WAITING = optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING
# Study user attributes: the grid being queued by the creating worker, and each grid once fully queued
GRID_QUEUEING, GRID_QUEUED = "lit_video:grid_queueing", "lit_video:grid_queued"


DDP_TRIAL_ENV = "LIT_VIDEO_DDP_TRIAL"  # the trial id a DDP rank > 0 joins


class TrialPreempted(Exception):
    """Training stopped on SIGTERM / SIGUSR1 with a checkpoint saved: the trial is queued again."""


def default_storage(spec: SweepSpec) -> str:
    """SQLite next to the outputs: right for one machine (see the README for clusters)."""
    spec.out_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(spec.out_dir / f'{spec.study_name}.db').resolve()}"


def _sampler(spec: SweepSpec, seed: int = 0) -> optuna.samplers.BaseSampler:
    if spec.sampler in ("grid", "random"):
        # A grid is queued point by point when its study is created (exactly once with many workers,
        # which Optuna's GridSampler does not promise), so its sampler never has to sample.
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
    """Create the spec's study, or open it when it exists; its objectives are named by their metrics.

    The worker that creates a grid study queues every point of the grid (seeds included) once; the
    others wait until that is done (see `_wait_for_grid`).

    Args:
        spec: a loaded sweep spec.
        storage: the storage URL or journal path (default: $LIT_VIDEO_STORAGE, the spec's, else SQLite).
        study_name: default: the spec's.
    """
    url = resolve_storage(storage, spec.storage, default_storage(spec))
    name = study_name or spec.study_name
    try:
        options = {"study_name": name, "storage": open_storage(url, spec.heartbeat), "sampler": _sampler(spec),
                   "pruner": _pruner(spec)}
        try:
            study = optuna.create_study(**options, directions=[o.direction for o in spec.objectives])
            created = True
        except optuna.exceptions.DuplicatedStudyError:  # another worker (or an earlier run) created it
            study = optuna.load_study(**options)
            created = False
    except Exception as err:  # e.g. a database that cannot be reached: one line, no password
        raise LitVideoError(f"cannot open the study '{name}' in {redact(url)}: "
                            f"{redact(' '.join(str(err).split()))[:300]}") from None
    names = [o.metric for o in spec.objectives]
    if created or study.metric_names != names:
        # experimental since Optuna 3.2 and unchanged since; the report and the dashboard show these names
        with warnings.catch_warnings(category=optuna.exceptions.ExperimentalWarning, action="ignore"):
            study.set_metric_names(names)
    if spec.sampler == "grid":
        _queue_grid(study, spec, created)
    return study


def _queue_grid(study: optuna.Study, spec: SweepSpec, created: bool, wait_s: float = 60.0) -> None:
    """Queue every point of the spec's grid that the study does not hold yet, exactly once.

    The worker that created the study queues the grid; the others wait until it is done (the study's
    user attributes say so). A study re-run with a different grid (a new clip length, say) gets the
    new points queued by the first worker that opens it; a worker that died while queueing is
    replaced after `wait_s`.
    """
    grid = spec.grid()
    fingerprint = hashlib.sha1(json.dumps(grid, sort_keys=True, default=str).encode()).hexdigest()[:12]
    queued = f"{GRID_QUEUED}:{fingerprint}"
    if created:
        study.set_user_attr(GRID_QUEUEING, fingerprint)
    else:
        deadline = time.monotonic() + wait_s
        while queued not in study.user_attrs and time.monotonic() < deadline:
            creating = study.user_attrs.get(GRID_QUEUEING)
            if creating != fingerprint and (creating is not None or study.get_trials(deepcopy=False)):
                break  # an earlier grid or an older study: this worker queues the new points
            time.sleep(0.5)  # the creating worker is queueing (or is about to say so)
        if queued in study.user_attrs:
            return
    present = {_params_key(t.system_attrs.get("fixed_params", t.params))
               for t in study.get_trials(deepcopy=False) if not interrupted(t)}
    for values in itertools.product(*grid.values()):
        point = dict(zip(grid, values))
        if _params_key(point) not in present:
            study.enqueue_trial(point)
    study.set_user_attr(queued, spec.grid_size)


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

    def __init__(self, spec: SweepSpec, study_name: str | None = None):
        self.spec = spec
        self.study_name = study_name or spec.study_name
        self.trainer = None  # the running trial's, for the signal handlers

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        from lightning.pytorch.utilities.exceptions import SIGTERMException
        from optuna_integration import PyTorchLightningPruningCallback

        from lit_video.checkpoint import ResumeCheckpoint
        from lit_video.train_cli import run_cli

        spec, study_name = self.spec, self.study_name
        values = {p.key: p.suggest(trial) for p in spec.params}
        # The seed is a grid dimension (and a parameter whenever there are repeats), so the report can
        # show the spread over seeds of each configuration.
        sweeps_seed = len(spec.seeds) > 1 or spec.sampler == "grid"
        seed = trial.suggest_categorical(SEED_KEY, spec.seeds) if sweeps_seed else spec.seeds[0]
        trial_dir = trial_folder(spec, study_name, trial.number)
        trial.set_user_attr("trial_dir", str(trial_dir))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        resume = resume_checkpoint(spec, study_name, trial)
        if not isinstance(trial, _RankTrial):
            # After the parameters are in the storage: the other ranks read them, never sample their own.
            try:
                _announce_ddp_trial(trial._trial_id)
            except RuntimeError as err:  # stop, and let another worker retry the trial
                raise TrialPreempted(f"the DDP ranks > 0 of this worker are gone: {err}") from None
        start = time.perf_counter()
        cli = logger = None
        summary: dict[str, object] = {"trial/number": trial.number}
        exit_code = 1
        try:
            cli = run_cli(spec.config_args(values, seed, trial_dir), run=False)
            logger = self._attach_wandb(cli, trial, values, seed)
            callbacks: list = [ResumeCheckpoint(trial_dir / "checkpoints", spec.checkpoint_every_n_steps),
                                         _RecordStartStep(trial)]
            pruning = None
            if spec.pruner != "none":
                pruning = PyTorchLightningPruningCallback(trial, monitor=spec.objectives[0].metric)
                callbacks.append(pruning)
            cli.trainer.callbacks.extend(callbacks)
            if resume is not None:
                trial.set_user_attr("resumed_from", str(resume))
            trial.set_user_attr("setup_time_s", time.perf_counter() - start)
            fit_start = time.perf_counter()
            self.trainer = cli.trainer
            # DDP on one node: Lightning starts ranks 1.. by running this command again; they take the
            # trial to join from here instead of claiming one (see `run_sweep`).
            os.environ[DDP_TRIAL_ENV] = str(trial._trial_id)
            cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=resume)
            trial.set_user_attr("fit_time_s", time.perf_counter() - fit_start)
            if pruning is not None:
                with warnings.catch_warnings():  # it reports rank 0's values to the trial a second time
                    warnings.filterwarnings("ignore", message="The reported value is ignored")
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
        except SIGTERMException:  # a SystemExit: before the clause below
            # Preempted (SIGTERM / SIGUSR1): ResumeCheckpoint has saved last.ckpt; the worker queues a retry.
            step = cli.trainer.global_step if cli is not None else None
            trial.set_user_attr("preempted_at_step", step)
            summary.update({"trial/state": "preempted", "trial/preempted_at_step": step})
            raise TrialPreempted(f"trial {trial.number} preempted at step {step}") from None
        except SystemExit as stop:
            # Lightning answers Ctrl-C with a graceful shutdown and sys.exit(1); Optuna would leave the
            # trial RUNNING forever. Re-raise it as the interrupt it was: the trial is marked failed
            # without a reason, and the next run of the sweep redoes it.
            summary["trial/state"] = "interrupted"
            raise KeyboardInterrupt from stop
        except optuna.TrialPruned:
            # The last reported epoch: under DDP the trainer has already moved on to the next one.
            reported = trial.study._storage.get_trial(trial._trial_id).intermediate_values
            epoch = max(reported) if reported else None
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
            self.trainer = None
            os.environ.pop(DDP_TRIAL_ENV, None)
            # Free this trial's model, loaders and workers before the next one starts.
            del cli, logger
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def _attach_wandb(self, cli, trial: optuna.Trial, values: dict, seed: int):
        """Add the trial's W&B run to the trainer's loggers, with the resolved config as its config."""
        spec = self.spec
        if not cli.trainer.is_global_zero:  # under DDP only rank 0 has a run
            return None
        logger = trial_logger(spec.wandb, self.study_name, trial.number, spec.out_dir / self.study_name)
        if logger is None:
            return None
        cli.trainer.loggers = [*cli.trainer.loggers, logger]
        # The resolved config already holds the task's and DataModule's arguments under model.init_args /
        # data.init_args; Lightning's own copy of them would overwrite the "model" section with the
        # model's registry name.
        cli.model._log_hyperparams = False
        cli.datamodule._log_hyperparams = False
        config = resolved_config(cli)
        config["sweep"] = {"study": self.study_name, "trial": trial.number, "seed": seed, "values": values}
        logger.log_hyperparams(config)  # starts the run now, so its start-up counts as set-up time
        trial.set_user_attr("wandb_dir", str(Path(logger.experiment.dir).parent)
                            if getattr(logger.experiment, "dir", None) else None)
        return logger


def trial_folder(spec: SweepSpec, study_name: str, number: int) -> Path:
    return spec.out_dir / study_name / f"trial_{number:04d}"


def resume_checkpoint(spec: SweepSpec, study_name: str, trial: optuna.Trial) -> Path | None:
    """The newest checkpoint of the trials this one retries (Optuna's `retry_history`), or None."""
    with warnings.catch_warnings(category=optuna.exceptions.ExperimentalWarning, action="ignore"):
        history = optuna.storages.RetryHeartbeatStaleTrialCallback.retry_history(
            trial.study._storage.get_trial(trial._trial_id))  # a live Trial does not show its system attributes
    candidates = [trial_folder(spec, study_name, n) / "checkpoints" / "last.ckpt" for n in history]
    existing = [path for path in candidates if path.is_file()]
    return max(existing, key=lambda path: path.stat().st_mtime) if existing else None


class _RecordStartStep(Callback):
    """Records `start_step`: the optimizer steps already done when training starts (0, or the resumed
    checkpoint's step: the trial's first step is the one after it)."""

    def __init__(self, trial: optuna.Trial):
        self.trial = trial

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self.trial.set_user_attr("start_step", trainer.global_step)


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
    """Run one worker of the sweep until the study holds `n_trials` finished trials, or the grid is done.

    Safe to run in many processes on one storage at once (see the module docstring). Interrupted and
    preempted trials are queued again with the same parameters; finished ones are never redone.

    Args:
        spec: a loaded sweep spec (validated here before any trial starts).
        storage, study_name: override the spec's.
        n_trials: finished trials the study should hold (default: the spec's, or the grid's size).
        verbose: print one line per finished trial (outcome, values, time).
    """
    spec.validate()
    study = load_study(spec, storage, study_name)
    if DDP_TRIAL_ENV in os.environ and int(os.environ.get("LOCAL_RANK", "0")) > 0:
        _join_ddp_trials(spec, study, int(os.environ[DDP_TRIAL_ENV]))
        return study
    target = n_trials or spec.n_trials or (spec.grid_size if spec.sampler == "grid" else None)
    callbacks: list[Callable] = [_print_trial] if verbose else []
    _Worker(spec, study, target, callbacks).run()
    return study


class _RankTrial(optuna.Trial):
    """The trial as a DDP rank > 0 sees it: the same parameters (suggest returns rank 0's values), but
    it records nothing; rank 0 reports to Optuna and writes the user attributes."""

    def set_user_attr(self, key: str, value) -> None:
        pass

    def report(self, value: float, step: int) -> None:
        pass


def _ddp_group_size() -> int:
    """Processes in this worker's DDP group: 1 until a DDP trial has started one."""
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _announce_ddp_trial(trial_id: int) -> None:
    """Rank 0: tell ranks > 0, waiting since the previous DDP trial, which trial to join (-1: none).

    Lightning starts ranks > 0 once per process, at the first DDP fit, and its process group outlives
    the fit; later trials of the same worker reuse both, so the ranks only need the trial's id."""
    if _ddp_group_size() > 1:
        torch.distributed.broadcast_object_list([trial_id], src=0)


def _join_ddp_trials(spec: SweepSpec, study: optuna.Study, trial_id: int) -> None:
    """Rank > 0 of a worker whose trials use DDP: run each trial rank 0 announces, until it says stop.

    The outcome of a trial is rank 0's to record. A trial that fails here fails on rank 0 too (same
    code, same data) or breaks its collectives there, so this rank goes on to the next one."""
    runner = TrialRunner(spec, study.study_name)
    # SLURM signals every process of a job: rank 0 turns SIGUSR1 into SIGTERM, which Lightning passes on
    # to this rank and broadcasts, so that all ranks stop and checkpoint at the same step.
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    while trial_id >= 0:
        try:
            runner(_RankTrial(study, trial_id))
        except TrialPreempted:
            return  # rank 0 was preempted as well and announces nothing more
        except Exception:
            pass
        announced: list = [None]
        torch.distributed.broadcast_object_list(announced, src=0)
        trial_id = announced[0]
        if not isinstance(trial_id, int):  # this rank failed a trial that rank 0 went on training
            raise RuntimeError(f"DDP rank {os.environ.get('LOCAL_RANK')} lost step with rank 0 "
                               f"(expected a trial id, received {trial_id!r})")


class _Worker:
    """Claims and runs trials of one study until there is nothing left for it to do."""

    def __init__(self, spec: SweepSpec, study: optuna.Study, target: int | None, callbacks: list[Callable]):
        self.spec, self.study, self.target, self.callbacks = spec, study, target, callbacks
        self.runner = TrialRunner(spec, study.study_name)
        self.heartbeat = _heartbeat_interval(study)
        self.stop_signal: int | None = None

    def run(self) -> None:
        deadline = time.monotonic() + self.spec.timeout if self.spec.timeout else None
        with _StopSignals(self):
            while self.stop_signal is None and (deadline is None or time.monotonic() < deadline):
                if self.heartbeat is not None:
                    with warnings.catch_warnings(category=optuna.exceptions.ExperimentalWarning, action="ignore"):
                        optuna.storages.fail_stale_trials(self.study)  # dead workers' trials: failed and queued
                trial = self._next_trial()
                if trial is None:
                    if self.heartbeat is not None and self._others_running():
                        time.sleep(min(self.heartbeat, 5))  # a running trial may yet come back as a retry
                        continue
                    break
                if not self._run(trial):
                    break
        try:
            _announce_ddp_trial(-1)
        except RuntimeError:  # the other ranks were preempted with this one and are gone
            pass
        if self.stop_signal is not None:
            _requeue_slurm_job()

    def _next_trial(self) -> optuna.Trial | None:
        trials = self.study.get_trials(deepcopy=False)
        finished = sum(1 for t in trials if t.state in FINISHED and not interrupted(t))
        if self.target is not None and finished >= self.target:
            return None
        waiting = [t for t in trials if t.state == WAITING]
        for candidate in waiting:
            # The storage changes WAITING to RUNNING for one worker only: this is what makes a trial run once.
            try:
                if self.study._storage.set_trial_state_values(candidate._trial_id, state=RUNNING):
                    return optuna.Trial(self.study, candidate._trial_id)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
        if self.spec.sampler == "grid":
            return None  # every point was queued: nothing new is ever sampled
        running = sum(1 for t in trials if t.state == RUNNING)
        if self.target is not None and finished + running >= self.target:
            return None
        with warnings.catch_warnings():  # _HeartbeatThread does what Study.optimize would
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
            return self.study.ask()

    def _others_running(self) -> bool:
        return any(t.state == RUNNING for t in self.study.get_trials(deepcopy=False))

    def _run(self, trial: optuna.Trial) -> bool:
        """Run one claimed trial and record its outcome; False when the worker must stop."""
        values, state, carry_on = None, None, True
        with _HeartbeatThread(self.study, trial, self.heartbeat):
            try:
                values = self.runner(trial)
            except optuna.TrialPruned:
                state = optuna.trial.TrialState.PRUNED
            except TrialPreempted:
                state, carry_on = optuna.trial.TrialState.FAIL, False
            except KeyboardInterrupt:
                self._tell_and_retry(trial)
                raise
            except Exception as err:
                state = optuna.trial.TrialState.FAIL
                if "failure" not in trial.user_attrs:  # raised before the runner could record why
                    trial.set_user_attr("failure", failure_reason(err))
        if state == optuna.trial.TrialState.FAIL and not carry_on:
            frozen = self._tell_and_retry(trial)
        else:
            frozen = self.study.tell(trial, values, state=state)
        for callback in self.callbacks:
            callback(self.study, frozen)
        return carry_on

    def _tell_and_retry(self, trial: optuna.Trial) -> optuna.trial.FrozenTrial:
        """Mark an interrupted or preempted trial failed and queue it again (Optuna's retry callback, so
        the retry's `retry_history` leads to this trial's checkpoint)."""
        frozen = self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        with warnings.catch_warnings(category=optuna.exceptions.ExperimentalWarning, action="ignore"):
            optuna.storages.RetryHeartbeatStaleTrialCallback()(self.study, frozen)
        return frozen


def _heartbeat_interval(study: optuna.Study) -> int | None:
    storage = study._storage
    get = getattr(storage, "get_heartbeat_interval", None)
    return get() if get is not None else None


class _HeartbeatThread:
    """While a trial runs, records its heartbeat every `interval` seconds (RDB storages with heartbeats).

    Optuna's own heartbeat thread lives inside `Study.optimize`, which the worker does not use: it
    claims queued trials itself so that no grid point runs twice."""

    def __init__(self, study: optuna.Study, trial: optuna.Trial, interval: int | None):
        self.study, self.storage, self.trial_id, self.interval = study, study._storage, trial._trial_id, interval
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self):
        if self.interval is not None:
            self.storage.record_heartbeat(self.trial_id)
            self.thread = threading.Thread(target=self._beat, name="optuna-heartbeat", daemon=True)
            self.thread.start()
        return self

    def _beat(self) -> None:
        while not self.stopped.wait(self.interval):
            self.storage.record_heartbeat(self.trial_id)
            # Busy workers look for dead ones too: a dead worker's trial is queued again within a beat of
            # its grace period, not only when some worker finishes its own trial.
            try:
                with warnings.catch_warnings(category=optuna.exceptions.ExperimentalWarning, action="ignore"):
                    optuna.storages.fail_stale_trials(self.study)
            except Exception as err:  # the storage is unreachable for a moment: the next beat tries again
                warnings.warn(f"checking for dead workers' trials failed: {redact(str(err))[:200]}", stacklevel=1)

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        if self.thread is not None:
            self.thread.join()


class _StopSignals:
    """SIGTERM and SIGUSR1 (preemption): the running trial stops at the end of its step with a
    checkpoint and is queued again, and the worker takes no new trial.

    Lightning handles SIGTERM during `fit` (it stops at the step's end and raises SIGTERMException) and
    calls this handler too; SIGUSR1 is turned into SIGTERM for it. Only the main thread can set handlers."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self, worker: _Worker):
        self.worker = worker
        self.previous: dict[int, object] = {}

    def _handle(self, signum: int, frame) -> None:
        first = self.worker.stop_signal is None
        self.worker.stop_signal = signum
        if signum == signal.SIGUSR1 and first and self.worker.runner.trainer is not None:
            signal.raise_signal(signal.SIGTERM)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def _requeue_slurm_job() -> None:
    """Under SLURM, put this job back in the queue after a preemption signal, as Lightning's SLURM
    plugin does: the requeued worker picks up the queued retry."""
    job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if job and "SLURM_ARRAY_TASK_ID" in os.environ \
        else os.environ.get("SLURM_JOB_ID")
    if job and shutil.which("scontrol") and os.environ.get("LIT_VIDEO_SLURM_REQUEUE", "1") == "1":
        subprocess.run(["scontrol", "requeue", job], check=False)


def _print_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """One line per finished trial, e.g. 'trial 3 complete: val/acc_video_best=0.9143 (clip_len=8) in 41 s'."""
    params = ", ".join(f"{short_name(k)}={v}" for k, v in trial.params.items())
    if trial.values is not None:
        outcome = ", ".join(f"{name}={value:.4g}" for name, value in zip(study.metric_names or [], trial.values))
    else:
        outcome = trial.user_attrs.get("failure") or (
            f"pruned at epoch {trial.user_attrs.get('pruned_at_epoch')}" if trial.state.name == "PRUNED"
            else f"preempted at step {trial.user_attrs['preempted_at_step']}, queued again"
            if "preempted_at_step" in trial.user_attrs else "interrupted, queued again")
    seconds = trial.user_attrs.get("wall_time_s", 0.0)
    print(f"trial {trial.number} {trial.state.name.lower()}: {outcome} ({params}) in {seconds:.0f} s", flush=True)


def _params_key(params: dict) -> tuple:
    return tuple(sorted(params.items()))
