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
    sweep.add_argument("--study-name", default=None)
    sweep.add_argument("--n-trials", type=int, default=None, help="finished trials the study should reach")
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

    report = commands.add_parser("report", help="CSV, plots (PNG + HTML) and a summary of a sweep's study")
    report.add_argument("--storage", required=True, help="the study's storage URL or journal file")
    report.add_argument("--study-name", default=None, help="needed when the storage holds several studies")
    report.add_argument("--out", default=None, help="output folder (default outputs/reports/<study name>)")
    report.set_defaults(run=report_study)

    dashboard = commands.add_parser("dashboard", help="serve optuna-dashboard for a storage on 127.0.0.1")
    dashboard.add_argument("--storage", required=True, help="the study's storage URL or journal file")
    dashboard.add_argument("--port", type=int, default=8080)
    dashboard.add_argument("--host", default="127.0.0.1", help="keep 127.0.0.1 and reach it over an ssh tunnel")
    dashboard.set_defaults(run=serve_dashboard)


def sweep_study(args: argparse.Namespace) -> int:
    """`sweep`: run (or resume) a study here, or submit its workers to SLURM."""
    import optuna

    from lit_video.sweep.spec import SweepSpec
    from lit_video.sweep.storage import redact, resolve_storage
    from lit_video.sweep.study import FINISHED, default_storage, load_study, run_sweep

    if args.workers < 1:
        raise LitVideoError(f"--workers: expected a positive number of workers, got {args.workers}")
    spec = SweepSpec.load(args.spec)
    storage = resolve_storage(args.storage, spec.storage, default_storage(spec))
    study_name = args.study_name or spec.study_name
    if args.launcher == "slurm":
        return _submit_slurm(args, spec, storage, study_name)
    if args.workers > 1:
        from lit_video.sweep.launch import local_workers

        spec.validate()  # once, before any worker starts
        codes = local_workers(args.spec, storage, study_name, args.workers, args.n_trials)
        if any(codes):
            print(f"warning: {sum(1 for c in codes if c)} of {args.workers} workers exited with an error")
        study = load_study(spec, storage, study_name)
    else:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = run_sweep(spec, storage, study_name, args.n_trials, verbose=True)
    if args.quiet:
        return 0
    trials = study.get_trials(deepcopy=False, states=FINISHED)
    states = {state.name.lower(): sum(t.state == state for t in trials) for state in FINISHED}
    print(f"study '{study_name}' in {redact(storage)}: " + ", ".join(f"{n} {s}" for s, n in states.items()))
    for trial in trials:
        if "failure" in trial.user_attrs:
            print(f"  trial {trial.number} {trial.params}: {trial.user_attrs['failure']}")
    if states["complete"]:
        for best in study.best_trials if spec.multi_objective else [study.best_trial]:
            print(f"best trial {best.number}: {best.values} with {best.params}")
    _print_wandb_location(spec)
    print(f"report: lit-video report --storage {redact(storage)} --study-name {study_name} "
          f"--out outputs/reports/{study_name}")
    return 0


def _submit_slurm(args: argparse.Namespace, spec, storage: str, study_name: str) -> int:
    """`lit-video sweep --launcher slurm`: submit the workers as a job array and return."""
    from lit_video.sweep.launch import merge_settings, submit_slurm
    from lit_video.sweep.storage import redact

    settings = merge_settings(spec.slurm, partition=args.partition, time_min=args.time,
                              gpus_per_worker=args.gpus_per_worker, cpus_per_worker=args.cpus_per_worker,
                              mem_gb=args.mem_gb, sbatch=dict(args.sbatch) if args.sbatch else None)
    folder = Path(args.submitit_folder or spec.out_dir / study_name / "submitit")
    spec.validate()  # a mistake in the spec fails here, not in every job of the array
    jobs = submit_slurm(args.spec, storage, study_name, args.workers, args.n_trials, settings, folder)
    print(f"submitted {len(jobs)} workers of study '{study_name}' ({redact(storage)}): "
          f"job ids {', '.join(job.job_id for job in jobs)}")
    print(f"logs: {folder.resolve()}/<job id>_0_log.out and .err (squeue --me shows the jobs; scancel stops them)")
    print(f"report: lit-video report --storage {redact(storage)} --study-name {study_name} "
          f"--out outputs/reports/{study_name}")
    return 0


def _print_wandb_location(spec) -> None:
    from lit_video.sweep.tracking import offline_runs, resolve_mode

    save_dir = spec.out_dir / spec.study_name
    mode = resolve_mode(spec.wandb)
    if mode == "offline":
        print(f"W&B: {len(offline_runs(save_dir))} offline runs in {save_dir / 'wandb'} "
              f"(upload: wandb sync {save_dir / 'wandb'}/offline-run-*)")
    elif mode == "online":
        print(f"W&B: runs in project '{spec.wandb.project}', group '{spec.study_name}'")


def report_study(args: argparse.Namespace) -> int:
    """`report`: trials.csv, plots and a summary of a study."""
    from lit_video.sweep.report import load_existing_study, write_report

    study = load_existing_study(args.storage, args.study_name)
    report = write_report(study, args.out or f"outputs/reports/{study.study_name}", storage=args.storage)
    print(report.summary, end="")
    print(f"\nreport: {report.out_dir}/index.html ({len(report.files)} files: trials.csv, plots as PNG and HTML)")
    return 0


def serve_dashboard(args: argparse.Namespace) -> int:
    """`dashboard`: serve optuna-dashboard for a storage."""
    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise LitVideoError("optuna-dashboard is not installed: pip install optuna-dashboard") from None
    from lit_video.sweep.report import study_names
    from lit_video.sweep.storage import open_storage

    names = study_names(args.storage)  # fails with one line on a storage that cannot be opened
    print(f"optuna-dashboard for {len(names)} studies ({', '.join(names) or 'none yet'}) on "
          f"http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
    run_server(open_storage(args.storage), host=args.host, port=args.port)
    return 0
