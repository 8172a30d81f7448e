"""`lit-video report` and `lit-video dashboard` on real Optuna storages: the files, the means over
seeds, the Pareto front (exactly the non-dominated trials), and one-line errors."""

from __future__ import annotations

import csv
import json
import random
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import optuna
import pytest
from conftest import write_spec

from lit_video.cli import main
from lit_video.sweep.report import (
    configuration_table,
    load_existing_study,
    primary_objective,
    versus,
    write_report,
)
from lit_video.sweep.spec import SEED_KEY, SweepSpec
from lit_video.sweep.study import run_sweep

CLIP = "data.init_args.clip_len"
STRIDE = "data.init_args.stride"


def storage_of(spec: SweepSpec) -> str:
    return f"sqlite:///{(spec.out_dir / f'{spec.study_name}.db').resolve()}"


def recorded_study(path: Path, seed: int = 0) -> optuna.Study:
    """A study of 40 recorded trials (no training): random accuracies on a few GFLOPs levels, so
    there are ties in compute, dominated and non-dominated trials; plus one failed trial."""
    rng = random.Random(seed)
    study = optuna.create_study(study_name="recorded", storage=f"sqlite:///{path}", direction="maximize")
    with warnings.catch_warnings(category=optuna.exceptions.ExperimentalWarning, action="ignore"):
        study.set_metric_names(["val/acc_video_best"])
    clip = optuna.distributions.CategoricalDistribution([4, 8, 16, 32])
    seeds = optuna.distributions.CategoricalDistribution([0, 1])
    for _ in range(40):
        clip_len = rng.choice([4, 8, 16, 32])
        study.add_trial(optuna.trial.create_trial(
            value=round(rng.uniform(0.2, 0.9), 2), params={CLIP: clip_len, SEED_KEY: rng.choice([0, 1])},
            distributions={CLIP: clip, SEED_KEY: seeds},
            user_attrs={"compute/gflops": 0.5 * clip_len, "compute/params": 1e6,
                        "compute/train_clips_per_s": rng.uniform(5, 15), "compute/peak_memory_mb": rng.uniform(100, 200),
                        "fit_time_s": 2.0 * clip_len + rng.random(), "wall_time_s": 2.2 * clip_len + 1}))
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL, params={CLIP: 32, SEED_KEY: 0}, distributions={CLIP: clip, SEED_KEY: seeds},
        user_attrs={"failure": "infeasible: out of memory (CUDA out of memory)"}))
    return study


def non_dominated(trials: list[optuna.trial.FrozenTrial]) -> set[int]:
    """Trials no other trial beats on accuracy and GFLOPs at once (>= both, > one): by exhaustion."""
    front = set()
    for t in trials:
        acc, flops = t.value, t.user_attrs["compute/gflops"]
        beaten = any(u.value >= acc and u.user_attrs["compute/gflops"] <= flops
                     and (u.value > acc or u.user_attrs["compute/gflops"] < flops) for u in trials)
        if not beaten:
            front.add(t.number)
    return front


