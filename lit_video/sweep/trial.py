"""One trial of a sweep: `TrialRunner`, the Optuna objective that trains one configuration.

Trials go through the same LightningCLI path as `lit-video fit`; the runner only adds Optuna's
pruning callback, a checkpoint to resume from and a W&B run. A trial that runs out of memory,
produces NaN or raises is recorded with its reason (user attribute `failure`), with memory freed
before the next one. A trial that retries an interrupted or preempted one resumes from the newest
checkpoint of the trials it retries. Under DDP, ranks > 0 run the same trial as a `RankTrial`.
"""

from __future__ import annotations

import gc
import math
import os
import signal
import socket
import time
import warnings
from pathlib import Path

import optuna
import torch
from lightning.pytorch.callbacks import Callback

from lit_video.errors import LitVideoError
from lit_video.run_cost import ComputeProfileCallback
from lit_video.sweep.spec import SEED_KEY, SweepSpec, study_folder
from lit_video.sweep.storage import redact
from lit_video.sweep.tracking import finish_run, trial_logger
from lit_video.wandb_runs import cost_sections, resolved_config

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
DDP_TRIAL_ENV = "LIT_VIDEO_DDP_TRIAL"  # the trial id a DDP rank > 0 joins


class TrialPreempted(Exception):
    """Training stopped on SIGTERM / SIGUSR1 with a checkpoint saved: the trial is queued again."""


