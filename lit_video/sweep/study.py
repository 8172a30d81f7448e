"""Running a sweep: one Optuna study, each trial a `lit-video fit` of the spec's experiment.

`load_study` creates the spec's study (or opens it) and queues a grid's points exactly once;
`run_sweep` runs one worker on it (`lit_video.sweep.worker`), whose trials are run by
`lit_video.sweep.trial.TrialRunner`. Re-running the same command resumes the study: finished trials
count toward `n_trials` and a grid is never re-run. Many workers may run one study at once.

A study records the spec it was created from (`SweepSpec.hashes`: search space, base experiment, fixed
overrides, objectives; user attribute `lit_video:spec`). Opening it with another spec is refused when
asked to (`check_spec`, what `lit-video sweep` does unless given --force-spec); otherwise the new
spec is recorded and the study's queued trials outside its search space are skipped (failed with a
`failure` that starts with "skipped:"), so that they neither run nor count toward the trials to run.
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
from lit_video.sweep.spec import SEED_KEY, SweepSpec, check_study_name
from lit_video.sweep.storage import open_storage, redact, resolve_storage, storage_error
from lit_video.sweep.trial import DDP_TRIAL_ENV, FINISHED, interrupted
from lit_video.sweep.worker import Worker, join_ddp_trials, print_trial

# Study user attributes: the grid being queued by the creating worker, and each grid once fully queued
GRID_QUEUEING, GRID_QUEUED = "lit_video:grid_queueing", "lit_video:grid_queued"
SPEC_ATTR = "lit_video:spec"  # the hashes of the spec the study runs (SweepSpec.hashes)
SKIPPED = "skipped:"  # how the `failure` of a queued trial that the study's current spec leaves out starts


def default_storage(spec: SweepSpec) -> str:
    """SQLite next to the outputs: right for one machine (see the README for clusters)."""
    try:
        spec.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LitVideoError(f"{spec.path}: out_dir: cannot create the folder {spec.out_dir}: "
                            f"{err.strerror or err}") from None
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


def load_study(spec: SweepSpec, storage: str | None = None, study_name: str | None = None,
               check_spec: bool = False) -> optuna.Study:
    """Create the spec's study, or open it when it exists; its objectives are named by their metrics.

    The worker that creates a grid study queues every point of the grid (seeds included) once; the
    others wait until that is done (see `_queue_grid`).

    Args:
        spec: a loaded sweep spec.
        storage: the storage URL or journal path (default: $LIT_VIDEO_STORAGE, the spec's, else SQLite).
        study_name: default: the spec's.
        check_spec: refuse a study created from another spec (LitVideoError) instead of running this
            spec in it (see the module docstring).
    """
    # checked again here: a spec built in Python, or a worker's --study-name, has not been through the CLI
    name = (check_study_name(study_name, "--study-name") if study_name is not None
            else check_study_name(spec.study_name, f"{spec.path}: study_name"))
    url = resolve_storage(storage, spec.storage, default_storage(spec))
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
                            f"{storage_error(err)[:300]}") from None
    _match_spec(study, spec, created, check_spec, redact(url))
    names = [o.metric for o in spec.objectives]
    if created or study.metric_names != names:
        # experimental since Optuna 3.2 and unchanged since; the report and the dashboard show these names
        with warnings.catch_warnings(category=optuna.exceptions.ExperimentalWarning, action="ignore"):
            study.set_metric_names(names)
    if spec.sampler == "grid":
        _queue_grid(study, spec, created)
    return study


def _match_spec(study: optuna.Study, spec: SweepSpec, created: bool, check_spec: bool, where: str) -> None:
    """Record the spec's hashes in the study; for a study created from another spec, refuse it
    (`check_spec`) or skip the queued trials that the new spec leaves out. A study created before specs
    were recorded takes this one. A spec that Optuna cannot run in the study (its trials' distributions,
    its objectives' directions) is always refused."""
    hashes = spec.hashes()
    recorded = study.user_attrs.get(SPEC_ATTR)
    if recorded == hashes:
        return
    new_study = f"run {spec.path} as a new study with --study-name NEW_NAME"
    if not created:
        clash = _clash(study, spec)
        if clash:
            raise LitVideoError(f"study '{study.study_name}' in {where}: {clash}; {new_study}")
    if recorded is not None and check_spec:
        changed = [part.replace("_", " ") for part in hashes
                   if not isinstance(recorded, dict) or recorded.get(part) != hashes[part]]
        raise LitVideoError(f"study '{study.study_name}' in {where} was created from another spec (its "
                            f"{', '.join(changed)} changed): {new_study}, or pass --force-spec to run it in this "
                            f"study (its queued trials outside the new search space are then skipped)")
    study.set_user_attr(SPEC_ATTR, hashes)
    if not created:
        _skip_stale_trials(study, spec)


def _clash(study: optuna.Study, spec: SweepSpec) -> str | None:
    """What Optuna cannot change within a study that the spec changes, or None: the directions of the
    objectives, and for each parameter the kind of its distribution, its log scale and a categorical
    parameter's choices (Optuna fails every trial that suggests it otherwise)."""
    directions = [optuna.study.StudyDirection[o.direction.upper()] for o in spec.objectives]
    if study.directions != directions:
        had = ", ".join(d.name.lower() for d in study.directions)
        return (f"its objectives are ({had}) and the spec's ({', '.join(o.direction for o in spec.objectives)}), "
                f"which Optuna cannot change within a study")
    wanted = {f"search_space.{p.key}": (p.key, p.distribution()) for p in spec.params}
    if len(spec.seeds) > 1 or spec.sampler == "grid":  # when the trials suggest the seed (see TrialRunner)
        wanted["seeds"] = (SEED_KEY, optuna.distributions.CategoricalDistribution(list(spec.seeds)))
    held: dict[str, optuna.distributions.BaseDistribution] = {}
    for trial in study.get_trials(deepcopy=False):
        for name, distribution in trial.distributions.items():
            held.setdefault(name, distribution)
    for where, (name, distribution) in wanted.items():
        if name not in held:
            continue
        try:
            optuna.distributions.check_distribution_compatibility(held[name], distribution)
        except ValueError:
            old = held[name]
            had = (f"choices {list(old.choices)}" if isinstance(old, optuna.distributions.CategoricalDistribution)
                   else f"a {type(old).__name__}{' on a log scale' if getattr(old, 'log', False) else ''}")
            return (f"its trials took {where} from {had}, and Optuna cannot change a parameter's choices, kind or "
                    f"log scale within a study")
    return None


def _skip_stale_trials(study: optuna.Study, spec: SweepSpec) -> None:
    """Fail, with a `failure` saying why, each queued trial whose point the spec cannot run: Optuna
    would fail it on a value outside the new distributions, after it was claimed instead of a new point."""
    waiting = optuna.trial.TrialState.WAITING
    for trial in study.get_trials(deepcopy=False, states=(waiting,)):
        reason = _outside(spec, trial.system_attrs.get("fixed_params", trial.params))
        if reason is None:
            continue
        storage = study._storage
        try:
            # claimed first, as a worker claims a trial: one that a worker has just started is left alone
            if not storage.set_trial_state_values(trial._trial_id, state=optuna.trial.TrialState.RUNNING):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        storage.set_trial_user_attr(trial._trial_id, "failure", f"{SKIPPED} queued by an earlier spec; {reason}")
        storage.set_trial_state_values(trial._trial_id, state=optuna.trial.TrialState.FAIL)


def _outside(spec: SweepSpec, point: dict) -> str | None:
    """Why the spec cannot run a queued trial's point, or None when it can."""
    params = {p.key: p for p in spec.params}
    for key, value in point.items():
        if key == SEED_KEY:
            if value not in spec.seeds:
                return f"{key}={value!r} is not one of the spec's seeds"
        elif key not in params:
            return f"{key} is not in the spec's search space"
        elif not params[key].contains(value):
            return f"{key}={value!r} is outside the spec's search space"
    if spec.sampler == "grid":
        grid = spec.grid()
        missing = [key for key in grid if key not in point]
        if missing:
            return f"it sets no {missing[0]}, a dimension of the spec's grid"
    return None


def _queue_grid(study: optuna.Study, spec: SweepSpec, created: bool, wait_s: float = 60.0) -> None:
    """Queue every point of the spec's grid that the study does not hold yet, exactly once.

    The worker that created the study queues the grid; the others wait until it is done (the study's
    user attributes say so). A study re-run with a different grid that Optuna can hold (a wider int
    range, say; not new categorical choices, see `_clash`) gets the new points queued by the first
    worker that opens it; a worker that died while queueing is replaced after `wait_s`.
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


def run_target(study: optuna.Study, spec: SweepSpec, n_trials: int | None = None) -> int | None:
    """The finished trials a worker runs the study up to: `n_trials` (default the spec's) plus the skipped
    ones, or for a grid its size plus the finished trials outside it (those of an earlier spec); None:
    until the timeout."""
    finished = finished_trials(study)
    if n_trials or spec.n_trials:
        skipped = sum(1 for t in finished if str(t.user_attrs.get("failure", "")).startswith(SKIPPED))
        return (n_trials or spec.n_trials) + skipped
    if spec.sampler != "grid":
        return None
    grid = spec.grid()
    points = {_params_key(dict(zip(grid, values))) for values in itertools.product(*grid.values())}
    outside = sum(1 for t in finished if _params_key(t.system_attrs.get("fixed_params", t.params)) not in points)
    return spec.grid_size + outside


def run_sweep(spec: SweepSpec, storage: str | None = None, study_name: str | None = None,
              n_trials: int | None = None, verbose: bool = False, check_spec: bool = False) -> optuna.Study:
    """Run one worker of the sweep until the study holds `n_trials` finished trials, or the grid is done.

    Safe to run in many processes on one storage at once (see `lit_video.sweep.worker`). Interrupted and
    preempted trials are queued again with the same parameters; finished ones are never redone.

    Args:
        spec: a loaded sweep spec (validated here before any trial starts).
        storage, study_name: override the spec's.
        n_trials: finished trials the study should hold (default: the spec's, or the grid's size).
        verbose: print one line per finished trial (outcome, values, time).
        check_spec: refuse a study created from another spec (see `load_study`).
    """
    spec.validate(check_paths=True)
    study = load_study(spec, storage, study_name, check_spec)
    with each_warning_once():
        if DDP_TRIAL_ENV in os.environ and int(os.environ.get("LOCAL_RANK", "0")) > 0:
            join_ddp_trials(spec, study, int(os.environ[DDP_TRIAL_ENV]))
            return study
        target = run_target(study, spec, n_trials)
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
