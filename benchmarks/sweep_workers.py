"""Sweep throughput with 1, 2 and 4 workers on SQLite, a journal file and PostgreSQL, and how long a
killed worker's trial takes to be retried.

Each cell runs the same grid of tiny trials (clip_len {4, 8} x stride {1, 2} x 2 seeds, one short
epoch each, on synthetic UCF101 data) with `lit-video sweep --workers N` into a fresh study, and
prints trials per minute from the launch to the last worker's exit (worker start-up included), with a
check that every grid point ran exactly once. The PostgreSQL server is a private one started for the
run (the server binaries must be installed). Then a worker is SIGKILLed mid-trial with heartbeats every
2 s and a 6 s grace period, and the time until another worker starts the retried trial is printed.

    .venv/bin/python benchmarks/sweep_workers.py            # about 10 minutes on 2 cores
    .venv/bin/python benchmarks/sweep_workers.py --workers 1,2 --storages sqlite,journal
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the private PostgreSQL server and the slow test model

BUDGET = {"max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 1, "enable_progress_bar": False,
          "enable_checkpointing": False, "enable_model_summary": False, "logger": False}


def write_spec(folder: Path, data: Path, **fields) -> Path:
    spec = {"experiment": str(ROOT / "experiments/synthetic/r2plus1d_tiny.yaml"), "study_name": "bench",
            "out_dir": str(folder / "out"), "overrides": {"data.init_args.root": str(data),
                                                          "data.init_args.num_workers": 0},
            "search_space": {"data.init_args.clip_len": {"type": "categorical", "choices": [4, 8]},
                             "data.init_args.stride": {"type": "categorical", "choices": [1, 2]}},
            "seeds": [0, 1], "objectives": [{"metric": "val/acc_video_best", "direction": "maximize"}],
            "sampler": "grid", "pruner": "none", "budget": BUDGET, "wandb": {"mode": "disabled"}, **fields}
    path = folder / f"{spec['study_name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def lit_video() -> str:
    return str(Path(sys.executable).with_name("lit-video"))


def run_cell(spec: Path, storage: str, name: str, workers: int) -> tuple[float, int, int]:
    """(seconds, complete trials, distinct grid points) of one sweep with `workers` processes."""
    import optuna

    start = time.perf_counter()
    subprocess.run([lit_video(), "sweep", str(spec), "--storage", storage, "--study-name", name,
                    "--workers", str(workers), "--quiet"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env={**os.environ, "WANDB_MODE": "disabled"})
    seconds = time.perf_counter() - start
    from lit_video.sweep.storage import open_storage

    trials = optuna.load_study(study_name=name, storage=open_storage(storage)).trials
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    return seconds, len(complete), len({tuple(sorted(t.params.items())) for t in complete})


def retry_latency(folder: Path, data: Path, storage: str) -> tuple[float, float]:
    """Seconds from SIGKILL of a worker mid-trial until its trial is failed and queued again, and until
    another worker starts the retry."""
    import optuna

    from lit_video.sweep.storage import open_storage

    spec = write_spec(folder, data, study_name="killed", seeds=[0],
                      search_space={"model.init_args.model": {"type": "categorical", "choices": ["sweep_test_slow"]},
                                    "data.init_args.stride": {"type": "categorical", "choices": [1, 2, 3]}},
                      budget={**BUDGET, "limit_train_batches": 20, "max_epochs": 2},
                      overrides={"data.init_args.root": str(data), "data.init_args.num_workers": 0,
                                 "data.init_args.batch_size": 1},
                      heartbeat={"interval": 2, "grace_period": 6})
    env = {**os.environ, "LIT_VIDEO_STORAGE": storage, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(ROOT / "tests" / "slow_model.py"), "sweep", str(spec), "--quiet"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    study = None
    while study is None or not any("start_step" in t.user_attrs for t in study.trials):
        time.sleep(0.5)
        try:
            study = optuna.load_study(study_name="killed", storage=open_storage(storage))
        except KeyError:
            pass
    victim = next(t.number for t in study.trials if "start_step" in t.user_attrs)
    second = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(8)  # the second worker is up and busy with another point
    first.send_signal(signal.SIGKILL)
    killed_at = time.time()
    first.wait()
    second.wait()
    trials = optuna.load_study(study_name="killed", storage=open_storage(storage)).trials
    retry = next(t for t in trials if t.system_attrs.get("retry_history") == [victim])
    return trials[victim].datetime_complete.timestamp() - killed_at, retry.datetime_start.timestamp() - killed_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--storages", default="sqlite,journal,postgresql")
    parser.add_argument("--retry-only", action="store_true", help="only the killed-worker measurement")
    args = parser.parse_args()
    from lit_video.data.synthetic import synthesize
    from lit_video.data.synthetic.spec import SynthSpec

    counts = [int(n) for n in args.workers.split(",")]
    kinds = args.storages.split(",")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        data = scratch / "ucf101"
        synthesize("ucf101", data, SynthSpec(num_classes=4, videos_per_class=10, num_frames=24, size=(64, 80), seed=3))
        spec = write_spec(scratch, data)
        server = None
        if "postgresql" in kinds:
            from postgres import postgres_server

            server = postgres_server(Path(tempfile.gettempdir()), "bench-password")
            postgres_url = server.__enter__()
        try:
            print(f"{'storage':<11} {'workers':>7} {'seconds':>8} {'trials/min':>10} {'vs 1 worker':>11} "
                  f"{'complete':>8} {'distinct':>8}")
            for kind in [] if args.retry_only else kinds:
                base = None
                for workers in counts:
                    name = f"{kind}_{workers}"
                    storage = {"sqlite": f"sqlite:///{scratch / name}.db", "journal": str(scratch / f"{name}.journal"),
                               "postgresql": postgres_url if server else ""}[kind]
                    seconds, complete, distinct = run_cell(spec, storage, name, workers)
                    rate = complete / seconds * 60
                    base = base or rate
                    print(f"{kind:<11} {workers:>7} {seconds:>8.1f} {rate:>10.1f} {rate / base:>11.2f} "
                          f"{complete:>8} {distinct:>8}", flush=True)
            if server:
                queued, started = retry_latency(scratch, data, postgres_url)
                print(f"\nkilled worker's trial (heartbeat every 2 s, grace period 6 s): failed and queued again "
                      f"{queued:.1f} s after the kill, started by the other worker after {started:.1f} s "
                      "(once it had finished its own trial)")
        finally:
            if server:
                server.__exit__(None, None, None)


if __name__ == "__main__":
    main()
