"""`lit-video report` and `lit-video dashboard` on real Optuna storages: the files, the means over
seeds, the Pareto front (exactly the non-dominated trials), and one-line errors."""

from __future__ import annotations

import csv
import json
import math
import random
import re
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
    grouped_points,
    load_existing_study,
    primary_objective,
    versus,
    write_report,
)
from lit_video.sweep.spec import SEED_KEY, SweepSpec
from lit_video.sweep.study import run_sweep

CLIP = "data.init_args.clip_len"
STRIDE = "data.init_args.stride"
TRAIN_PFLOPS = "compute/train_pflops_total"


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


def non_dominated(trials: list[optuna.trial.FrozenTrial], compute: str = "compute/gflops") -> set[int]:
    """Trials no other trial beats on accuracy and `compute` at once (>= both, > one): by exhaustion."""
    front = set()
    for t in trials:
        acc, flops = t.value, t.user_attrs[compute]
        beaten = any(u.value >= acc and u.user_attrs[compute] <= flops
                     and (u.value > acc or u.user_attrs[compute] < flops) for u in trials)
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
    # what the trials really cost, measured during their fits, in the CSV, the figures and the summary
    assert all(float(r["compute/train_pflops_total"]) > 0 and float(r["compute/eval_gflops_per_video"]) > 0
               for r in rows)
    assert all((out / f"{plot}.png").is_file() for plot in MEASURED_FIGURES)
    assert "iso-compute" in printed and "at <= " in printed
    on_test = any(t.user_attrs.get("objective_on_test") for t in study.trials)
    assert ("WARNING" in printed) == on_test and "objective taken from: " in printed


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


def measured_study(path: Path, name: str = "measured", budget: float | None = None, on_test: set[int] = frozenset(),
                   seed: int = 0) -> optuna.Study:
    """A study of recorded trials (no training) with the measured training cost of a real sweep: clip_len
    {4, 8, 16} x stride {1, 2} x seeds {0, 1}. Training compute grows with the clip (and a little with the
    stride), the objective too, with noise: the best configuration within a small compute is not the best one.

    Args:
        path: the SQLite file.
        name: the study's name.
        budget: train every trial to this many PFLOPs (a budgeted study), or None (equal epochs).
        on_test: trial numbers whose objective came from the test list.
        seed: the noise.
    """
    rng = random.Random(seed)
    study = optuna.create_study(study_name=name, storage=f"sqlite:///{path}", direction="maximize")
    with warnings.catch_warnings(category=optuna.exceptions.ExperimentalWarning, action="ignore"):
        study.set_metric_names(["val/acc_video_best"])
    distributions = {CLIP: optuna.distributions.CategoricalDistribution([4, 8, 16]),
                     STRIDE: optuna.distributions.CategoricalDistribution([1, 2]),
                     SEED_KEY: optuna.distributions.CategoricalDistribution([0, 1])}
    number = 0
    for clip_len in (4, 8, 16):
        for stride in (1, 2):
            for seed_value in (0, 1):
                per_clip = 0.3 * clip_len * (1 + 0.1 * stride)  # forward + backward GFLOPs per training clip
                clips = 2000 if budget is None else budget * 1e6 / per_clip
                attrs = {
                    "compute/gflops": 0.1 * clip_len, "compute/params": 2e6,
                    "compute/train_gflops_per_clip": per_clip, "compute/train_clips_seen": clips,
                    "compute/train_pflops_total": per_clip * clips / 1e6 * rng.uniform(0.97, 1.03),
                    "compute/train_seconds": clips / 50, "compute/train_device_hours": clips / 50 / 3600,
                    "compute/train_clips_per_s": rng.uniform(40, 60), "compute/peak_memory_mb": 40.0 * clip_len
                    + rng.uniform(0, 5), "compute/memory_source": "cuda",
                    "compute/eval_gflops_per_video": 0.4 * clip_len * stride,
                    "compute/eval_seconds_per_video": 0.01 * clip_len,
                    "objective_split": "val", "objective_on_test": number in on_test,
                    "batch/requested": 16, "batch/micro": 16 if clip_len < 16 else 8,
                    "batch/accumulate_grad_batches": 1 if clip_len < 16 else 2, "batch/effective": 16,
                    "fit_time_s": clips / 50, "wall_time_s": clips / 45,
                }
                if budget is not None:
                    attrs.update({"budget/train_pflops": budget, "budget/max_steps": round(clips / 16)})
                value = 0.4 + 0.1 * math.log2(clip_len) - 0.02 * stride + rng.uniform(-0.06, 0.06)
                study.add_trial(optuna.trial.create_trial(
                    value=value, params={CLIP: clip_len, STRIDE: stride, SEED_KEY: seed_value},
                    distributions=distributions, user_attrs=attrs))
                number += 1
    return study


