"""Flow-guided mask propagation (in the line of MaskRNN, FusionSeg and LucidTracker): the previous frame's
mask is warped along the optical flow to the current frame, then refined by an encoder-decoder that sees the
current frame's colours, the warped mask and the flow that carried it.

Frames arrive as rgb+flow (5 channels: R, G, B, flow x, flow y) or flow alone (2 channels), the flow of frame
t going from t to t+1 in pixels. So the flow stored by `memorize(frame_{t-1}, ...)` is the one that carries
the memorized masks from t-1 to t, and `segment(frame_t)` warps them with it.

Warping. The stored flow f is FORWARD (defined on frame t-1's grid: pixel p moves to p + f(p)); pulling a
mask onto frame t's grid with `grid_sample` needs the BACKWARD flow g on frame t's grid, g(q) = f(q - g(q)).
It is found by fixed-point iterations g <- f(q - g), starting from g = f(q) (`warp_iterations`, 5 by
default): exact for a constant flow after the first step, and a few steps converge wherever the flow is
smooth (the iteration contracts when the flow's gradient is below 1). Pixels whose source lies outside the
frame get no mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lit_video.errors import LitVideoError
from lit_video.models.layers import FLOW_SCALE
from lit_video.models.masktrack import MaskTrackMemory
from lit_video.models.registry import register_model
from lit_video.models.vos_base import (
    FeatureEncoder,
    SkipDecoder,
    VOSModel,
    carry_mask,
    check_masks,
    local_attention,
    pad_to_multiple,
    per_object,
)

STRIDE = 16  # of the encoder: frames are padded to a multiple of it
FLOW_MODALITIES = {"flow": 2, "rgb+flow": 5}  # frame channels of each modality the model accepts
WARPS = ("field", "object")
APPEARANCE_STRIDE = 4  # of the features the local attention compares (`match_radius`)


def sample_at(x: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
    """x sampled at q - displacement(q) for every pixel q (bilinear, zero outside the frame).

    Args:
        x: (N, C, H, W) values on the source grid.
        displacement: (N, 2, H, W) pixels (x right, y down) on the target grid.

    Returns:
        (N, C, H, W).
    """
    _, _, height, width = x.shape
    ys = torch.arange(height, device=x.device, dtype=displacement.dtype)
    xs = torch.arange(width, device=x.device, dtype=displacement.dtype)
    source_x = xs[None, None, :] - displacement[:, 0]  # (N, H, W)
    source_y = ys[None, :, None] - displacement[:, 1]
    # align_corners=True: -1 and 1 are the centres of the first and last pixels
    grid = torch.stack([2 * source_x / max(width - 1, 1) - 1, 2 * source_y / max(height - 1, 1) - 1], dim=-1)
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="zeros", align_corners=True)


def backward_flow(forward: torch.Tensor, iterations: int = 5) -> torch.Tensor:
    """The backward flow g of a forward flow f, g(q) = f(q - g(q)), by fixed-point iterations.

    Args:
        forward: (N, 2, H, W) flow from frame a to frame b on frame a's grid, pixels.
        iterations: steps after the initial g = f(q).

    Returns:
        (N, 2, H, W) on frame b's grid: the pixel q of frame b came from q - g(q) of frame a.
    """
    flow = forward
    for _ in range(iterations):
        # sampling zero-pads: a pixel whose estimated source left the frame keeps the border's flow instead
        sampled = sample_at(forward, flow)
        inside = sample_at(torch.ones_like(forward[:, :1]), flow) > 0.999
        flow = torch.where(inside, sampled, flow)
    return flow


def object_motion(masks: torch.Tensor, forward: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Each object's motion: the median of the flow over its mask's interior (the Median-Flow tracker's
    estimate, Kalal et al. 2010), robust to the flow that smooths across the object's border.

    Args:
        masks: (B, K, H, W) soft masks of frame a.
        forward: (B, 2, H, W) flow from frame a to frame b, pixels.
        threshold: mask probability that counts as the object.

    Returns:
        (B, K, 2) displacement (x, y) of each object in pixels; zero for an empty mask.
    """
    inside = (masks.detach().float() > threshold).float()  # (B,K,H,W)
    # the interior: a 3x3 erosion leaves out the border pixels whose flow mixes object and background
    interior = 1 - F.max_pool2d(1 - inside, 3, stride=1, padding=1)
    # a mask too thin to have an interior uses all its pixels
    interior = torch.where(interior.flatten(2).sum(-1, keepdim=True)[..., None] > 0, interior, inside)
    weights = interior.flatten(2)  # (B,K,HW)
    values = forward.detach().float().flatten(2)[:, None].expand(-1, masks.shape[1], -1, -1)  # (B,K,2,HW)
    ordered, order = values.sort(dim=-1)
    cumulative = weights[:, :, None].expand_as(values).gather(-1, order).cumsum(-1)  # (B,K,2,HW)
    half = cumulative[..., -1:] / 2
    # the weighted median: the first value whose cumulative weight reaches half the total
    position = (cumulative < half).sum(-1, keepdim=True).clamp(max=values.shape[-1] - 1)
    median = ordered.gather(-1, position).squeeze(-1)  # (B,K,2)
    return torch.where(half.squeeze(-1) > 0, median, torch.zeros_like(median))


