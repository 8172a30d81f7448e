"""MaskTrack-style mask propagation (Perazzi et al. 2017): each object is segmented from the frame and its
previous soft mask, stacked as a fourth input channel, by an encoder-decoder with skip connections.

The whole "memory" is the latest memorized masks: a baseline with no long-range recall, against which
the space-time memory network's gain is measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lit_video.models.registry import register_model
from lit_video.models.vos_base import (
    FeatureEncoder,
    SkipDecoder,
    VOSModel,
    check_masks,
    pad_to_multiple,
    per_object,
)

STRIDE = 16  # of the encoder: frames are padded to a multiple of it


@dataclass
class MaskTrackMemory:
    """Per-video state of a `MaskTrack`: the latest memorized masks (B,K,H,W), None before the first."""

    masks: torch.Tensor | None = None

    @property
    def num_objects(self) -> int:
        return 0 if self.masks is None else self.masks.shape[1]


@register_model("masktrack", task="vos", tiny=dict(width=8, blocks=1, decoder_dim=16))
class MaskTrack(VOSModel):
    """Frame + previous mask -> mask, one object at a time.

    Args:
        backbone: "small" (GroupNorm ResNet of `width` / `blocks`) or "resnet18" (torchvision's layers).
        width: channels at stride 4 of the small backbone (x2 at stride 8, x4 at stride 16).
        blocks: residual blocks per stage of the small backbone.
        pretrained: resnet18 only: ImageNet weights from the torch hub cache (never downloads); the mask
            channel's filters start at zero.
        decoder_dim: channels of the decoder at stride 16 (halved at 8 and at 4).
    """

    def __init__(self, backbone: str = "small", width: int = 32, blocks: int = 2, pretrained: bool = False,
                 decoder_dim: int = 64):
        super().__init__()
        self.encoder = FeatureEncoder(4, backbone, width, blocks, pretrained)  # RGB + previous mask
        self.decoder = SkipDecoder(self.encoder.channels[-1], self.encoder.channels[:-1], decoder_dim)

    def new_memory(self) -> MaskTrackMemory:
        return MaskTrackMemory()

    def segment(self, frame: torch.Tensor, memory: MaskTrackMemory) -> torch.Tensor:
        """frame (B,3,H,W) -> per-object foreground logits (B,K,H,W) for the K objects in `memory`."""
        if memory.masks is None:
            raise ValueError("segment needs a memorized frame first (memorize the first frame and its masks)")
        if memory.masks.shape[0] != frame.shape[0] or memory.masks.shape[2:] != frame.shape[2:]:
            raise ValueError(f"frame {tuple(frame.shape)} does not match the memorized masks "
                             f"{tuple(memory.masks.shape)}")
        height, width = frame.shape[-2:]
        batch, num_objects = memory.masks.shape[:2]
        x = pad_to_multiple(frame, STRIDE)  # (B,3,Hp,Wp)
        previous = pad_to_multiple(memory.masks.to(x.dtype), STRIDE)  # (B,K,Hp,Wp)
        inputs = torch.cat([per_object(x, num_objects), previous.flatten(0, 1).unsqueeze(1)], dim=1)
        # inputs: (B*K,4,Hp,Wp), the frame once per object with that object's previous mask
        *skips, f16 = self.encoder(inputs)  # strides 4, 8 | 16
        logits = self.decoder(f16, tuple(skips), x.shape[-2:])  # (B*K,1,Hp,Wp)
        return logits.view(batch, num_objects, *x.shape[-2:])[..., :height, :width]  # (B,K,H,W)

    def memorize(self, frame: torch.Tensor, masks: torch.Tensor, memory: MaskTrackMemory) -> None:
        """Keep `masks` (B,K,H,W) as the previous masks of the next frame; new objects join with theirs."""
        check_masks(frame, masks, memory.num_objects)
        memory.masks = masks