def configurations(trials: list[optuna.trial.FrozenTrial]) -> dict[str, dict[str, float]]:
    """'clip_len=C, stride=S' -> mean objective, mean training PFLOPs and mean budget steps over seeds,
    computed here without the report module."""
    groups: dict[str, list[optuna.trial.FrozenTrial]] = {}
    for t in trials:
        groups.setdefault(f"clip_len={t.params[CLIP]}, stride={t.params[STRIDE]}", []).append(t)
    return {label: {"mean": statistics.fmean(t.value for t in group),
                    "pflops": statistics.fmean(t.user_attrs["compute/train_pflops_total"] for t in group),
                    "steps": statistics.fmean(t.user_attrs.get("budget/max_steps", 0) for t in group)}
            for label, group in groups.items()}


MEASURED_FIGURES = ("objective_vs_train_pflops", "objective_vs_eval_gflops", "objective_vs_peak_memory")


def test_measured_compute_figures_and_the_best_configuration_within_each_compute_level(tmp_path):
    study = measured_study(tmp_path / "measured.db")
    report = write_report(study, tmp_path / "report")
    names = {p.name for p in report.files}
    for plot in MEASURED_FIGURES:
        assert {f"{plot}.png", f"{plot}.html"} <= names
        assert (tmp_path / "report" / f"{plot}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (tmp_path / "report" / "objective_vs_train_pflops.html").read_text()
    assert '"type":"log"' in page and "clip_len=16" in page  # log x, one series per clip length
    with open(tmp_path / "report" / "trials.csv") as file:
        columns = set(next(csv.DictReader(file)))
    assert set(study.trials[0].user_attrs) <= columns  # every recorded attribute
    # the best configuration within each iso-compute level, checked against the trials themselves
    configs = configurations(study.trials)
    found = re.findall(r"^  at <= (\S+) PFLOPs: best (.+?): (\d\.\d{4}) ± ", report.summary, re.MULTILINE)
    assert len(found) >= 3
    picked = set()
    for level, label, mean in found:
        within = {k: c for k, c in configs.items() if c["pflops"] <= float(level)}
        expected = max(within, key=lambda k: within[k]["mean"])
        assert label == expected and float(mean) == pytest.approx(configs[expected]["mean"], abs=1e-4)
        picked.add(label)
    cheapest = min(configs, key=lambda k: configs[k]["pflops"])
    overall = max(configs, key=lambda k: configs[k]["mean"])
    assert cheapest in picked and overall in picked and len(picked) >= 3  # neither only the cheapest nor the best
    assert "budgeted study" not in report.summary and "objective taken from: val (12 trials)" in report.summary
    assert "gradient accumulation (micro_batch: auto): 4 of 12 trials ran with it" in report.summary


def test_configurations_carry_the_measured_cost(tmp_path):
    study = measured_study(tmp_path / "measured.db", seed=1)
    for row in configuration_table(study.trials, 0):
        trials = [t for t in study.trials if t.number in row["trials"]]
        for key in ("train_gflops_per_clip", "train_pflops_total", "eval_gflops_per_video", "train_clips_per_s"):
            assert row[key] == pytest.approx(statistics.fmean(t.user_attrs[f"compute/{key}"] for t in trials))
        assert row["peak_memory_mb"] == max(t.user_attrs["compute/peak_memory_mb"] for t in trials)
        assert row["memory_source"] == "cuda" and row["steps"] == pytest.approx(2000 / 16)


def test_a_budgeted_study_is_ranked_at_its_budget(tmp_path):
    study = measured_study(tmp_path / "budgeted.db", budget=0.5, seed=2)
    report = write_report(study, tmp_path / "report")
    summary = report.summary
    assert "budgeted study: every trial trained to train_pflops = 0.5 PFLOPs" in summary
    assert "iso-compute" not in summary  # one budget: no compute levels to choose between
    ranking = summary.split("budgeted study")[1].split("\n\n")[0]
    ranked = re.findall(r"^  \d\. (.+?): (\d\.\d{4}) ± \d\.\d{4} with (\d+) steps", ranking, re.MULTILINE)
    configs = configurations(study.trials)
    assert [label for label, _, _ in ranked] == sorted(configs, key=lambda k: -configs[k]["mean"])
    for label, _, steps in ranked:
        assert int(steps) == round(configs[label]["steps"])
    page = (tmp_path / "report" / "objective_vs_train_pflops.html").read_text()
    assert "budget 0.5 PFLOPs" in page  # the budget drawn as the iso-compute line


def test_the_split_warning_appears_exactly_when_the_objective_came_from_the_test_list(tmp_path, capsys):
    clean = measured_study(tmp_path / "clean.db")
    assert "WARNING" not in write_report(clean, tmp_path / "clean").summary
    measured_study(tmp_path / "on_test.db", on_test={3, 7})
    storage = f"sqlite:///{tmp_path / 'on_test.db'}"
    assert main(["report", "--storage", storage, "--out", str(tmp_path / "on_test")]) == 0
    printed = capsys.readouterr().out
    (warning,) = [line for line in printed.splitlines() if "WARNING" in line]
    assert warning.startswith("WARNING: 2 trials (trial 3, 7) took the objective from the test list")
    assert "hyperparameters were chosen on the test list" in warning
    assert warning in (tmp_path / "on_test" / "summary.txt").read_text()


def test_old_studies_without_the_measured_attributes_still_report(tmp_path):
    report = write_report(recorded_study(tmp_path / "recorded.db"), tmp_path / "old")
    names = {p.name for p in report.files}
    assert "objective_vs_train_pflops.png" not in names and "objective_vs_eval_gflops.png" not in names
    assert "objective_vs_peak_memory.png" in names  # the profile's peak memory is there
    assert "- PFLOPs trained" in report.summary and "iso-compute" not in report.summary
    assert "objective taken from" not in report.summary and "WARNING" not in report.summary
    # a study with no compute at all, and one with forward GFLOPs only
    bare = optuna.create_study(study_name="bare", storage=f"sqlite:///{tmp_path / 'bare.db'}")
    x = optuna.distributions.IntDistribution(0, 5)
    for i in range(3):
        attrs = {"compute/gflops": 1.0 + i} if i else {}
        bare.add_trial(optuna.trial.create_trial(value=i, params={"x": i}, distributions={"x": x}, user_attrs=attrs))
    summary = write_report(bare, tmp_path / "bare").summary
    assert "x=0: 0.0000 ± 0.0000 (1 seed); no profile;" in summary
    assert "x=1: 1.0000 ± 0.0000 (1 seed); 2 GFLOPs fwd/clip, - GFLOPs train/clip" in summary
    assert {p.name for p in (tmp_path / "bare").iterdir()} >= {"trials.csv", "summary.txt", "objective_vs_x.png"}
    written = {p.name for p in (tmp_path / "bare").iterdir()}
    assert not {"objective_vs_peak_memory.png", "objective_vs_train_pflops.png"} & written
    assert grouped_points(bare.trials, None, lambda t: t.user_attrs.get(TRAIN_PFLOPS), lambda t: t.value) == []


def plot_traces(page: Path) -> list[dict]:
    """The traces a plotly page draws, read from its `Plotly.newPlot(id, data, layout, config)` call."""
    text = page.read_text()
    call = text.index("Plotly.newPlot(")
    data, _ = json.JSONDecoder().raw_decode(text, text.index("[", text.index(",", call)))
    return data


def best_mean_per_clip_len(trials: list[optuna.trial.FrozenTrial]) -> dict[int, float]:
    """clip_len -> the best mean objective over seeds among its strides, computed here without the report module."""
    best: dict[int, float] = {}
    for label, config in configurations(trials).items():
        clip_len = int(label.split(",")[0].removeprefix("clip_len="))
        best[clip_len] = max(best.get(clip_len, -math.inf), config["mean"])
    return best


def test_a_cross_study_report_overlays_both_studies_in_one_colour_each(tmp_path, capsys):
    # two studies of the same grid in two storages, as two models' sweeps would be
    first = measured_study(tmp_path / "a.db", name="r2plus1d", seed=0)
    second = measured_study(tmp_path / "b.db", name="timesformer", seed=5)
    out = tmp_path / "report"
    assert main(["report", "--storage", f"sqlite:///{tmp_path / 'a.db'}", "--study", "r2plus1d",
                 "--storage", f"sqlite:///{tmp_path / 'b.db'}", "--study", "timesformer", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    studies = {"r2plus1d": first.trials, "timesformer": second.trials}
    # the ablation curve: one series per study, each clip length at the study's best stride (mean over seeds)
    traces = plot_traces(out / "objective_vs_clip_len.html")
    assert [t["name"] for t in traces] == list(studies)
    assert len({t["marker"]["color"] for t in traces}) == 2 and all(t["line"] == t["marker"] for t in traces)
    for trace in traces:
        expected = best_mean_per_clip_len(studies[trace["name"]])
        assert trace["x"] == [4, 8, 16] and trace["y"] == pytest.approx([expected[x] for x in (4, 8, 16)])
    assert [t["name"] for t in plot_traces(out / "objective_vs_stride.html")] == list(studies)
    # the Pareto fronts, against forward GFLOPs and against training PFLOPs: every trial, and exactly the
    # non-dominated ones on each study's front, in the study's colour
    for page, compute in (("objective_vs_gflops", "compute/gflops"), ("objective_vs_train_pflops", TRAIN_PFLOPS)):
        traces = {t["name"]: t for t in plot_traces(out / f"{page}.html")}
        assert set(traces) == {f"{name}: {part}" for name in studies for part in ("trials", "Pareto front")}
        for name, trials in studies.items():
            dots, front = traces[f"{name}: trials"], traces[f"{name}: Pareto front"]
            assert sorted(zip(dots["x"], dots["y"])) == sorted((t.user_attrs[compute], t.value) for t in trials)
            on_front = [t for t in trials if t.number in non_dominated(trials, compute)]
            assert sorted(zip(front["x"], front["y"])) == sorted((t.user_attrs[compute], t.value) for t in on_front)
            assert dots["marker"]["color"] == front["marker"]["color"]
        assert traces["r2plus1d: trials"]["marker"] != traces["timesformer: trials"]["marker"]
    assert (out / "objective_vs_train_pflops.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the table of each study's best trial
    table = printed.split("best trial of each study")[1].split("\n\n")[0]
    for name, trials in studies.items():
        best = max(trials, key=lambda t: t.value)
        assert re.search(rf"^  {name} +{best.number} +{best.value:.4f} ", table, re.MULTILINE), table
    assert printed.startswith("2 studies compared on val/acc_video_best (maximize)")
    assert (out / "summary.txt").read_text() in printed and "Studies r2plus1d vs timesformer" in (
        out / "index.html").read_text()
    with open(out / "trials.csv") as file:
        rows = list(csv.DictReader(file))
    assert [r["study"] for r in rows] == ["r2plus1d"] * 12 + ["timesformer"] * 12


def test_studies_of_one_storage_are_compared_with_the_study_option(tmp_path, monkeypatch, capsys):
    storage = f"sqlite:///{tmp_path / 'both.db'}"
    measured_study(tmp_path / "both.db", name="a", seed=1)
    bare = optuna.create_study(study_name="b", storage=storage, direction="maximize")  # no compute recorded
    with warnings.catch_warnings(category=optuna.exceptions.ExperimentalWarning, action="ignore"):
        bare.set_metric_names(["val/acc_video_best"])
    for clip_len, value in ((4, 0.5), (16, 0.7)):
        bare.add_trial(optuna.trial.create_trial(
            value=value, params={CLIP: clip_len}, distributions={CLIP: optuna.distributions.CategoricalDistribution(
                [4, 16])}))
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--storage", storage, "--study", "a", "--study", "b"]) == 0
    out = tmp_path / "outputs" / "reports" / "a_vs_b"  # the default folder names both
    printed = capsys.readouterr().out
    assert str(out.relative_to(tmp_path)) in printed
    assert [t["name"] for t in plot_traces(out / "objective_vs_clip_len.html")] == ["a", "b"]
    assert not (out / "objective_vs_stride.html").exists() and "swept by a only: stride" in printed
    traces = plot_traces(out / "objective_vs_gflops.html")
    assert {t["name"] for t in traces} == {"a: trials", "a: Pareto front"} and "not recorded by: b" in printed
    # the same name in two storages: two studies, told apart by their storage
    other = f"sqlite:///{tmp_path / 'other.db'}"
    measured_study(tmp_path / "other.db", name="a", seed=2)
    assert main(["report", "--storage", storage, "--storage", other, "--study", "a", "--study", "a"]) == 0
    traces = plot_traces(tmp_path / "outputs" / "reports" / "a_vs_a" / "objective_vs_clip_len.html")
    assert [t["name"] for t in traces] == [f"a ({storage})", f"a ({other})"]
    capsys.readouterr()
    # a single --study is the one-study report, as --study-name
    assert main(["report", "--storage", storage, "--study", "b", "--out", str(tmp_path / "one")]) == 0
    assert capsys.readouterr().out.startswith("study 'b' in ")
