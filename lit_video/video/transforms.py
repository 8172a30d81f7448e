"""Clip transforms: uint8 (T,H,W,C) frames -> normalized float (C,T,H,W), masks and flow transformed jointly.

Built on torchvision.transforms.v2, which applies one random draw to a `Video` and its `Mask`
together (nearest-neighbour resizing for the mask, no normalisation of it), so segmentation
datasets reuse the same transform with `masks=`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from lit_video.video.flow import mirror_frames, resize_flow

# The statistics torchvision's Kinetics-400 video weights were trained with.
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


def crop_size(resolution: int | Sequence[int]) -> tuple[int, int]:
    """`resolution` as (height, width): an int is a square crop."""
    if isinstance(resolution, int):
        return (resolution, resolution)
    height, width = (int(x) for x in resolution)
    return (height, width)


def resize_frames(frames: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """uint8 (T,H,W,C) -> uint8 (T,h,w,C), antialiased; a no-op at the same size."""
    if tuple(frames.shape[1:3]) == tuple(size):
        return frames
    return F.resize(frames.permute(0, 3, 1, 2), list(size), antialias=True).permute(0, 2, 3, 1)


class ClipTransform:
    """Short-side resize, crop, optional flip, then scale to [0, 1] and normalize.

    The crop box is chosen in the resized frame's coordinates but cut from the source frame first,
    so only the crop is resized (as RandomResizedCrop does): the same pixels up to resampling at the
    border, for a fraction of the work. Frames and masks share every random draw.

    Args:
        resolution: crop size, an int (square) or (height, width).
        train: random crop and flip when True; center (or multi-) crop when False.
        short_side: the frames' short side after resizing; default 8/7 of the crop (112 -> 128, 224 -> 256).
        short_side_range: training only: (min, max) short side drawn per clip (scale jitter).
        flip: horizontal flip with probability 0.5 during training.
        num_crops: evaluation crops per clip: 1 (center) or 3 (start, center, end of the long side).
        mean, std: per-channel normalization, on the [0, 1] scale.
        normalize: False returns uint8 clips (same layout) for `normalize_clips` to finish on the
            device: a quarter of the bytes between worker processes and to the GPU.
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
        normalize: bool = True,
    ):
        self.size = crop_size(resolution)
        self.normalize = normalize
        if num_crops not in (1, 3):
            raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
        self.train = train
        self.num_crops = 1 if train else num_crops
        self.short_side = short_side or round(min(self.size) * 8 / 7)
        self.short_side_range = tuple(short_side_range) if (short_side_range and train) else None
        self.flip = flip and train
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, frames: torch.Tensor | None, masks: torch.Tensor | None = None,
                 flow: torch.Tensor | None = None, views: torch.Tensor | None = None):
        """Transform one clip, or several clips of one video, on the device they are on.

        Args:
            frames: uint8 (T,H,W,C) for one clip, or (N,T,H,W,C) for N clips (evaluation views); None when
                only `flow` is delivered.
            masks: optional integer (T,H,W) or (N,T,H,W), transformed with the same random draws.
            flow: optional float (T,h,w,2) or (N,T,h,w,2) optical flow in pixels of its own grid (x right,
                y down), resized to the frames' grid (the masks' without frames) first, then cropped,
                resized and flipped with the frames: its vectors scaled by each resize and x negated by a
                flip, so they stay in pixels of the delivered clip. Never normalized.
            views: the random draws to apply, from `draw_views` (where the clip is decoded elsewhere than
                where its draws are made); None draws them here.

        Returns:
            one clip: float video (C,T,h,w), or (num_crops,C,T,h,w) when num_crops > 1;
            N clips: float (N*num_crops,C,T,h,w), crops of a clip adjacent.
            C is 3 (RGB), 2 (flow x, y) or 5 (RGB then flow). Without `normalize`, RGB-only video is uint8;
            with flow it is float, the RGB channels in [0, 255] for `normalize_clips` to finish.
            With masks given, a tuple (video, masks), masks int64 shaped like the video without C.
        """
        reference = frames if frames is not None else flow
        if reference is None:
            raise ValueError("ClipTransform needs frames, flow or both")
        single = reference.dim() == 4
        clips = None if frames is None else (frames[None] if single else frames)  # (N,T,H,W,C)
        clip_masks = None if masks is None else (masks[None] if single else masks)  # (N,T,H,W)
        clip_flow = None
        if flow is not None:
            clip_flow = (flow[None] if single else flow).float().permute(0, 1, 4, 2, 3)  # (N,T,2,h,w)
            grid = clips.shape[2:4] if clips is not None else (
                clip_masks.shape[-2:] if clip_masks is not None else clip_flow.shape[-2:])
            clip_flow = resize_flow(clip_flow, tuple(grid))  # (N,T,2,H,W) in source pixels
        num_clips, num_frames = reference.shape[:2] if not single else (1, reference.shape[0])
        height, width = (clips.shape[2:4] if clips is not None else clip_flow.shape[-2:])
        rgb_channels = 3 if clips is not None else 0
        channels = rgb_channels + (2 if clip_flow is not None else 0)
        # One output buffer: stacking per-crop tensors of a 224 clip costs more than computing them.
        dtype = torch.float32 if (self.normalize or clip_flow is not None) else torch.uint8
        device = reference.device
        out = torch.empty((num_clips * self.num_crops, channels, num_frames, *self.size), dtype=dtype, device=device)
        out_masks = None if masks is None else torch.empty((len(out), num_frames, *self.size), dtype=torch.int64,
                                                           device=device)
        views = self.draw_views(num_clips, height, width) if views is None else views
        if tuple(views.shape) != (len(out), 5):
            raise ValueError(f"views: expected ({len(out)}, 5) draws for {num_clips} clip(s) x {self.num_crops} "
                             f"crop(s), got {tuple(views.shape)}")
        draws = views.tolist()  # one copy to the host, where the boxes are used
        for n in range(num_clips):
            video = None if clips is None else tv_tensors.Video(clips[n].permute(0, 3, 1, 2))  # (T,C,H,W) view
            mask = None if clip_masks is None else tv_tensors.Mask(clip_masks[n])
            for k in range(self.num_crops):
                view = n * self.num_crops + k
                top, left, box_h, box_w, flipped = draws[view]
                box = (top, left, box_h, box_w)
                if video is not None:
                    crop = F.resize(F.crop(video, *box), list(self.size), antialias=True)  # (T,C,h,w) uint8
                    if flipped:
                        crop = F.horizontal_flip(crop)
                    out[view, :3].copy_(crop.as_subclass(torch.Tensor).permute(1, 0, 2, 3))  # (C,T,h,w)
                if clip_flow is not None:
                    out[view, rgb_channels:].copy_(self._flow_crop(clip_flow[n], box, flipped).permute(1, 0, 2, 3))
                if mask is not None:
                    out_masks[view] = self._mask_view(mask, box, flipped)
        if self.normalize and rgb_channels:
            normalize_clips(out[:, :3], self.mean, self.std, channel_dim=1)  # in place: `out` is float
        video_out = out[0] if single and self.num_crops == 1 else out
        if masks is None:
            return video_out
        return video_out, out_masks[0] if single and self.num_crops == 1 else out_masks

    def _mask_view(self, mask: torch.Tensor, box: tuple[int, int, int, int], flipped: bool) -> torch.Tensor:
        """(T,H,W) label map -> (T,h,w) of the view `box`, resized nearest-neighbour, mirrored when `flipped`."""
        crop = F.resize(F.crop(tv_tensors.Mask(mask), *box), list(self.size))  # a Mask resizes nearest
        return (F.horizontal_flip(crop) if flipped else crop).as_subclass(torch.Tensor)

    def crop_masks(self, masks: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        """The masks of one clip as `__call__` with these `views` would return them, without the frames: a worker
        chooses a crop that shows an object before anything is decoded.

        Args:
            masks: integer (T,H,W).
            views: (1,5) from `draw_views(1, H, W)`.

        Returns:
            int64 (T,h,w).
        """
        top, left, box_h, box_w, flipped = views.reshape(-1, 5)[0].tolist()
        return self._mask_view(masks, (top, left, box_h, box_w), bool(flipped)).long()

    def _flow_crop(self, flow: torch.Tensor, box: tuple[int, int, int, int], flipped: bool) -> torch.Tensor:
        """(T,2,H,W) source-pixel flow -> (T,2,h,w) flow of the crop `box`, resized (bilinear) to the crop
        size with its vectors scaled likewise, mirrored with x negated when `flipped`."""
        _, _, box_h, box_w = box
        crop = F.resize(F.crop(flow, *box), list(self.size), antialias=True)  # zeros (no motion) past the edge
        crop[:, 0] *= self.size[1] / box_w
        crop[:, 1] *= self.size[0] / box_h
        return mirror_frames(crop, "flow") if flipped else crop

    def draw_views(self, num_clips: int, height: int, width: int) -> torch.Tensor:
        """The random draws of `num_clips` clips of a (height, width) video: where each view is cut and whether
        it is flipped, so that a clip can be decoded and transformed elsewhere (on the GPU) with the draws
        made here (in a DataLoader worker, seeded as the other draws are).

        Returns:
            int64 (num_clips * num_crops, 5): top, left, height, width of each view's box in source pixels,
            then 1 when it is flipped; the crops of a clip adjacent.
        """
        views = []
        for _ in range(num_clips):
            short_side = self.short_side
            if self.short_side_range is not None:
                short_side = int(torch.randint(self.short_side_range[0], self.short_side_range[1] + 1, ()).item())
            flipped = self.flip and bool(torch.rand(()) < 0.5)
            views += [(*box, int(flipped)) for box in self._boxes(height, width, short_side)]
        return torch.tensor(views, dtype=torch.int64)

    def _boxes(self, height: int, width: int, short_side: int) -> list[tuple[int, int, int, int]]:
        """(top, left, height, width) of each crop in SOURCE pixels.

        A crop of `size` in a frame resized to `short_side` covers size / scale source pixels. When
        the resized frame would be smaller than the crop, the box extends past the frame and F.crop
        pads it with zeros, as a padded crop would."""
        scale = short_side / min(height, width)
        crop_h, crop_w = (max(1, round(s / scale)) for s in self.size)
        free_h, free_w = height - crop_h, width - crop_w
        if self.train:
            top = int(torch.randint(0, free_h + 1, ()).item()) if free_h > 0 else free_h // 2
            left = int(torch.randint(0, free_w + 1, ()).item()) if free_w > 0 else free_w // 2
            return [(top, left, crop_h, crop_w)]
        top, left = free_h // 2, free_w // 2
        if self.num_crops == 1:
            return [(top, left, crop_h, crop_w)]
        if width >= height:
            return [(top, x, crop_h, crop_w) for x in (0, left, free_w)]
        return [(y, left, crop_h, crop_w) for y in (0, top, free_h)]


def normalize_clips(video: torch.Tensor, mean: Sequence[float] = KINETICS_MEAN, std: Sequence[float] = KINETICS_STD,
                    channel_dim: int = -4) -> torch.Tensor:
    """uint8 or [0, 255] float clips -> normalized float, in place when `video` is float already.

    Args:
        video: (..., C, T, H, W) with C at `channel_dim`.
        mean, std: per-channel statistics on the [0, 1] scale.
        channel_dim: where C is.
    """
    if not video.is_floating_point():
        video = video.float()
    shape = [1] * video.dim()
    shape[channel_dim] = len(mean)
    # (x - 255 mean) / (255 std): one pass each, in place
    offset = torch.tensor(mean, dtype=video.dtype, device=video.device).mul_(255).view(shape)
    scale = torch.tensor(std, dtype=video.dtype, device=video.device).mul_(255).reciprocal_().view(shape)
    return video.sub_(offset).mul_(scale)


def rgb_as_255(video: torch.Tensor) -> torch.Tensor:
    """RGB clips (..., 3, T, H, W) -> float in [0, 255]: uint8 as is, normalized float un-normalized (the
    inverse of `normalize_clips` with the Kinetics statistics)."""
    if video.dtype == torch.uint8:
        return video.float()
    shape = [1] * video.dim()
    shape[-4] = 3
    mean = torch.tensor(KINETICS_MEAN, dtype=video.dtype, device=video.device).view(shape) * 255
    std = torch.tensor(KINETICS_STD, dtype=video.dtype, device=video.device).view(shape) * 255
    return video * std + mean
