"""The notebooks in notebooks/, executed with nbclient on a real sweep (the `tiny_study` fixture: clip_len
{4, 8} x stride {1, 2} x seeds {0, 1}, offline W&B; and `tiny_compute_study`, the same grid trained to one
training-compute budget): what they print is checked against the studies themselves, computed here
independently of the report module."""

from __future__ import annotations

import ast
import re
import statistics
from pathlib import Path

import nbformat
import optuna
import pytest
from conftest import REPO, TINY_COMPUTE_CLIP_LENS
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from lit_video.sweep.spec import SEED_KEY, SweepSpec

NOTEBOOKS = ("compare_runs", "clip_length_vs_compute")
CLIP = "data.init_args.clip_len"
STRIDE = "data.init_args.stride"
GFLOPS = "compute/gflops"
TRAIN_PFLOPS = "compute/train_pflops_total"


def storage_of(spec: SweepSpec) -> str:
    return f"sqlite:///{(spec.out_dir / f'{spec.study_name}.db').resolve()}"


def read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)


def execute(name: str, env: dict[str, str]) -> nbformat.NotebookNode:
    """Run a notebook in a fresh kernel (cwd = the repository root, the environment plus `env`)."""
    nb = read(name)
    with pytest.MonkeyPatch.context() as mp:  # the kernel inherits the environment
        for key, value in {"WANDB_MODE": "offline", "MPLBACKEND": "Agg", **env}.items():
            mp.setenv(key, value)
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    return nb


def stdout(nb: nbformat.NotebookNode) -> str:
    return "".join(out.text for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
                   if out.output_type == "stream" and out.name == "stdout")


def printed(text: str, prefix: str):
    """The Python literal the notebook printed after `prefix` on a line of its own."""
    (line,) = [line for line in text.splitlines() if line.startswith(prefix)]
    return ast.literal_eval(line.removeprefix(prefix).strip())


def assert_plots_drawn(nb: nbformat.NotebookNode, expected: int) -> None:
    plot_cells = [cell for cell in nb.cells if cell.cell_type == "code" and "plt.show()" in cell.source]
    assert len(plot_cells) == expected
    for cell in plot_cells:
        assert any("image/png" in out.get("data", {}) for out in cell.outputs), cell.source[:80]


def gflops(trial: optuna.trial.FrozenTrial) -> float:
    return trial.user_attrs[GFLOPS]


def non_dominated(trials: list[optuna.trial.FrozenTrial]) -> list[int]:
    """Trials no other trial beats on accuracy and GFLOPs at once (>= both, > one), by exhaustion."""
    def beats(u, t):
        return u.value >= t.value and gflops(u) <= gflops(t) and (u.value > t.value or gflops(u) < gflops(t))
    return sorted(t.number for t in trials if not any(beats(u, t) for u in trials))


def mean_over_seeds(trials: list[optuna.trial.FrozenTrial]) -> dict[tuple, tuple[float, float, int]]:
    """(clip_len, stride) -> (mean, stdev, count) of the objective over seeds."""
    groups: dict[tuple, list[float]] = {}
    for t in trials:
        groups.setdefault((t.params[CLIP], t.params[STRIDE]), []).append(t.value)
    return {k: (statistics.fmean(v), statistics.stdev(v), len(v)) for k, v in groups.items()}


@pytest.fixture(scope="module")
def study(tiny_study) -> optuna.Study:
    return optuna.load_study(study_name=tiny_study.study_name, storage=storage_of(tiny_study))


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("notebook_report") / "report"


@pytest.fixture(scope="module")
def compare_runs(tiny_study, report_dir) -> nbformat.NotebookNode:
    return execute("compare_runs", {"LIT_VIDEO_STORAGE": storage_of(tiny_study), "LIT_VIDEO_STUDY": tiny_study.study_name,
                                    "LIT_VIDEO_REPORT_DIR": str(report_dir)})


@pytest.fixture(scope="module")
def clip_length(tiny_study, tmp_path_factory) -> nbformat.NotebookNode:
    return execute("clip_length_vs_compute", {"LIT_VIDEO_STORAGE": storage_of(tiny_study),
                                              "LIT_VIDEO_STUDY": tiny_study.study_name})


@pytest.fixture(scope="module")
def clip_length_equal_compute(tiny_study, tiny_compute_study) -> nbformat.NotebookNode:
    return execute("clip_length_vs_compute", {
        "LIT_VIDEO_STORAGE": storage_of(tiny_study), "LIT_VIDEO_STUDY": tiny_study.study_name,
        "LIT_VIDEO_EQUAL_COMPUTE_STUDY": tiny_compute_study.study_name,
        "LIT_VIDEO_EQUAL_COMPUTE_STORAGE": storage_of(tiny_compute_study)})


