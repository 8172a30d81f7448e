"""Launching sweep workers: local processes, or a SLURM job array through submitit.

Every worker is the same thing: `run_sweep` on one study, claiming trials until the study is done.
The storage URL (which may carry a password) reaches a worker only through the LIT_VIDEO_STORAGE
environment variable: never on a command line, in a pickled submitit job, an sbatch file or a log.

On SLURM the jobs are told to send SIGUSR1 `SIGNAL_DELAY_S` seconds before their time limit, and
are requeued on preemption (`--requeue`). A trial that receives SIGUSR1 or SIGTERM saves a checkpoint,
is queued again in the study and its job is requeued (see `lit_video.sweep.worker`); a requeued
worker, or any other, resumes it. The spec's `slurm:` section gives the jobs' resources:

    slurm:
      partition: gpu
      time_min: 240          # per job; a job at its limit is requeued and goes on
      gpus_per_worker: 1
      cpus_per_worker: 8
      mem_gb: 32
      sbatch: {account: myproj, qos: normal, constraint: a100}   # any other sbatch option

Local workers on a machine with several GPUs each get their own consecutive slice of them through
CUDA_VISIBLE_DEVICES (`assign_devices`); each records what it was given on the study (`worker:HOST:PID`).

The launcher runs workers; the workers run the study (`lit_video.sweep.study`), which knows nothing
of launchers. Kept free of torch, Lightning and Optuna at import time.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import submitit

from lit_video.errors import LitVideoError
from lit_video.sweep.settings import SLURM_KEYS, SlurmSettings
from lit_video.sweep.spec import SweepSpec
from lit_video.sweep.storage import STORAGE_ENV, redact
from lit_video.yaml_files import load_yaml

# Seconds between the signal that asks a worker to stop (SIGUSR1) and SLURM's kill: enough for a
# training step to end and a checkpoint to be written.
SIGNAL_DELAY_S = 120
STOP_SIGNAL = "USR1"  # what lit_video.sweep.worker handles (with SIGTERM); submitit's own default is USR2
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


def merge_settings(spec_slurm: dict[str, Any], **overrides: Any) -> SlurmSettings:
    """The spec's `slurm:` section with command-line values on top.

    Args:
        spec_slurm: the spec's checked `slurm:` section (`SweepSpec.slurm`).
        overrides: `SlurmSettings` fields given on the command line; None means not given. `sbatch`
            options are merged option by option, the command line's winning.
    """
    unknown = sorted(set(overrides) - set(SLURM_KEYS))
    if unknown:
        raise TypeError(f"unknown SLURM setting '{unknown[0]}'")
    settings = SlurmSettings(**spec_slurm)
    given = {key: value for key, value in overrides.items() if value is not None}
    if "sbatch" in given:
        given["sbatch"] = {**settings.sbatch, **given["sbatch"]}
    return dataclasses.replace(settings, **given)


class SweepWorker(submitit.helpers.Checkpointable):
    """One sweep worker as a submitit job: runs the study until it is done.

    Holds no state and takes no storage: the URL comes from $LIT_VIDEO_STORAGE in the job's
    environment, so it is never pickled into the job's files.
    """

    def __call__(self, spec_path: str, study_name: str, n_trials: int | None = None, force_spec: bool = False) -> int:
        """Run the worker; returns the study's finished trials when it stops.

        Args:
            spec_path: the sweep spec.
            study_name: the study all workers share.
            n_trials: finished trials the study should reach (default: the spec's, or the grid's size).
            force_spec: run the spec in a study created from another spec (`lit-video sweep --force-spec`);
                otherwise such a study is refused.
        """
        import optuna

        # Torch and Lightning are imported in the worker's process only, not by the submitting command.
        from lit_video.sweep.study import finished_trials, run_sweep

        storage = os.environ.get(STORAGE_ENV)
        if not storage:
            raise LitVideoError(f"{STORAGE_ENV} is not set in the worker's environment (with SLURM, sbatch must "
                                f"export it: --export=ALL, the default)")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = run_sweep(SweepSpec.load(spec_path), storage, study_name, n_trials, verbose=True,
                          check_spec=not force_spec)
        return len(finished_trials(study))

    def checkpoint(self, spec_path: str, study_name: str, n_trials: int | None = None, force_spec: bool = False
                   ) -> submitit.helpers.DelayedSubmission:
        """Called by submitit on a timeout or preemption signal: requeue the same worker.

        Nothing needs saving here: finished trials live in the storage, a stopped trial is queued again
        there with its checkpoint in its trial folder, and the requeued worker simply continues the study.
        The requeued worker is not forced: the study records the spec once this worker has started.
        """
        return submitit.helpers.DelayedSubmission(self, spec_path, study_name, n_trials)


def worker_command(spec_path: str | Path, study_name: str, n_trials: int | None = None) -> list[str]:
    """The command line of one local worker: without the storage, which goes in its environment."""
    command = [sys.executable, "-m", "lit_video.cli", "sweep", str(spec_path), "--study-name", study_name,
               "--workers", "1", "--quiet"]
    if n_trials:
        command += ["--n-trials", str(n_trials)]
    return command


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as its workers will name them in CUDA_VISIBLE_DEVICES.

    The entries of $CUDA_VISIBLE_DEVICES (ids or GPU / MIG UUIDs, kept as given) when it is set, an empty
    value meaning none; else the ids 0..n-1 of the GPUs torch counts (through NVML: CUDA is not initialised).
    """
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        import torch  # here only: the launcher stays free of torch at import time

        return [str(index) for index in range(torch.cuda.device_count())]
    gpus = []
    for entry in value.split(","):
        entry = entry.strip()
        # CUDA stops reading the list at an invalid entry: "-1" (or an empty value) hides every GPU.
        if not entry or (entry.startswith("-") and entry[1:].isdigit()):
            break
        gpus.append(entry)
    return gpus


