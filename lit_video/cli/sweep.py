"""`lit-video sweep|report|dashboard`: Optuna sweeps of an experiment and what they found."""

from __future__ import annotations

import argparse
from pathlib import Path

from lit_video.cli.arguments import non_negative_int, positive_float, positive_int, sbatch_option
from lit_video.errors import LitVideoError


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register `sweep`, `report` and `dashboard` on the top-level parser's `commands`."""
    sweep = commands.add_parser("sweep", help="run or resume an Optuna sweep of an experiment")
    sweep.add_argument("spec", help="a sweep spec, e.g. sweeps/demo.yaml")
    sweep.add_argument("--storage", default=None, help="Optuna storage URL or journal file (default: "
                       "$LIT_VIDEO_STORAGE, else the spec's, else SQLite in out_dir)")
    sweep.add_argument("--study-name", default=None, help="the study to run or resume (default: the spec's "
                       "study_name); also the name of its folder in out_dir")
    sweep.add_argument("--n-trials", type=int, default=None, help="finished trials the study should reach")
    sweep.add_argument("--force-spec", action="store_true", help="run the spec in a study created from a different "
                       "one: the study records this spec, and its queued trials outside the new search space are "
                       "skipped")
    sweep.add_argument("--workers", type=int, default=1, help="workers sharing the study: local processes, "
                       "or SLURM jobs with --launcher slurm")
    sweep.add_argument("--launcher", choices=["local", "slurm"], default="local",
                       help="local: run the workers here and wait; slurm: submit them as a job array and return")
    slurm = sweep.add_argument_group("SLURM (--launcher slurm; each overrides the spec's slurm: section)")
    slurm.add_argument("--partition", default=None)
    slurm.add_argument("--time", type=positive_int, default=None, metavar="MIN", help="time limit of each job in minutes "
                       "(default 60); a job at its limit is requeued and goes on")
    slurm.add_argument("--gpus-per-worker", type=non_negative_int, default=None, metavar="N")
    slurm.add_argument("--cpus-per-worker", type=positive_int, default=None, metavar="N")
    slurm.add_argument("--mem-gb", type=positive_float, default=None, metavar="GB")
    slurm.add_argument("--sbatch", type=sbatch_option, action="append", default=None, metavar="KEY=VALUE",
                       help="any other sbatch option, e.g. --sbatch account=myproj --sbatch qos=high (repeatable; KEY alone "
                       "for a flag)")
    slurm.add_argument("--submitit-folder", default=None, metavar="DIR",
                       help="submitit's jobs and logs (default <out_dir>/<study_name>/submitit)")
    sweep.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)  # set for the workers
    sweep.set_defaults(run=sweep_study)

    report = commands.add_parser("report", help="CSV, plots (PNG + HTML) and a summary of a sweep's study, or of "
                                 "several studies overlaid (--study A --study B)")
    report.add_argument("--storage", required=True, action="append", help="the study's storage URL or journal file; "
                        "to compare studies of several storages, one --storage per --study (paired in order)")
    report.add_argument("--study-name", default=None, help="needed when the storage holds several studies")
    report.add_argument("--study", action="append", default=None, metavar="NAME", help="a study to compare; repeat "
                        "it (--study A --study B) for one report overlaying their ablation curves and Pareto fronts")
    report.add_argument("--out", default=None, help="output folder (default outputs/reports/<study name>, or "
                        "<A>_vs_<B> for several studies)")
    report.set_defaults(run=report_study)

    dashboard = commands.add_parser("dashboard", help="serve optuna-dashboard (read-only) for a storage on 127.0.0.1")
    dashboard.add_argument("--storage", required=True, help="the study's storage URL or journal file")
    dashboard.add_argument("--port", type=int, default=8080, help="TCP port, 1-65535 (default 8080)")
    dashboard.add_argument("--host", default="127.0.0.1", help="keep 127.0.0.1 and reach it over an ssh tunnel; any "
                           "other address serves the studies to everyone who reaches it")
    dashboard.add_argument("--allow-writes", action="store_true", help="let the dashboard change the storage (delete "
                           "or rename studies, tell trials, notes); it is read-only by default")
    dashboard.set_defaults(run=serve_dashboard)


