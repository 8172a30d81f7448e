"""YouTube-VIS segmentations and COCO run-length encoding (RLE), through pycocotools.

A YouTube-VIS annotation or result has one segmentation per frame, in one of four forms:
- compressed RLE `{"size": [H, W], "counts": "<string>"}`, the form of results.json and of pycocotools;
- uncompressed RLE `{"size": [H, W], "counts": [run lengths]}`, the form of the released train JSON;
- polygons `[[x0, y0, x1, y1, ...], ...]`, the parts of one mask;
- null where the instance is absent; any other empty value ([], {}) reads as null too, as the official
  evaluation's `if seg:` does.
Run lengths are column-major, alternating runs of 0s and 1s, the first (possibly empty) one of 0s.

Every conversion between these forms and masks goes through here: the YouTube-VIS DataModule, the
synthetic data writer, `predict` and `lit-video evaluate vis`. An invalid segmentation is a ValueError
with a one-line reason; callers add the file and key to it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils


def segmentation_to_rle(segmentation: Any, height: int, width: int) -> dict | None:
    """One frame's segmentation (any form) -> compressed RLE, or None where it is null / empty.

    Args:
        segmentation: compressed RLE (counts str or bytes), uncompressed RLE, polygons, or null.
        height, width: the video's frame size (polygons carry none; an RLE must have it).

    Raises:
        ValueError: not a segmentation, an RLE of another size, or runs that do not cover the frame.
    """
    if not segmentation:
        return None
    if isinstance(segmentation, list):  # polygons: one object may have several parts, merged as officially
        _check_polygons(segmentation)
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if not isinstance(segmentation, dict) or "counts" not in segmentation or "size" not in segmentation:
        raise ValueError(f"expected null, an RLE {{size, counts}} or a list of polygons, "
                         f"got {type(segmentation).__name__}")
    size = segmentation["size"]
    if not isinstance(size, list | tuple) or list(size) != [height, width]:
        raise ValueError(f'RLE "size" {size!r} is not the video\'s [height, width] [{height}, {width}]')
    counts = segmentation["counts"]
    if isinstance(counts, list):  # uncompressed
        _check_runs(_uncompressed_runs(counts), height, width)
        return mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    if isinstance(counts, str | bytes):
        _check_runs(_compressed_runs(counts), height, width)
        return {"size": [height, width], "counts": counts}
    raise ValueError(f'RLE "counts" must be a string or a list of run lengths, got {type(counts).__name__}')


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray | None:
    """One frame's segmentation (any form) -> bool (H,W), or None where it is null / empty.

    Raises:
        ValueError: as `segmentation_to_rle`.
    """
    rle = segmentation_to_rle(segmentation, height, width)
    return None if rle is None else _decode([rle])[..., 0].astype(bool)


def decode_tube(segmentations: Sequence, height: int, width: int) -> np.ndarray:
    """The `segmentations` of one instance (any per-frame form, null = empty) -> uint8 masks (T,H,W).

    Raises:
        ValueError: as `segmentation_to_rle`.
    """
    out = np.zeros((len(segmentations), height, width), np.uint8)  # (T,H,W)
    rles = [segmentation_to_rle(segmentation, height, width) for segmentation in segmentations]
    present = [t for t, rle in enumerate(rles) if rle is not None]
    if present:  # one pycocotools call for the whole tube
        out[present] = _decode([rles[t] for t in present]).transpose(2, 0, 1)  # (H,W,n) -> (n,H,W)
    return out


def encode_tube(masks: Any, null_empty: bool = False) -> list[dict | None]:
    """Binary masks of one instance -> its JSON-ready `segmentations` (compressed RLE with str counts).

    Args:
        masks: (T,H,W) masks, NumPy or torch (any device); non-zero = the instance.
        null_empty: write null for frames where the mask is empty (as the ground truth does where an instance
            is absent); results usually keep an empty RLE, which scores the same.
    """
    if hasattr(masks, "detach"):
        masks = masks.detach().cpu().numpy()
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"a tube is (T,H,W) masks, got shape {masks.shape}")
    masks = np.asfortranarray(masks.astype(np.uint8).transpose(1, 2, 0))  # (H,W,T), column-major
    rles = mask_utils.encode(masks)
    present = masks.any(axis=(0, 1))  # (T,)
    return [None if null_empty and not present[t] else {"size": rle["size"], "counts": rle["counts"].decode()}
            for t, rle in enumerate(rles)]


def uncompressed_rle(mask: np.ndarray) -> dict[str, list[int]]:
    """bool (H,W) -> `{"size": [H, W], "counts": [run lengths]}`, the RLE form of the released train JSON.

    pycocotools writes only the compressed (string) form, so the runs are counted here."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"a mask is (H,W), got shape {mask.shape}")
    flat = mask.ravel(order="F")  # (H*W,) column-major
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    if flat.size and flat[0]:  # the first run is of 0s, here empty
        counts = [0, *counts]
    return {"size": [int(s) for s in mask.shape], "counts": counts}


