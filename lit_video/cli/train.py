"""`lit-video fit|validate|test|predict`: LightningCLI over an experiment config (`lit_video.training`).

argparse lists these commands and hands everything after the command's name to LightningCLI, which
parses it (`lit-video fit --help` prints LightningCLI's help); Lightning is imported only when one runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lit_video.errors import LitVideoError

SUBCOMMANDS = {
    "fit": "train a task on an experiment config (LightningCLI; fit --help lists its options)",
    "validate": "score a checkpoint on the validation set (LightningCLI)",
    "test": "score a checkpoint on the test set (LightningCLI)",
    "predict": "write a checkpoint's predictions (LightningCLI)",
}


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register the four LightningCLI commands on the top-level parser's `commands`; the arguments after
    the command's name are left unparsed for `run_lightning`."""
    for name, help_text in SUBCOMMANDS.items():
        command = commands.add_parser(name, help=help_text, add_help=False, prefix_chars="\0",
                                      usage=f"lit-video {name} --config experiments/X.yaml [--key value ...]")
        command.add_argument("lightning_args", nargs=argparse.REMAINDER)
        command.set_defaults(run=run_lightning)


def run_lightning(args: argparse.Namespace) -> int:
    """Run `args.command` through LightningCLI; a mistake in the config ends in one line, status 2."""
    from jsonargparse import ArgumentError

    from lit_video.training import run_cli

    check_config_files(args.lightning_args)
    try:
        run_cli([args.command, *args.lightning_args])
    except (ArgumentError, LitVideoError, ValueError) as err:
        message = explain_config_error(err)
        if message is None:
            raise  # not the user's input: keep the traceback
        print(f"lit-video: error: {message}", file=sys.stderr)
        return 2
    return 0


def check_config_files(lightning_args: list[str]) -> None:
    """Read every `--config FILE` first, so that a file that is not UTF-8, not YAML, repeats a key or
    expands past its bound through aliases is named in the error (jsonargparse only sees its text)."""
    from lit_video.yaml_files import load_yaml

    for index, arg in enumerate(lightning_args):
        if arg == "--config" and index + 1 < len(lightning_args):
            path = lightning_args[index + 1]
        elif arg.startswith("--config="):
            path = arg.partition("=")[2]
        else:
            continue
        if Path(path).is_file():  # a missing file is jsonargparse's to report
            load_yaml(path)


def explain_config_error(err: BaseException) -> str | None:
    """One line for a config error: our own error if one caused it, else jsonargparse's reason; None
    when `err` is neither (a bug, whose traceback should show).

    jsonargparse wraps both config mistakes and errors raised while building the config's classes (e.g.
    a missing dataset root) in messages of many lines; this says the one that matters.
    """
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, LitVideoError):
            return str(cause)
        cause = cause.__cause__ or cause.__context__
    from jsonargparse import ArgumentError

    from lit_video.training import config_error_reason

    if not isinstance(err, ArgumentError):
        return None
    where, reason = config_error_reason(err)
    return f"{where}: {reason}" if where else reason
