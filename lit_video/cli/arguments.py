"""Argument types and choices shared by the command groups, found without importing torch or Lightning."""

from __future__ import annotations

import argparse
import pkgutil
import sys

from lit_video.video.backends import BACKENDS, DEFAULT_BACKEND

DECODERS = (DEFAULT_BACKEND, *BACKENDS)


def format_names() -> list[str]:
    """The dataset formats `--format` accepts: those of `package_format_names`, plus any format
    registered in this process or by an installed plugin (`lit_video.plugins` entry points)."""
    from importlib.metadata import entry_points

    from lit_video.plugins import GROUP

    names = set(package_format_names())
    # Asking the registry imports the readers (and Lightning): only when it is loaded already or a
    # plugin's formats cannot be known otherwise.
    if "lit_video.data.base" in sys.modules or entry_points(group=GROUP):
        from lit_video.data.base import datamodule_names

        names.update(datamodule_names())
    return sorted(names)


def package_format_names() -> list[str]:
    """One format per module of `lit_video.data.formats` (module `youtube_vos` registers "youtube-vos"),
    read from the package folder so that `--help` does not import the readers (and Lightning with them)."""
    from lit_video.data import formats

    return sorted(module.name.replace("_", "-") for module in pkgutil.iter_modules(formats.__path__))


def size(text: str) -> tuple[int, int]:
    """'120x160' (height x width) -> (120, 160)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 120x160, got {text!r}") from None
    if height % 2 or width % 2:
        raise argparse.ArgumentTypeError(f"height and width must be even (4:2:0 video), got {text!r}")
    return height, width


def int_list(text: str) -> list[int]:
    """'8,16,32' -> [8, 16, 32]."""
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 8,16,32, got {text!r}") from None


def positive_int(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _number(text: str, kind: type) -> int | float:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None


def sbatch_option(text: str) -> tuple[str, str | bool]:
    """'account=myproj' -> ('account', 'myproj'), 'exclusive' -> ('exclusive', True): an sbatch option
    without its leading --."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not key or key.startswith("-") or (sep and not value):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE such as account=myproj, or KEY for a flag (no "
                                         f"leading --), got {text!r}")
    return key, value if sep else True
