"""`lit-video data synth|check|iterate|prepare|flow`: write, check, time and prepare datasets, and compute their
optical flow."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import shutil
import tempfile
import time
import warnings
from pathlib import Path

from lit_video.cli.arguments import DECODERS, format_names, size
from lit_video.errors import LitVideoError
from lit_video.video.backends import BACKENDS, DEVICE_DECODERS

# Written last by `data synth` in the dataset root: the folder holds a complete dataset of this format.
SYNTH_MARKER = ".lit-video-synth.json"


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register `data` and its subcommands on the top-level parser's `commands`."""
    formats = format_names()
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
    synth.add_argument("--size", type=size, default=(120, 160), help="HEIGHTxWIDTH, even numbers")
    synth.add_argument("--fps", type=float, default=25.0)
    synth.add_argument("--valid-every", type=int, default=None,
                       help="davis, youtube-vos, youtube-vis: hold out video index %% N == 1 (default 3; 0: none)")
    synth.add_argument("--category-colours", action="store_true",
                       help="youtube-vis: each category also has its own hue (default: the outline is the only cue)")
    synth.add_argument("--colours", type=int, default=None,
                       help="ucf101, hmdb51, kinetics, ssv2: classes are motion x colour, every moving shape in its class's colour "
                            "(2..6 colours: num-classes x colours classes; default: motion classes alone)")
    synth.add_argument("--skip-existing", action="store_true",
                       help="do nothing if --out already holds a complete dataset of --format")
    synth.add_argument("--overwrite", action="store_true",
                       help="replace whatever --out holds (by default a folder that is not empty is refused)")
    synth.set_defaults(run=synthesize)

    check = data_commands.add_parser("check", help="count found / missing / unreadable videos per subset")
    check.add_argument("--format", required=True, choices=formats)
    check.add_argument("--root", required=True)
    check.add_argument("--split", default=None, help="dataset-specific split (UCF101, HMDB51: 1-3; Kinetics: val/test)")
    check.add_argument("--decoder", default="auto", choices=DECODERS)
    check.add_argument("--strict", action="store_true", help="exit 1 when any video is missing or unreadable")
    check.add_argument("--val-fraction", type=float, default=None,
                       help="count the subsets with this fraction of the training list held out for validation "
                            "(as data.init_args.val_fraction does)")
    check.add_argument("--split-seed", type=int, default=None, help="seed of the held-out draw (default 0)")
    check.set_defaults(run=check_dataset)

    iterate = data_commands.add_parser("iterate", help="iterate one epoch of a DataLoader and print clips/s")
    iterate.add_argument("--format", required=True, choices=formats)
    iterate.add_argument("--root", required=True)
    iterate.add_argument("--subset", default="train", choices=["train", "val", "test"])
    iterate.add_argument("--clip-len", type=int, default=8)
    iterate.add_argument("--stride", type=int, default=2)
    iterate.add_argument("--resolution", type=int, default=112)
    iterate.add_argument("--batch-size", type=int, default=8)
    iterate.add_argument("--num-workers", type=int, default=2)
    iterate.add_argument("--decoder", default="auto", choices=(*DECODERS, *DEVICE_DECODERS),
                         help="a worker backend, or torchcodec-cuda: decode each batch on the GPU")
    iterate.add_argument("--modality", default="rgb", help="rgb, flow or rgb+flow (flow from `data flow`)")
    iterate.add_argument("--flow-method", default="tvl1", help="the stored flow to read: tvl1, farneback or raft")
    iterate.add_argument("--storage", default="video",
                         help="video (default) or frames (the JPEG folders of `data prepare --frames`)")
    iterate.set_defaults(run=iterate_dataset)

    decoders = data_commands.add_parser("decoders", help="which video decoders work on this machine, GPU decoding "
                                                         "included (one line each; exit 1 when none does)")
    decoders.set_defaults(run=list_decoders)

    prepare = data_commands.add_parser(
        "prepare", help="make a dataset ready to train on: download it, check it, re-encode it for fast loading")
    prepare.add_argument("--format", required=True, choices=formats)
    prepare.add_argument("--root", required=True, help="the dataset root (never written to by --reencode)")
    prepare.add_argument("--download", action="store_true",
                         help="fetch the dataset's published files into --root first (resumable, checksum-verified, "
                              "extracted; formats behind an account or a form say what to fetch by hand)")
    prepare.add_argument("--annotations", default=None,
                         help="--download, davis: also fetch the 'unsupervised' annotations (Annotations_unsupervised)")
    prepare.add_argument("--reencode", action="store_true",
                         help="re-encode every listed video into --out: same layout, frame count and fps, a short "
                              "side and keyframe spacing that make clips cheap to decode")
    prepare.add_argument("--out", default=None, help="--reencode: the new root (empty, absent, or an earlier "
                                                     "--reencode of the same settings to resume)")
    prepare.add_argument("--short-side", default=None, help="--reencode: pixels of the shorter side (default 256)")
    prepare.add_argument("--keyframe-interval", default=None,
                         help="--reencode: frames from one keyframe to the next (default 16)")
    prepare.add_argument("--fps", default=None, help="--reencode: resample every video to this frame rate "
                                                     "(default: each keeps its own)")
    prepare.add_argument("--quality", default="normal", help="--reencode: normal (default) or high (near-lossless)")
    prepare.add_argument("--frames", action="store_true",
                         help="extract every listed video to JPEG frame folders under ROOT/frames (of --out with "
                              "--reencode), read with data.init_args.storage: frames")
    prepare.add_argument("--frame-quality", default=None, help="--frames: JPEG quality, 1-100 (default 90)")
    prepare.add_argument("--workers", default=None, help="processes working on videos in parallel (default 1)")
    prepare.set_defaults(run=prepare_dataset)

    flow = data_commands.add_parser(
        "flow", help="compute optical flow of every video once, stored as JPEGs under ROOT/flow/METHOD (resumable)")
    flow.add_argument("--format", required=True, choices=formats)
    flow.add_argument("--root", required=True)
    flow.add_argument("--method", default="tvl1", help="tvl1 (default), farneback or raft")
    flow.add_argument("--bound", default=None, help="pixels mapped to the ends of the 8-bit range (default 20)")
    flow.add_argument("--short-side", default=None, help="compute on frames resized to this short side (default: "
                                                         "full size)")
    flow.add_argument("--workers", default=None, help="processes computing videos in parallel (default 1)")
    flow.add_argument("--weights", default=None, help="raft: a local checkpoint (default: torchvision's file in the "
                                                      "torch hub cache; nothing is downloaded)")
    flow.add_argument("--subset", nargs="+", default=None, help="train, val and/or test (default: every subset "
                                                                 "the dataset lists)")
    flow.add_argument("--decoder", default="auto", choices=DECODERS)
    flow.set_defaults(run=compute_flow)