def failure_reason(err: BaseException) -> str:
    """'infeasible: ...' for out-of-memory, 'failed: ...' for anything else, one line; a storage password
    the message quotes is masked (it is stored in the study and the W&B summary)."""
    message = redact(" ".join(str(err).split()))[:300]
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
        self.trainer = None  # the running trial's while it fits, for the signal handlers
        # Set by Ctrl-C (the worker's SIGINT handler): the running trial stops at the end of its step with
        # a checkpoint, is queued again, and no other trial starts.
        self.interrupted = False

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        from lightning.pytorch.utilities.exceptions import SIGTERMException
        from optuna_integration import PyTorchLightningPruningCallback

        from lit_video.checkpoint import ResumeCheckpoint
        from lit_video.training import run_cli

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
        if not isinstance(trial, RankTrial):
            # After the parameters are in the storage: the other ranks read them, never sample their own.
            try:
                announce_ddp_trial(trial._trial_id)
            except RuntimeError as err:  # stop, and let another worker retry the trial
                raise TrialPreempted(f"the DDP ranks > 0 of this worker are gone: {err}") from None
        start = time.perf_counter()
        cli = logger = None
        summary: dict[str, object] = {"trial/number": trial.number}
        exit_code = 1
        try:
            cli = run_cli(spec.config_args(values, seed, trial_dir), run=False)
            logger = self._attach_wandb(cli, trial, values, seed)
            _record_setting(trial, cli)
            callbacks: list = [ResumeCheckpoint(trial_dir / "checkpoints", spec.checkpoint_every_n_steps),
                               _RecordStartStep(trial), _StopWhenInterrupted(self)]
            if spec.micro_batch == "auto":
                from lit_video.micro_batch import FitMicroBatch

                # first among the trial's callbacks: the batch is settled before anything measures the fit
                callbacks.insert(0, FitMicroBatch())
            pruning = None
            if spec.pruner != "none":
                pruning = PyTorchLightningPruningCallback(trial, monitor=spec.objectives[0].metric)
                callbacks.append(pruning)
            cli.trainer.callbacks.extend(callbacks)
            if resume is not None:
                trial.set_user_attr("resumed_from", str(resume))
            trial.set_user_attr("setup_time_s", time.perf_counter() - start)
            fit_start = time.perf_counter()
            if self.interrupted:  # Ctrl-C while the trial was being set up: nothing to save
                raise KeyboardInterrupt
            self.trainer = cli.trainer
            # DDP on one node: Lightning starts ranks 1.. by running this command again; they take the
            # trial to join from here instead of claiming one (see `lit_video.sweep.study.run_sweep`).
            os.environ[DDP_TRIAL_ENV] = str(trial._trial_id)
            try:
                cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=resume, weights_only=True)
            finally:
                self.trainer = None
            trial.set_user_attr("fit_time_s", time.perf_counter() - fit_start)
            if pruning is not None:
                with warnings.catch_warnings():  # it reports rank 0's values to the trial a second time
                    warnings.filterwarnings("ignore", message="The reported value is ignored")
                    pruning.check_pruned()  # under DDP the pruning decision is taken on rank 0
            metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
            metrics.update(_record_costs(trial, cli))
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
            # Preempted (SIGTERM / SIGUSR1), or Ctrl-C turned into a stop at the step's end: ResumeCheckpoint
            # has saved last.ckpt; the worker queues a retry.
            step = cli.trainer.global_step if cli is not None else None
            if self.interrupted:
                self._record_interrupt(trial, summary, step)
                raise KeyboardInterrupt from None
            trial.set_user_attr("preempted_at_step", step)
            summary.update({"trial/state": "preempted", "trial/preempted_at_step": step})
            raise TrialPreempted(f"trial {trial.number} preempted at step {step}") from None
        except SystemExit as stop:
            # Lightning answers a KeyboardInterrupt (a second Ctrl-C, or Python's own handler where the
            # worker's is not installed) with a graceful shutdown, ResumeCheckpoint's save included, and
            # sys.exit(1); Optuna would leave the trial RUNNING forever. Re-raise it as the interrupt it
            # was: the trial is marked failed without a reason and queued again.
            self.interrupted = True
            self._record_interrupt(trial, summary, cli.trainer.global_step if cli is not None else None)
            raise KeyboardInterrupt from stop
        except KeyboardInterrupt:
            self.interrupted = True
            summary["trial/state"] = "interrupted"
            raise
        except optuna.TrialPruned:
            # The last reported epoch: under DDP the trainer has already moved on to the next one.
            reported = trial.study._storage.get_trial(trial._trial_id).intermediate_values
            epoch = max(reported) if reported else None
            trial.set_user_attr("pruned_at_epoch", epoch)
            summary.update({"trial/state": "pruned", "trial/pruned_at_epoch": epoch})
            exit_code = 0
            raise
        except Exception as err:
            if self.interrupted:
                # An error caused by the Ctrl-C (a data loader's worker process got it too, say) is no
                # reason to give up on the configuration: the trial is queued again.
                summary["trial/state"] = "interrupted"
                raise KeyboardInterrupt from err
            reason = failure_reason(err)
            trial.set_user_attr("failure", reason)
            summary.update({"trial/state": reason.split(":")[0], "trial/failure": reason})
            raise
        finally:
            if cli is not None:
                _record_costs(trial, cli)  # also for a trial that failed or stopped after some steps
            if logger is not None:
                costs = cost_sections(trial.user_attrs)
                if costs:
                    logger.log_hyperparams(costs)
                finish_run(logger, summary, exit_code)
            trial.set_user_attr("wall_time_s", time.perf_counter() - start)
            os.environ.pop(DDP_TRIAL_ENV, None)
            # Free this trial's model, loaders and workers before the next one starts.
            del cli, logger
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    @staticmethod
    def _record_interrupt(trial: optuna.Trial, summary: dict, step: int | None) -> None:
        """`interrupted_at_step`: the optimizer steps done when Ctrl-C stopped the trial (those of the
        checkpoint its retry resumes from, unless Ctrl-C came during an optimizer's update)."""
        trial.set_user_attr("interrupted_at_step", step)
        summary.update({"trial/state": "interrupted", "trial/interrupted_at_step": step})

    def _attach_wandb(self, cli, trial: optuna.Trial, values: dict, seed: int):
        """Add the trial's W&B run to the trainer's loggers, with the resolved config as its config."""
        spec = self.spec
        if not cli.trainer.is_global_zero:  # under DDP only rank 0 has a run
            return None
        logger = trial_logger(spec.wandb, self.study_name, trial.number, study_folder(spec, self.study_name))
        if logger is None:
            return None
        cli.trainer.loggers = [*cli.trainer.loggers, logger]
        # The resolved config already holds the task's and DataModule's arguments under model.init_args /
        # data.init_args; Lightning's own copy of them would overwrite the "model" section with the
        # model's registry name.
        cli.model._log_hyperparams = False
        cli.datamodule._log_hyperparams = False
        config = resolved_config(cli.parser, cli.config, cli.model, cli.datamodule)
        config["sweep"] = {"study": self.study_name, "trial": trial.number, "seed": seed, "values": values}
        # each checkpoint artifact says which trial and parameters its weights come from
        logger.artifact_metadata = {"sweep": config["sweep"]}
        logger.log_hyperparams(config)  # starts the run now, so its start-up counts as set-up time
        trial.set_user_attr("wandb_dir", str(Path(logger.experiment.dir).parent)
                            if getattr(logger.experiment, "dir", None) else None)
        return logger


