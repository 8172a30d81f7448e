"""`lit-video report`: what a sweep found, as a CSV, PNG + HTML plots and a text summary.

    trials.csv                          every trial: state, objective(s), parameters, every user attribute
                                        (compute, measured training cost, budget, batch, split, times, failure)
    objective_vs_<param>.png|html       the first objective against each swept parameter (clip_len, stride,
                                        resolution, ...): mean and standard deviation over seeds, one line per
                                        setting of the other parameters
    objective_vs_gflops.png|html        every trial, the Pareto front (best objective for its GFLOPs) marked
    objective_vs_train_pflops.png|html  the first objective against the measured training compute (PFLOPs,
                                        log x), one series per value of the first swept parameter, with
                                        iso-compute levels (or the budget of a budgeted study)
    objective_vs_eval_gflops.png|html   the first objective against the evaluation GFLOPs per video
    objective_vs_peak_memory.png|html   the first objective against the peak memory (MB)
    fit_time_vs_clip_len.png|html       training time against clip length (when clip_len is swept)
    param_importances.png|html          Optuna's PED-ANOVA importances of the parameters for the first objective
    summary.txt                         where the objective came from, best configurations, the best one within
                                        each training-compute level (or the ranking at the budget), the Pareto
                                        front, gradient accumulation, failures, sweep overhead
    index.html                          all of the above on one page

`lit-video report --study A --study B` (`write_comparison`) overlays several studies of one objective, one
colour per study: the objective against each parameter they all sweep, their Pareto fronts against GFLOPs
and training PFLOPs, and a table of each study's best trial.

Plots are described once (`Figure`) and drawn twice: matplotlib for PNG, plotly for interactive HTML
(plotly.js is written once beside the pages, so they open offline). Studies recorded before a figure's
attributes existed still report: that figure is left out and its table cells read "-".
"""

from __future__ import annotations

import csv
import html
import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import optuna

from lit_video.errors import LitVideoError
from lit_video.sweep.spec import SEED_KEY, short_name
from lit_video.sweep.storage import (
    check_storage,
    is_journal,
    open_storage,
    parse_storage_url,
    show_storage,
    storage_error,
)

GFLOPS = "compute/gflops"
# Measured over a trial's real training and evaluation (absent from studies recorded before they existed)
TRAIN_GFLOPS_PER_CLIP = "compute/train_gflops_per_clip"
TRAIN_PFLOPS = "compute/train_pflops_total"
TRAIN_DEVICE_HOURS = "compute/train_device_hours"
EVAL_GFLOPS = "compute/eval_gflops_per_video"
PEAK_MEMORY = "compute/peak_memory_mb"
DATA_WAIT_FRACTION = "compute/data_wait_fraction"
# A trial that waited for its batches longer than this share of its training time was set by its data loader:
# its speed (and a device-hours budget's steps) says little about its model.
DATA_BOUND_FRACTION = 0.2
MAX_STEPS = "budget/max_steps"
# A budgeted study's target -> (the measured attribute it bounds, its unit)
BUDGETS = {"budget/train_pflops": (TRAIN_PFLOPS, "PFLOPs"),
           "budget/train_device_hours": (TRAIN_DEVICE_HOURS, "device hours")}
ACCUMULATE = "batch/accumulate_grad_batches"
ISO_LEVELS = 4  # vertical iso-compute lines, evenly spaced on the log scale of the training compute
TIME_ATTRS = ("setup_time_s", "profile_time_s", "fit_time_s", "wall_time_s")
MAX_SERIES = 6  # more settings of the other parameters than this: one pooled line instead


def study_names(storage: str) -> list[str]:
    """The studies in a storage; a storage that cannot be opened is a one-line error naming it
    (without its password)."""
    shown = show_storage(storage)
    local_file = is_journal(storage) or ("://" not in storage and "@" not in storage)
    if local_file and not Path(storage).is_file():
        raise LitVideoError(f"Optuna storage {shown} does not exist (expected a URL such as sqlite:///x.db "
                            "or postgresql://..., or a journal file)")
    check_storage(storage)  # a URL that does not parse entirely: one line, its password masked
    parsed = parse_storage_url(storage)
    if parsed is not None and parsed.get_backend_name() == "sqlite":
        database = (parsed.database or "").removeprefix("file:")
        if database and database != ":memory:" and not Path(database).is_file():
            # SQLAlchemy would create an empty database instead of failing
            raise LitVideoError(f"Optuna storage {shown}: no such SQLite file")
    try:
        return optuna.get_all_study_names(open_storage(storage))
    except LitVideoError:
        raise
    except Exception as err:  # a server that does not answer, a wrong password, a missing driver
        raise LitVideoError(f"cannot open Optuna storage {shown}: {storage_error(err)[:200]}") from None


def report_folder(out_dir: str | Path, create: bool = True) -> Path:
    """`out_dir`, created if missing; one line when it cannot be (an existing file, no permission).

    Args:
        out_dir: the report's folder.
        create: False only checks that it is not an existing file (before a slow study is loaded).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise LitVideoError(f"--out {out_dir}: is an existing file; expected a folder for the report "
                            "(new, or an earlier report's)")
    if not create:
        return out_dir
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LitVideoError(f"--out {out_dir}: cannot create the report folder: {err.strerror or err}") from None
    return out_dir


def load_existing_study(storage: str, study_name: str | None = None) -> optuna.Study:
    """An existing study; the name may be left out when the storage holds exactly one."""
    names = study_names(storage)
    if study_name is None:
        if len(names) != 1:
            listed = ", ".join(names) if names else "none"
            raise LitVideoError(f"{show_storage(storage)} holds {len(names)} studies ({listed}): choose one with --study-name")
        study_name = names[0]
    if study_name not in names:
        raise LitVideoError(f"no study '{study_name}' in {show_storage(storage)} (studies: {', '.join(names) or 'none'})")
    return optuna.load_study(study_name=study_name, storage=open_storage(storage))


def objective_names(study: optuna.Study) -> list[str]:
    """The objectives' metric names (recorded by `lit-video sweep`), or objective_0, objective_1, ..."""
    names = study.metric_names
    return list(names) if names else [f"objective_{i}" for i in range(len(study.directions))]


