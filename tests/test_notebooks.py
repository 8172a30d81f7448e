"""The notebooks in notebooks/, executed with nbclient on a real sweep (the `tiny_study` fixture: clip_len
{4, 8} x stride {1, 2} x seeds {0, 1}, offline W&B): what they print is checked against the study itself,
computed here independently of the report module."""

from __future__ import annotations

import ast
import re
import statistics
from pathlib import Path

import nbformat
import optuna
import pytest
from conftest import REPO
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from lit_video.sweep.spec import SEED_KEY, SweepSpec

NOTEBOOKS = ("compare_runs", "clip_length_vs_compute")
CLIP = "data.init_args.clip_len"
STRIDE = "data.init_args.stride"
GFLOPS = "compute/gflops"


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
    assert_plots_drawn(clip_length, expected=1)
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
    # the table: one row per clip length with its peak memory, which grows with the clip too
    rows = {int(line.split()[0]): line.split() for line in text.splitlines() if re.match(r"\s+(4|8)\s+\d\.\d{4} ± ", line)}
    assert sorted(rows) == [4, 8]
    peak = {c: max(t.user_attrs["compute/peak_memory_mb"] for t in trials) for c, trials in by_clip.items()}
    for c, row in rows.items():
        assert row[4] == "(n=2)" and float(row[6]) == pytest.approx(peak[c], abs=0.05)
    assert peak[8] > peak[4]


def test_a_missing_study_is_a_clear_error_and_creates_no_database(tmp_path):
    missing = tmp_path / "missing.db"
    with pytest.raises(CellExecutionError, match="no such SQLite file"):
        execute("clip_length_vs_compute", {"LIT_VIDEO_STORAGE": f"sqlite:///{missing}", "LIT_VIDEO_STUDY": "demo"})
    assert not missing.exists()