def sweep_study(args: argparse.Namespace) -> int:
    """`sweep`: run (or resume) a study here, or submit its workers to SLURM.

    Exits with status 1 (one `lit-video: error:` line) when the study is over without a complete trial."""
    import sys

    from lit_video.sweep.spec import SweepSpec, check_study_name

    if args.workers < 1:
        raise LitVideoError(f"--workers: expected a positive number of workers, got {args.workers}")
    if args.n_trials is not None and args.n_trials < 1:
        raise LitVideoError(f"--n-trials: expected a positive number of trials, got {args.n_trials}")
    if args.study_name is not None:
        check_study_name(args.study_name, "--study-name")
    spec = SweepSpec.load(args.spec)
    devices = None
    if args.launcher == "local" and args.workers > 1:
        from lit_video.sweep.launch import worker_devices

        # Each worker gets its own share of this machine's GPUs: refused before the study or any worker exists.
        devices = worker_devices(spec, args.workers)
    # Torch, Lightning and Optuna only now: a mistake in the arguments or the spec file is told at once.
    import optuna

    from lit_video.sweep.storage import redact, resolve_storage
    from lit_video.sweep.study import FINISHED, default_storage, load_study, run_sweep

    storage = resolve_storage(args.storage, spec.storage, default_storage(spec))
    study_name = args.study_name or spec.study_name
    if args.launcher == "slurm":
        return _submit_slurm(args, spec, storage, study_name)
    if args.workers > 1:
        from lit_video.sweep.launch import local_workers

        spec.validate(check_paths=True)  # once, before any worker starts
        # The study is created (its grid queued, its spec recorded) or its spec checked here, once: the
        # workers then find this spec recorded and need no --force-spec.
        load_study(spec, storage, study_name, check_spec=not args.force_spec)
        if devices[0] is not None and not args.quiet:
            print(f"{args.workers} workers, each on its own GPUs: CUDA_VISIBLE_DEVICES {' | '.join(devices)}")
        codes = local_workers(args.spec, storage, study_name, args.workers, args.n_trials, devices)
        if any(codes):
            print(f"warning: {sum(1 for c in codes if c)} of {args.workers} workers exited with an error")
        study = load_study(spec, storage, study_name)
    else:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = run_sweep(spec, storage, study_name, args.n_trials, verbose=True, check_spec=not args.force_spec)
    if args.quiet:
        return 0
    trials = study.get_trials(deepcopy=False, states=FINISHED)
    states = {state.name.lower(): sum(t.state == state for t in trials) for state in FINISHED}
    counts = ", ".join(f"{n} {s}" for s, n in states.items())
    print(f"study '{study_name}' in {redact(storage)}: {counts}")
    for trial in trials:
        if "failure" in trial.user_attrs:
            print(f"  trial {trial.number} {trial.params}: {trial.user_attrs['failure']}")
    if states["complete"]:
        for best in study.best_trials if spec.multi_objective else [study.best_trial]:
            print(f"best trial {best.number}: {best.values} with {best.params}")
    _print_wandb_location(spec, study_name)
    print(f"report: lit-video report --storage {redact(storage)} --study-name {study_name} "
          f"--out outputs/reports/{study_name}")
    unfinished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,
                                                          optuna.trial.TrialState.RUNNING))
    if not states["complete"] and not unfinished:
        # The sweep is over (not stopped by a signal, nor still running elsewhere) and every trial failed
        # or was pruned, often on the same mistake: not a successful sweep.
        print(f"lit-video: error: study '{study_name}' has no complete trial ({counts}); the reasons are "
              f"listed above", file=sys.stderr)
        return 1
    return 0


def _submit_slurm(args: argparse.Namespace, spec, storage: str, study_name: str) -> int:
    """`lit-video sweep --launcher slurm`: submit the workers as a job array and return."""
    from lit_video.sweep.launch import merge_settings, submit_slurm
    from lit_video.sweep.spec import study_folder
    from lit_video.sweep.storage import redact

    settings = merge_settings(spec.slurm, partition=args.partition, time_min=args.time,
                              gpus_per_worker=args.gpus_per_worker, cpus_per_worker=args.cpus_per_worker,
                              mem_gb=args.mem_gb, sbatch=dict(args.sbatch) if args.sbatch else None)
    folder = Path(args.submitit_folder or study_folder(spec, study_name) / "submitit")
    spec.validate(check_paths=True)  # a mistake in the spec fails here, not in every job of the array
    # The workers check the study's spec (the storage may be out of this machine's reach); --force-spec
    # travels to them.
    forced = {"force_spec": True} if args.force_spec else {}
    jobs = submit_slurm(args.spec, storage, study_name, args.workers, args.n_trials, settings, folder, **forced)
    print(f"submitted {len(jobs)} workers of study '{study_name}' ({redact(storage)}): "
          f"job ids {', '.join(job.job_id for job in jobs)}")
    print(f"logs: {folder.resolve()}/<job id>_0_log.out and .err (squeue --me shows the jobs; scancel stops them)")
    print(f"report: lit-video report --storage {redact(storage)} --study-name {study_name} "
          f"--out outputs/reports/{study_name}")
    return 0


