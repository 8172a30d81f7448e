"""The `lit-video` command, one module per command group.

    lit-video data synth   --format FORMAT --out DIR [--seed N] [--num-classes N] ...     (cli/data.py)
    lit-video data check   --format FORMAT --root DIR
    lit-video data iterate --format FORMAT --root DIR [--clip-len N] [--stride N] [--resolution N] ...
    lit-video data flow    --format FORMAT --root DIR [--method tvl1|farneback|raft] [--workers N] ...
    lit-video fit|validate|test|predict --config experiments/X.yaml [--key value ...]     (cli/train.py)
    lit-video profile --config experiments/X.yaml [--clip-lens 8,16] [--resolutions 112,224]   (cli/profile.py)
    lit-video evaluate vos --gt DAVIS_ROOT --pred RESULTS_DIR [--set val] [--year 2017] [--out DIR]
    lit-video evaluate vis --gt ANN.json --pred RESULTS.json [--out DIR]                  (cli/evaluate.py)
    lit-video evaluate captioning --gt ANN.json --pred RESULTS.json [--split SPLIT] [--out DIR]
    lit-video visualize vos|vis|captioning|classification --gt ... --pred ... --out DIR  (cli/visualize.py)
    lit-video sweep|report|dashboard ...                                                   (cli/sweep.py)

A mistake in the input (a wrong path, an unknown format, a malformed annotation file) ends the
command with a one-line message and a non-zero exit status, never a traceback. Building the parser
imports neither torch nor Lightning: each command imports what it uses when it runs.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from lit_video.cli import data, evaluate, profile, sweep, train, visualize
from lit_video.errors import LitVideoError

COMMAND_GROUPS = (data, train, profile, evaluate, visualize, sweep)  # in the order `--help` lists them


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; each sets `run`, the function that carries it out."""
    parser = argparse.ArgumentParser(prog="lit-video", description="Video understanding experiments with Lightning.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit status (2 for a mistake in the input, 130 for Ctrl-C)."""
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"
    argv = sys.argv[1:] if argv is None else list(argv)
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