def _count_devices(setting: Any) -> int | list[int] | None:
    """A trainer `devices` setting as Lightning reads it: a number of devices, a list of device ids, or None
    for a setting that takes whatever the worker has ("auto", -1, absent) or one Lightning itself refuses."""
    if isinstance(setting, str):
        text = setting.strip()
        try:
            setting = [int(part) for part in text.split(",") if part.strip()] if "," in text else int(text)
        except ValueError:
            return None  # "auto", or a mistake the config parser names
    if isinstance(setting, bool):
        return None
    if isinstance(setting, int):
        return setting if setting > 0 else None
    if isinstance(setting, (list, tuple)) and setting and all(isinstance(i, int) and not isinstance(i, bool)
                                                              for i in setting):
        return list(setting)
    return None


def _divisors(number: int) -> str:
    """'1, 2, 4 or 8' for 8."""
    found = [str(n) for n in range(1, number + 1) if number % n == 0]
    return found[0] if len(found) == 1 else f"{', '.join(found[:-1])} or {found[-1]}"


def assign_devices(n_workers: int, visible: Sequence[str], devices_setting: Any = None,
                   setting_name: str = "trainer.devices") -> list[str | None]:
    """Share the visible GPUs out among local workers: worker i gets the i-th consecutive slice of G/N.

    Args:
        n_workers: local worker processes (N).
        visible: the GPUs the launcher may use (G of them, see `visible_gpus`); none: nothing to share.
        devices_setting: the trials' trainer `devices` ("auto", -1 or None: a worker uses all of its own).
        setting_name: where the setting comes from, for the error message.

    Returns:
        each worker's CUDA_VISIBLE_DEVICES, or None for every worker when there is no GPU (environment unchanged).

    Raises:
        LitVideoError: the GPUs do not divide among the workers, or the devices setting does not use exactly
            the share of each worker.
    """
    if not visible:
        return [None] * n_workers
    total = len(visible)
    if total % n_workers:
        raise LitVideoError(f"--workers {n_workers}: {total} visible GPUs do not divide among {n_workers} workers; "
                            f"use {_divisors(total)}, or name the GPUs to share in CUDA_VISIBLE_DEVICES")
    share = total // n_workers
    wanted = _count_devices(devices_setting)
    if wanted is not None:
        # Inside a worker its own GPUs are numbered 0..share-1.
        uses = wanted if isinstance(wanted, int) else len(set(wanted))
        owns = f"--workers {n_workers}: each worker owns {share} of the {total} visible GPUs"
        if uses != share:
            hint = f"--workers {total // uses}, or " if uses <= total and total % uses == 0 else ""
            raise LitVideoError(f"{owns} but {setting_name} is {devices_setting!r}, which uses {uses}; use {hint}"
                                f"set it to {share} or auto")
        if set(wanted if isinstance(wanted, list) else range(uses)) != set(range(share)):
            raise LitVideoError(f"{owns}, numbered 0..{share - 1} inside it, but {setting_name} is "
                                f"{devices_setting!r}; set it to {share} or auto")
    return [",".join(visible[i * share:(i + 1) * share]) for i in range(n_workers)]