def swept_params(study: optuna.Study) -> list[str]:
    """Parameters of the study's trials in first-seen order, the seed last."""
    keys: dict[str, None] = {}
    for trial in study.get_trials(deepcopy=False):
        keys.update(dict.fromkeys(trial.params))
    return sorted(keys, key=lambda k: k == SEED_KEY)


def primary_objective(study: optuna.Study) -> tuple[int, bool]:
    """(index, maximize) of the objective to plot against parameters and compute: the first one that is
    not the compute itself."""
    index = next((i for i, name in enumerate(objective_names(study)) if name != GFLOPS), 0)
    return index, study.directions[index] == optuna.study.StudyDirection.MAXIMIZE


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One flat row per trial (every state), the columns of trials.csv."""
    names, params = objective_names(study), swept_params(study)
    attrs: dict[str, None] = {}
    for trial in study.get_trials(deepcopy=False):
        attrs.update(dict.fromkeys(trial.user_attrs))
    rows = []
    for trial in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"number": trial.number, "state": trial.state.name.lower()}
        values = trial.values or [None] * len(names)
        row.update(zip(names, values))
        row.update({key: trial.params.get(key) for key in params})
        row.update({key: trial.user_attrs.get(key) for key in attrs})
        row["duration_s"] = trial.duration.total_seconds() if trial.duration else None
        rows.append(row)
    return rows


def dominates(a: Sequence[float], b: Sequence[float], maximize: Sequence[bool]) -> bool:
    """Whether point a is at least as good as b everywhere and better somewhere."""
    signed = [(x if up else -x, y if up else -y) for x, y, up in zip(a, b, maximize)]
    return all(x >= y for x, y in signed) and any(x > y for x, y in signed)


def pareto_front(points: Sequence[Sequence[float]], maximize: Sequence[bool]) -> list[int]:
    """Indices of the points no other point dominates (equal points are all kept).

    O(n^2), which is nothing next to training the trials. Optuna's own front (`study.best_trials`)
    covers only the study's objectives, and a single-objective sweep still has an accuracy-vs-GFLOPs
    front in its recorded compute."""
    return [i for i, p in enumerate(points) if not any(dominates(q, p, maximize) for q in points)]


@dataclass
class Series:
    """One line, set of markers or set of bars in a figure.

    Args:
        name: legend entry.
        x, y: the points (x may be categorical strings).
        error: symmetric error bar per point (e.g. the standard deviation over seeds), or None.
        labels: hover text per point (e.g. trial numbers).
        style: "lines+markers", "markers" or "bar" (horizontal).
        color: "#rrggbb" (understood by both matplotlib and plotly), or None for the next in the cycle.
    """

    name: str
    x: list
    y: list
    error: list[float] | None = None
    labels: list[str] | None = None
    style: str = "lines+markers"
    color: str | None = None


@dataclass
class Figure:
    name: str
    title: str
    x_label: str
    y_label: str
    series: list[Series] = field(default_factory=list)
    log_x: bool = False
    verticals: list[tuple[float, str]] = field(default_factory=list)  # (x, label): dotted vertical lines

    def write_png(self, path: Path) -> None:
        # A Figure of its own, not pyplot: no global backend switch, no window, inline notebook plots untouched
        from matplotlib.figure import Figure as MatplotlibFigure

        fig = MatplotlibFigure(figsize=(6.4, 4.2), dpi=110)
        ax = fig.subplots()
        for s in self.series:
            if s.style == "bar":
                ax.barh([str(v) for v in s.x], s.y, label=s.name, color=s.color)
                ax.invert_yaxis()
            elif s.style == "markers":
                ax.scatter(s.x, s.y, label=s.name, alpha=0.7, zorder=2, color=s.color)
            else:
                ax.errorbar(s.x, s.y, yerr=s.error, fmt="-o", capsize=3, label=s.name, zorder=3, color=s.color)
        ax.set(title=self.title, xlabel=self.x_label, ylabel=self.y_label)
        if self.log_x:
            ax.set_xscale("log")
        for x, label in self.verticals:
            ax.axvline(x, color="#7f7f7f", linestyle=":", linewidth=1, zorder=1)
            ax.annotate(label, (x, 1), xycoords=("data", "axes fraction"), xytext=(-2, -3),
                        textcoords="offset points", rotation=90, ha="right", va="top", fontsize="x-small",
                        color="#7f7f7f")
        ticks = sorted({x for s in self.series if s.style != "bar" for x in s.x}, key=_sort_key)
        if not self.log_x and len(ticks) <= 10 and all(isinstance(x, int) for x in ticks):
            ax.set_xticks(ticks)  # the swept values themselves, not 4.5, 5.0, ...
        ax.grid(alpha=0.3)
        if len(self.series) > 1:
            ax.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(path)

    def write_html(self, path: Path) -> None:
        import plotly.graph_objects as go

        fig = go.Figure()
        for s in self.series:
            if s.style == "bar":
                fig.add_trace(go.Bar(x=s.y, y=[str(v) for v in s.x], name=s.name, orientation="h"))
                fig.update_yaxes(autorange="reversed")
                continue
            error = {"type": "data", "array": s.error, "visible": True} if s.error else None
            # the line and error bars in the markers' colour too: one colour per study in a cross-study report
            fig.add_trace(go.Scatter(x=s.x, y=s.y, mode=s.style, name=s.name, error_y=error, text=s.labels,
                                     marker={"color": s.color} if s.color else None,
                                     line={"color": s.color} if s.color else None))
        fig.update_layout(title=self.title, xaxis_title=self.x_label, yaxis_title=self.y_label,
                          template="plotly_white")
        if self.log_x:
            fig.update_xaxes(type="log")
        for x, label in self.verticals:
            fig.add_vline(x=x, line_dash="dot", line_color="#7f7f7f", line_width=1)
            # on a log axis a shape takes the value itself, an annotation its log10
            fig.add_annotation(x=math.log10(x) if self.log_x else x, y=1, yref="paper", text=label,
                               showarrow=False, textangle=-90, xanchor="right", yanchor="top",
                               font={"size": 10, "color": "#7f7f7f"})
        # plotly.js once beside the pages (not from a CDN): cluster nodes and laptops on a plane open them too
        fig.write_html(path, include_plotlyjs="directory", full_html=True)


def _sort_key(value: Any) -> tuple:
    return (0, value, "") if isinstance(value, int | float) else (1, 0, str(value))


def _label(params: dict[str, Any]) -> str:
    return ", ".join(f"{short_name(k)}={v}" for k, v in params.items()) or "all"


def versus(trials: list[optuna.trial.FrozenTrial], param: str, value: Callable[[optuna.trial.FrozenTrial], float],
           ) -> list[Series]:
    """`value` against `param`: mean and standard deviation over seeds (and, when the other
    parameters take more than MAX_SERIES settings, over those too), one series per other setting."""
    trials = [t for t in trials if param in t.params and not _missing(value(t))]
    others = [k for k in sorted({k for t in trials for k in t.params}) if k not in (param, SEED_KEY)]

    def other_setting(trial) -> tuple:
        return tuple((k, trial.params.get(k)) for k in others)

    settings = sorted({other_setting(t) for t in trials}, key=lambda s: [_sort_key(v) for _, v in s])
    pooled = len(settings) > MAX_SERIES
    groups: dict[tuple, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for trial in trials:
        groups[() if pooled else other_setting(trial)][trial.params[param]].append(value(trial))
    series = []
    for setting in [()] if pooled else settings:
        by_value = groups[setting]
        xs = sorted(by_value, key=_sort_key)
        ys = [statistics.fmean(by_value[x]) for x in xs]
        spread = [statistics.stdev(by_value[x]) if len(by_value[x]) > 1 else 0.0 for x in xs]
        counts = [f"n={len(by_value[x])}" for x in xs]
        series.append(Series(_label(dict(setting)) if not pooled else "all trials", xs, ys, spread, counts))
    return series


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _positive(value: Any) -> Any:
    # a log axis has no place for zero or less
    return value if not _missing(value) and value > 0 else None


def _true(value: Any) -> bool:
    # a flag stored as a bool, or as text by a tool that wrote the storage another way
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"))


def grouped_points(trials: list, group: str | None, x: Callable[[Any], Any], y: Callable[[Any], Any]) -> list[Series]:
    """Markers for every trial with both an x and a y, one series per value of the parameter `group`
    (all trials in one series when it is None).

    Args:
        trials: the trials to plot.
        group: a parameter (e.g. clip_len), or None.
        x, y: a trial's coordinates (None when it lacks one).
    """
    points = [t for t in trials if not _missing(x(t)) and not _missing(y(t))]
    if not points:
        return []
    values = sorted({t.params.get(group) for t in points}, key=_sort_key) if group else [None]
    series = []
    for value in values:
        members = [t for t in points if group is None or t.params.get(group) == value]
        series.append(Series(f"{short_name(group)}={value}" if group else "trials", [x(t) for t in members],
                             [y(t) for t in members], labels=[f"trial {t.number}: {_label(t.params)}" for t in members],
                             style="markers"))
    return series


def round_up(value: float, digits: int = 3) -> float:
    """The smallest number with `digits` significant digits that is >= value: a level that prints exactly
    and still holds the value it was made from."""
    scale = 10.0 ** (math.floor(math.log10(value)) - digits + 1)
    rounded = float(f"{math.ceil(value / scale - 1e-9) * scale:.{digits}g}")
    return rounded if rounded >= value else float(f"{rounded + scale:.{digits}g}")


def compute_levels(values: Sequence[float], count: int = ISO_LEVELS) -> list[float]:
    """Iso-compute levels for `values` (e.g. training PFLOPs): `count` levels evenly spaced on a log scale
    from the least to the most, rounded up to 3 significant digits; one level when they are all within 5%.

    Args:
        values: the configurations' compute; those <= 0 are left out.
        count: how many levels at most.
    """
    values = [v for v in values if v > 0]
    if not values:
        return []
    low, high = min(values), max(values)
    if high <= low * 1.05:
        return [round_up(high)]
    return sorted({round_up(low * (high / low) ** (i / (count - 1))) for i in range(count)})


def best_within(table: list[dict[str, Any]], levels: Sequence[float], maximize: bool, key: str = "train_pflops_total",
                ) -> list[tuple[float, dict[str, Any] | None, int]]:
    """For each compute level: (level, the best configuration whose `key` is within it or None, how many are).

    Args:
        table: rows of `configuration_table`.
        levels: compute levels, in the unit of `key`.
        maximize: whether a larger mean objective is better.
        key: the row's compute (mean over seeds).
    """
    found = []
    for level in levels:
        within = [row for row in table if row.get(key) is not None and row[key] <= level]
        best = max(within, key=lambda row: row["mean"] if maximize else -row["mean"]) if within else None
        found.append((level, best, len(within)))
    return found


def study_budget(trials: list) -> tuple[str, float] | None:
    """(budget attribute, target) when every trial was trained to one and the same budget, else None."""
    targets = set()
    for trial in trials:
        found = [(key, trial.user_attrs[key]) for key in BUDGETS if not _missing(trial.user_attrs.get(key))]
        if not found:
            return None
        targets.update(found)
    return targets.pop() if len(targets) == 1 else None


def trial_steps(attrs: dict[str, Any]) -> float | None:
    """The optimizer steps a trial trained for, from its user attributes: the steps it recorded, else those its
    budget gave it, else the clips it saw (every device's) over its effective batch (per device, times the
    devices); None when none of them was recorded."""
    for key in ("compute/train_steps", MAX_STEPS):
        if not _missing(attrs.get(key)):
            return attrs[key]
    clips, batch = attrs.get("compute/train_clips_seen"), attrs.get("batch/effective", attrs.get("batch/requested"))
    if _missing(clips) or _missing(batch) or not batch:
        return None
    return round(clips / (batch * (attrs.get("batch/world_size") or 1)))


@dataclass
class Report:
    """What `write_report` wrote and found."""

    out_dir: Path
    files: list[Path]
    pareto_trials: list[int]
    summary: str


def write_report(study: optuna.Study, out_dir: str | Path, storage: str | None = None) -> Report:
    """Write trials.csv, the plots (PNG and HTML), summary.txt and index.html for a study.

    Args:
        study: a sweep's study (any state of its trials).
        out_dir: created if missing; existing report files are replaced.
        storage: the storage URL, only to name it in the summary.
    """
    out_dir = report_folder(out_dir)
    names = objective_names(study)
    primary, maximize = primary_objective(study)
    primary_name = names[primary]
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))

    def objective(trial):
        return trial.values[primary]

    files = [_write_csv(trial_rows(study), out_dir / "trials.csv")]
    figures: list[Figure] = []
    params = [p for p in swept_params(study) if p != SEED_KEY]
    for param in params:
        figures.append(Figure(f"objective_vs_{short_name(param)}", f"{primary_name} vs {short_name(param)}",
                              short_name(param), f"{primary_name} (mean ± std over seeds)",
                              versus(complete, param, objective)))
    with_compute = [t for t in complete if not _missing(t.user_attrs.get(GFLOPS))]
    points = [(objective(t), t.user_attrs[GFLOPS]) for t in with_compute]
    front = sorted((with_compute[i] for i in pareto_front(points, [maximize, False])),
                   key=lambda t: t.user_attrs[GFLOPS])
    if with_compute:
        figures.append(Figure("objective_vs_gflops", f"{primary_name} vs compute", "GFLOPs per clip (forward)",
                              primary_name, [
            Series("trials", [p[1] for p in points], [p[0] for p in points],
                   labels=[f"trial {t.number}: {_label(t.params)}" for t in with_compute], style="markers",
                   color="#1f77b4"),
            Series("Pareto front", [t.user_attrs[GFLOPS] for t in front], [objective(t) for t in front],
                   labels=[f"trial {t.number}" for t in front], color="#d62728"),
        ]))
    clip_param = next((p for p in params if short_name(p) == "clip_len"), None)
    group = clip_param or (params[0] if params else None)
    table = configuration_table(complete, primary)
    budget = study_budget(complete)
    measured = grouped_points(complete, group, lambda t: _positive(t.user_attrs.get(TRAIN_PFLOPS)), objective)
    if measured:
        if budget is not None:
            if budget[0] == "budget/train_pflops":
                verticals = [(budget[1], f"budget {budget[1]:.3g} PFLOPs")]
            else:  # a device-hours budget has no place on a PFLOPs axis
                verticals = []
            title = f"{primary_name} vs training compute (budget {budget[1]:.3g} {BUDGETS[budget[0]][1]})"
        else:
            levels = compute_levels([row["train_pflops_total"] for row in table
                                     if row["train_pflops_total"] is not None])
            verticals = [(level, f"<= {level:.3g} PFLOPs") for level in levels]
            title = f"{primary_name} vs training compute (iso-compute levels dotted)"
        # every trial of a budgeted study is near one compute: a log axis would only crowd its ticks
        figures.append(Figure("objective_vs_train_pflops", title,
                              "training compute (PFLOPs, measured" + (", log)" if budget is None else ")"),
                              primary_name, measured, log_x=budget is None, verticals=verticals))
    evaluated = grouped_points(complete, group, lambda t: t.user_attrs.get(EVAL_GFLOPS), objective)
    if evaluated:
        figures.append(Figure("objective_vs_eval_gflops", f"{primary_name} vs evaluation compute",
                              "evaluation GFLOPs per video", primary_name, evaluated))
    memory = grouped_points(complete, group, lambda t: t.user_attrs.get(PEAK_MEMORY), objective)
    if memory:
        sources = sorted({str(t.user_attrs["compute/memory_source"]) for t in complete
                          if t.user_attrs.get("compute/memory_source")})
        figures.append(Figure("objective_vs_peak_memory", f"{primary_name} vs peak memory",
                              "peak memory (MB" + (f", {' / '.join(sources)}" if sources else "") + ")",
                              primary_name, memory))
    if clip_param is not None:
        figures.append(Figure("fit_time_vs_clip_len", "training time vs clip length", "clip_len",
                              "fit time (s, mean ± std)",
                              versus(complete, clip_param, lambda t: t.user_attrs.get("fit_time_s"))))
    importances, importance_note = _importances(study, primary, complete)
    if importances:
        figures.append(Figure("param_importances", f"parameter importances for {primary_name} (PED-ANOVA)",
                              "importance", "", [Series("importance", [short_name(k) for k in importances],
                                                        list(importances.values()), style="bar")]))
    for figure in figures:
        for suffix, write in ((".png", figure.write_png), (".html", figure.write_html)):
            write(out_dir / f"{figure.name}{suffix}")
            files.append(out_dir / f"{figure.name}{suffix}")
    summary = _summary(study, storage, names, primary, complete, front, importance_note, table, budget)
    (out_dir / "summary.txt").write_text(summary)
    files.append(out_dir / "summary.txt")
    _write_index(out_dir / "index.html", f"Sweep {study.study_name}", figures, summary)
    files.append(out_dir / "index.html")
    return Report(out_dir, files, [t.number for t in front], summary)


# matplotlib's tab10, written out so that both drawings give a study the same colour
STUDY_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf")
# The Pareto fronts of a cross-study report: (figure name, compute attribute, x axis label, log x)
COMPARED_FRONTS = (("objective_vs_gflops", GFLOPS, "GFLOPs per clip (forward)", False),
                   ("objective_vs_train_pflops", TRAIN_PFLOPS, "training compute (PFLOPs, measured, log)", True))


@dataclass
class ComparedStudy:
    """One study of a cross-study report.

    Args:
        study: the study.
        storage: its storage URL (shown without its password), or None.
        label: its legend entry and name in the summary: the study's name, followed by its storage when
            two compared studies share a name.
    """

    study: optuna.Study
    storage: str | None
    label: str

    @property
    def where(self) -> str:
        return f"study '{self.study.study_name}'" + (f" in {show_storage(self.storage)}" if self.storage else "")

    @cached_property
    def complete(self) -> list[optuna.trial.FrozenTrial]:  # read once: a remote storage answers each query
        return self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


@dataclass
class Comparison:
    """What `write_comparison` wrote and found."""

    out_dir: Path
    files: list[Path]
    fronts: dict[str, dict[str, list[int]]]  # figure name -> study label -> trial numbers on its Pareto front
    summary: str


def compared_studies(studies: Sequence[tuple[optuna.Study, str | None]]) -> list[ComparedStudy]:
    """The studies with their labels; the same study twice, a study without a complete trial, or studies whose
    objectives differ in name or direction are one-line errors naming the study.

    Args:
        studies: (study, its storage URL or None) in the order of the legend.
    """
    seen: set[tuple[str, str | None]] = set()
    for study, storage in studies:
        key = (study.study_name, show_storage(storage) if storage else None)
        if key in seen:
            raise LitVideoError(f"--study {study.study_name}: given twice for the same storage; a cross-study "
                                "report compares different studies")
        seen.add(key)
    names = [study.study_name for study, _ in studies]
    entries = [ComparedStudy(study, storage, study.study_name if names.count(study.study_name) == 1 or not storage
                             else f"{study.study_name} ({show_storage(storage)})") for study, storage in studies]
    first = None
    for entry in entries:
        if not entry.complete:
            raise LitVideoError(f"{entry.where}: no complete trial to compare ({_trial_counts(entry.study.trials)})")
        index, maximize = primary_objective(entry.study)
        objective = f"{objective_names(entry.study)[index]} ({'maximize' if maximize else 'minimize'})"
        if first is None:
            first = (entry, objective)
        elif objective != first[1]:
            raise LitVideoError(f"{entry.where} optimizes {objective} but {first[0].where} optimizes {first[1]}: "
                                "a cross-study report overlays studies of one objective")
    return entries


def shared_params(studies: Sequence[ComparedStudy]) -> list[str]:
    """The swept parameters (not the seed) that every study has, in the first study's order."""
    swept = [[p for p in swept_params(entry.study) if p != SEED_KEY] for entry in studies]
    return [p for p in swept[0] if all(p in others for others in swept[1:])]