@pytest.fixture(scope="module")
def compute_study(tiny_compute_study) -> optuna.Study:
    return optuna.load_study(study_name=tiny_compute_study.study_name, storage=storage_of(tiny_compute_study))


def best_per_clip(trials: list[optuna.trial.FrozenTrial]) -> dict[int, dict]:
    """clip_len -> its best setting's (of the other parameters but the seed) mean objective, mean training
    PFLOPs, mean optimizer steps (as every trial records them) and largest peak memory over seeds."""
    groups: dict[tuple, list[optuna.trial.FrozenTrial]] = {}
    for t in trials:
        groups.setdefault(tuple(sorted((k, v) for k, v in t.params.items() if k != SEED_KEY)), []).append(t)
    best: dict[int, dict] = {}
    for setting, group in groups.items():
        clip_len = dict(setting)[CLIP]
        steps = [t.user_attrs["compute/train_steps"] for t in group if "compute/train_steps" in t.user_attrs]
        row = {"objective": statistics.fmean(t.value for t in group),
               "train_pflops": statistics.fmean(t.user_attrs[TRAIN_PFLOPS] for t in group),
               "steps": round(statistics.fmean(steps)) if steps else None,
               "peak": max(t.user_attrs["compute/peak_memory_mb"] for t in group)}
        if clip_len not in best or row["objective"] > best[clip_len]["objective"]:
            best[clip_len] = row
    return best


def assert_sides(found: dict, expected: dict[int, dict]) -> None:
    assert sorted(found) == sorted(expected)
    for clip_len, row in expected.items():
        assert found[clip_len]["objective"] == pytest.approx(row["objective"], abs=1e-6)
        assert found[clip_len]["train_pflops"] == pytest.approx(row["train_pflops"], rel=1e-5)
        assert found[clip_len]["steps"] == row["steps"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebooks_are_stored_clean_and_read_their_study_from_the_environment(name):
    nb = read(name)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert 'os.environ.get("LIT_VIDEO_STORAGE", "sqlite:///outputs/sweeps/demo.db")' in code[0].source
    assert 'os.environ.get("LIT_VIDEO_STUDY", "demo")' in code[0].source
    source = "\n".join(cell.source for cell in code)
    assert not re.search(r"""["'](/|[A-Za-z]:\\)|sqlite:////""", source)  # no machine-specific absolute path
    assert "pandas" not in source
    if name == "clip_length_vs_compute":  # the optional equal-compute study, in the same storage by default
        assert 'os.environ.get("LIT_VIDEO_EQUAL_COMPUTE_STUDY")' in code[0].source
        assert 'os.environ.get("LIT_VIDEO_EQUAL_COMPUTE_STORAGE") or STORAGE' in code[0].source


def test_compare_runs_finds_exactly_the_non_dominated_trials(compare_runs, study, report_dir):
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 8
    expected = non_dominated(complete)
    text = stdout(compare_runs)
    assert printed(text, "pareto trials:") == expected
    assert printed(text, "report pareto trials:") == expected  # write_report's front is the same
    # the report went to LIT_VIDEO_REPORT_DIR, not into the repository
    assert {"trials.csv", "summary.txt", "index.html", "objective_vs_gflops.png"} <= {p.name for p in report_dir.iterdir()}
    assert not (REPO / "outputs" / "reports" / study.study_name).exists()
    assert "Pareto front" in text and "study 'tiny'" in text


def test_compare_runs_puts_each_trials_wandb_summary_next_to_its_optuna_value(compare_runs, study):
    lines = stdout(compare_runs).splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["trial", "state", "Optuna"])
    rows = {int(line.split()[0]): line.split() for line in lines[header + 1:header + 1 + len(study.trials)]}
    assert sorted(rows) == [t.number for t in study.trials]
    for trial in study.trials:
        number, state, optuna_value, run_name, wandb_value, wandb_gflops, *settings = rows[trial.number]
        assert state == "complete" and run_name == str(trial.number)  # the W&B run is named by the trial
        assert float(optuna_value) == pytest.approx(trial.value, abs=1e-6)
        assert float(wandb_value) == pytest.approx(trial.value, abs=1e-6)
        assert float(wandb_gflops) == pytest.approx(gflops(trial), abs=1e-6)
        assert f"clip_len={trial.params[CLIP]}" in settings and f"{SEED_KEY}={trial.params[SEED_KEY]}" in settings


def test_compare_runs_plots_the_ablation_as_means_over_seeds(compare_runs, study):
    assert_plots_drawn(compare_runs, expected=2)  # the ablation and the Pareto front, inline
    text = stdout(compare_runs)
    for (clip_len, stride), (mean, spread, count) in mean_over_seeds(study.trials).items():
        assert count == 2
        (line,) = [line for line in text.splitlines() if line.startswith(f"clip_len [stride={stride}]:")]
        assert f"{clip_len}: {mean:.4f} ± {spread:.4f} (n=2)" in line