def _decode(rles: list[dict]) -> np.ndarray:
    """pycocotools' decode -> uint8 (H,W,n). Under NumPy 2 it warns (DeprecationWarning) about the `copy`
    keyword of its array conversion, once per call; the result is right, so the warning is dropped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rles)


def _check_polygons(polygons: list) -> None:
    """Polygons as pycocotools reads them unambiguously: it takes a first part of exactly 4 numbers for a
    box, and drops the last number of an odd-length part."""
    for i, polygon in enumerate(polygons):
        if not isinstance(polygon, list) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in polygon):
            raise ValueError(f"polygon {i}: expected a list of numbers [x0, y0, x1, y1, ...]")
        if len(polygon) < 6 or len(polygon) % 2 or not np.isfinite(polygon).all():
            raise ValueError(f"polygon {i}: expected at least 3 finite (x, y) points, got {len(polygon)} numbers")


def _uncompressed_runs(counts: list) -> np.ndarray:
    try:
        runs = np.asarray(counts)
    except ValueError:  # ragged nesting
        runs = np.asarray(None)
    if runs.ndim != 1 or (runs.size and runs.dtype.kind not in "iu"):
        raise ValueError('uncompressed RLE "counts" must be a flat list of integer run lengths')
    return runs.astype(np.int64, copy=False) if runs.size else np.zeros(0, np.int64)


def _compressed_runs(counts: str | bytes) -> np.ndarray:
    """The run lengths int64 (m,) of a compressed RLE string, read as pycocotools' `rleFrString` reads them.

    pycocotools has no check of its own: it decodes a string whose runs do not add up to the frame into
    garbage (and computes areas and IoUs from it), so the runs are read here to be checked. Each run is
    stored as 5-bit groups (least significant first) in the characters '0' + (0..63); bit 0x20 means "more
    groups follow" and bit 0x10 of the last group is the sign; from the 4th run on, the value stored is the
    difference to the run two places before."""
    try:
        data = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    except UnicodeEncodeError:
        data = b"\x00"  # reported below, as any other character out of range
    chars = np.frombuffer(data, np.uint8).astype(np.int64) - 48  # (n,)
    if chars.size == 0 or chars.min() < 0 or chars.max() > 63:
        raise ValueError("compressed RLE \"counts\" must be a non-empty string of the characters '0' to 'o'")
    more = (chars & 0x20) != 0  # (n,)
    if more[-1]:
        raise ValueError('compressed RLE "counts" ends inside a run length')
    ends = np.flatnonzero(~more)  # (m,) last character of each run
    starts = np.concatenate([[0], ends[:-1] + 1])  # (m,)
    groups = ends - starts + 1  # (m,) characters per run
    if groups.max() > 7:  # 35 bits: more than any difference of two 32-bit runs needs
        raise ValueError('compressed RLE "counts" holds a run length out of range')
    position = np.arange(chars.size) - np.repeat(starts, groups)  # (n,) group index within its run
    values = np.add.reduceat((chars & 0x1F) << (5 * position), starts)  # (m,)
    negative = (chars[ends] & 0x10) != 0
    values[negative] -= np.left_shift(1, 5 * groups[negative])  # sign extension
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])  # runs 1, 3, 5, ...: run 1 as is, then differences
    runs[2::2] = np.cumsum(values[2::2])  # runs 2, 4, ...: run 2 as is, then differences
    return runs


def _check_runs(runs: np.ndarray, height: int, width: int) -> None:
    """Run lengths must be non-negative and cover the frame exactly."""
    if runs.size and (runs.min() < 0 or runs.max() > height * width):
        raise ValueError(f"RLE run lengths must be between 0 and height*width = {height * width}")
    if int(runs.sum()) != height * width:
        raise ValueError(f"RLE run lengths add up to {int(runs.sum())}, not height*width = {height * width}")
