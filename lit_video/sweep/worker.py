"""A sweep worker: claims the study's trials and runs them until there is nothing left to do.

Many workers (processes, nodes) may run one study at once:
- workers only claim queued trials (an atomic state change in the storage), so no point of a grid
  runs twice (the grid is queued once by the worker that creates the study, see
  `lit_video.sweep.study`);
- with an RDB storage, running trials send heartbeats; a trial whose worker died is marked failed by
  another worker after the grace period and queued again with the same parameters;
- SIGTERM / SIGUSR1 (preemption) stops the trial at the end of its current step with a checkpoint;
  it is queued again and the worker exits (under SLURM its job is requeued);
- Ctrl-C (SIGINT) stops the sweep whenever it comes: during training the trial stops at the end of
  its current step with a checkpoint (a second Ctrl-C stops it at once) and is queued again; a trial
  whose result is already known is recorded; no new trial starts, and the worker raises
  KeyboardInterrupt (exit status 130). The signal only sets a flag, checked at every step and between
  the worker's storage operations: an exception raised in library code (a storage write, a W&B
  finish, a garbage-collected connection) could be swallowed there.
Under DDP, rank 0 claims trials and ranks > 0 join each one it announces (`join_ddp_trials`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Callable

import optuna
import torch

from lit_video.sweep.spec import SweepSpec, short_name
from lit_video.sweep.storage import redact
from lit_video.sweep.trial import (
    FINISHED,
    RankTrial,
    TrialPreempted,
    TrialRunner,
    announce_ddp_trial,
    failure_reason,
    interrupted,
)

RUNNING, WAITING = optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING


def join_ddp_trials(spec: SweepSpec, study: optuna.Study, trial_id: int) -> None:
    """Rank > 0 of a worker whose trials use DDP: run each trial rank 0 announces, until it says stop.

    The outcome of a trial is rank 0's to record. A trial that fails here fails on rank 0 too (same
    code, same data) or breaks its collectives there, so this rank goes on to the next one."""
    runner = TrialRunner(spec, study.study_name)
    # SLURM signals every process of a job: rank 0 turns SIGUSR1 into SIGTERM, which Lightning passes on
    # to this rank and broadcasts, so that all ranks stop and checkpoint at the same step.
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    while trial_id >= 0:
        try:
            runner(RankTrial(study, trial_id))
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


class Worker:
    """Claims and runs trials of one study until there is nothing left for it to do."""

    def __init__(self, spec: SweepSpec, study: optuna.Study, target: int | None, callbacks: list[Callable]):
        self.spec, self.study, self.target, self.callbacks = spec, study, target, callbacks
        self.runner = TrialRunner(spec, study.study_name)
        self.heartbeat = _heartbeat_interval(study)
        self.stop_signal: int | None = None  # SIGTERM / SIGUSR1 received

    @property
    def interrupted(self) -> bool:
        """Whether Ctrl-C was pressed: the worker stops and raises KeyboardInterrupt."""
        return self.runner.interrupted

    def _stopping(self) -> bool:
        return self.stop_signal is not None or self.interrupted

    def run(self) -> None:
        """Run trials until the target, the timeout, a stop signal or Ctrl-C.

        Raises:
            KeyboardInterrupt: after Ctrl-C, once the running trial is recorded (or queued again).
        """
        deadline = time.monotonic() + self.spec.timeout if self.spec.timeout else None
        self._record_start()
        with _StopSignals(self):
            while not self._stopping() and (deadline is None or time.monotonic() < deadline):
                if self.heartbeat is not None:
                    with warnings.catch_warnings(category=optuna.exceptions.ExperimentalWarning, action="ignore"):
                        optuna.storages.fail_stale_trials(self.study)  # dead workers' trials: failed and queued
                trial = self._next_trial()
                if trial is None:
                    if self.heartbeat is not None and self._others_running():
                        _sleep_unless(self._stopping, min(self.heartbeat, 5))  # a running trial may come back
                        continue
                    break
                if not self._run(trial):
                    break
        try:
            announce_ddp_trial(-1)
        except RuntimeError:  # the other ranks were preempted with this one and are gone
            pass
        if self.interrupted:
            raise KeyboardInterrupt
        if self.stop_signal is not None:
            _requeue_slurm_job()

    def _record_start(self) -> None:
        """Record on the study, as `worker:HOST:PID`, the GPUs this worker was given (its own
        $CUDA_VISIBLE_DEVICES, None when unset) and when it started (Unix time)."""
        record = {"cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "started": time.time()}
        try:
            self.study.set_user_attr(f"worker:{socket.gethostname()}:{os.getpid()}", record)
        except Exception as err:  # a note for the user: no reason to give up the trials
            warnings.warn(f"recording the worker's start in the study failed: {redact(str(err))[:200]}",
                          stacklevel=1)

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
        """Run one claimed trial and record its outcome; False when the worker must stop.

        A trial stopped by preemption or Ctrl-C (also one claimed just as Ctrl-C came) is marked failed
        and queued again; one whose result is known (complete, pruned, failed for a reason) is recorded."""
        values, state, stopped = None, None, self.interrupted
        if not stopped:
            with _HeartbeatThread(self.study, trial, self.heartbeat):
                try:
                    values = self.runner(trial)
                except optuna.TrialPruned:
                    state = optuna.trial.TrialState.PRUNED
                except TrialPreempted:
                    stopped = True
                except KeyboardInterrupt:  # Ctrl-C: by the flag, or raised where the handler is not ours
                    stopped = self.runner.interrupted = True
                except Exception as err:
                    state = optuna.trial.TrialState.FAIL
                    if self.interrupted:  # an error the Ctrl-C caused is no verdict on the configuration
                        stopped = True
                    elif "failure" not in trial.user_attrs:  # raised before the runner could record why
                        trial.set_user_attr("failure", failure_reason(err))
        frozen = self._tell_and_retry(trial) if stopped else self.study.tell(trial, values, state=state)
        for callback in self.callbacks:
            callback(self.study, frozen)
        return not (stopped or self._stopping())

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
    """SIGTERM and SIGUSR1 (preemption), and SIGINT (Ctrl-C): the running trial stops at the end of its
    step with a checkpoint and is queued again, and the worker takes no new trial.

    Lightning handles SIGTERM during `fit` (it stops at the step's end and raises SIGTERMException) and
    calls this handler too; SIGUSR1 and Ctrl-C are turned into SIGTERM for it. Ctrl-C outside `fit` only
    sets the runner's `interrupted` flag, which the worker checks: no exception that library code could
    swallow. A second Ctrl-C during `fit` raises KeyboardInterrupt, which Lightning answers at once
    (with a checkpoint, see `ResumeCheckpoint`). Only the main thread can set handlers."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)

    def __init__(self, worker: Worker):
        self.worker = worker
        self.previous: dict[int, object] = {}

    def _handle(self, signum: int, frame) -> None:
        runner = self.worker.runner
        if signum == signal.SIGINT:
            self._interrupt()
            return
        if self.worker.interrupted:  # the SIGTERM that a Ctrl-C was turned into: not a preemption
            return
        first = self.worker.stop_signal is None
        self.worker.stop_signal = signum
        if signum == signal.SIGUSR1 and first and runner.trainer is not None:
            signal.raise_signal(signal.SIGTERM)

    def _interrupt(self) -> None:
        runner = self.worker.runner
        if runner.interrupted:
            if runner.trainer is not None:
                raise KeyboardInterrupt  # pressed again during training: do not wait for the step's end
            return
        runner.interrupted = True
        # os.write, not print: a handler that prints while the interrupted code prints fails
        os.write(2, b"\nCtrl-C: stopping the sweep; the running trial is queued again unless finished "
                    b"(Ctrl-C again to stop training at once)\n")
        if runner.trainer is not None:
            signal.raise_signal(signal.SIGTERM)  # Lightning stops at the end of the step, with a checkpoint

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def _sleep_unless(stop: Callable[[], bool], seconds: float) -> None:
    """Sleep up to `seconds`, waking early once `stop()` is true (a signal handler sets it)."""
    deadline = time.monotonic() + seconds
    while not stop() and time.monotonic() < deadline:
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


def _requeue_slurm_job() -> None:
    """Under SLURM, put this job back in the queue after a preemption signal, as Lightning's SLURM
    plugin does: the requeued worker picks up the queued retry."""
    job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if job and "SLURM_ARRAY_TASK_ID" in os.environ \
        else os.environ.get("SLURM_JOB_ID")
    if job and shutil.which("scontrol") and os.environ.get("LIT_VIDEO_SLURM_REQUEUE", "1") == "1":
        subprocess.run(["scontrol", "requeue", job], check=False)


def print_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """One line per finished trial, e.g. 'trial 3 complete: val/acc_video_best=0.9143 (clip_len=8) in 41 s'."""
    params = ", ".join(f"{short_name(k)}={v}" for k, v in trial.params.items())
    if trial.values is not None:
        outcome = ", ".join(f"{name}={value:.4g}" for name, value in zip(study.metric_names or [], trial.values))
    else:
        attrs = trial.user_attrs
        outcome = attrs.get("failure") or (
            f"pruned at epoch {attrs.get('pruned_at_epoch')}" if trial.state.name == "PRUNED"
            else f"preempted at step {attrs['preempted_at_step']}, queued again" if "preempted_at_step" in attrs
            else f"interrupted at step {attrs['interrupted_at_step']}, queued again"
            if attrs.get("interrupted_at_step") is not None else "interrupted, queued again")
    seconds = trial.user_attrs.get("wall_time_s", 0.0)
    print(f"trial {trial.number} {trial.state.name.lower()}: {outcome} ({params}) in {seconds:.0f} s", flush=True)


def _params_key(params: dict) -> tuple:
    return tuple(sorted(params.items()))