def _trainer_setting(spec: SweepSpec, key: str) -> tuple[str, Any]:
    """A fixed trainer setting of a spec's trials with the place that gives it: the budget, else the
    overrides, else the base experiment's `trainer:` section (the order in which they override each other)."""
    if key in spec.budget:
        return f"budget.{key}", spec.budget[key]
    if f"trainer.{key}" in spec.overrides:
        return f"overrides.trainer.{key}", spec.overrides[f"trainer.{key}"]
    trainer = load_yaml(spec.experiment) or {}
    trainer = trainer.get("trainer") if isinstance(trainer, dict) else None
    return f"trainer.{key} in {spec.experiment}", trainer.get(key) if isinstance(trainer, dict) else None


def spec_devices(spec: SweepSpec) -> list[tuple[str, Any]]:
    """The trials' trainer `devices` settings in a spec, each with the key that gives it: the swept values
    when the search space holds trainer.devices, else the fixed one (see `_trainer_setting`)."""
    swept = [p for p in spec.params if p.key == "trainer.devices" and p.type in ("categorical", "int")]
    if swept:
        return [("search_space.trainer.devices", value) for value in swept[0].grid_values()]
    return [_trainer_setting(spec, "devices")]


def worker_devices(spec: SweepSpec, n_workers: int, visible: Sequence[str] | None = None) -> list[str | None]:
    """Each local worker's CUDA_VISIBLE_DEVICES for a spec (see `assign_devices`), checked before any starts.

    The environments are left unchanged when the trials run on the CPU (trainer accelerator cpu).

    Args:
        spec: the sweep spec.
        n_workers: local worker processes.
        visible: the launcher's GPUs (default: `visible_gpus()`).

    Raises:
        LitVideoError: the GPUs do not divide among the workers, or the trials' devices do not match a share.
    """
    if _trainer_setting(spec, "accelerator")[1] == "cpu":
        return [None] * n_workers
    visible = visible_gpus() if visible is None else visible
    assigned: list[str | None] = [None] * n_workers
    for name, setting in spec_devices(spec):
        assigned = assign_devices(n_workers, visible, setting, name)
    return assigned


