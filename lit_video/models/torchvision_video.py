"""torchvision's video classifiers (R3D, MC3, R(2+1)D, S3D, MViTv2-S, Video Swin-T) with Kinetics-400 weights.

Each wrapper adopts the torchvision model's submodules under their own names, so its state_dict has
torchvision's keys: torchvision's weight files load as-is and our checkpoints load back into torchvision.
Built with `num_classes=400` and default arguments, each model runs torchvision's exact layers (the FLOP
counts equal `weights.meta["_ops"]`); only the head size, S3D's final pooling (adaptive instead of a fixed
2x7x7 window) and one S3D max-pool's rounding (ceil, a no-op at 16x224x224) differ, so that short clips
and small frames work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import WeightsEnum
from torchvision.models import video as tv

from lit_video.errors import LitVideoError
from lit_video.models.registry import register_model
from lit_video.models.weights import load_cached_weights, load_weights, read_state_dict, strip_prefix

# name -> (torchvision builder, Kinetics-400 weights)
_ARCHS: dict[str, tuple[Callable[..., nn.Module], WeightsEnum]] = {
    "r3d_18": (tv.r3d_18, tv.R3D_18_Weights.KINETICS400_V1),
    "mc3_18": (tv.mc3_18, tv.MC3_18_Weights.KINETICS400_V1),
    "r2plus1d_18": (tv.r2plus1d_18, tv.R2Plus1D_18_Weights.KINETICS400_V1),
    "s3d": (tv.s3d, tv.S3D_Weights.KINETICS400_V1),
    "mvit_v2_s": (tv.mvit_v2_s, tv.MViT_V2_S_Weights.KINETICS400_V1),
    "swin3d_t": (tv.swin3d_t, tv.Swin3D_T_Weights.KINETICS400_V1),
}


class TorchvisionVideo(nn.Module):
    """Base wrapper: builds torchvision architecture `arch`, adopts its submodules, loads weights.

    Args:
        num_classes: number of output logits (the head is built at this size; pretrained heads of
            another size are skipped, the backbone is kept).
        arch: a key of `_ARCHS`.
        pretrained: load torchvision's Kinetics-400 weights from the torch hub cache (never downloads).
        checkpoint: a local state_dict (or Lightning checkpoint) file to load instead.
        **arch_kwargs: passed to the torchvision builder.
    """

    head_prefixes: tuple[str, ...] = ()

    def __init__(
        self, num_classes: int, arch: str, pretrained: bool = False, checkpoint: str | None = None, **arch_kwargs
    ):
        super().__init__()
        builder, weights = _ARCHS[arch]
        self.arch = arch
        net = builder(weights=None, num_classes=num_classes, **arch_kwargs)
        assert not list(net.parameters(recurse=False)) and not list(net.buffers(recurse=False))
        for name, child in net.named_children():
            self.add_module(name, child)
        self.adapt_modules()
        if pretrained and checkpoint:
            raise LitVideoError(f"{arch}: pass either pretrained=True or checkpoint=, not both")
        if pretrained:
            state_dict, source = load_cached_weights(weights), str(weights)
        elif checkpoint:
            state_dict, source = read_state_dict(checkpoint), str(checkpoint)
        else:
            return
        state_dict = self.adapt_state_dict(strip_prefix(state_dict, self))
        load_weights(self, state_dict, source=source, head_prefixes=self.head_prefixes)

    def adapt_modules(self) -> None:
        """Changes to torchvision's modules that make any clip length / resolution work."""

    def adapt_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Fit loaded weights to this model's shapes (beyond the head)."""
        return state_dict

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class VideoResNetClassifier(TorchvisionVideo):
    """R3D-18, MC3-18 and R(2+1)D-18 (Tran et al., CVPR 2018)."""

    head_prefixes = ("fc.",)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, 512)."""
        x = self.stem(x)  # (B, 64, T, H/2, W/2)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 512, T/8, H/16, W/16)
        return self.avgpool(x).flatten(1)

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        return self.fc(feats)


class S3DClassifier(TorchvisionVideo):
    """S3D (Xie et al., ECCV 2018)."""

    head_prefixes = ("classifier.",)

    def adapt_modules(self) -> None:
        # torchvision pools the final (2, 7, 7) map with a fixed window, which fails on anything smaller than
        # 16x224x224 and ignores the rest of longer clips; an adaptive average is the same at 16x224x224.
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        # The unpadded 2x2x2 max-pool before the last stage fails on a length-1 map (clips of 4 frames):
        # rounding up keeps one output. Maps at 16x224x224 have even sizes, so nothing changes there.
        for module in self.features:
            if isinstance(module, nn.MaxPool3d) and module.padding in (0, (0, 0, 0)):
                module.ceil_mode = True

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, 1024)."""
        x = self.features(x)  # (B, 1024, T/8, H/32, W/32)
        return self.avgpool(x).flatten(1)

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        # torchvision's classifier is a 1x1x1 Conv3d (kept, so its weights load): give it a 1x1x1 map.
        return self.classifier(feats[:, :, None, None, None]).flatten(1)


