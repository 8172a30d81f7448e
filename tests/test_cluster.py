"""Sweeps at cluster scale on a real PostgreSQL server: several worker processes on one study, a
worker killed mid-trial, a trial preempted by SIGTERM / SIGUSR1, and a password that never leaks.

Workers are real `lit-video sweep` processes that get the storage URL the way cluster jobs do, through
$LIT_VIDEO_STORAGE."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
from conftest import POSTGRES_PASSWORD, TINY_BUDGET, TINY_EXPERIMENT, write_spec
from lightning.fabric.plugins.environments import LightningEnvironment, SLURMEnvironment

from lit_video.cli import main
from lit_video.sweep.spec import SweepSpec
from lit_video.sweep.study import load_study, run_sweep
from lit_video.sweep.tracking import offline_runs
from lit_video.training import run_cli

CLIP, STRIDE = "data.init_args.clip_len", "data.init_args.stride"
COMPLETE, FAIL, PRUNED, WAITING = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL,
                                   optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.WAITING)
SLOW_MODEL = Path(__file__).with_name("slow_model.py")  # registers `sweep_test_slow` in the worker processes


def start_worker(spec: Path, storage: str, log: Path) -> subprocess.Popen:
    """A `lit-video sweep` worker process, its output in `log`."""
    env = {**os.environ, "LIT_VIDEO_STORAGE": storage, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, str(SLOW_MODEL), "sweep", str(spec)]
    return subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def slow_spec(folder: Path, root: Path, name: str, steps: int = 12, trainer: dict | None = None,
              **fields) -> Path:
    """A 2-point grid of a model that takes ~0.3 s per step, checkpointed after every step; heartbeats
    every second with a 3 s grace period. `trainer`: more budget keys."""
    return write_spec(folder, root, study_name=name, search_space={
        "model.init_args.model": {"type": "categorical", "choices": ["sweep_test_slow"]},
        STRIDE: {"type": "categorical", "choices": [1, 2]}},
        budget={**TINY_BUDGET, "limit_train_batches": steps, "max_epochs": 1, **(trainer or {})},
        overrides={"data.init_args.root": str(root), "data.init_args.num_workers": 0, "data.init_args.batch_size": 1},
        heartbeat={"interval": 1, "grace_period": 3}, **{"checkpoint_every_n_steps": 1, **fields})


def checkpoint_step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=False)["global_step"]


def test_four_workers_run_each_of_16_trials_exactly_once_and_the_password_stays_secret(
        tmp_path, ucf101_root, postgres_url, capsys):
    spec_path = write_spec(tmp_path, ucf101_root, study_name="four_workers", seeds=[0, 1, 2, 3])
    workers = [start_worker(spec_path, postgres_url, tmp_path / f"worker_{i}.log") for i in range(4)]
    codes = [w.wait(timeout=600) for w in workers]
    logs = "".join((tmp_path / f"worker_{i}.log").read_text() for i in range(4))
    assert codes == [0, 0, 0, 0], logs[-3000:]
    study = load_study(SweepSpec.load(spec_path), postgres_url)
    trials = study.trials
    assert len(trials) == 16 and all(t.state == COMPLETE for t in trials)  # nothing lost, nothing extra
    assert sorted(t.number for t in trials) == list(range(16))
    points = [(t.params[CLIP], t.params[STRIDE], t.params["seed_everything"]) for t in trials]
    assert len(set(points)) == 16  # no grid point twice
    assert len({t.user_attrs["worker"] for t in trials}) >= 2  # the work was shared
    # The report of the study, and everything the sweep wrote, hold no password; nor does any output.
    assert main(["report", "--storage", postgres_url, "--study-name", "four_workers",
                 "--out", str(tmp_path / "out" / "report")]) == 0
    printed = capsys.readouterr()
    assert "postgresql://lit:***@127.0.0.1" in printed.out
    assert main(["report", "--storage", postgres_url.replace(POSTGRES_PASSWORD, "wrong-pw"), "--study-name",
                 "x", "--out", str(tmp_path / "nowhere")]) == 2
    error = capsys.readouterr().err
    assert "password authentication failed" in error and "wrong-pw" not in error
    leaks = [str(p) for p in tmp_path.rglob("*") if p.is_file() and POSTGRES_PASSWORD.encode() in p.read_bytes()]
    assert leaks == [] and POSTGRES_PASSWORD not in logs + printed.out + printed.err


def test_a_killed_workers_trial_is_retried_by_another_and_resumes_from_its_checkpoint(
        tmp_path, ucf101_root, postgres_url):
    spec_path = slow_spec(tmp_path, ucf101_root, "sigkill")
    first = start_worker(spec_path, postgres_url, tmp_path / "first.log")
    checkpoint = tmp_path / "out" / "sigkill" / "trial_0000" / "checkpoints" / "last.ckpt"
    wait_for(lambda: checkpoint.is_file() and checkpoint_step(checkpoint) >= 2, 180, "a checkpoint of trial 0")
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at, killed_step = time.time(), checkpoint_step(checkpoint)
    second = start_worker(spec_path, postgres_url, tmp_path / "second.log")
    assert second.wait(timeout=300) == 0, (tmp_path / "second.log").read_text()[-3000:]
    study = load_study(SweepSpec.load(spec_path), postgres_url)
    killed = study.trials[0]
    assert killed.state == FAIL and "failure" not in killed.user_attrs  # failed by the heartbeat, not by an error
    (retry,) = [t for t in study.trials if t.system_attrs.get("retry_history") == [0]]
    assert retry.state == COMPLETE and retry.params == killed.params
    assert retry.user_attrs["resumed_from"] == str(checkpoint)
    assert retry.user_attrs["start_step"] >= killed_step > 0  # resumed, not restarted
    # every configuration complete, each once
    done = [(t.params["model.init_args.model"], t.params[STRIDE]) for t in study.trials if t.state == COMPLETE]
    assert sorted(done) == [("sweep_test_slow", 1), ("sweep_test_slow", 2)]
    # it took the grace period (3 s) and a poll, not forever
    assert retry.datetime_start.timestamp() - killed_at < 60


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_a_preempted_trial_saves_a_checkpoint_and_its_retry_resumes_from_it(
        tmp_path, ucf101_root, postgres_url, signum):
    name = f"preempt_{signum.name.lower()}"
    spec_path = slow_spec(tmp_path, ucf101_root, name, steps=25, checkpoint_every_n_steps=1000)
    worker = start_worker(spec_path, postgres_url, tmp_path / "worker.log")
    study = load_study(SweepSpec.load(spec_path), postgres_url)
    wait_for(lambda: "start_step" in study.trials[0].user_attrs, 180, "trial 0 to start training")
    time.sleep(2)  # a few steps in
    worker.send_signal(signum)
    assert worker.wait(timeout=120) == 0, (tmp_path / "worker.log").read_text()[-3000:]
    preempted = load_study(SweepSpec.load(spec_path), postgres_url).trials[0]
    assert preempted.state == FAIL and "failure" not in preempted.user_attrs
    checkpoint = Path(preempted.user_attrs["trial_dir"]) / "checkpoints" / "last.ckpt"
    step = checkpoint_step(checkpoint)
    assert step == preempted.user_attrs["preempted_at_step"] > 0  # saved at the step it stopped, mid-epoch
    (queued,) = [t for t in load_study(SweepSpec.load(spec_path), postgres_url).trials
                 if t.state == WAITING and t.system_attrs.get("retry_history") == [0]]
    assert queued.system_attrs["fixed_params"] == preempted.params
    # The worker stopped after the preemption; the next one resumes the trial from the checkpoint.
    import slow_model  # noqa: F401  (registers the model in this process)

    study = run_sweep(SweepSpec.load(spec_path), postgres_url)
    retry = next(t for t in study.trials if t.system_attrs.get("retry_history") == [0])
    assert retry.state == COMPLETE and retry.user_attrs["start_step"] == step
    assert retry.user_attrs["resumed_from"] == str(checkpoint)


def test_ddp_trials_run_on_two_ranks_are_pruned_together_and_only_rank_0_reports(tmp_path, ucf101_root):
    """Two CPU processes (gloo) per trial, two trials in one worker: Lightning starts rank 1 once, by
    running the worker's command again; rank 1 must join rank 0's trials, not claim its own."""
    storage = f"sqlite:///{tmp_path / 'ddp.db'}"  # an RDB storage: what pruning under DDP needs
    spec_path = write_spec(tmp_path, ucf101_root, study_name="ddp", sampler="random", n_trials=4,
                           objectives=[{"metric": "val/loss", "direction": "minimize"}], search_space={STRIDE: {"type": "categorical", "choices": [1, 2]}}, pruner="median",
                           budget={**TINY_BUDGET, "max_epochs": 3, "accelerator": "cpu", "devices": 2,
                                   "strategy": "ddp"})
    # Two finished trials that no model can match (loss 0 at every epoch): the median pruner prunes the
    # next trials at the first epoch after its warm-up, epoch 1.
    study = load_study(SweepSpec.load(spec_path), storage)
    for stride in (1, 2):
        study.add_trial(optuna.trial.create_trial(
            params={STRIDE: stride}, distributions={STRIDE: optuna.distributions.CategoricalDistribution([1, 2])},
            value=0.0, intermediate_values={0: 0.0, 1: 0.0, 2: 0.0}))
    worker = start_worker(spec_path, storage, tmp_path / "worker.log")
    assert worker.wait(timeout=600) == 0, (tmp_path / "worker.log").read_text()[-3000:]
    assert "Starting with 2 processes" in (tmp_path / "worker.log").read_text()
    ddp_trials = load_study(SweepSpec.load(spec_path), storage).trials[2:]
    assert len(ddp_trials) == 2  # rank 1 claimed none of its own
    for trial in ddp_trials:
        assert trial.state == PRUNED, trial.user_attrs.get("failure")
        assert sorted(trial.intermediate_values) == [0, 1]  # both ranks stopped after epoch 1 of 3
        assert trial.user_attrs["pruned_at_epoch"] == 1
        assert trial.user_attrs["worker"].endswith(f":{worker.pid}")  # rank 0 wrote the attributes
    assert len(offline_runs(tmp_path / "out" / "ddp")) == 2  # one W&B run per trial: rank 0's


def ddp_rank_pids(pid: int) -> list[int]:
    """The DDP ranks > 0 that the process `pid` started (its other children: the W&B service)."""
    children = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [child for child in children if b"LOCAL_RANK=" in Path(f"/proc/{child}/environ").read_bytes()]


def has_exited(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "\nState:\tZ" in status.read_text()


def test_a_preempted_ddp_trial_checkpoints_on_both_ranks_at_one_step_and_resumes_under_ddp(
        tmp_path, ucf101_root, postgres_url):
    spec_path = slow_spec(tmp_path, ucf101_root, "ddp_preempt", steps=25, checkpoint_every_n_steps=1000,
                          trainer={"accelerator": "cpu", "devices": 2, "strategy": "ddp"})
    worker = start_worker(spec_path, postgres_url, tmp_path / "worker.log")
    study = load_study(SweepSpec.load(spec_path), postgres_url)
    wait_for(lambda: "start_step" in study.trials[0].user_attrs, 180, "trial 0 to start training")
    time.sleep(2)  # a few steps in
    (rank_1,) = ddp_rank_pids(worker.pid)
    for pid in (worker.pid, rank_1):  # what SLURM does before a job's time is up: every process gets USR1
        os.kill(pid, signal.SIGUSR1)
    assert worker.wait(timeout=120) == 0, (tmp_path / "worker.log").read_text()[-3000:]
    wait_for(lambda: has_exited(rank_1), 30, "rank 1 to exit")
    preempted = load_study(SweepSpec.load(spec_path), postgres_url).trials[0]
    assert preempted.state == FAIL and "failure" not in preempted.user_attrs
    checkpoint = Path(preempted.user_attrs["trial_dir"]) / "checkpoints" / "last.ckpt"
    step = checkpoint_step(checkpoint)
    assert step == preempted.user_attrs["preempted_at_step"] > 0
    # A new worker (a requeued SLURM job) runs the retry on two ranks again, from the checkpoint.
    worker = start_worker(spec_path, postgres_url, tmp_path / "retry.log")
    assert worker.wait(timeout=300) == 0, (tmp_path / "retry.log").read_text()[-3000:]
    study = load_study(SweepSpec.load(spec_path), postgres_url)
    retry = next(t for t in study.trials if t.system_attrs.get("retry_history") == [0])
    assert retry.state == COMPLETE and retry.user_attrs["start_step"] == step
    assert sorted(t.params[STRIDE] for t in study.trials if t.state == COMPLETE) == [1, 2]


@pytest.mark.parametrize("devices, environment", [(2, LightningEnvironment), (1, SLURMEnvironment)])
def test_in_a_one_task_slurm_job_lightning_starts_the_ranks_of_a_multi_device_trial(
        ucf101_root, monkeypatch, devices, environment):
    """A sweep worker of a job array is one SLURM task: Lightning's SLURM environment would wait for
    ranks that srun never starts; a one-device run keeps it (and its SLURM requeue support)."""
    for key, value in {"SLURM_NTASKS": "1", "SLURM_JOB_ID": "42", "SLURM_JOB_NAME": "sweep-w",
                       "SLURM_NODELIST": "node1", "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
                       "SLURM_NODEID": "0"}.items():
        monkeypatch.setenv(key, value)
    cli = run_cli(["--config", str(TINY_EXPERIMENT), "--data.init_args.root", str(ucf101_root),
                   "--trainer.accelerator", "cpu", "--trainer.devices", str(devices)], run=False)
    assert type(cli.trainer._accelerator_connector.cluster_environment) is environment
