"""Clip transforms: uint8 (T,H,W,C) frames -> normalized float (C,T,H,W), masks transformed jointly.

Built on torchvision.transforms.v2, which applies one random draw to a `Video` and its `Mask`
together (nearest-neighbour resizing for the mask, no normalisation of it), so segmentation
datasets reuse the same transform with `masks=`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

# The statistics torchvision's Kinetics-400 video weights were trained with.
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


def crop_size(resolution: int | Sequence[int]) -> tuple[int, int]:
    """`resolution` as (height, width): an int is a square crop."""
    if isinstance(resolution, int):
        return (resolution, resolution)
    height, width = (int(x) for x in resolution)
    return (height, width)


class ClipTransform:
    """Short-side resize, crop, optional flip, then scale to [0, 1] and normalize.

    Args:
        resolution: crop size, an int (square) or (height, width).
        train: random crop and flip when True; center (or multi-) crop when False.
        short_side: the frames' short side after resizing; default 8/7 of the crop (112 -> 128, 224 -> 256).
        short_side_range: training only: (min, max) short side drawn per clip (scale jitter).
        flip: horizontal flip with probability 0.5 during training.
        num_crops: evaluation crops per clip: 1 (center) or 3 (start, center, end of the long side).
        mean, std: per-channel normalization, on the [0, 1] scale.
    """

    def __init__(
        self,
        resolution: int | Sequence[int],
        train: bool,
        short_side: int | None = None,
        short_side_range: tuple[int, int] | None = None,
        flip: bool = True,
        num_crops: int = 1,
        mean: Sequence[float] = KINETICS_MEAN,
        std: Sequence[float] = KINETICS_STD,
    ):
        self.size = crop_size(resolution)
        if num_crops not in (1, 3):
            raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
        self.train = train
        self.num_crops = 1 if train else num_crops
        self.short_side = short_side or round(min(self.size) * 8 / 7)
        if short_side_range is not None and train:
            low, high = short_side_range
            resize = v2.RandomShortestSize(min_size=list(range(int(low), int(high) + 1)), antialias=True)
        else:
            resize = v2.Resize(self.short_side, antialias=True)
        spatial = [resize]
        if train:
            spatial.append(v2.RandomCrop(self.size, pad_if_needed=True))
            if flip:
                spatial.append(v2.RandomHorizontalFlip(p=0.5))
        self.spatial = v2.Compose(spatial)
        self.mean = list(mean)
        self.std = list(std)

    def __call__(self, frames: torch.Tensor, masks: torch.Tensor | None = None):
        """Transform one clip.

        Args:
            frames: uint8 (T,H,W,C).
            masks: optional integer (T,H,W), transformed with the same random draw.

        Returns:
            float video (C,T,h,w), or (num_crops,C,T,h,w) when num_crops > 1; with masks given, a tuple
            (video, masks) with masks int64 (T,h,w) or (num_crops,T,h,w).
        """
        video = tv_tensors.Video(frames.permute(0, 3, 1, 2))  # (T,C,H,W)
        if masks is not None:
            video, masks = self.spatial(video, tv_tensors.Mask(masks))
        else:
            video = self.spatial(video)
        if self.train:
            crops = [(video, masks)]
        else:
            crops = [(F.crop(video, *box), None if masks is None else F.crop(masks, *box))
                     for box in self._eval_boxes(video.shape[-2:])]
        videos = [self._to_float(v) for v, _ in crops]  # each (C,T,h,w)
        video_out = videos[0] if self.num_crops == 1 else torch.stack(videos)
        if masks is None:
            return video_out
        mask_list = [m.as_subclass(torch.Tensor).long() for _, m in crops]
        return video_out, mask_list[0] if self.num_crops == 1 else torch.stack(mask_list)

    def _eval_boxes(self, hw: Sequence[int]) -> list[tuple[int, int, int, int]]:
        """(top, left, height, width) of each evaluation crop, spread along the long side."""
        height, width = int(hw[0]), int(hw[1])
        crop_h, crop_w = self.size
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        if self.num_crops == 1:
            return [(top, left, crop_h, crop_w)]
        if width >= height:
            return [(top, x, crop_h, crop_w) for x in (0, left, width - crop_w)]
        return [(y, left, crop_h, crop_w) for y in (0, top, height - crop_h)]

    def _to_float(self, video: torch.Tensor) -> torch.Tensor:
        video = F.to_dtype(video.as_subclass(torch.Tensor), torch.float32, scale=True)  # (T,C,h,w)
        video = F.normalize(video, self.mean, self.std)
        return video.permute(1, 0, 2, 3).contiguous()  # (C,T,h,w)
