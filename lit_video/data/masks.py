"""Palette PNG masks as DAVIS and YouTube-VOS ship them and expect them back.

A mask is an indexed PNG whose pixel value is an object id (0 = background, 255 = void in DAVIS);
the palette only colours them. Every reader and writer of masks in the project goes through here:
the VOS DataModules, the synthetic data writer, `predict` and `lit-video evaluate vos`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from lit_video.errors import LitVideoError

VOID = 255  # DAVIS: pixels that no metric counts (object borders in the 2017 annotations)


def voc_palette(num_colours: int = 256) -> list[int]:
    """The PASCAL VOC colour map, the palette of the DAVIS and YouTube-VOS annotations: flat
    [r0, g0, b0, r1, ...] for `num_colours` ids (bits of the id spread over the three channels)."""
    return list(_voc_palette(num_colours))


@functools.cache  # every mask written asks for it; building it bit by bit costs as much as the PNG
def _voc_palette(num_colours: int) -> tuple[int, ...]:
    palette = []
    for index in range(num_colours):
        red = green = blue = 0
        value = index
        for shift in range(7, -1, -1):
            red |= (value & 1) << shift
            green |= ((value >> 1) & 1) << shift
            blue |= ((value >> 2) & 1) << shift
            value >>= 3
        palette += [red, green, blue]
    return tuple(palette)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Object ids of an annotation PNG -> uint8 (H,W).

    Raises:
        LitVideoError: naming the file, when it cannot be read or is not an indexed / grey PNG.
    """
    try:
        with Image.open(path) as image:
            if image.mode not in ("P", "L"):
                raise LitVideoError(f"{path}: a mask must be an indexed (palette) or grey PNG, not {image.mode}")
            return np.asarray(image, dtype=np.uint8).copy()
    except LitVideoError:
        raise
    except (OSError, ValueError) as err:
        raise LitVideoError(f"{path}: cannot read mask: {err}") from None


def read_palette(path: str | os.PathLike) -> list[int] | None:
    """The flat RGB palette of an indexed PNG, or None for a grey one."""
    with Image.open(path) as image:
        palette = image.getpalette()
    return list(palette) if palette else None


def write_mask(path: str | os.PathLike, mask: np.ndarray, palette: Sequence[int] | None = None) -> None:
    """Write object ids uint8 (H,W) as an indexed PNG with `palette` (default: the VOC palette)."""
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"{path}: a mask is (H,W), got shape {array.shape}")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(f"{path}: object ids must be 0..255")
    height, width = array.shape
    image = Image.frombytes("P", (width, height), np.ascontiguousarray(array, dtype=np.uint8).tobytes())
    image.putpalette(list(palette) if palette is not None else voc_palette())
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    image.save(path)
