"""`lit-video data synth|check|iterate`: write, check and time datasets."""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

from lit_video.cli.arguments import DECODERS, format_names, size
from lit_video.errors import LitVideoError


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
    synth.add_argument("--skip-existing", action="store_true", help="do nothing if --out already has files")
    synth.set_defaults(run=synthesize)

    check = data_commands.add_parser("check", help="count found / missing / unreadable videos per subset")
    check.add_argument("--format", required=True, choices=formats)
    check.add_argument("--root", required=True)
    check.add_argument("--split", default=None, help="dataset-specific split (UCF101: 1-3; Kinetics: val/test)")
    check.add_argument("--decoder", default="auto", choices=DECODERS)
    check.add_argument("--strict", action="store_true", help="exit 1 when any video is missing or unreadable")
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
    iterate.add_argument("--decoder", default="auto", choices=DECODERS)
    iterate.set_defaults(run=iterate_dataset)


def synthesize(args: argparse.Namespace) -> int:
    """`data synth`: write a synthetic dataset of `--format` to `--out`."""
    from tqdm import tqdm

    from lit_video.data.synthetic import SynthesisOptionError
    from lit_video.data.synthetic import synthesize as write_dataset
    from lit_video.data.synthetic.spec import SynthSpec

    out = Path(args.out)
    if args.skip_existing and out.is_dir() and any(out.iterdir()):
        print(f"{out} exists; skipping synthesis (remove it or drop --skip-existing to regenerate)")
        return 0
    try:
        spec = SynthSpec(args.num_classes, args.videos_per_class, args.num_frames, args.size, args.fps, args.seed)
        spec.motions  # noqa: B018 - validates num_classes before anything is written
    except ValueError as err:
        raise LitVideoError(str(err)) from None
    # None leaves an option to the format's default; the generator refuses one it does not take
    options = {"valid_every": args.valid_every, "category_colours": args.category_colours or None}
    total = spec.num_classes * spec.videos_per_class
    bars: list[tqdm] = []  # opened at the first video, so that a refused option prints nothing else

    def progress() -> None:
        if not bars:
            bars.append(tqdm(total=total, desc=f"writing {args.format}", unit="video"))
        bars[0].update()

    try:
        write_dataset(args.format, out, spec, progress=progress, **options)
    except SynthesisOptionError as err:  # name the option as it is spelt on the command line
        flag = "--" + err.option.replace("_", "-")
        raise LitVideoError(f"{flag} applies to {', '.join(err.takers)}, not {err.format_name}") from None
    finally:
        for bar in bars:
            bar.close()
    motion_classes = args.format in ("ucf101", "kinetics")  # the other formats' videos have no class
    what = f"videos of {spec.num_classes} motion classes" if motion_classes else "videos"
    print(f"wrote a synthetic {args.format} dataset to {out} ({total} {what})")
    return 0


def check_dataset(args: argparse.Namespace) -> int:
    """`data check`: count the found, missing and unreadable videos of each subset."""
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


def iterate_dataset(args: argparse.Namespace) -> int:
    """`data iterate`: one epoch of a subset's DataLoader, timed."""
    from tqdm import tqdm

    from lit_video.data.base import datamodule_class

    datamodule = datamodule_class(args.format)(
        root=args.root, clip_len=args.clip_len, stride=args.stride, resolution=args.resolution,
        batch_size=args.batch_size, num_workers=args.num_workers, decoder=args.decoder,
    )
    loader = getattr(datamodule, f"{args.subset}_dataloader")()
    clips, shape = 0, None
    start = time.perf_counter()
    for batch in tqdm(loader, desc=f"{args.format} {args.subset}", unit="batch"):
        video = batch["video"]  # train (B, C, T, H, W); val/test (B, views, C, T, H, W)
        shape = tuple(video.shape)
        clips += video.shape[0] if args.subset == "train" else video.shape[0] * video.shape[1]
    seconds = time.perf_counter() - start
    print(f"{clips} clips in {seconds:.1f} s: {clips / seconds:.1f} clips/s (batch shape {shape}, "
          f"decoder {datamodule.decoder}, {args.num_workers} workers); "
          f"unreadable videos replaced: {datamodule.decode_failures.value}")
    return 0
