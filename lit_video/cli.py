"""The `lit-video` command.

    lit-video data synth   --format FORMAT --out DIR [--seed N] [--num-classes N] ...
    lit-video data check   --format FORMAT --root DIR
    lit-video data iterate --format FORMAT --root DIR [--clip-len N] [--stride N] [--resolution N] ...
    lit-video fit|validate|test|predict --config experiments/X.yaml [--key value ...]   (LightningCLI)
    lit-video profile --config experiments/X.yaml [--clip-lens 8,16] [--resolutions 112,224]
    lit-video evaluate vos --gt DAVIS_ROOT --pred RESULTS_DIR [--set val] [--year 2017] [--out DIR]
    lit-video evaluate vis --gt ANN.json --pred RESULTS.json [--out DIR]
    lit-video evaluate captioning --gt ANN.json --pred RESULTS.json [--split SPLIT] [--out DIR]

A mistake in the input (a wrong path, an unknown format, a malformed annotation file) ends the
command with a one-line message and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from lit_video.errors import LitVideoError


def _one_line_warnings() -> None:
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"


def _size(text: str) -> tuple[int, int]:
    """'120x160' (height x width) -> (120, 160)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 120x160, got {text!r}") from None
    if height % 2 or width % 2:
        raise argparse.ArgumentTypeError(f"height and width must be even (4:2:0 video), got {text!r}")
    return height, width


SEGMENTATION_FORMATS = ("davis", "youtube-vos", "youtube-vis")  # synthetic sets with a held-out split to size