def synthesize(args: argparse.Namespace) -> int:
    """`data synth`: write a synthetic dataset of `--format` to `--out`."""
    from tqdm import tqdm

    from lit_video.data.synthetic import SynthesisOptionError, check_options, generator_options
    from lit_video.data.synthetic import synthesize as write_dataset
    from lit_video.data.synthetic.spec import SynthSpec, SynthSpecError, check_colours

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise LitVideoError(f"--out {out} is a file, not a folder")
    try:
        spec = SynthSpec(args.num_classes, args.videos_per_class, args.num_frames, args.size, args.fps, args.seed)
        spec.motions  # noqa: B018 - validates num_classes before anything is written
        if args.colours is not None and "colours" in generator_options(args.format):  # the others refuse it below
            check_colours(args.colours)
    except SynthSpecError as err:  # name the field as it is spelt on the command line
        raise LitVideoError(f"--{err.field.replace('_', '-')} {err.problem}") from None
    except ValueError as err:
        raise LitVideoError(str(err)) from None
    # None leaves an option to the format's default; the generator refuses one it does not take
    try:
        options = check_options(args.format, valid_every=args.valid_every,
                                category_colours=args.category_colours or None, colours=args.colours)
    except SynthesisOptionError as err:
        raise LitVideoError(_option_message(err)) from None
    occupied = out.is_dir() and any(out.iterdir())
    if occupied and args.skip_existing:
        if holds_dataset(out, args.format):
            print(f"{out} holds a {args.format} dataset; skipping synthesis (--overwrite without --skip-existing "
                  "regenerates it)")
            return 0
        if not args.overwrite:
            raise LitVideoError(f"--out {out} holds files but no complete {args.format} dataset, which is all that "
                                "--skip-existing keeps; give --overwrite to replace them")
    if occupied and not args.overwrite:
        raise LitVideoError(f"--out {out} is not empty; give a new or empty folder, --overwrite to replace what it "
                            "holds, or --skip-existing to keep a dataset already there")
    if occupied:
        check_replaceable(out)
    num_classes = len(spec.classes(options.get("colours")))
    total = num_classes * spec.videos_per_class
    bars: list[tqdm] = []  # opened at the first video, so that a refused option prints nothing else

    def progress() -> None:
        if not bars:
            bars.append(tqdm(total=total, desc=f"writing {args.format}", unit="video"))
        bars[0].update()

    # A folder being replaced is written beside it first: until the new dataset is complete, the old one
    # stays as it was (a refused format-specific size, an interrupted run or a full disk loses nothing).
    target = Path(tempfile.mkdtemp(prefix=f".{out.name}.synth-", dir=out.parent)) if occupied else out
    replacing = False  # once the old contents are being deleted, the staged copy is all there is: keep it
    try:
        write_dataset(args.format, target, spec, progress=progress, **options)
        marker = {"format": args.format, "spec": dataclasses.asdict(spec), **options}
        (target / SYNTH_MARKER).write_text(json.dumps(marker, indent=1) + "\n")
        if occupied:
            replacing = True
            replace_contents(out, target)
    except SynthesisOptionError as err:
        raise LitVideoError(_option_message(err)) from None
    except OSError as err:
        raise LitVideoError(f"--out {out}: cannot write the dataset ({err.strerror or err}: "
                            f"{err.filename or out})") from None
    finally:
        for bar in bars:
            bar.close()
        if occupied and not replacing and target.exists():
            shutil.rmtree(target)
    motion_classes = args.format in ("ucf101", "hmdb51", "kinetics", "ssv2")  # the other formats' videos have no class
    kind = "motion x colour" if options.get("colours") else "motion"
    what = f"videos of {num_classes} {kind} classes" if motion_classes else "videos"
    print(f"wrote a synthetic {args.format} dataset to {out} ({total} {what})")
    return 0


