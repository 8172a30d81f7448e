"""Running a sweep: one Optuna study, each trial a `lit-video fit` of the spec's experiment.

`load_study` creates the spec's study (or opens it) and queues a grid's points exactly once;
`run_sweep` runs one worker on it (`lit_video.sweep.worker`), whose trials are run by
`lit_video.sweep.trial.TrialRunner`. Re-running the same command resumes the study: finished trials
count toward `n_trials` and a grid is never re-run. Many workers may run one study at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import time
import warnings
from collections.abc import Callable, Iterator

import optuna

from lit_video.errors import LitVideoError
from lit_video.sweep.spec import SweepSpec
from lit_video.sweep.storage import open_storage, redact, resolve_storage
from lit_video.sweep.trial import DDP_TRIAL_ENV, FINISHED, interrupted
from lit_video.sweep.worker import Worker, join_ddp_trials, print_trial

# Study user attributes: the grid being queued by the creating worker, and each grid once fully queued
GRID_QUEUEING, GRID_QUEUED = "lit_video:grid_queueing", "lit_video:grid_queued"


def default_storage(spec: SweepSpec) -> str:
    """SQLite next to the outputs: right for one machine (see the README for clusters)."""
    spec.out_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(spec.out_dir / f'{spec.study_name}.db').resolve()}"


def _sampler(spec: SweepSpec, seed: int = 0) -> optuna.samplers.BaseSampler:
    if spec.sampler in ("grid", "random"):
        # A grid is queued point by point when its study is created (exactly once with many workers,
        # which Optuna's GridSampler does not promise), so its sampler never has to sample.
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def load_study(spec: SweepSpec, storage: str | None = None, study_name: str | None = None) -> optuna.Study:
    """Create the spec's study, or open it when it exists; its objectives are named by their metrics.

    The worker that creates a grid study queues every point of the grid (seeds included) once; the
    others wait until that is done (see `_queue_grid`).

    Args:
        spec: a loaded sweep spec.
        storage: the storage URL or journal path (default: $LIT_VIDEO_STORAGE, the spec's, else SQLite).
        study_name: default: the spec's.
    """
    url = resolve_storage(storage, spec.storage, default_storage(spec))
    name = study_name or spec.study_name
    try:
        options = {"study_name": name, "storage": open_storage(url, spec.heartbeat), "sampler": _sampler(spec),
                   "pruner": _pruner(spec)}
        try:
            study = optuna.create_study(**options, directions=[o.direction for o in spec.objectives])
            created = True
        except optuna.exceptions.DuplicatedStudyError:  # another worker (or an earlier run) created it
            study = optuna.load_study(**options)
            created = False
    except Exception as err:  # e.g. a database that cannot be reached: one line, no password
        raise LitVideoError(f"cannot open the study '{name}' in {redact(url)}: "
                            f"{redact(' '.join(str(err).split()))[:300]}") from None
    names = [o.metric for o in spec.objectives]
    if created or study.metric_names != names:
        # experimental since Optuna 3.2 and unchanged since; the report and the dashboard show these names
        with warnings.catch_warnings(category=optuna.exceptions.ExperimentalWarning, action="ignore"):
            study.set_metric_names(names)
    if spec.sampler == "grid":
        _queue_grid(study, spec, created)
    return study


def _queue_grid(study: optuna.Study, spec: SweepSpec, created: bool, wait_s: float = 60.0) -> None:
    """Queue every point of the spec's grid that the study does not hold yet, exactly once.

    The worker that created the study queues the grid; the others wait until it is done (the study's
    user attributes say so). A study re-run with a different grid (a new clip length, say) gets the
    new points queued by the first worker that opens it; a worker that died while queueing is
    replaced after `wait_s`.
    """
    grid = spec.grid()
    fingerprint = hashlib.sha1(json.dumps(grid, sort_keys=True, default=str).encode()).hexdigest()[:12]
    queued = f"{GRID_QUEUED}:{fingerprint}"
    if created:
        study.set_user_attr(GRID_QUEUEING, fingerprint)
    else:
        deadline = time.monotonic() + wait_s
        while queued not in study.user_attrs and time.monotonic() < deadline:
            creating = study.user_attrs.get(GRID_QUEUEING)
            if creating != fingerprint and (creating is not None or study.get_trials(deepcopy=False)):
                break  # an earlier grid or an older study: this worker queues the new points
            time.sleep(0.5)  # the creating worker is queueing (or is about to say so)
        if queued in study.user_attrs:
            return
    present = {_params_key(t.system_attrs.get("fixed_params", t.params))
               for t in study.get_trials(deepcopy=False) if not interrupted(t)}
    for values in itertools.product(*grid.values()):
        point = dict(zip(grid, values))
        if _params_key(point) not in present:
            study.enqueue_trial(point)
    study.set_user_attr(queued, spec.grid_size)


def finished_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that count as done: complete, pruned, or failed for a recorded reason (OOM, NaN, error)."""
    return [t for t in study.get_trials(deepcopy=False, states=FINISHED) if not interrupted(t)]


def run_sweep(spec: SweepSpec, storage: str | None = None, study_name: str | None = None,
              n_trials: int | None = None, verbose: bool = False) -> optuna.Study:
    """Run one worker of the sweep until the study holds `n_trials` finished trials, or the grid is done.

    Safe to run in many processes on one storage at once (see `lit_video.sweep.worker`). Interrupted and
    preempted trials are queued again with the same parameters; finished ones are never redone.

    Args:
        spec: a loaded sweep spec (validated here before any trial starts).
        storage, study_name: override the spec's.
        n_trials: finished trials the study should hold (default: the spec's, or the grid's size).
        verbose: print one line per finished trial (outcome, values, time).
    """
    spec.validate()
    study = load_study(spec, storage, study_name)
    with each_warning_once():
        if DDP_TRIAL_ENV in os.environ and int(os.environ.get("LOCAL_RANK", "0")) > 0:
            join_ddp_trials(spec, study, int(os.environ[DDP_TRIAL_ENV]))
            return study
        target = n_trials or spec.n_trials or (spec.grid_size if spec.sampler == "grid" else None)
        callbacks: list[Callable] = [print_trial] if verbose else []
        Worker(spec, study, target, callbacks).run()
    return study


@contextlib.contextmanager
def each_warning_once() -> Iterator[None]:
    """Show each warning (its text and category) at most once in this process while the worker runs.

    Python shows a warning once per place in the code, but forgets what it has shown whenever a
    warnings filter changes, which `warnings.catch_warnings` (in Lightning, Optuna and here) does many
    times a trial: every trial would repeat the warnings of the one before. Filters are left alone: a
    warning ignored or turned into an error elsewhere stays so.
    """
    shown: set[tuple[str, type[Warning]]] = set()
    show = warnings.showwarning

    def show_once(message, category, filename, lineno, file=None, line=None) -> None:
        if (str(message), category) not in shown:
            shown.add((str(message), category))
            show(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():  # restores warnings.showwarning on the way out
        warnings.showwarning = show_once
        yield


def _params_key(params: dict) -> tuple:
    return tuple(sorted(params.items()))