def best_setting_per_value(complete: list, param: str, primary: int, maximize: bool) -> list[dict[str, Any]]:
    """For each value of `param`, in order: the configuration (a setting of every parameter but the seed) with
    the best mean objective over seeds, as a row of `configuration_table`.

    Args:
        complete: a study's complete trials.
        param: the swept parameter, e.g. data.init_args.clip_len.
        primary: the objective's index.
        maximize: whether a larger objective is better.
    """
    by_value: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in configuration_table(complete, primary):
        if param in row["params"]:
            by_value[row["params"][param]].append(row)
    return [max(by_value[value], key=lambda row: row["mean"] if maximize else -row["mean"])
            for value in sorted(by_value, key=_sort_key)]


def write_comparison(studies: Sequence[tuple[optuna.Study, str | None]], out_dir: str | Path) -> Comparison:
    """One report overlaying several studies of the same objective, one colour per study: its ablation
    curves, its Pareto fronts against forward GFLOPs and measured training PFLOPs, and a table of each
    study's best trial; plus trials.csv (every trial, with a `study` column), summary.txt and index.html.

    Args:
        studies: (study, its storage URL or None), at least two, in the order of the legend.
        out_dir: created if missing; existing report files are replaced.
    """
    entries = compared_studies(studies)
    out_dir = report_folder(out_dir)
    first = entries[0].study
    primary_name = objective_names(first)[primary_objective(first)[0]]
    maximize = primary_objective(first)[1]
    colours = {entry.label: STUDY_COLOURS[i % len(STUDY_COLOURS)] for i, entry in enumerate(entries)}
    rows = [{"study": entry.label, **row} for entry in entries for row in trial_rows(entry.study)]
    files = [_write_csv(rows, out_dir / "trials.csv")]
    figures: list[Figure] = []
    params = shared_params(entries)
    for param in params:
        series = []
        for entry in entries:
            best = best_setting_per_value(entry.complete, param, primary_objective(entry.study)[0], maximize)
            series.append(Series(entry.label, [row["params"][param] for row in best], [row["mean"] for row in best],
                                 error=[row["std"] for row in best], color=colours[entry.label],
                                 labels=[f"{entry.label}: {_label(row['params'])} ({row['seeds']} seeds)"
                                         for row in best]))
        others = any(set(swept_params(entry.study)) - {param, SEED_KEY} for entry in entries)
        figures.append(Figure(f"objective_vs_{short_name(param)}", f"{primary_name} vs {short_name(param)}"
                              + (": best of the other parameters" if others else ""),
                              short_name(param), f"{primary_name} (mean ± std over seeds)", series))
    fronts: dict[str, dict[str, list[int]]] = {}
    for name, attr, x_label, log_x in COMPARED_FRONTS:
        series, fronts[name] = [], {}
        for entry in entries:
            index = primary_objective(entry.study)[0]
            points = [t for t in entry.complete
                      if not _missing(_positive(t.user_attrs.get(attr)) if log_x else t.user_attrs.get(attr))]
            if not points:
                continue
            front = sorted((points[i] for i in pareto_front([(t.values[index], t.user_attrs[attr]) for t in points],
                                                            [maximize, False])), key=lambda t: t.user_attrs[attr])
            fronts[name][entry.label] = [t.number for t in front]
            series += [Series(f"{entry.label}: trials", [t.user_attrs[attr] for t in points],
                              [t.values[index] for t in points], style="markers", color=colours[entry.label],
                              labels=[f"{entry.label} trial {t.number}: {_label(t.params)}" for t in points]),
                       Series(f"{entry.label}: Pareto front", [t.user_attrs[attr] for t in front],
                              [t.values[index] for t in front], color=colours[entry.label],
                              labels=[f"{entry.label} trial {t.number}" for t in front])]
        if series:
            figures.append(Figure(name, f"{primary_name} vs {x_label.split(' (')[0]}: Pareto fronts", x_label,
                                  primary_name, series, log_x=log_x))
    for figure in figures:
        for suffix, write in ((".png", figure.write_png), (".html", figure.write_html)):
            write(out_dir / f"{figure.name}{suffix}")
            files.append(out_dir / f"{figure.name}{suffix}")
    summary = _comparison_summary(entries, primary_name, maximize, params, fronts)
    (out_dir / "summary.txt").write_text(summary)
    files.append(out_dir / "summary.txt")
    _write_index(out_dir / "index.html", "Studies " + " vs ".join(entry.label for entry in entries), figures, summary)
    files.append(out_dir / "index.html")
    return Comparison(out_dir, files, fronts, summary)