def test_clip_length_table_compute_and_marginal_gain(clip_length, study):
    assert_plots_drawn(clip_length, expected=2)  # the ablation with its cost, and objective vs training compute
    text = stdout(clip_length)
    by_clip = {c: [t for t in study.trials if t.params[CLIP] == c] for c in (4, 8)}
    flops = printed(text, "GFLOPs by clip_len:")
    assert sorted(flops) == [4, 8]
    for c, trials in by_clip.items():
        assert flops[c] == pytest.approx(gflops(trials[0]), abs=1e-6)
    # a 3D CNN's FLOPs grow with the frames: twice the clip, about twice the GFLOPs (the head is fixed)
    assert 1.8 < flops[8] / flops[4] < 2.05
    # each clip length at its best stride, mean over seeds
    means = mean_over_seeds(study.trials)
    best = {c: max(means[(c, s)][0] for s in (1, 2)) for c in (4, 8)}
    assert printed(text, "objective by clip_len:") == pytest.approx(best, abs=1e-6)
    gain = (best[8] - best[4]) / (flops[8] - flops[4])
    assert printed(text, "gain per GFLOP:") == {(4, 8): pytest.approx(gain, abs=1e-4)}
    # the measured training compute of the best stride: as many clips seen, each about twice the FLOPs
    expected = best_per_clip(study.trials)
    pflops = printed(text, "train PFLOPs by clip_len:")
    assert pflops == {c: pytest.approx(expected[c]["train_pflops"], rel=1e-5) for c in (4, 8)}
    assert 1.5 < pflops[8] / pflops[4] < 2.1
    train_gain = (best[8] - best[4]) / (pflops[8] - pflops[4])
    assert printed(text, "gain per train PFLOP:") == {(4, 8): pytest.approx(train_gain, rel=1e-4)}
    # the table: one row per clip length with its peak memory (measured over the real fit), which grows with
    # the clip too, then the measured costs in place of forward GFLOPs
    header = next(line for line in text.splitlines() if line.lstrip().startswith("clip_len  "))
    assert "train PFLOPs" in header and "GFLOPs fwd" not in header
    rows = {int(line.split()[0]): line.split() for line in text.splitlines() if re.match(r"\s+(4|8)\s+\d\.\d{4} ± ", line)}
    assert sorted(rows) == [4, 8]
    peak = {c: expected[c]["peak"] for c in (4, 8)}  # the best setting's, largest over its seeds
    for c, row in rows.items():
        assert row[4] == "(n=2)" and float(row[5]) == pytest.approx(peak[c], abs=0.051)  # printed to 0.1 MB
    if all(t.user_attrs["compute/memory_source"] == "cuda" for t in study.trials):
        # a CPU process's peak only grows: trials after the first in one process add little or nothing to it
        assert peak[8] > peak[4]
    # without a second study: said so, and this one alone against its training compute
    assert "no equal-compute study" in text
    assert printed(text, "equal compute:") is None and printed(text, "budget:") is None
    assert_sides(printed(text, "equal epochs:"), expected)


def test_clip_length_at_equal_epochs_and_at_equal_compute(clip_length_equal_compute, study, compute_study):
    assert_plots_drawn(clip_length_equal_compute, expected=2)
    text = stdout(clip_length_equal_compute)
    assert "no equal-compute study" not in text
    complete = compute_study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 2 * len(TINY_COMPUTE_CLIP_LENS)  # two seeds each
    (budget,) = {t.user_attrs["budget/train_pflops"] for t in complete}
    assert printed(text, "budget:") == {"budget/train_pflops": pytest.approx(budget)}
    at_epochs, at_compute = best_per_clip(study.trials), best_per_clip(complete)
    assert_sides(printed(text, "equal epochs:"), at_epochs)
    assert_sides(printed(text, "equal compute:"), at_compute)
    # at equal compute the longer clip trains for fewer steps
    steps = [at_compute[c]["steps"] for c in sorted(at_compute)]
    assert steps == sorted(steps, reverse=True) and steps[0] > steps[-1]
    for name, expected in (("epochs", at_epochs), ("compute", at_compute)):
        # ties go to the shorter clip
        best = max(sorted(expected), key=lambda c: expected[c]["objective"])
        assert printed(text, f"best clip_len at equal {name}:") == best


def test_a_missing_study_is_a_clear_error_and_creates_no_database(tmp_path):
    missing = tmp_path / "missing.db"
    with pytest.raises(CellExecutionError, match="no such SQLite file"):
        execute("clip_length_vs_compute", {"LIT_VIDEO_STORAGE": f"sqlite:///{missing}", "LIT_VIDEO_STUDY": "demo"})
    assert not missing.exists()