class MViTClassifier(TorchvisionVideo):
    """MViTv2-S (Li et al., CVPR 2022).

    torchvision fixes the token grid at construction (`temporal_size`, `spatial_size`) and sizes the
    relative-position tables for it. Here the grid is read from each input instead, and torchvision's
    attention interpolates the tables when q/k grids differ from them, so any input size runs; the model is
    exactly torchvision's at the size it was built for. Loaded tables of another size are interpolated the
    same way.
    """

    head_prefixes = ("head.",)

    def __init__(
        self,
        num_classes: int,
        arch: str = "mvit_v2_s",
        pretrained: bool = False,
        checkpoint: str | None = None,
        clip_len: int = 16,
        resolution: int | Sequence[int] = 224,
    ):
        # torchvision's `mvit_v2_s` hard-codes temporal_size=16, spatial_size=224 (passing them raises), so
        # the model is built at that grid and `adapt_modules` resizes the tables for the requested one.
        height, width = (resolution, resolution) if isinstance(resolution, int) else resolution
        self.native_size = (clip_len, height, width)
        super().__init__(num_classes, arch, pretrained=pretrained, checkpoint=checkpoint)

    def adapt_modules(self) -> None:
        # torchvision's head dropout is in-place; forward_head must not overwrite the caller's features.
        self.head[0].inplace = False
        # Size the relative-position tables exactly as torchvision's MViT(temporal_size=clip_len,
        # spatial_size=(resolution, resolution)) would, with torchvision's initialisation.
        grid = [size // stride for size, stride in zip(self.native_size, self.conv_proj.stride)]
        self.pos_encoding.temporal_size, self.pos_encoding.spatial_size = grid[0], (grid[1], grid[2])
        for block in self.blocks:
            attn = block.attn
            stride_q = attn.pool_q.pool.stride if attn.pool_q is not None else (1, 1, 1)
            stride_kv = attn.pool_k.pool.stride if attn.pool_k is not None else (1, 1, 1)
            if attn.rel_pos_h is not None:
                size = max(grid[1:])
                spatial_dim = 2 * max(size // stride_q[1], size // stride_kv[1]) - 1
                for name, dim in (("rel_pos_h", spatial_dim), ("rel_pos_w", spatial_dim), ("rel_pos_t", 2 * grid[0] - 1)):
                    old = getattr(attn, name)
                    if old.shape[0] != dim:
                        setattr(attn, name, nn.Parameter(nn.init.trunc_normal_(old.new_empty(dim, old.shape[1]), std=0.02)))
            grid = [size // stride for size, stride in zip(grid, stride_q)]

    def adapt_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        own = self.state_dict()
        out = dict(state_dict)
        for key, value in state_dict.items():
            if key.rsplit(".", 1)[-1] in ("rel_pos_h", "rel_pos_w", "rel_pos_t") and key in own:
                size = own[key].shape[0]
                if value.shape[0] != size:  # (2 * grid - 1, head_dim) -> linear over the first dim
                    out[key] = F.interpolate(value.T[None], size=size, mode="linear")[0].T.contiguous()
        return out

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> class token (B, 768)."""
        x = self.conv_proj(x)  # (B, 96, T/2, H/4, W/4)
        thw = tuple(x.shape[2:])
        x = self.pos_encoding(x.flatten(2).transpose(1, 2))  # (B, 1 + T*H*W/32, 96), class token first
        for block in self.blocks:
            x, thw = block(x, thw)
        return self.norm(x)[:, 0]

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(feats)


class SwinClassifier(TorchvisionVideo):
    """Video Swin Transformer, tiny (Liu et al., CVPR 2022); torchvision pads inputs to whole windows."""

    head_prefixes = ("head.",)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, 768)."""
        x = self.pos_drop(self.patch_embed(x))  # (B, T/2, H/4, W/4, 96), channels last
        x = self.norm(self.features(x))  # (B, T/2, H/32, W/32, 768)
        return self.avgpool(x.permute(0, 4, 1, 2, 3)).flatten(1)

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(feats)


@register_model("r3d_18", tiny={})
def r3d_18(num_classes: int, pretrained: bool = False, checkpoint: str | None = None) -> VideoResNetClassifier:
    """R3D-18: 3D ResNet-18. Args as `TorchvisionVideo`."""
    return VideoResNetClassifier(num_classes, "r3d_18", pretrained=pretrained, checkpoint=checkpoint)


@register_model("mc3_18", tiny={})
def mc3_18(num_classes: int, pretrained: bool = False, checkpoint: str | None = None) -> VideoResNetClassifier:
    """MC3-18: 3D convolutions in the stem, 2D in later stages. Args as `TorchvisionVideo`."""
    return VideoResNetClassifier(num_classes, "mc3_18", pretrained=pretrained, checkpoint=checkpoint)


@register_model("r2plus1d_18", tiny={})
def r2plus1d_18(num_classes: int, pretrained: bool = False, checkpoint: str | None = None) -> VideoResNetClassifier:
    """R(2+1)D-18: 3D convolutions factorised into 2D spatial + 1D temporal. Args as `TorchvisionVideo`."""
    return VideoResNetClassifier(num_classes, "r2plus1d_18", pretrained=pretrained, checkpoint=checkpoint)


@register_model("s3d", tiny={})
def s3d(num_classes: int, pretrained: bool = False, checkpoint: str | None = None) -> S3DClassifier:
    """S3D: separable 3D Inception. Args as `TorchvisionVideo`."""
    return S3DClassifier(num_classes, "s3d", pretrained=pretrained, checkpoint=checkpoint)


# The smallest native grid that builds quickly; the tables are interpolated for the test inputs anyway.
@register_model("mvit_v2_s", tiny=dict(clip_len=4, resolution=32))
def mvit_v2_s(
    num_classes: int,
    pretrained: bool = False,
    checkpoint: str | None = None,
    clip_len: int = 16,
    resolution: int | Sequence[int] = 224,
) -> MViTClassifier:
    """MViTv2-S. Args as `TorchvisionVideo`, plus:

    Args:
        clip_len: frames of the native token grid (torchvision's `temporal_size`; >= 2).
        resolution: native frame size, side or (H, W) (torchvision's `spatial_size`). Other input sizes run
            with interpolated relative positions; pass the sweep's clip_len / resolution so that none are.
    """
    if clip_len < 2:
        raise LitVideoError(f"mvit_v2_s needs clip_len >= 2 to size its positional tables, got {clip_len}")
    return MViTClassifier(num_classes, "mvit_v2_s", pretrained, checkpoint, clip_len=clip_len, resolution=resolution)


@register_model("swin3d_t", tiny={})
def swin3d_t(num_classes: int, pretrained: bool = False, checkpoint: str | None = None) -> SwinClassifier:
    """Video Swin-T. Args as `TorchvisionVideo`."""
    return SwinClassifier(num_classes, "swin3d_t", pretrained=pretrained, checkpoint=checkpoint)