def _comparison_summary(entries: list[ComparedStudy], objective: str, maximize: bool, params: list[str],
                        fronts: dict[str, dict[str, list[int]]]) -> str:
    """The studies, the parameters they share, each study's best trial as a table, its best configuration
    and its Pareto fronts."""
    lines = [f"{len(entries)} studies compared on {objective} ({'maximize' if maximize else 'minimize'}):"]
    lines += [f"  {entry.label}: {_trial_counts(entry.study.trials)}"
              + (f" in {show_storage(entry.storage)}" if entry.storage else "") for entry in entries]
    shown = ", ".join(short_name(p) for p in params)
    lines.append(f"swept by every study (overlaid): {shown}" if params
                 else "no swept parameter is common to every study: no ablation curve is overlaid")
    for entry in entries:
        own = [short_name(p) for p in swept_params(entry.study) if p != SEED_KEY and p not in params]
        if own:
            lines.append(f"swept by {entry.label} only: {', '.join(own)}")
    header = ["study", "trial", objective, "GFLOPs fwd/clip", "PFLOPs trained", "parameters"]
    table = []
    for entry in entries:
        index = primary_objective(entry.study)[0]
        best = max(entry.complete, key=lambda t: t.values[index] if maximize else -t.values[index])
        table.append([entry.label, str(best.number), f"{best.values[index]:.4f}",
                      _fmt(best.user_attrs.get(GFLOPS), ".3g"), _fmt(best.user_attrs.get(TRAIN_PFLOPS), ".3g"),
                      _label(best.params)])
    widths = [max(len(row[i]) for row in (header, *table)) for i in range(len(header))]
    lines.append(f"\nbest trial of each study by {objective}:")
    lines += ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
              for row in (header, *table)]
    lines.append(f"\nbest configuration of each study by {objective} (mean ± std over seeds):")
    for entry in entries:
        configurations = sorted(configuration_table(entry.complete, primary_objective(entry.study)[0]),
                                key=lambda row: row["mean"], reverse=maximize)
        row = configurations[0]
        lines.append(f"  {entry.label}: {_label(row['params'])}: {row['mean']:.4f} ± {row['std']:.4f} "
                     f"({row['seeds']} seed{'s' * (row['seeds'] > 1)}); {_compute_text(row)}")
    for name, _, x_label, _ in COMPARED_FRONTS:
        if fronts.get(name):
            lines.append(f"\nPareto fronts, {objective} vs {x_label.split(' (')[0]} (trial numbers):")
            lines += [f"  {label}: {', '.join(map(str, numbers))}" for label, numbers in fronts[name].items()]
            missing = [entry.label for entry in entries if entry.label not in fronts[name]]
            if missing:
                lines.append(f"  not recorded by: {', '.join(missing)}")
    return "\n".join(lines) + "\n"