def local_workers(spec_path: str | Path, storage: str, study_name: str, n_workers: int,
                  n_trials: int | None = None, devices: Sequence[str | None] | None = None) -> list[int]:
    """Run `n_workers` worker processes on this machine and wait for them; returns their exit codes.

    SIGINT (Ctrl-C), SIGTERM and SIGUSR1 received by this process are passed on to every worker, which
    stops its trial cleanly (queued again in the study) and exits; this process waits for them all and
    then raises KeyboardInterrupt after a Ctrl-C. Without OMP_NUM_THREADS set, the workers share the
    cores out between them; the visible GPUs are shared out too, through each worker's CUDA_VISIBLE_DEVICES.

    Args:
        spec_path: the sweep spec.
        storage: the study's storage URL or journal file; passed in $LIT_VIDEO_STORAGE only.
        study_name: the study all workers share.
        n_workers: worker processes.
        n_trials: finished trials the study should reach (default: the spec's, or the grid's size).
        devices: each worker's CUDA_VISIBLE_DEVICES, None for an unchanged environment (default:
            `assign_devices` of the visible GPUs).

    Raises:
        LitVideoError: the visible GPUs do not divide among the workers (none has started).
    """
    if devices is None:
        devices = assign_devices(n_workers, visible_gpus())
    if len(devices) != n_workers:
        raise ValueError(f"{len(devices)} device assignments for {n_workers} workers")
    command = worker_command(spec_path, study_name, n_trials)
    env = {**os.environ, STORAGE_ENV: storage}
    # Each PyTorch process would otherwise use every core for its CPU ops: N workers on N x cores run a
    # CPU sweep several times slower than with the cores shared out (unless the user chose a number).
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    env.setdefault("OMP_NUM_THREADS", str(max(1, cores // n_workers)))
    processes: list[subprocess.Popen] = []
    received: list[int] = []

    def forward(signum: int, frame) -> None:
        received.append(signum)
        for process in processes:
            if process.poll() is None:
                process.send_signal(signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():  # only the main thread may set handlers
        previous = {signum: signal.signal(signum, forward) for signum in FORWARDED_SIGNALS}
    try:
        for assigned in devices:
            worker_env = env if assigned is None else {**env, "CUDA_VISIBLE_DEVICES": assigned}
            # Its own process group: a Ctrl-C in the terminal reaches only this process, which passes it on
            # once; a second SIGINT would cut short the worker's clean stop.
            process = subprocess.Popen(command, env=worker_env, process_group=0)
            processes.append(process)
            if received:  # a signal came while the workers were starting
                process.send_signal(received[-1])
        codes = [process.wait() for process in processes]
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if signal.SIGINT in received:
        raise KeyboardInterrupt
    return codes


def submit_slurm(spec_path: str | Path, storage: str, study_name: str, n_workers: int, n_trials: int | None,
                 settings: SlurmSettings, folder: str | Path, cluster: str | None = None,
                 force_spec: bool = False) -> list[submitit.Job]:
    """Submit `n_workers` sweep workers as one SLURM job array (submitit); returns the jobs at once.

    Args:
        spec_path: the sweep spec (on a filesystem the nodes share; the jobs run in this working directory).
        storage: the study's storage, reachable from the nodes (a journal file on a shared filesystem,
            PostgreSQL, MySQL); it travels in the jobs' environment only.
        study_name: the study all workers share.
        n_workers: jobs in the array, all allowed to run at once.
        n_trials: finished trials the study should reach (default: the spec's, or the grid's size).
        settings: the jobs' resources.
        folder: submitit's folder: the pickled jobs, the sbatch file and the jobs' logs.
        cluster: None: SLURM, which must be found on this machine; "local" runs the jobs as processes
            on this machine (tests).
        force_spec: the workers run the spec in a study created from another spec (see `SweepWorker`).
    """
    if cluster is None:
        if submitit.AutoExecutor.which() != "slurm":
            raise LitVideoError("--launcher slurm: SLURM was not found on this machine (no srun on PATH); submit "
                                "from a login node, or use --launcher local")
        cluster = "slurm"
    if cluster == "slurm" and storage.startswith("sqlite"):
        raise LitVideoError(f"SQLite ({redact(storage)}) cannot be shared by jobs on many nodes: pass a journal "
                            f"file on a shared filesystem (--storage /shared/NAME.journal) or a PostgreSQL / MySQL URL")
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    executor.update_parameters(
        name=f"sweep-{study_name}", timeout_min=settings.time_min, gpus_per_node=settings.gpus_per_worker,
        cpus_per_task=settings.cpus_per_worker, mem_gb=settings.mem_gb, nodes=1, tasks_per_node=1,
        slurm_partition=settings.partition, slurm_array_parallelism=n_workers,
        # sbatch --requeue: a preempted job goes back to the queue; the stop signal replaces submitit's USR2,
        # which would end a trial without a checkpoint. The spec's sbatch options may override both.
        slurm_additional_parameters={"requeue": True, "signal": f"{STOP_SIGNAL}@{SIGNAL_DELAY_S}", **settings.sbatch},
    )
    spec_path = str(Path(spec_path).resolve())
    # The URL is in the environment while sbatch (--export=ALL, the default) or the local executor's
    # controller starts, and is restored after; submitit's handler in the job listens to the same signal.
    with submitit.helpers.environment_variables(**{STORAGE_ENV: storage, "SUBMITIT_PREEMPT_SIGNAL": STOP_SIGNAL}):
        return executor.map_array(SweepWorker(), [spec_path] * n_workers, [study_name] * n_workers,
                                  [n_trials] * n_workers, [force_spec] * n_workers)