def _option_message(err) -> str:
    """A `SynthesisOptionError` with the option named as it is spelt on the command line."""
    return f"--{err.option.replace('_', '-')} applies to {', '.join(err.takers)}, not {err.format_name}"


def holds_dataset(folder: Path, format_name: str) -> bool:
    """Whether `folder` holds a complete dataset of `format_name`: one that `data synth` finished (its
    marker names the format) or, without a marker, one whose training list the format's reader reads."""
    marker = folder / SYNTH_MARKER
    if marker.is_file():
        try:
            return json.loads(marker.read_text(encoding="utf-8")).get("format") == format_name
        except (OSError, ValueError, AttributeError):
            return False
    from lit_video.data.base import datamodule_class

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return len(datamodule_class(format_name)(root=str(folder), num_workers=0).list_records("train")) > 0
    except LitVideoError:
        return False


def check_replaceable(folder: Path) -> None:
    """Refuse to empty a folder that is a link (its target would be emptied), the filesystem root, the home
    folder, or the current folder or one above it.

    Raises:
        LitVideoError: one line naming the folder.
    """
    if folder.is_symlink():
        raise LitVideoError(f"--out {folder} is a link; --overwrite replaces only a folder given as itself")
    real, here = folder.resolve(), Path.cwd().resolve()
    if real == Path(real.anchor) or real == Path.home().resolve() or real == here or real in here.parents:
        raise LitVideoError(f"--overwrite refuses to empty {folder}: it is the filesystem root, the home folder "
                            "or holds the current folder")