def _write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _importances(study: optuna.Study, primary: int, complete: list) -> tuple[dict[str, float], str]:
    """PED-ANOVA importances (Optuna's default evaluator) for the primary objective, or none and why."""
    import warnings

    if len(complete) < 2:
        return {}, "parameter importances need at least 2 complete trials"
    target = None
    if len(study.directions) > 1:
        # PED-ANOVA ranks a given target lower-is-better
        sign = -1.0 if study.directions[primary] == optuna.study.StudyDirection.MAXIMIZE else 1.0
        target = lambda t: sign * t.values[primary]  # noqa: E731
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            importances = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), target=target)
        except (RuntimeError, ValueError) as err:
            return {}, f"parameter importances unavailable: {err}"
    # e.g. too few trials: the evaluator says so and returns equal importances
    notes = [str(w.message) for w in caught if "low `target` values" not in str(w.message)]
    if not importances:
        return {}, "parameter importances unavailable: no parameter took more than one value"
    return dict(importances), ("parameter importances: " + " ".join(notes)) if notes else ""


def configuration_table(complete: list, primary: int) -> list[dict[str, Any]]:
    """Complete trials grouped by configuration (every parameter but the seed): the objective's mean and
    standard deviation over seeds, the compute (mean over seeds; peak memory: the largest) and the trials.

    A figure a trial did not record (older studies) is None: forward `gflops`, `params_m`,
    `train_gflops_per_clip`, `train_pflops_total`, `train_device_hours`, `eval_gflops_per_video`,
    `peak_memory_mb` (with `memory_source`), `train_clips_per_s`, `data_wait_fraction`, `fit_time_s` and
    `steps` (`trial_steps`).
    """
    groups: dict[tuple, list] = defaultdict(list)
    for trial in complete:
        groups[tuple(sorted((k, v) for k, v in trial.params.items() if k != SEED_KEY))].append(trial)

    def over_seeds(trials: list, key: str, reduce: Callable = statistics.fmean) -> float | None:
        values = [t.user_attrs[key] for t in trials if not _missing(t.user_attrs.get(key))]
        return reduce(values) if values else None

    table = []
    for setting, trials in groups.items():
        values = [t.values[primary] for t in trials]
        params = over_seeds(trials, "compute/params")
        steps = [n for n in (trial_steps(t.user_attrs) for t in trials) if n is not None]
        table.append({
            "params": dict(setting), "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0, "seeds": len(values),
            "gflops": over_seeds(trials, GFLOPS), "params_m": params / 1e6 if params is not None else None,
            "train_gflops_per_clip": over_seeds(trials, TRAIN_GFLOPS_PER_CLIP),
            "train_pflops_total": over_seeds(trials, TRAIN_PFLOPS),
            "train_device_hours": over_seeds(trials, TRAIN_DEVICE_HOURS),
            "eval_gflops_per_video": over_seeds(trials, EVAL_GFLOPS),
            "peak_memory_mb": over_seeds(trials, PEAK_MEMORY, max),
            "memory_source": " / ".join(sorted({str(t.user_attrs["compute/memory_source"]) for t in trials
                                                if t.user_attrs.get("compute/memory_source")}))
                             or None,
            "train_clips_per_s": over_seeds(trials, "compute/train_clips_per_s"),
            "data_wait_fraction": over_seeds(trials, DATA_WAIT_FRACTION),
            "fit_time_s": over_seeds(trials, "fit_time_s"),
            "steps": statistics.fmean(steps) if steps else None,
            "trials": [t.number for t in trials],
        })
    return table


