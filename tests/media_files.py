"""Reading back the media files the tests make: videos decoded with PyAV, images with Pillow, both as RGB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def read_video(path: Path) -> np.ndarray:
    """Every frame of a video file -> uint8 (T,H,W,3) RGB."""
    import av

    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def read_image(path: Path) -> np.ndarray:
    """An image file -> uint8 (H,W,3) RGB."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))