def _data_synth(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from lit_video.data.base import datamodule_class
    from lit_video.data.synthetic import SynthSpec

    cls = datamodule_class(args.format)
    out = Path(args.out)
    options = {}
    if args.valid_every is not None:
        if args.format not in SEGMENTATION_FORMATS:
            raise LitVideoError(f"--valid-every applies to {', '.join(SEGMENTATION_FORMATS)}, not {args.format}")
        options["valid_every"] = args.valid_every
    if args.category_colours:
        if args.format != "youtube-vis":
            raise LitVideoError(f"--category-colours applies to youtube-vis, not {args.format}")
        options["category_colours"] = True
    if args.skip_existing and out.is_dir() and any(out.iterdir()):
        print(f"{out} exists; skipping synthesis (remove it or drop --skip-existing to regenerate)")
        return 0
    try:
        spec = SynthSpec(args.num_classes, args.videos_per_class, args.num_frames, args.size, args.fps, args.seed)
        spec.motions  # noqa: B018 - validates num_classes before anything is written
    except ValueError as err:
        raise LitVideoError(str(err)) from None
    total = spec.num_classes * spec.videos_per_class
    with tqdm(total=total, desc=f"writing {args.format}", unit="video") as bar:
        cls.synthesize(out, spec, progress=lambda: bar.update(), **options)
    motion_classes = args.format in ("ucf101", "kinetics")  # the other formats' videos have no class
    what = f"videos of {spec.num_classes} motion classes" if motion_classes else "videos"
    print(f"wrote a synthetic {args.format} dataset to {out} ({total} {what})")
    return 0


def _data_check(args: argparse.Namespace) -> int:
    from lit_video.data.base import datamodule_class
    from lit_video.data.check import check_datamodule, format_report

    options = {"split": args.split} if args.split is not None else {}
    datamodule = datamodule_class(args.format)(root=args.root, decoder=args.decoder, num_workers=0, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the report below lists what the warnings would
        reports = check_datamodule(datamodule)
    print(format_report(reports))
    bad = sum(len(r.missing) + len(r.unreadable) for r in reports.values())
    return 1 if (bad and args.strict) else 0


def _data_iterate(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from lit_video.data.base import datamodule_class

    datamodule = datamodule_class(args.format)(
        root=args.root, clip_len=args.clip_len, stride=args.stride, resolution=args.resolution,
        batch_size=args.batch_size, num_workers=args.num_workers, decoder=args.decoder,
    )
    loader = datamodule.train_dataloader() if args.subset == "train" else getattr(datamodule, f"{args.subset}_dataloader")()
    clips, shape = 0, None
    start = time.perf_counter()
    for batch in tqdm(loader, desc=f"{args.format} {args.subset}", unit="batch"):
        video: torch.Tensor = batch["video"]
        shape = tuple(video.shape)
        clips += video.shape[0] if args.subset == "train" else video.shape[0] * video.shape[1]
    seconds = time.perf_counter() - start
    print(f"{clips} clips in {seconds:.1f} s: {clips / seconds:.1f} clips/s (batch shape {shape}, "
          f"decoder {datamodule.decoder}, {args.num_workers} workers); "
          f"unreadable videos replaced: {datamodule.decode_failures.value}")
    return 0


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 8,16,32, got {text!r}") from None


def _positive_int(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _number(text, float)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _number(text: str, kind: type) -> int | float:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None


def _sbatch_option(text: str) -> tuple[str, str | bool]:
    """'account=myproj' -> ('account', 'myproj'), 'exclusive' -> ('exclusive', True): an sbatch option
    without its leading --."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not key or key.startswith("-") or (sep and not value):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE such as account=myproj, or KEY for a flag (no "
                                         f"leading --), got {text!r}")
    return key, value if sep else True


def _profile_task_kwargs(path: Path, config: dict, args: argparse.Namespace) -> tuple[type, dict]:
    """The config's task class and the constructor arguments to profile it with, without data or weights:
    `num_classes` from --num-classes (else the config's, else 400) and, for captioning, a word tokenizer of
    --vocab-size tokens stand in for what a DataModule would link."""
    import functools
    import importlib
    import inspect

    from lit_video.data.tokenizer import SPECIALS

    section = config.get("model") or {}
    init_args = dict(section.get("init_args") or {})
    if "model" not in init_args:
        raise LitVideoError(f"{path}: no model.init_args.model (a registry name or a class_path) to profile")
    module_name, _, class_name = section.get("class_path", "lit_video.tasks.classification.VideoClassifier").rpartition(".")
    try:
        task_class = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise LitVideoError(f"{path}: model.class_path {module_name}.{class_name} cannot be imported: {error}") from None
    # Weights do not change what a model costs; profiling must not need (or download) them.
    init_args["model_kwargs"] = {k: v for k, v in (init_args.get("model_kwargs") or {}).items()
                                 if k not in ("pretrained", "checkpoint")}
    spec = init_args["model"]
    if isinstance(spec, dict):  # {class_path, init_args}: a model class
        model_module, _, model_class = spec["class_path"].rpartition(".")
        init_args["model"] = functools.partial(getattr(importlib.import_module(model_module), model_class),
                                               **spec.get("init_args", {}))
    accepted = inspect.signature(task_class).parameters
    if "num_classes" in accepted:
        init_args["num_classes"] = args.num_classes or init_args.get("num_classes") or 400
    if "tokenizer" in accepted and not init_args.get("tokenizer"):
        words = [f"word{i}" for i in range(max(args.vocab_size - len(SPECIALS), 0))]
        init_args["tokenizer"] = {"type": "word", "vocabulary": [*SPECIALS, *words]}
    if "meteor" in accepted:
        init_args["meteor"] = False  # no evaluation here: no JVM to start
    return task_class, init_args


def _profile(args: argparse.Namespace) -> int:
    import csv

    import yaml

    from lit_video.sweep.profile import profile_model, profiled_network

    path = Path(args.config)
    if not path.is_file():
        raise LitVideoError(f"config file {path} does not exist")
    config = yaml.safe_load(path.read_text()) or {}
    data = (config.get("data") or {}).get("init_args") or {}
    task_class, init_args = _profile_task_kwargs(path, config, args)
    clip_lens = args.clip_lens or [int(data.get("clip_len", 8))]
    resolutions = args.resolutions or [data.get("resolution", 112)]
    rows = []
    header = f"{'clip':>5} {'res':>5} {'params(M)':>10} {'GFLOPs':>9} {'GMACs':>9} {'peak MB':>9} {'train clips/s':>14} {'infer clips/s':>14}"
    print(f"{path} on {args.device}; FLOPs count a multiply-add as 2 (GMACs = GFLOPs / 2), per clip, forward")
    print(header)
    for clip_len in clip_lens:
        for resolution in resolutions:
            task = task_class(**init_args, clip_len=clip_len, resolution=resolution)
            p = profile_model(profiled_network(task), clip_len, resolution, batch_size=args.batch_size,
                              steps=args.steps, device=args.device)
            rows.append(p)
            print(f"{clip_len:>5} {str(resolution):>5} {p.params / 1e6:>10.2f} {p.gflops:>9.2f} {p.gmacs:>9.2f} "
                  f"{p.peak_memory_mb:>9.0f} {p.train_clips_per_s:>14.2f} {p.infer_clips_per_s:>14.2f}")
    out = Path(args.out or f"outputs/profile/{path.stem}.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0].__dict__))
        writer.writeheader()
        writer.writerows(r.__dict__ for r in rows)
    print(f"wrote {out}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
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


def _report(args: argparse.Namespace) -> int:
    from lit_video.sweep.report import load_existing_study, write_report

    study = load_existing_study(args.storage, args.study_name)
    report = write_report(study, args.out or f"outputs/reports/{study.study_name}", storage=args.storage)
    print(report.summary, end="")
    print(f"\nreport: {report.out_dir}/index.html ({len(report.files)} files: trials.csv, plots as PNG and HTML)")
    return 0


def _dashboard(args: argparse.Namespace) -> int:
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


def _evaluate_vos(args: argparse.Namespace) -> int:
    from lit_video.metrics.davis import evaluate_folder, format_tables, write_csvs

    start = time.perf_counter()
    results = evaluate_folder(args.gt, args.pred, args.set, args.year, args.resolution, ignore_void=args.ignore_void,
                              official_decay_wrap=args.official_decay_wrap, progress=sys.stderr.isatty())
    global_csv, sequence_csv = write_csvs(results, args.out or args.pred, args.set)
    print(format_tables(results, args.set))
    print(f"\nwrote {global_csv} and {sequence_csv}")
    print(f"Total time: {time.perf_counter() - start:.1f} s")
    return 0


def _evaluate_vis(args: argparse.Namespace) -> int:
    from lit_video.metrics.ytvis import evaluate_results, format_table, write_metrics

    start = time.perf_counter()
    stats = evaluate_results(args.gt, args.pred)
    path = write_metrics(stats, args.out or Path(args.pred).parent)
    print(format_table(stats))
    print(f"\nwrote {path}")
    print(f"Total time: {time.perf_counter() - start:.1f} s")
    return 0


def _evaluate_captioning(args: argparse.Namespace) -> int:
    from lit_video.metrics.captions import evaluate_files, format_table, write_metrics

    start = time.perf_counter()
    stats = evaluate_files(args.gt, args.pred, args.split, meteor=not args.no_meteor)
    path = write_metrics(stats, args.out or Path(args.pred).parent)
    print(format_table(stats))
    print(f"\nwrote {path}")
    print(f"Total time: {time.perf_counter() - start:.1f} s")
    return 0


def _lightning(argv: list[str]) -> int:
    from jsonargparse import ArgumentError

    from lit_video.train_cli import run_cli

    try:
        run_cli(argv)
    except (ArgumentError, LitVideoError, ValueError) as err:
        # jsonargparse wraps both config mistakes and errors raised while building the config's classes
        # (e.g. a missing dataset root) in messages of many lines; say the one that matters.
        message = _explain_config_error(err)
        if message is None:
            raise  # not the user's input: keep the traceback
        print(f"lit-video: error: {message}", file=sys.stderr)
        return 2
    return 0


def _explain_config_error(err: BaseException) -> str | None:
    """One line for a config error: our own error if one caused it, else jsonargparse's reason."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, LitVideoError):
            return str(cause)
        cause = cause.__cause__ or cause.__context__
    from jsonargparse import ArgumentError

    from lit_video.train_cli import config_error_reason

    if not isinstance(err, ArgumentError):
        return None
    where, reason = config_error_reason(err)
    return f"{where}: {reason}" if where else reason


def build_parser() -> argparse.ArgumentParser:
    from lit_video.data.base import datamodule_names
    from lit_video.video.decode import BACKENDS

    formats = datamodule_names()
    decoders = ["auto", *BACKENDS]
    parser = argparse.ArgumentParser(prog="lit-video", description="Video understanding experiments with Lightning.")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="synthesize, check or iterate datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True)

    synth = data_commands.add_parser("synth", help="write a synthetic dataset in an official layout")
    synth.add_argument("--format", required=True, choices=formats)
    synth.add_argument("--out", required=True, help="output folder (the dataset root)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--num-classes", type=int, default=5, help="motion classes, 2..12")
    synth.add_argument("--videos-per-class", type=int, default=25,
                       help="videos of each class; VOS formats write num-classes x videos-per-class videos")
    synth.add_argument("--num-frames", type=int, default=48)
    synth.add_argument("--size", type=_size, default=(120, 160), help="HEIGHTxWIDTH, even numbers")
    synth.add_argument("--fps", type=float, default=25.0)
    synth.add_argument("--valid-every", type=int, default=None,
                       help="davis, youtube-vos, youtube-vis: hold out video index %% N == 1 (default 3; 0: none)")
    synth.add_argument("--category-colours", action="store_true",
                       help="youtube-vis: each category also has its own hue (default: the outline is the only cue)")
    synth.add_argument("--skip-existing", action="store_true", help="do nothing if --out already has files")
    synth.set_defaults(run=_data_synth)

    check = data_commands.add_parser("check", help="count found / missing / unreadable videos per subset")
    check.add_argument("--format", required=True, choices=formats)
    check.add_argument("--root", required=True)
    check.add_argument("--split", default=None, help="dataset-specific split (UCF101: 1-3; Kinetics: val/test)")
    check.add_argument("--decoder", default="auto", choices=decoders)
    check.add_argument("--strict", action="store_true", help="exit 1 when any video is missing or unreadable")
    check.set_defaults(run=_data_check)

    iterate = data_commands.add_parser("iterate", help="iterate one epoch of a DataLoader and print clips/s")
    iterate.add_argument("--format", required=True, choices=formats)
    iterate.add_argument("--root", required=True)
    iterate.add_argument("--subset", default="train", choices=["train", "val", "test"])
    iterate.add_argument("--clip-len", type=int, default=8)
    iterate.add_argument("--stride", type=int, default=2)
    iterate.add_argument("--resolution", type=int, default=112)
    iterate.add_argument("--batch-size", type=int, default=8)
    iterate.add_argument("--num-workers", type=int, default=2)
    iterate.add_argument("--decoder", default="auto", choices=decoders)
    iterate.set_defaults(run=_data_iterate)

    profile = commands.add_parser("profile", help="params, GFLOPs, memory and clips/s of an experiment's model")
    profile.add_argument("--config", required=True, help="an experiment YAML (model.init_args.model is profiled)")
    profile.add_argument("--clip-lens", type=_int_list, default=None, help="e.g. 8,16,32 (default: the config's)")
    profile.add_argument("--resolutions", type=_int_list, default=None, help="e.g. 112,224 (default: the config's)")
    profile.add_argument("--num-classes", type=int, default=None,
                         help="classes of a classification or VIS head (default: the config's, else 400)")
    profile.add_argument("--vocab-size", type=int, default=10000, help="captioning: tokens of the vocabulary")
    profile.add_argument("--batch-size", type=int, default=2, help="clips per timed step")
    profile.add_argument("--steps", type=int, default=3, help="timed steps per throughput figure")
    profile.add_argument("--device", default="cuda" if _cuda() else "cpu")
    profile.add_argument("--out", default=None, help="CSV path (default outputs/profile/<config>.csv)")
    profile.set_defaults(run=_profile)

    evaluate = commands.add_parser("evaluate", help="score predictions as the official evaluators do")
    evaluate_commands = evaluate.add_subparsers(dest="evaluate_command", required=True)
    vos = evaluate_commands.add_parser("vos", help="DAVIS J&F of a results folder (davis2017-evaluation, "
                                       "semi-supervised)")
    vos.add_argument("--gt", required=True, metavar="DAVIS_ROOT", help="holds Annotations/ and ImageSets/")
    vos.add_argument("--pred", required=True, metavar="RESULTS_DIR", help="<sequence>/<frame>.png indexed PNGs")
    vos.add_argument("--set", default="val", help="the ImageSets list to score (default val)")
    vos.add_argument("--year", type=int, default=2017, choices=[2016, 2017],
                     help="2016: every non-zero pixel is the one object")
    vos.add_argument("--resolution", default="480p", help="the Annotations subfolder")
    vos.add_argument("--out", default=None, help="folder for the two CSV files (default RESULTS_DIR)")
    vos.add_argument("--ignore-void", action="store_true", help="leave void (255) pixels out of both masks; the "
                     "official evaluation reads them as background")
    vos.add_argument("--official-decay-wrap", action="store_true", help="reproduce the official uint8 wrap of "
                     "the Decay bins for sequences over 256 frames")
    vos.set_defaults(run=_evaluate_vos)
    vis = evaluate_commands.add_parser("vis", help="YouTube-VIS AP/AR of a results JSON (the YouTube-VIS cocoapi's "
                                       "12 numbers)")
    vis.add_argument("--gt", required=True, metavar="ANN.json", help="YouTube-VIS annotations (videos, "
                     "annotations with per-frame segmentations, categories)")
    vis.add_argument("--pred", required=True, metavar="RESULTS.json", help="list of {video_id, category_id, "
                     "segmentations (RLE per frame or null), score}")
    vis.add_argument("--out", default=None, metavar="DIR", help="folder for ytvis_metrics.json, the 12 numbers "
                     "(default: the folder of RESULTS.json)")
    vis.set_defaults(run=_evaluate_vis)
    captioning = evaluate_commands.add_parser("captioning", help="BLEU-1..4, METEOR, ROUGE-L and CIDEr-D of a "
                                              "captions JSON (pycocoevalcap's COCOEvalCap)")
    captioning.add_argument("--gt", required=True, metavar="ANN.json", help="MSR-VTT *_videodatainfo.json "
                            "(sentences) or COCO caption annotations (annotations [{image_id, caption}])")
    captioning.add_argument("--pred", required=True, metavar="RESULTS.json", help="list of {image_id (or "
                            "video_id), caption}")
    captioning.add_argument("--split", default=None, help="MSR-VTT: score against this split's videos only "
                            "(train, validate, test)")
    captioning.add_argument("--no-meteor", action="store_true", help="skip METEOR (it starts a JVM, ~5 s)")
    captioning.add_argument("--out", default=None, metavar="DIR", help="folder for caption_metrics.json "
                            "(default: the folder of RESULTS.json)")
    captioning.set_defaults(run=_evaluate_captioning)

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
    slurm.add_argument("--time", type=_positive_int, default=None, metavar="MIN", help="time limit of each job in minutes "
                       "(default 60); a job at its limit is requeued and goes on")
    slurm.add_argument("--gpus-per-worker", type=_non_negative_int, default=None, metavar="N")
    slurm.add_argument("--cpus-per-worker", type=_positive_int, default=None, metavar="N")
    slurm.add_argument("--mem-gb", type=_positive_float, default=None, metavar="GB")
    slurm.add_argument("--sbatch", type=_sbatch_option, action="append", default=None, metavar="KEY=VALUE",
                       help="any other sbatch option, e.g. --sbatch account=myproj --sbatch qos=high (repeatable; KEY alone "
                       "for a flag)")
    slurm.add_argument("--submitit-folder", default=None, metavar="DIR",
                       help="submitit's jobs and logs (default <out_dir>/<study_name>/submitit)")
    sweep.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)  # set for the workers
    sweep.set_defaults(run=_sweep)

    report = commands.add_parser("report", help="CSV, plots (PNG + HTML) and a summary of a sweep's study")
    report.add_argument("--storage", required=True, help="the study's storage URL or journal file")
    report.add_argument("--study-name", default=None, help="needed when the storage holds several studies")
    report.add_argument("--out", default=None, help="output folder (default outputs/reports/<study name>)")
    report.set_defaults(run=_report)

    dashboard = commands.add_parser("dashboard", help="serve optuna-dashboard for a storage on 127.0.0.1")
    dashboard.add_argument("--storage", required=True, help="the study's storage URL or journal file")
    dashboard.add_argument("--port", type=int, default=8080)
    dashboard.add_argument("--host", default="127.0.0.1", help="keep 127.0.0.1 and reach it over an ssh tunnel")
    dashboard.set_defaults(run=_dashboard)
    return parser


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def main(argv: list[str] | None = None) -> int:
    _one_line_warnings()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("fit", "validate", "test", "predict"):
        return _lightning(argv)
    args = build_parser().parse_args(argv)
    if getattr(args, "split", None) is not None and args.split.isdigit():
        args.split = int(args.split)
    try:
        return args.run(args)
    except LitVideoError as err:
        from lit_video.sweep.storage import redact

        print(f"lit-video: error: {redact(str(err))}", file=sys.stderr)  # a storage URL's password never shows
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