def sweep_overhead(trials: list) -> tuple[float, float] | None:
    """(mean, max) fraction of a trial's wall time spent outside training: building the config, model,
    data and W&B run, profiling, finishing the run and freeing memory."""
    fractions = []
    for trial in trials:
        attrs = trial.user_attrs
        if all(k in attrs for k in ("wall_time_s", "fit_time_s")) and attrs["wall_time_s"] > 0:
            training = attrs["fit_time_s"] - attrs.get("profile_time_s", 0.0)
            fractions.append(1.0 - training / attrs["wall_time_s"])
    return (statistics.fmean(fractions), max(fractions)) if fractions else None


def _summary(study: optuna.Study, storage: str | None, names: list[str], primary: int, complete: list,
             front: list, importance_note: str, table: list[dict[str, Any]] | None = None,
             budget: tuple[str, float] | None = None) -> str:
    trials = study.get_trials(deepcopy=False)
    _, maximize = primary_objective(study)
    lines = [f"study '{study.study_name}'" + (f" in {show_storage(storage)}" if storage else "") + ": "
             + _trial_counts(trials)]
    lines.append("objectives: " + ", ".join(f"{n} ({d.name.lower()})" for n, d in zip(names, study.directions)))
    lines += _split_lines(trials)
    table = sorted(configuration_table(complete, primary) if table is None else table, key=lambda r: r["mean"],
                   reverse=maximize)
    if table:
        lines.append(f"\nbest configurations by {names[primary]} (mean ± std over seeds):")
        for rank, row in enumerate(table[:5], 1):
            lines.append(f"  {rank}. {_label(row['params'])}: {row['mean']:.4f} ± {row['std']:.4f} "
                         f"({row['seeds']} seed{'s' * (row['seeds'] > 1)}); {_compute_text(row)}; "
                         f"trials {', '.join(map(str, row['trials']))}")
    else:
        lines.append("\nno complete trials yet")
    lines += _budget_lines(trials, table, budget, names[primary], maximize)
    if front:
        lines.append(f"\nPareto front, {names[primary]} vs GFLOPs (no trial is better on both):")
        for trial in front:
            lines.append(f"  trial {trial.number}: {trial.values[primary]:.4f} at "
                         f"{trial.user_attrs[GFLOPS]:.3g} GFLOPs ({_label(trial.params)})")
    batched = [t for t in trials if not _missing(t.user_attrs.get(ACCUMULATE))]
    if batched:
        accumulated = [t for t in batched if t.user_attrs[ACCUMULATE] > 1]
        lines.append(f"\ngradient accumulation (micro_batch: auto): {len(accumulated)} of {len(batched)} trials ran "
                     "with it" + (":" if accumulated else ""))
        lines += [f"  trial {t.number} ({_label(t.params)}): batch {t.user_attrs.get('batch/requested', '-')} = "
                  f"{t.user_attrs.get('batch/micro', '-')} x {t.user_attrs[ACCUMULATE]} accumulated"
                  for t in accumulated]
    failures = [t for t in trials if "failure" in t.user_attrs]
    if failures:
        lines.append("\nfailed trials:")
        lines += [f"  trial {t.number} ({_label(t.params)}): {t.user_attrs['failure']}" for t in failures]
    lines += _data_bound_lines(complete)
    overhead = sweep_overhead(complete)
    if overhead:
        lines.append(f"\nsweep overhead (set-up, W&B, profiling, clean-up) per trial: {overhead[0]:.1%} of wall "
                     f"time on average, {overhead[1]:.1%} at most")
    if importance_note:
        lines.append(f"\n{importance_note}")
    return "\n".join(lines) + "\n"