def translate_masks(masks: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
    """Carry each mask by its object's median flow (`object_motion`) to the next frame.

    Args:
        masks: (B, K, H, W) soft masks of frame a.
        forward: (B, 2, H, W) flow from frame a to frame b, pixels.

    Returns:
        (B, K, H, W) the masks on frame b's grid.
    """
    batch, num_objects, height, width = masks.shape
    motion = object_motion(masks, forward)  # (B,K,2)
    displacement = motion.reshape(-1, 2, 1, 1).expand(-1, -1, height, width)  # (B*K,2,H,W)
    moved = sample_at(masks.float().reshape(-1, 1, height, width), displacement)
    return moved.view(batch, num_objects, height, width).clamp(0, 1).to(masks.dtype)


def warp_masks(masks: torch.Tensor, forward: torch.Tensor, iterations: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Carry masks along a forward flow to the next frame.

    Args:
        masks: (B, K, H, W) soft masks of frame a.
        forward: (B, 2, H, W) flow from frame a to frame b, pixels, on frame a's grid.
        iterations: fixed-point steps of the flow inversion (`backward_flow`).

    Returns:
        the masks on frame b's grid (B, K, H, W), and the backward flow used (B, 2, H, W).
    """
    backward = backward_flow(forward.float(), iterations)
    return sample_at(masks.float(), backward).clamp(0, 1).to(masks.dtype), backward


@dataclass
class FlowPropMemory(MaskTrackMemory):
    """Per-video state of a `FlowProp`: MaskTrack's latest memorized masks (B,K,H,W), the flow (B,2,H,W)
    of their frame, which carries them to the next one, and (match_radius > 0) that frame's colour features;
    None before the first `memorize`."""

    flow: torch.Tensor | None = None
    features: torch.Tensor | None = None


@register_model("flowprop", task="vos", tiny=dict(width=8, blocks=1, decoder_dim=16))
class FlowProp(VOSModel):
    """Previous mask warped along the flow, refined from colours + warped mask + flow, one object at a time.

    Args:
        modality: the data's modality (`data.init_args.modality`): "rgb+flow" (frames R, G, B, flow x,
            flow y) or "flow" (flow x, flow y only); "rgb" is refused, there is no flow to warp with.
        backbone: "small" (GroupNorm ResNet of `width` / `blocks`) or "resnet18" (torchvision's layers).
        width: channels at stride 4 of the small backbone (x2 at stride 8, x4 at stride 16).
        blocks: residual blocks per stage of the small backbone.
        pretrained: resnet18 only: ImageNet weights from the torch hub cache (never downloads); the filters
            of the channels beyond RGB start at zero.
        decoder_dim: channels of the decoder at stride 16 (halved at 8 and at 4).
        warp_iterations: fixed-point steps that invert the forward flow (see the module's docstring).
        warp: how the previous masks reach the current frame: "field" pulls every pixel along the flow (the
            backward flow above); "object" moves each mask as a whole by the median flow over its interior
            (`object_motion`), which a flow that smooths across object borders cannot shrink or smear; the
            refinement then follows the object's changes of shape.
        match_radius: 0 (the published method) or the cells, at stride 4, of a local attention that also
            carries each previous mask to the frame by appearance: a small colour encoder's features of the
            frame attend to the previous frame's within `match_radius` cells (as RVOS's `match_radius`), and the
            mask read there is one more input of the refinement. The flow says where the object went; the match
            says what it looks like there, which the refinement needs to follow rotation, scale and occlusion
            (on synthetic DAVIS it is what lets training improve on the warp). Needs the colours (rgb+flow).
    """

    # the warp needs the flow of the frame right before the one segmented: the state advances every frame
    memorize_every_frame = True
    requires_flow = True

    def __init__(self, modality: str = "rgb+flow", backbone: str = "small", width: int = 32, blocks: int = 2,
                 pretrained: bool = False, decoder_dim: int = 64, warp_iterations: int = 5,
                 warp: str = "field", match_radius: int = 0):
        super().__init__()
        if modality not in FLOW_MODALITIES:
            raise LitVideoError(f"model 'flowprop' warps masks along optical flow and needs "
                                f"data.init_args.modality rgb+flow or flow, got '{modality}'")
        if warp_iterations < 0:
            raise LitVideoError(f"flowprop warp_iterations must be >= 0, got {warp_iterations}")
        if warp not in WARPS:
            raise LitVideoError(f"flowprop warp must be one of {', '.join(WARPS)}, got {warp!r}")
        if isinstance(match_radius, bool) or not isinstance(match_radius, int) or match_radius < 0:
            raise LitVideoError(f"flowprop match_radius must be an integer >= 0, got {match_radius!r}")
        if pretrained and modality == "flow":
            raise LitVideoError("flowprop: pretrained ImageNet weights need the colours (modality rgb+flow)")
        if match_radius and modality == "flow":
            raise LitVideoError("flowprop: match_radius > 0 matches colours and needs data.init_args.modality "
                                "rgb+flow (or set match_radius: 0 for flow alone)")
        self.modality, self.warp_iterations, self.warp = modality, warp_iterations, warp
        self.in_channels, self.match_radius = FLOW_MODALITIES[modality], match_radius
        # the input: the frame's colours (rgb+flow), the backward flow, the warped mask (and the carried one)
        encoder_channels = self.in_channels - 2 + 2 + 1 + (1 if match_radius else 0)
        # the features that the local attention compares, at stride 4
        self.appearance = FeatureEncoder(3, backbone, width, blocks, pretrained, out_stride=4) if match_radius else None
        self.encoder = FeatureEncoder(encoder_channels, backbone, width, blocks, pretrained)
        self.decoder = SkipDecoder(self.encoder.channels[-1], self.encoder.channels[:-1], decoder_dim)
        # the warped mask is already a good guess: the decoder learns a correction on top of its logit
        self.prior_weight = nn.Parameter(torch.tensor(4.0))

    def new_memory(self) -> FlowPropMemory:
        return FlowPropMemory()

    def _check_frame(self, frame: torch.Tensor) -> None:
        if frame.ndim != 4 or frame.shape[1] != self.in_channels:
            raise ValueError(f"flowprop built for modality '{self.modality}' takes frames (B,{self.in_channels},H,W), "
                             f"got {tuple(frame.shape)} (check data.init_args.modality)")

    def segment(self, frame: torch.Tensor, memory: FlowPropMemory) -> torch.Tensor:
        """frame (B,C,H,W) -> per-object foreground logits (B,K,H,W) for the K objects in `memory`."""
        if memory.masks is None:
            raise ValueError("segment needs a memorized frame first (memorize the first frame and its masks)")
        self._check_frame(frame)
        if memory.masks.shape[0] != frame.shape[0] or memory.masks.shape[2:] != frame.shape[2:]:
            raise ValueError(f"frame {tuple(frame.shape)} does not match the memorized masks "
                             f"{tuple(memory.masks.shape)}")
        height, width = frame.shape[-2:]
        batch, num_objects = memory.masks.shape[:2]
        if self.warp == "object":
            warped = translate_masks(memory.masks, memory.flow)  # (B,K,H,W)
            backward = backward_flow(memory.flow.float(), self.warp_iterations)  # (B,2,H,W), the network's input
        else:
            warped, backward = warp_masks(memory.masks, memory.flow, self.warp_iterations)
        colours = frame[:, : self.in_channels - 2]  # (B,3,H,W) or (B,0,H,W)
        shared = pad_to_multiple(torch.cat([colours, backward.to(frame.dtype) / FLOW_SCALE], dim=1), STRIDE)
        warped_padded = pad_to_multiple(warped.to(frame.dtype), STRIDE)  # (B,K,Hp,Wp)
        per_mask = [warped_padded.flatten(0, 1).unsqueeze(1)]  # (B*K,1,Hp,Wp) each
        if self.match_radius:
            attention = local_attention(self._appearance(frame), memory.features, self.match_radius)  # (B,D,h,w)
            previous = pad_to_multiple(memory.masks.to(frame.dtype), STRIDE).flatten(0, 1).unsqueeze(1)
            previous = F.avg_pool2d(previous, APPEARANCE_STRIDE)  # (B*K,1,h,w)
            carried = carry_mask(per_object(attention, num_objects), previous, self.match_radius)  # (B*K,1,h,w)
            per_mask.append(F.interpolate(carried.to(frame.dtype), size=shared.shape[-2:], mode="bilinear",
                                          align_corners=False))
        inputs = torch.cat([per_object(shared, num_objects), *per_mask], dim=1)
        # inputs: (B*K, C-2+2+1[+1], Hp, Wp), the frame and flow once per object with that object's masks
        *skips, f16 = self.encoder(inputs)  # strides 4, 8 | 16
        logits = self.decoder(f16, tuple(skips), shared.shape[-2:])  # (B*K,1,Hp,Wp)
        logits = logits.view(batch, num_objects, *shared.shape[-2:])[..., :height, :width]  # (B,K,H,W)
        return logits + self.prior_weight * (2 * warped.to(logits.dtype) - 1)

    def memorize(self, frame: torch.Tensor, masks: torch.Tensor, memory: FlowPropMemory) -> None:
        """Keep `masks` (B,K,H,W) and the frame's flow to the next frame; new objects join with theirs."""
        self._check_frame(frame)
        check_masks(frame, masks, memory.num_objects)
        memory.masks, memory.flow = masks, frame[:, -2:]
        if self.match_radius:
            memory.features = self._appearance(frame)

    def _appearance(self, frame: torch.Tensor) -> torch.Tensor:
        """frame (B,C,H,W) -> (B,width,Hp/4,Wp/4) the colour features that `local_attention` compares."""
        (features,) = self.appearance(pad_to_multiple(frame[:, :3], STRIDE))
        return features