def _print_wandb_location(spec, study_name: str) -> None:
    from lit_video.sweep.spec import study_folder
    from lit_video.sweep.tracking import offline_runs, resolve_mode

    save_dir = study_folder(spec, study_name)  # where the trials put their runs (the study's folder)
    mode = resolve_mode(spec.wandb)
    if mode == "offline":
        print(f"W&B: {len(offline_runs(save_dir))} offline runs in {save_dir / 'wandb'} "
              f"(upload: wandb sync {save_dir / 'wandb'}/offline-run-*)")
    elif mode == "online":
        print(f"W&B: runs in project '{spec.wandb.project}', group '{study_name}'")


def report_study(args: argparse.Namespace) -> int:
    """`report`: trials.csv, plots and a summary of a study, or of several studies overlaid."""
    from lit_video.sweep.report import load_existing_study, report_folder, write_report

    storages, studies = args.storage, args.study or []
    if studies and args.study_name is not None:
        raise LitVideoError("--study-name and --study: name one study with --study-name, or the studies to compare "
                            "with --study")
    if len(studies) > 1 or len(storages) > 1:
        return _compare_studies(storages, studies, args.out)
    if args.out:
        report_folder(args.out, create=False)  # an existing file fails before the study is loaded
    storage = storages[0]
    study = load_existing_study(storage, studies[0] if studies else args.study_name)
    if not args.out:  # the study's name becomes a folder: one made by an older version may not be a safe one
        from lit_video.sweep.spec import check_study_name

        check_study_name(study.study_name, "the study's name (give --out)")
    report = write_report(study, args.out or f"outputs/reports/{study.study_name}", storage=storage)
    print(report.summary, end="")
    print(f"\nreport: {report.out_dir}/index.html ({len(report.files)} files: trials.csv, plots as PNG and HTML)")
    return 0


def _compare_studies(storages: list[str], studies: list[str], out: str | None) -> int:
    """`report --study A --study B ...`: one report overlaying the studies, each from the one --storage or from
    the --storage given with it (paired in order)."""
    from lit_video.sweep.report import load_existing_study, report_folder, write_comparison
    from lit_video.sweep.spec import check_study_name

    if not studies:
        raise LitVideoError(f"--storage given {_times(len(storages))}: name the study of each with --study (one "
                            "per --storage, paired in order)")
    if len(storages) not in (1, len(studies)):
        raise LitVideoError(f"--storage given {_times(len(storages))} and --study {_times(len(studies))}: give one "
                            "--storage for every study, or one --storage per --study (paired in order)")
    if out:
        report_folder(out, create=False)  # an existing file fails before the studies are loaded
    pairs = list(zip(storages * len(studies) if len(storages) == 1 else storages, studies))
    loaded = [(load_existing_study(storage, name), storage) for storage, name in pairs]
    if not out:  # the studies' names become a folder
        for study, _ in loaded:
            check_study_name(study.study_name, f"study '{study.study_name}' as part of a folder name (give --out)")
        out = "outputs/reports/" + "_vs_".join(study.study_name for study, _ in loaded)
    comparison = write_comparison(loaded, out)
    print(comparison.summary, end="")
    print(f"\nreport: {comparison.out_dir}/index.html ({len(comparison.files)} files: trials.csv, plots as PNG "
          "and HTML)")
    return 0


def _times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


def serve_dashboard(args: argparse.Namespace) -> int:
    """`dashboard`: serve optuna-dashboard for a storage, read-only unless --allow-writes."""
    import sys

    try:
        from optuna_dashboard import wsgi
    except ImportError:
        raise LitVideoError("optuna-dashboard is not installed: pip install optuna-dashboard") from None
    from lit_video.sweep.report import dashboard_server, exposure_warnings, read_only, study_names
    from lit_video.sweep.storage import open_storage, storage_error

    if not 1 <= args.port <= 65535:
        raise LitVideoError(f"--port: expected a TCP port from 1 to 65535, got {args.port}")
    names = study_names(args.storage)  # fails with one line on a storage that cannot be opened
    try:
        app = wsgi(open_storage(args.storage))
    except Exception as err:  # e.g. a database left by an older Optuna
        raise LitVideoError(f"optuna-dashboard cannot open the storage: {storage_error(err)[:200]}") from None
    server = dashboard_server(app if args.allow_writes else read_only(app), args.host, args.port)
    try:
        for line in exposure_warnings(args.host, args.port, args.allow_writes):
            print(line, file=sys.stderr)
        mode = "read and write" if args.allow_writes else "read-only"
        print(f"optuna-dashboard ({mode}) for {len(names)} studies ({', '.join(names) or 'none yet'}) on "
              f"http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
        sys.stderr.flush()
        server.serve_forever()
    finally:
        server.server_close()
    return 0