def _trial_counts(trials: list) -> str:
    """E.g. "12 trials (10 complete, 2 fail)"."""
    counts: dict[str, int] = defaultdict(int)
    for trial in trials:
        counts[trial.state.name.lower()] += 1
    return f"{len(trials)} trials (" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")"


def _fmt(value: Any, spec: str) -> str:
    return "-" if _missing(value) else f"{value:{spec}}"


def _compute_text(row: dict[str, Any]) -> str:
    """A configuration's compute and cost, "-" for what its trials did not record."""
    figures = [("gflops", ".3g", "GFLOPs fwd/clip"), ("train_gflops_per_clip", ".3g", "GFLOPs train/clip"),
               ("train_pflops_total", ".3g", "PFLOPs trained"), ("eval_gflops_per_video", ".3g", "GFLOPs eval/video"),
               ("params_m", ".2f", "M params"), ("peak_memory_mb", ".0f", "MB peak"),
               ("train_clips_per_s", ".1f", "train clips/s"), ("data_wait_fraction", ".0%", "waiting for data"),
               ("fit_time_s", ".1f", "s fit")]
    if all(_missing(row.get(key)) for key, _, _ in figures):
        return "no profile"
    text = ", ".join(f"{_fmt(row.get(key), spec)} {unit}" for key, spec, unit in figures)
    return text.replace("MB peak", f"MB peak ({row['memory_source']})") if row.get("memory_source") else text


def _split_lines(trials: list) -> list[str]:
    """Where the objective came from (`objective_split`), and a warning when it was the test list."""
    splits: dict[str, int] = defaultdict(int)
    for trial in trials:
        if not _missing(trial.user_attrs.get("objective_split")):
            splits[str(trial.user_attrs["objective_split"])] += 1
    lines = ["objective taken from: " + ", ".join(f"{split} ({n} trial{'s' * (n > 1)})" for split, n in
                                                   sorted(splits.items()))] if splits else []
    on_test = [t.number for t in trials if _true(t.user_attrs.get("objective_on_test"))]
    if on_test:
        shown = ", ".join(map(str, on_test[:10])) + (", ..." if len(on_test) > 10 else "")
        lines.append(f"WARNING: {len(on_test)} trial{'s' * (len(on_test) > 1)} (trial {shown}) took the objective "
                     "from the test list: the hyperparameters were chosen on the test list, so results on it are no "
                     "longer an unbiased estimate")
    return lines