def test_report_files_and_a_pareto_front_of_exactly_the_non_dominated_trials(tmp_path):
    study = recorded_study(tmp_path / "recorded.db")
    report = write_report(study, tmp_path / "report")
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    expected = non_dominated(complete)
    assert set(report.pareto_trials) == expected and len(report.pareto_trials) == len(expected) >= 2
    names = {p.name for p in report.files}
    for plot in ("objective_vs_clip_len", "objective_vs_gflops", "fit_time_vs_clip_len", "param_importances"):
        assert {f"{plot}.png", f"{plot}.html"} <= names
        assert (tmp_path / "report" / f"{plot}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        page = (tmp_path / "report" / f"{plot}.html").read_text()
        assert 'src="plotly.min.js"' in page  # plotly.js beside the page: opens offline
    assert (tmp_path / "report" / "plotly.min.js").stat().st_size > 1_000_000
    with open(tmp_path / "report" / "trials.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 41 and sum(r["state"] == "fail" for r in rows) == 1
    assert {"number", "val/acc_video_best", CLIP, SEED_KEY, "compute/gflops", "fit_time_s", "failure"} <= set(rows[0])
    summary = (tmp_path / "report" / "summary.txt").read_text()
    assert "infeasible: out of memory" in summary and "Pareto front" in summary
    for number in expected:
        assert f"trial {number}: " in summary.split("Pareto front")[1]


def test_objective_vs_clip_len_is_the_mean_and_spread_over_seeds(tmp_path):
    study = recorded_study(tmp_path / "recorded.db", seed=1)
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    (series,) = versus(complete, CLIP, lambda t: t.value)  # only the seed varies besides clip_len: one line
    assert series.x == [4, 8, 16, 32]
    for x, mean, spread in zip(series.x, series.y, series.error):
        values = [t.value for t in complete if t.params[CLIP] == x]
        assert mean == pytest.approx(statistics.fmean(values))
        assert spread == pytest.approx(statistics.stdev(values))


def test_configurations_average_objective_and_compute_over_seeds_and_keep_the_largest_peak_memory(tmp_path):
    study = recorded_study(tmp_path / "recorded.db", seed=2)
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert primary_objective(study) == (0, True)
    table = {row["params"][CLIP]: row for row in configuration_table(complete, 0)}
    assert sorted(table) == [4, 8, 16, 32]
    for clip_len, row in table.items():
        trials = [t for t in complete if t.params[CLIP] == clip_len]
        assert sorted(row["trials"]) == sorted(t.number for t in trials) and row["seeds"] == len(trials)
        assert row["mean"] == pytest.approx(statistics.fmean(t.value for t in trials))
        assert row["train_clips_per_s"] == pytest.approx(
            statistics.fmean(t.user_attrs["compute/train_clips_per_s"] for t in trials))
        assert row["peak_memory_mb"] == max(t.user_attrs["compute/peak_memory_mb"] for t in trials)
        assert row["gflops"] == pytest.approx(0.5 * clip_len) and row["params_m"] == pytest.approx(1.0)


def test_report_of_a_real_sweep_through_the_cli(tiny_study, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", "--storage", storage_of(tiny_study), "--out", str(out)]) == 0  # the only study
    printed = capsys.readouterr().out
    assert "study 'tiny'" in printed and "8 complete" in printed and str(out) in printed
    with open(out / "trials.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 8 and all(float(r["compute/gflops"]) > 0 for r in rows)
    study = load_existing_study(storage_of(tiny_study))
    series = versus(study.trials, CLIP, lambda t: t.value)
    assert sorted(s.name for s in series) == ["stride=1", "stride=2"]  # one line per other setting
    assert all(s.x == [4, 8] and all(label == "n=2" for label in s.labels) for s in series)  # 2 seeds each
    best = max(series, key=lambda s: max(s.y))
    assert f"{max(best.y):.4f} ± " in printed  # the best configuration's mean over seeds is in the summary


def test_pareto_sweep_with_nsga2_and_compute_as_an_objective(tmp_path, ucf101_root):
    path = write_spec(tmp_path, ucf101_root, sampler="nsga2", n_trials=3,
                      search_space={CLIP: {"type": "categorical", "choices": [4, 8]},
                                    "data.init_args.resolution": {"type": "categorical", "choices": [32, 48]}},
                      objectives=[{"metric": "val/acc_video_best", "direction": "maximize"},
                                  {"metric": "compute/gflops", "direction": "minimize"}])
    study = run_sweep(SweepSpec.load(path))
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 3
    for trial in complete:
        assert trial.values[1] == pytest.approx(trial.user_attrs["compute/gflops"])
    report = write_report(study, tmp_path / "report")
    # with accuracy and GFLOPs as the study's objectives, the report's front is Optuna's own
    assert sorted(report.pareto_trials) == sorted(t.number for t in study.best_trials)
    assert "objectives: val/acc_video_best (maximize), compute/gflops (minimize)" in report.summary


def test_report_errors_are_one_line(tmp_path, capsys):
    assert main(["report", "--storage", f"sqlite:///{tmp_path / 'missing.db'}"]) == 2
    assert "no such SQLite file" in capsys.readouterr().err
    storage = f"sqlite:///{tmp_path / 'two.db'}"
    for name in ("a", "b"):
        optuna.create_study(study_name=name, storage=storage)
    assert main(["report", "--storage", storage]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds 2 studies (a, b)" in err and "--study-name" in err and len(err.splitlines()) == 1
    assert main(["report", "--storage", storage, "--study-name", "c"]) == 2
    assert "no study 'c'" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_serves_the_study_on_localhost(tmp_path):
    study = recorded_study(tmp_path / "recorded.db")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "lit_video.cli", "dashboard", "--storage",
                              f"sqlite:///{tmp_path / 'recorded.db'}", "--port", str(port)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, answer = time.monotonic() + 60, None
        while time.monotonic() < deadline and answer is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as response:
                    answer = json.loads(response.read())
            except OSError:
                assert server.poll() is None, server.stdout.read()
                time.sleep(0.3)
        assert answer is not None, "the dashboard did not answer within 60 s"
        summaries = answer["study_summaries"]
        assert [s["study_name"] for s in summaries] == [study.study_name]
    finally:
        server.terminate()
        server.wait(timeout=20)
