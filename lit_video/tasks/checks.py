"""Checks of a task's constructor arguments: each failure is one line naming `model.init_args.<name>`, so
that `fit --model.init_args.lr -1` and a Python caller get the same error."""

from __future__ import annotations

import math
from typing import Any

from lit_video.errors import LitVideoError


def check_number(name: str, value: Any, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False, high_open: bool = False, integer: bool = False,
                 optional: bool = False) -> None:
    """Raise LitVideoError naming `model.init_args.<name>` unless `value` is a finite number in the range.

    Args:
        name: the argument's name in the task's init_args.
        value: the given value.
        low, high: bounds (None: unbounded); inclusive unless `low_open` / `high_open`.
        integer: the value must be an integer.
        optional: None is accepted.
    """
    if value is None and optional:
        return
    kinds = (int,) if integer else (int, float)
    ok = isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if low_open else '>='} {low}")
        if high is not None:
            bounds.append(f"{'<' if high_open else '<='} {high}")
        wanted = f"{'an integer' if integer else 'a number'}{' ' + ' and '.join(bounds) if bounds else ''}"
        raise LitVideoError(f"model.init_args.{name} must be {wanted}{' or null' if optional else ''}, got {value!r}")


def check_clip_size(clip_len: Any, resolution: Any) -> None:
    """Raise LitVideoError unless clip_len is a positive integer and resolution a positive integer or
    [height, width] of positive integers (both are linked from the DataModule)."""
    check_number("clip_len", clip_len, 1, integer=True)
    sides = [resolution, resolution] if not isinstance(resolution, list | tuple) else list(resolution)
    if len(sides) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in sides):
        raise LitVideoError(f"model.init_args.resolution must be a positive integer or [height, width] of "
                            f"positive integers, got {resolution!r}")