def replace_contents(folder: Path, staged: Path) -> None:
    """Delete what `folder` holds (links themselves, never what they point to), then move the contents of
    `staged` into it and remove `staged`. The folder itself stays (it may be a mount point)."""
    for entry in list(folder.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for entry in list(staged.iterdir()):
        shutil.move(str(entry), str(folder / entry.name))
    staged.rmdir()


def check_dataset(args: argparse.Namespace) -> int:
    """`data check`: count the found, missing and unreadable videos of each subset."""
    from lit_video.data.base import datamodule_class
    from lit_video.data.check import all_refused, check_datamodule, format_report

    cls = datamodule_class(args.format)
    if args.split is not None and "split" not in inspect.signature(cls.__init__).parameters:
        raise LitVideoError(f"--split: {args.format} has no split to choose (it applies to formats with official "
                            "splits, such as ucf101 and kinetics)")
    options = {"split": args.split} if args.split is not None else {}
    heldout = {key: value for key, value in (("val_fraction", args.val_fraction), ("split_seed", args.split_seed))
               if value is not None}
    if heldout and not cls.draws_heldout and "val_fraction" not in inspect.signature(cls.__init__).parameters:
        raise LitVideoError(f"--val-fraction / --split-seed: {args.format} validates on its own list, it holds out "
                            "no training videos")
    datamodule = cls(root=args.root, decoder=args.decoder, num_workers=0, **options, **heldout)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the report below lists what the warnings would
        reports = check_datamodule(_AsRead(datamodule))
    print(format_report(reports))
    print(f"validation reads: {datamodule.validation_source}")
    refused = all_refused(reports)
    if refused:  # a list that reaches outside the dataset is a broken (or hostile) list, not a missing video
        raise LitVideoError(f"{len(refused)} listed {'entry leads' if len(refused) == 1 else 'entries lead'} "
                            f"outside the dataset and {'was' if len(refused) == 1 else 'were'} not read (first: "
                            f"{refused[0]}); fix or remove {'it' if len(refused) == 1 else 'them'}")
    bad = sum(len(r.missing) + len(r.unreadable) for r in reports.values())
    return 1 if (bad and args.strict) else 0


class _AsRead:
    """A DataModule seen by `check_datamodule` through the videos each subset reads (`listed_records`: with
    a held-out validation split, train without the held-out videos and val = them), not the raw lists."""

    def __init__(self, datamodule):
        self.datamodule = datamodule

    def list_records(self, subset: str):
        return self.datamodule.listed_records(subset)

    def probe(self, record):
        return self.datamodule.probe(record)


def iterate_dataset(args: argparse.Namespace) -> int:
    """`data iterate`: one epoch of a subset's DataLoader, timed."""
    from tqdm import tqdm

    from lit_video.data.base import datamodule_class

    datamodule = datamodule_class(args.format)(
        root=args.root, clip_len=args.clip_len, stride=args.stride, resolution=args.resolution,
        batch_size=args.batch_size, num_workers=args.num_workers, decoder=args.decoder,
        modality=args.modality, flow_method=args.flow_method, **({"storage": args.storage} if args.storage != "video"
                                                                  else {}),
    )
    device = None
    if datamodule.device_decoder is not None:  # the batches are decoded on the GPU, as in a fit
        import torch
        from lightning.fabric.utilities.apply_func import move_data_to_device

        from lit_video.data.device_decode import check_device_decoder

        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        check_device_decoder(device)
    loader = getattr(datamodule, f"{args.subset}_dataloader")()
    clips, shape = 0, None
    start = time.perf_counter()
    for batch in tqdm(loader, desc=f"{args.format} {args.subset}", unit="batch"):
        if device is not None:
            batch = datamodule.decode_on(move_data_to_device(batch, device), device)
        video = batch["video"]  # train (B, C, T, H, W); val/test (B, views, C, T, H, W)
        shape = tuple(video.shape)
        clips += video.shape[0] if args.subset == "train" else video.shape[0] * video.shape[1]
    seconds = time.perf_counter() - start
    print(f"{clips} clips in {seconds:.1f} s: {clips / seconds:.1f} clips/s (batch shape {shape}, "
          f"{datamodule.decode_path}); "
          f"unreadable videos replaced: {datamodule.decode_failures.value}")
    return 0


def list_decoders(args: argparse.Namespace) -> int:
    """`data decoders`: each decoder, and whether it works here (the reason when it does not)."""
    from lit_video.data.device_decode import cuda_decode_problem
    from lit_video.video.decode import BackendUnavailableError, resolve_backend

    working = 0
    for name in BACKENDS:
        try:
            resolve_backend(name)
            line, working = f"{name}: available (decodes in the DataLoader workers)", working + 1
        except BackendUnavailableError as err:
            line = f"{name}: unavailable: {err}"
        print(line)
    for name in DEVICE_DECODERS:
        problem = cuda_decode_problem()
        if problem is None:
            working += 1
        print(f"{name}: " + ("available (decodes on the GPU)" if problem is None else
                             f"unavailable: {problem} (install with `make setup` on a GPU machine, or "
                             f"pip install -e \".[gpu]\"; see docs/gpu.md)"))
    return 0 if working else 1


def _number_option(name: str, text: str | None, kind: type, default: int | float | None) -> int | float | None:
    """The value of option `name` given as `text` (None: `default`); one line unless it is a positive number."""
    if text is None:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not value > 0 or (kind is float and value == float("inf")):
        wanted = "a positive integer" if kind is int else "a positive number"
        raise LitVideoError(f"{name} must be {wanted}, got {text!r}")
    return value


def prepare_dataset(args: argparse.Namespace) -> int:
    """`data prepare`: download a dataset, check it, re-encode it into a new root that is checked in turn, and
    extract its frames."""
    from tqdm import tqdm

    from lit_video.data.prepare import (
        ReencodeSettings,
        check_out,
        check_settings,
        check_video_format,
        reencode_dataset,
    )

    reencode_only = {"--out": args.out, "--short-side": args.short_side, "--keyframe-interval": args.keyframe_interval,
                     "--fps": args.fps}
    if not args.reencode:
        given = [name for name, value in reencode_only.items() if value is not None]
        if given or args.quality != "normal":
            raise LitVideoError(f"{(given or ['--quality'])[0]} applies to --reencode, which is not given")
    elif args.out is None:
        raise LitVideoError("--reencode writes a new root: give it with --out NEW_ROOT (the original is never "
                            "written to)")
    settings = None
    if args.reencode:
        settings = ReencodeSettings(short_side=_number_option("--short-side", args.short_side, int, 256),
                                    keyframe_interval=_number_option("--keyframe-interval", args.keyframe_interval,
                                                                     int, 16),
                                    fps=_number_option("--fps", args.fps, float, None), quality=args.quality)
        check_settings(settings)
        check_video_format(args.format)
        check_out(args.root, args.out, settings)
    if args.annotations is not None and (not args.download or args.format != "davis"
                                         or args.annotations != "unsupervised"):
        raise LitVideoError("--annotations: only 'unsupervised', with --download of davis (the DAVIS 2017 "
                            "unsupervised annotations)")
    if args.frame_quality is not None and not args.frames:
        raise LitVideoError("--frame-quality applies to --frames, which is not given")
    frame_quality = _number_option("--frame-quality", args.frame_quality, int, 90)
    workers = _number_option("--workers", args.workers, int, 1)
    if args.download:
        from lit_video.data.download import download_dataset

        for part in [args.format] + (["davis-unsupervised"] if args.annotations else []):
            summary = download_dataset(part, args.root, progress=print)
            print(f"{part}: {len(summary.fetched)} fetched, {len(summary.resumed)} resumed, "
                  f"{len(summary.skipped)} already done, {len(summary.extracted)} extracted")
            if summary.manual:
                print(f"still to fetch by hand: {summary.manual}")
    print(f"checking {args.format} {args.root}")
    status = check_dataset(_check_arguments(args.format, args.root))
    if settings is None:
        return max(status, _extract_frames(args.format, args.root, frame_quality, workers) if args.frames else 0)
    with tqdm(desc="re-encoding", unit="video") as bar:
        summary = reencode_dataset(args.format, args.root, args.out, settings, workers=workers,
                                   progress=lambda video, state: bar.update())
    print(f"re-encoded {args.format} {args.root} into {summary.out} (short side {settings.short_side}, a keyframe "
          f"every {settings.keyframe_interval} frames): {summary.encoded} encoded, {summary.skipped} skipped as "
          f"complete, {len(summary.failed)} failed; {summary.copied} other files copied")
    print(f"checking {args.format} {summary.out}")
    checked = check_dataset(_check_arguments(args.format, str(summary.out)))
    extracted = _extract_frames(args.format, str(summary.out), frame_quality, workers) if args.frames else 0
    return 1 if (status or checked or summary.failed or extracted) else 0


def _extract_frames(format_name: str, root: str, quality: int, workers: int) -> int:
    """`data prepare --frames`: the frame store of `root`; 1 when a video failed."""
    from tqdm import tqdm

    from lit_video.data.frames import extract_dataset_frames

    with tqdm(desc="extracting frames", unit="video") as bar:
        summary = extract_dataset_frames(format_name, root, quality=quality, workers=workers,
                                         progress=lambda video, state: bar.update())
    print(f"frames of {format_name} {root} in {summary.store}: {summary.computed} extracted, {summary.skipped} "
          f"skipped as complete, {len(summary.failed)} failed")
    return 1 if summary.failed else 0


def _check_arguments(format_name: str, root: str) -> argparse.Namespace:
    """The arguments of a strict `data check` of a whole dataset."""
    return argparse.Namespace(format=format_name, root=root, split=None, decoder="auto", strict=True,
                              val_fraction=None, split_seed=None)


def compute_flow(args: argparse.Namespace) -> int:
    """`data flow`: compute the optical flow of every video of a dataset once (resumable, in parallel)."""
    from tqdm import tqdm

    from lit_video.data.flow import compute_dataset_flow
    from lit_video.video.flow import DEFAULT_BOUND, check_method

    check_method(args.method)  # before the dataset is read
    bound = _number_option("--bound", args.bound, float, DEFAULT_BOUND)
    short_side = _number_option("--short-side", args.short_side, int, None)
    workers = _number_option("--workers", args.workers, int, 1)
    with tqdm(desc=f"{args.method} flow", unit="video") as bar:
        summary = compute_dataset_flow(args.format, args.root, args.method, bound=bound, short_side=short_side,
                                       workers=workers, weights=args.weights, subsets=args.subset,
                                       decoder=args.decoder, progress=lambda video, status: bar.update())
    print(f"{args.method} flow of {args.format} {args.root} ({', '.join(summary.subsets)}) in {summary.store}: "
          f"{summary.computed} computed, {summary.skipped} skipped as complete, {len(summary.failed)} failed")
    return 1 if summary.failed else 0
