"""Launchers: SLURM job arrays through submitit (run here by submitit's local executor), local worker
processes, the spec's `slurm:` section and the command-line options over it. The storage URL reaches
workers through $LIT_VIDEO_STORAGE only: never a command line, a pickled job or submitit's files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import optuna
import pytest
import submitit
from conftest import write_spec

import lit_video.sweep.launch as launch
from lit_video.cli import main
from lit_video.errors import LitVideoError
from lit_video.sweep.launch import SlurmSettings, SweepWorker, merge_settings, submit_slurm, worker_command
from lit_video.sweep.spec import SweepSpec, SweepSpecError
from lit_video.sweep.storage import STORAGE_ENV, open_storage

GRID = {(4, 1), (4, 2), (8, 1), (8, 2)}
# Settings of a job run by the local executor: no GPU; the time limit is the local controller's timeout.
LOCAL = SlurmSettings(time_min=10, gpus_per_worker=0)
# A storage with a password that nothing listens on (port 9, discard): workers fail to open it at once.
SECRET = "s3cret-Pw-7d1f"
UNREACHABLE = f"postgresql://lit:{SECRET}@127.0.0.1:9/optuna"


@pytest.fixture(autouse=True)
def _environment(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    # submitit's local jobs inherit this: two PyTorch processes each using both cores run 2-3x slower
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # these workers share no GPUs: on a machine with an odd number of them, two workers would be refused
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


def _wait(jobs: list, timeout_s: float = 300) -> None:
    """Wait for local submitit jobs; cancel them and fail with their logs when they take too long."""
    deadline = time.monotonic() + timeout_s
    while not all(job.done() for job in jobs):
        if time.monotonic() > deadline:
            for job in jobs:
                job.cancel()
            pytest.fail("workers did not finish:\n" + "\n".join(job.stderr() or "" for job in jobs))
        time.sleep(0.5)


def _grid_points(study: optuna.Study) -> set[tuple[int, int]]:
    return {(t.params["data.init_args.clip_len"], t.params["data.init_args.stride"])
            for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))}


def test_slurm_array_of_two_workers_completes_the_grid(tmp_path, ucf101_root):
    spec_path = write_spec(tmp_path, ucf101_root)
    storage = str(tmp_path / "study.journal")
    folder = tmp_path / "submitit"
    jobs = submit_slurm(spec_path, storage, "test", n_workers=2, n_trials=None, settings=LOCAL, folder=folder,
                        cluster="local")
    assert len(jobs) == 2 and len({job.job_id for job in jobs}) == 2 and all(job.job_id for job in jobs)
    _wait(jobs)
    assert all(job.state == "FINISHED" for job in jobs), [job.stderr() for job in jobs]
    assert max(job.result() for job in jobs) >= 4  # the worker that stopped last saw every point finished
    study = optuna.load_study(study_name="test", storage=open_storage(storage))
    assert _grid_points(study) == GRID
    assert STORAGE_ENV not in os.environ  # set only while submitting


def test_storage_password_never_reaches_submitit_files(tmp_path, ucf101_root):
    """The worker does receive the URL (it tries that database: its host is in the error in its log), yet
    no file submitit wrote (the pickled job, its result, the logs) holds the password."""
    spec_path = write_spec(tmp_path, ucf101_root)
    folder = tmp_path / "submitit"
    jobs = submit_slurm(spec_path, UNREACHABLE, "test", n_workers=1, n_trials=None, settings=LOCAL, folder=folder,
                        cluster="local")
    _wait(jobs)
    with pytest.raises(submitit.core.utils.FailedJobError):
        jobs[0].result()
    assert "127.0.0.1" in jobs[0].stderr()
    files = [path for path in folder.rglob("*") if path.is_file()]
    assert any(path.suffix == ".pkl" for path in files) and any(path.name.endswith(".err") for path in files)
    assert [path for path in files if SECRET.encode() in path.read_bytes()] == []


def test_sbatch_array_on_a_fake_slurm(tmp_path, monkeypatch):
    """What reaches sbatch (stand-ins for srun and sbatch on PATH): one array with the settings, requeue
    and the stop signal in the script; the storage in sbatch's environment and nowhere in the folder."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    # sbatch's own record goes outside submitit's folder: it holds the URL, to check that sbatch got it
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\nprintf '%s\\n%s\\n' \"${STORAGE_ENV}\" \"$SUBMITIT_PREEMPT_SIGNAL\" "
                                    f"> {tmp_path / 'sbatch_env'}\necho 'Submitted batch job 4242'\n")
    for tool in ("srun", "sbatch"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    folder = tmp_path / "submitit"
    settings = SlurmSettings(partition="gpu", time_min=30, gpus_per_worker=1, cpus_per_worker=8, mem_gb=32,
                             sbatch={"account": "proj"})
    jobs = submit_slurm(tmp_path / "spec.yaml", UNREACHABLE, "test", n_workers=2, n_trials=None, settings=settings,
                        folder=folder)  # cluster None: SLURM, found through srun
    assert [job.job_id for job in jobs] == ["4242_0", "4242_1"]
    assert (tmp_path / "sbatch_env").read_text().splitlines() == [UNREACHABLE, "USR1"]
    script = next(folder.glob("*.sh")).read_text()
    for line in ("--array=0-1%2", "--requeue", "--signal=USR1@120", "--partition=gpu", "--time=30",
                 "--gpus-per-node=1", "--cpus-per-task=8", "--mem=32GB", "--account=proj", "--job-name=sweep-test"):
        assert f"#SBATCH {line}\n" in script
    files = [path for path in folder.rglob("*") if path.is_file()]
    assert sum(path.suffix == ".pkl" for path in files) == 2
    assert [path for path in files if SECRET.encode() in path.read_bytes()] == []
    with pytest.raises(LitVideoError, match="SQLite .* cannot be shared by jobs on many nodes"):
        submit_slurm(tmp_path / "spec.yaml", "sqlite:///x.db", "test", 2, None, settings, folder)


def test_checkpoint_requeues_the_same_worker_and_arguments():
    worker = SweepWorker()
    delayed = worker.checkpoint("sweeps/demo.yaml", "demo", 12)
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    assert delayed.function is worker and delayed.args == ("sweeps/demo.yaml", "demo", 12) and not delayed.kwargs


def test_worker_without_storage_in_its_environment_fails_in_one_line(tmp_path, ucf101_root):
    with pytest.raises(LitVideoError, match=f"{STORAGE_ENV} is not set"):
        SweepWorker()(str(write_spec(tmp_path, ucf101_root)), "test")


def test_spec_slurm_section_is_checked(tmp_path, ucf101_root):
    spec = SweepSpec.load(write_spec(tmp_path, ucf101_root, slurm={"partition": "gpu", "time_min": 240,
                                                                   "sbatch": {"account": "proj"}}))
    assert spec.slurm == {"partition": "gpu", "time_min": 240, "sbatch": {"account": "proj"}}
    path = write_spec(tmp_path, ucf101_root, slurm={"partition": "gpu", "gpu_per_worker": 1})
    with pytest.raises(SweepSpecError, match=r"spec.yaml: slurm: unknown key 'gpu_per_worker'") as error:
        SweepSpec.load(path)
    assert "\n" not in str(error.value)
    with pytest.raises(SweepSpecError, match=r"slurm.time_min: expected a positive integer, got 'long'"):
        SweepSpec.load(write_spec(tmp_path, ucf101_root, slurm={"time_min": "long"}))
    assert SweepSpec.load(write_spec(tmp_path, ucf101_root)).slurm == {}


def test_command_line_overrides_spec_settings():
    spec = {"partition": "gpu", "time_min": 240, "cpus_per_worker": 8, "sbatch": {"account": "proj", "qos": "low"}}
    settings = merge_settings(spec, partition="a100", time_min=None, gpus_per_worker=2, cpus_per_worker=None,
                              mem_gb=None, sbatch={"qos": "high", "exclusive": True})
    assert settings == SlurmSettings(partition="a100", time_min=240, gpus_per_worker=2, cpus_per_worker=8,
                                     sbatch={"account": "proj", "qos": "high", "exclusive": True})
    assert merge_settings({}) == SlurmSettings()  # nothing given: 60 minutes, the rest the partition's default


def test_cli_slurm_launcher_submits_merged_settings(tmp_path, ucf101_root, monkeypatch, capsys):
    submitted = {}

    class Job:
        def __init__(self, index: int):
            self.job_id = f"4242_{index}"

    def fake_submit(spec_path, storage, study_name, n_workers, n_trials, settings, folder):
        submitted.update(storage=storage, study_name=study_name, n_workers=n_workers, settings=settings, folder=folder)
        return [Job(i) for i in range(n_workers)]

    monkeypatch.setattr(launch, "submit_slurm", fake_submit)
    spec_path = write_spec(tmp_path, ucf101_root, slurm={"partition": "gpu", "time_min": 240, "sbatch": {"qos": "low"}})
    code = main(["sweep", str(spec_path), "--launcher", "slurm", "--workers", "3", "--storage", UNREACHABLE,
                 "--time", "30", "--gpus-per-worker", "1", "--sbatch", "account=proj", "--sbatch", "qos=high"])
    out = capsys.readouterr().out
    assert code == 0
    assert submitted["settings"] == SlurmSettings(partition="gpu", time_min=30, gpus_per_worker=1,
                                                  sbatch={"qos": "high", "account": "proj"})
    assert submitted["n_workers"] == 3 and submitted["storage"] == UNREACHABLE
    assert submitted["folder"] == tmp_path / "out" / "test" / "submitit"
    assert "4242_0, 4242_1, 4242_2" in out and str(submitted["folder"].resolve()) in out
    assert SECRET not in out and "lit:***@127.0.0.1" in out


def test_cli_slurm_launcher_without_slurm_fails_in_one_line(tmp_path, ucf101_root, capsys):
    spec_path = write_spec(tmp_path, ucf101_root)
    assert main(["sweep", str(spec_path), "--launcher", "slurm", "--storage", str(tmp_path / "s.journal")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SLURM was not found on this machine" in err


def test_local_workers_get_the_storage_from_their_environment(tmp_path, ucf101_root, monkeypatch, capfd):
    """Two real workers on a storage they cannot reach: the URL is in their environment and in none of
    their arguments, and both fail on it (with the spec's default SQLite they would run the sweep)."""
    started = []
    real_popen = subprocess.Popen

    def recording_popen(command, **kwargs):
        started.append((list(command), kwargs["env"]))
        return real_popen(command, **kwargs)

    monkeypatch.setattr(launch.subprocess, "Popen", recording_popen)
    spec_path = write_spec(tmp_path, ucf101_root)
    codes = launch.local_workers(spec_path, UNREACHABLE, "test", n_workers=2, n_trials=3)
    assert len(codes) == 2 and all(codes)
    assert [command for command, _ in started] == [worker_command(spec_path, "test", 3)] * 2
    assert all(SECRET not in " ".join(command) and env[STORAGE_ENV] == UNREACHABLE for command, env in started)
    err = capfd.readouterr().err
    assert "127.0.0.1" in err and SECRET not in err
    assert not (tmp_path / "out" / "test.db").exists()


def test_local_workers_pass_ctrl_c_on_and_wait(tmp_path, monkeypatch):
    """A SIGINT to the parent reaches every worker once; the parent waits for them, then stops too."""
    marks = tmp_path / "marks"
    marks.mkdir()
    child = ("import os, signal, sys, time\n"
             "def stop(signum, frame):\n"
             "    time.sleep(0.5)  # a clean stop takes a moment: the parent must wait for it\n"
             f"    open(os.path.join({str(marks)!r}, str(os.getpid())), 'a').write('stopped\\n')\n"
             "    sys.exit(130)\n"
             "signal.signal(signal.SIGINT, stop)\n"
             f"open(os.path.join({str(marks)!r}, 'ready-' + str(os.getpid())), 'w').close()\n"
             "time.sleep(60)\n")
    monkeypatch.setattr(launch, "worker_command", lambda *args: [sys.executable, "-c", child])

    def interrupt_when_ready():
        while len(list(marks.glob("ready-*"))) < 2:
            time.sleep(0.05)
        # to the main thread, as a Ctrl-C is: its wait for the workers is interrupted and the handler runs
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    handler = signal.getsignal(signal.SIGINT)
    threading.Thread(target=interrupt_when_ready, daemon=True).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        launch.local_workers("spec.yaml", "x.journal", "test", n_workers=2)
    stopped = [path for path in marks.iterdir() if not path.name.startswith("ready-")]
    assert len(stopped) == 2 and all(path.read_text() == "stopped\n" for path in stopped)
    assert time.monotonic() - start < 30
    assert signal.getsignal(signal.SIGINT) is handler  # the parent's own handler is back