def _data_bound_lines(complete: list) -> list[str]:
    """A warning when complete trials waited for their data more than `DATA_BOUND_FRACTION` of their training."""
    measured = [t for t in complete if not _missing(t.user_attrs.get(DATA_WAIT_FRACTION))]
    bound = [t.number for t in measured if t.user_attrs[DATA_WAIT_FRACTION] > DATA_BOUND_FRACTION]
    if not bound:
        return []
    shown = ", ".join(map(str, bound[:10])) + (", ..." if len(bound) > 10 else "")
    return [f"\n{len(bound)} of {len(measured)} trials (trial {shown}) waited for data more than "
            f"{DATA_BOUND_FRACTION:.0%} of their training time: the loader, not the model, set their speed; see "
            "docs/compute.md#waiting-for-data"]


def _budget_lines(trials: list, table: list[dict[str, Any]], budget: tuple[str, float] | None, objective_name: str,
                  maximize: bool) -> list[str]:
    """A budgeted study's budget and its configurations ranked at it; otherwise the best configuration
    within each iso-compute level of measured training compute (nothing for studies that did not measure it)."""
    if budget is not None:
        key, target = budget
        measured, unit = BUDGETS[key]
        column = measured.removeprefix("compute/")
        lines = [f"\nbudgeted study: every trial trained to {key.removeprefix('budget/')} = {target:.3g} {unit} "
                 f"(its steps derived per trial); configurations ranked at that budget by {objective_name} "
                 "(mean ± std over seeds):"]
        lines += [f"  {rank}. {_label(row['params'])}: {row['mean']:.4f} ± {row['std']:.4f} with "
                  f"{_fmt(row['steps'], '.0f')} steps, {_fmt(row[column], '.3g')} {unit} measured"
                  for rank, row in enumerate(table, 1)]
        return lines
    lines = []
    targets: dict[str, int] = defaultdict(int)
    for trial in trials:
        for key, (_, unit) in BUDGETS.items():
            if not _missing(trial.user_attrs.get(key)):
                targets[f"{key.removeprefix('budget/')} = {trial.user_attrs[key]:.3g} {unit}"] += 1
    if targets:
        lines.append("\nbudgets (not one for every trial): "
                     + ", ".join(f"{target} ({n} trial{'s' * (n > 1)})" for target, n in sorted(targets.items())))
    measured = [row for row in table if row["train_pflops_total"] is not None]
    levels = compute_levels([row["train_pflops_total"] for row in measured])
    if levels:
        lines.append(f"\niso-compute: the best configuration by {objective_name} within each level of measured "
                     "training compute (mean over seeds):")
        for level, row, count in best_within(measured, levels, maximize):
            if row is not None:
                lines.append(f"  at <= {level:.3g} PFLOPs: best {_label(row['params'])}: {row['mean']:.4f} ± "
                             f"{row['std']:.4f} at {row['train_pflops_total']:.3g} PFLOPs ({count} of "
                             f"{len(measured)} configurations within)")
    return lines


def _write_index(path: Path, heading: str, figures: list[Figure], summary: str) -> None:
    """One page: the summary, then each figure's PNG linking to its interactive HTML page."""
    sections = "\n".join(
        f'<h2>{html.escape(f.title)}</h2><a href="{f.name}.html"><img src="{f.name}.png" alt="{f.name}"></a>'
        for f in figures)
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(heading)}</title></head>"
        f"<body style='font-family:sans-serif;max-width:60em;margin:auto'><h1>{html.escape(heading)}</h1>"
        f"<pre>{html.escape(summary)}</pre><p><a href='trials.csv'>trials.csv</a></p>{sections}</body></html>\n")


# Requests a read-only dashboard lets through: viewing studies, plots and the CSV download. Everything else
# (POST, PUT, DELETE: create, rename or delete a study, tell a trial, notes, artifacts) is refused.
READ_METHODS = ("GET", "HEAD")


def read_only(app: Callable) -> Callable:
    """A WSGI app that answers only GET and HEAD requests, refusing any other with 403 Forbidden.

    optuna-dashboard's own API lets anyone who reaches it delete studies and change trials.
    """
    import json

    def guarded(environ: dict, start_response: Callable):
        if environ.get("REQUEST_METHOD", "GET").upper() in READ_METHODS:
            return app(environ, start_response)
        # {"reason": ...} is how optuna-dashboard's own API reports an error (its pages show the reason)
        body = json.dumps({"reason": "this dashboard is read-only (lit-video dashboard --allow-writes lets "
                                     "it change the storage)"}).encode()
        start_response("403 Forbidden", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return guarded


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or a name) reaches this machine only from itself."""
    import ipaddress
    import socket

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def exposure_warnings(host: str, port: int, allow_writes: bool) -> list[str]:
    """Warnings for a dashboard served on `host`: none on a loopback address."""
    if is_loopback(host):
        return []
    lines = [f"warning: --host {host} serves the dashboard to anyone who can reach this machine on port {port}, "
             "without a password",
             f"warning: keep the default --host 127.0.0.1 and open an ssh tunnel from your own machine instead: "
             f"ssh -N -L {port}:127.0.0.1:{port} USER@THIS_MACHINE, then browse http://127.0.0.1:{port}"]
    if allow_writes:
        lines.append("warning: with --allow-writes anyone who reaches it can also delete studies and change trials")
    return lines


def dashboard_server(app: Callable, host: str, port: int):
    """A threaded wsgiref server for `app` bound to host:port; a port in use or a host that cannot be
    bound is a one-line error."""
    import errno
    import socket
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIServer, make_server

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True  # Ctrl-C does not wait for open browser connections
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    if not 1 <= port <= 65535:
        raise LitVideoError(f"--port: expected a TCP port from 1 to 65535, got {port}")
    try:
        return make_server(host, port, app, server_class=Server)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise LitVideoError(f"--port {port}: already in use on {host} (another dashboard?): choose another "
                                "--port") from None
        raise LitVideoError(f"--host {host} --port {port}: cannot listen there: {err.strerror or err}") from None
