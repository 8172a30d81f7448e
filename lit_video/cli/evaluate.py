"""`lit-video evaluate vos|vis|captioning`: score predictions as the official evaluators do.

These commands import neither torch nor Lightning: scoring a results folder starts in well under a
second.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lit_video.errors import LitVideoError


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register `evaluate` and its subcommands on the top-level parser's `commands`."""
    evaluate = commands.add_parser("evaluate", help="score predictions as the official evaluators do")
    evaluate_commands = evaluate.add_subparsers(dest="evaluate_command", required=True)
    vos = evaluate_commands.add_parser("vos", help="DAVIS J&F of a results folder (davis2017-evaluation, "
                                       "semi-supervised or unsupervised)")
    vos.add_argument("--gt", required=True, metavar="DAVIS_ROOT", help="holds Annotations/ (or "
                     "Annotations_unsupervised/) and ImageSets/")
    vos.add_argument("--pred", required=True, metavar="RESULTS_DIR", help="<sequence>/<frame>.png indexed PNGs")
    vos.add_argument("--set", default="val", help="the ImageSets list to score (default val)")
    vos.add_argument("--year", type=int, default=2017, choices=[2016, 2017],
                     help="2016: every non-zero pixel is the one object")
    vos.add_argument("--task", default="semi-supervised", choices=["semi-supervised", "unsupervised"],
                     help="unsupervised: DAVIS 2017 Annotations_unsupervised, every frame scored, each object "
                     "matched to one of at most 20 proposals (the result ids) by the Hungarian method")
    vos.add_argument("--resolution", default="480p", help="the Annotations subfolder")
    vos.add_argument("--out", default=None, help="folder for the two CSV files (default RESULTS_DIR)")
    vos.add_argument("--ignore-void", action="store_true", help="leave void (255) pixels out of both masks; the "
                     "official evaluation reads them as background")
    vos.add_argument("--official-decay-wrap", action="store_true", help="reproduce the official uint8 wrap of "
                     "the Decay bins for sequences over 256 frames")
    vos.set_defaults(run=evaluate_vos)

    vis = evaluate_commands.add_parser("vis", help="YouTube-VIS AP/AR of a results JSON (the YouTube-VIS cocoapi's "
                                       "12 numbers)")
    vis.add_argument("--gt", required=True, metavar="ANN.json", help="YouTube-VIS annotations (videos, "
                     "annotations with per-frame segmentations, categories)")
    vis.add_argument("--pred", required=True, metavar="RESULTS.json", help="list of {video_id, category_id, "
                     "segmentations (RLE per frame or null), score}")
    vis.add_argument("--out", default=None, metavar="DIR", help="folder for ytvis_metrics.json, the 12 numbers "
                     "(default: the folder of RESULTS.json)")
    vis.set_defaults(run=evaluate_vis)

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
    captioning.add_argument("--strict", action="store_true", help="fail when a video of the annotations (of "
                            "--split) has no prediction (default: warn and score the predicted ones)")
    captioning.set_defaults(run=evaluate_captioning)


def evaluate_vos(args: argparse.Namespace) -> int:
    """`evaluate vos`: DAVIS J&F of a results folder, printed and written as the official two CSVs."""
    from lit_video.metrics.davis_folder import evaluate_folder, format_tables, write_csvs

    start = time.perf_counter()
    out = _output_folder(args.out) if args.out else Path(args.pred)
    results = evaluate_folder(args.gt, args.pred, args.set, args.year, args.resolution, task=args.task,
                              ignore_void=args.ignore_void, official_decay_wrap=args.official_decay_wrap,
                              progress=sys.stderr.isatty())
    global_csv, sequence_csv = _written(lambda: write_csvs(results, out, args.set), out, args.out is not None)
    return _report(format_tables(results, args.set), f"{global_csv} and {sequence_csv}", start)


def evaluate_vis(args: argparse.Namespace) -> int:
    """`evaluate vis`: the YouTube-VIS AP/AR of a results JSON."""
    from lit_video.metrics.ytvis import evaluate_results, format_table, write_metrics

    start = time.perf_counter()
    out = _output_folder(args.out) if args.out else Path(args.pred).parent
    stats = evaluate_results(args.gt, args.pred)
    path = _written(lambda: write_metrics(stats, out), out, args.out is not None)
    return _report(format_table(stats), path, start)


def evaluate_captioning(args: argparse.Namespace) -> int:
    """`evaluate captioning`: COCO caption scores of a captions JSON."""
    from lit_video.metrics.captions import evaluate_files, format_table, write_metrics

    start = time.perf_counter()
    out = _output_folder(args.out) if args.out else Path(args.pred).parent
    stats = evaluate_files(args.gt, args.pred, args.split, meteor=not args.no_meteor, strict=args.strict)
    path = _written(lambda: write_metrics(stats, out), out, args.out is not None)
    return _report(format_table(stats), path, start)


def _output_folder(out: str) -> Path:
    """--out, checked before any scoring: a folder, or one can be made there.

    Raises:
        LitVideoError: `out`, or a folder above it, is a file.
    """
    out = Path(out)
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                what = "is a file" if folder == out else f"is inside {folder}, a file"
                raise LitVideoError(f"--out {out}: {what}; expected a folder for the results (made when missing)")
            break
    return out


def _written(write, out: Path, given: bool):
    """`write()`, with a folder or file that cannot be written as one line naming `out` (`given`: set by
    --out, else the default beside the predictions)."""
    try:
        return write()
    except OSError as err:
        name = f"--out {out}" if given else f"{out} (the default --out)"
        where = f" ({err.filename})" if err.filename and str(err.filename) != str(out) else ""
        raise LitVideoError(f"{name}: cannot write the results{where}: {err.strerror or err}") from None


def _report(table: str, written: object, start: float) -> int:
    """Print an evaluation's table, what it wrote and how long it took (since `start`, perf_counter)."""
    print(table)
    print(f"\nwrote {written}")
    print(f"Total time: {time.perf_counter() - start:.1f} s")
    return 0
