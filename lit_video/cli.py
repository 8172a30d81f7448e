"""The `lit-video` command.

    lit-video data synth   --format FORMAT --out DIR [--seed N] [--num-classes N] ...
    lit-video data check   --format FORMAT --root DIR
    lit-video data iterate --format FORMAT --root DIR [--clip-len N] [--stride N] [--resolution N] ...

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


def _data_synth(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from lit_video.data.base import datamodule_class
    from lit_video.data.synthetic import SynthSpec

    cls = datamodule_class(args.format)
    out = Path(args.out)
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
        cls.synthesize(out, spec, progress=lambda: bar.update())
    print(f"wrote a synthetic {args.format} dataset to {out} ({spec.num_classes} motion classes)")
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
    synth.add_argument("--videos-per-class", type=int, default=25)
    synth.add_argument("--num-frames", type=int, default=48)
    synth.add_argument("--size", type=_size, default=(120, 160), help="HEIGHTxWIDTH, even numbers")
    synth.add_argument("--fps", type=float, default=25.0)
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
    return parser


def main(argv: list[str] | None = None) -> int:
    _one_line_warnings()
    args = build_parser().parse_args(argv)
    if getattr(args, "split", None) is not None and args.split.isdigit():
        args.split = int(args.split)
    try:
        return args.run(args)
    except LitVideoError as err:
        print(f"lit-video: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