def trial_folder(spec: SweepSpec, study_name: str, number: int) -> Path:
    return study_folder(spec, study_name) / f"trial_{number:04d}"


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


class _StopWhenInterrupted(Callback):
    """A Ctrl-C that came while the trial was being set up, before Lightning's SIGTERM handler was in
    place: passed on to it as training starts, so that the trial stops at once the way a Ctrl-C during
    training does (see `lit_video.sweep.worker`)."""

    def __init__(self, runner: TrialRunner):
        self.runner = runner

    def on_train_start(self, trainer, pl_module) -> None:
        if self.runner.interrupted and not trainer.received_sigterm:
            signal.raise_signal(signal.SIGTERM)


def _record_costs(trial: optuna.Trial, cli) -> dict[str, float]:
    """Copy what the fit measured (`compute/*`, `budget/*`, and `batch/*` when the micro-batch was searched)
    into the trial's user attributes; returns the numeric ones (an objective may be one of them)."""
    from lit_video.micro_batch import FitMicroBatch

    recorded: dict[str, object] = {}
    for callback in cli.trainer.callbacks:
        if isinstance(callback, ComputeProfileCallback):
            recorded.update(callback.metrics())
            if callback.profile is not None:
                trial.set_user_attr("profile_time_s", callback.seconds)
        elif isinstance(callback, FitMicroBatch):
            recorded.update(callback.record)
    for key, value in recorded.items():
        trial.set_user_attr(key, value)
    return {key: float(value) for key, value in recorded.items()
            if isinstance(value, int | float) and not isinstance(value, bool)}


def _record_setting(trial: optuna.Trial, cli) -> None:
    """Where the trial's objective is measured (the DataModule's `validation_source`, and whether that is the
    list `test` reads) and the GPUs its worker was given."""
    datamodule = cli.datamodule
    source = getattr(datamodule, "validation_source", None)
    if isinstance(source, str):
        trial.set_user_attr("objective_split", source)
        trial.set_user_attr("objective_on_test", bool(getattr(datamodule, "validates_on_test", False)))
    trial.set_user_attr("cuda_visible_devices", os.environ.get("CUDA_VISIBLE_DEVICES"))


def interrupted(trial: optuna.trial.FrozenTrial) -> bool:
    """A trial that failed without a recorded reason: the sweep was stopped (Ctrl-C) while it ran."""
    return trial.state == optuna.trial.TrialState.FAIL and "failure" not in trial.user_attrs



class RankTrial(optuna.Trial):
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


def announce_ddp_trial(trial_id: int) -> None:
    """Rank 0: tell ranks > 0, waiting since the previous DDP trial, which trial to join (-1: none).

    Lightning starts ranks > 0 once per process, at the first DDP fit, and its process group outlives
    the fit; later trials of the same worker reuse both, so the ranks only need the trial's id."""
    if _ddp_group_size() > 1:
        torch.distributed.broadcast_object_list([trial_id], src=0)
