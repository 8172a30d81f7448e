"""RVOS (Ventura et al., "RVOS: End-to-End Recurrent Network for Video Object Segmentation", CVPR 2019): a
frame encoder and a decoder of ConvLSTMs that is recurrent over objects and over time.

The decoder has one ConvLSTM per scale (strides 16, 8 and 4, coarse to fine). Within a frame the objects
are decoded one after another: slot k's cell sees the frame's features at its scale, the upsampled hidden
state of its own coarser cell, and the hidden state slot k-1 just produced at the same scale (recurrence
over objects: what earlier slots took is known to later ones). Across frames each slot's cell states carry
on (recurrence over time). The finest hidden state is read out as the slot's mask logits.

Two modes, as in the paper:
- one-shot (semi-supervised, the `VOSModel` interface): each slot's cell also sees the object's mask of the
  previous frame; the given first masks enter there. `memorize(frame_t, masks_t)` advances every slot's
  state through frame t (with the masks of frame t-1 as input, exactly the step `segment(frame_t)` ran, whose
  result it reuses) and keeps masks_t for the next step. A slot's state stays zero until the object has had a
  non-empty mask, so an object that joins mid-video is treated as one that was memorized with empty masks
  before; the step of the frame where it starts takes that first mask itself as input, so the state has seen
  the object before the next frame is segmented (else nothing tells the cells what the object looks like).
  The slot's readout adds the previous mask's evidence (`mask_gain` x (mask - 1/2)) to the decoded logits: an
  untrained model copies the previous mask instead of guessing, and training learns the motion on top.
- zero-shot (`zero_shot=True`, unsupervised VOS): no mask is given; `propose(frame, memory)` decodes
  `max_objects` slots, each a mask and a score (is this slot an object), the slot's own previous mask
  probabilities taking the place of the given ones.

Zero-shot, the slots learn slowly to split what moves into objects (0.33 held-out J&F on synthetic DAVIS
after 1536 steps; docs/tasks/vos.md). `proposals: centres` splits them bottom-up instead: the encoder feeds
dense heads (foreground, object centres and each pixel's offset to its centre, as Panoptic-DeepLab;
`lit_video.models.instance_centres`) through a ConvLSTM over time at stride 4, a frame's objects are
grouped around the centres, and the frames' objects are linked into up to `max_objects` tracks by mask
overlap and colour. Every head has a per-pixel target, so training needs no matching of slots to objects.

Beside the paper's inputs, each cell also sees the previous frame's features under the slot's previous mask
(what the object looked like where it was) and, with `match_radius` > 0, the slot's previous mask carried to
this frame by local attention (each cell of this frame's features attends to the previous frame's within
`match_radius` cells at that scale, as STM reads memory, but locally, and takes the mask there). The carried
mask also replaces the previous one in the one-shot readout's prior. Without them the recurrent state has to
learn appearance matching on its own: on synthetic DAVIS a CI-sized budget leaves it near copying the first mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from lit_video.errors import LitVideoError
from lit_video.models.convlstm import ConvLSTMCell
from lit_video.models.instance_centres import (
    CentreHeads,
    OverlapTracker,
    centre_losses,
    group_instances,
    one_hot_proposals,
)
from lit_video.models.layers import FLOW_SCALE
from lit_video.models.registry import register_model
from lit_video.models.vos_base import (
    FeatureEncoder,
    VOSModel,
    carry_mask,
    check_masks,
    local_attention,
    pad_to_multiple,
)
from lit_video.video.flow import MODALITY_CHANNELS

STRIDE = 16  # of the encoder: frames are padded to a multiple of it
MAX_PROPOSALS = 20  # the DAVIS unsupervised protocol's limit on proposals per video
PROPOSALS = ("slots", "centres")  # how zero-shot RVOS splits a frame into objects

State = list[tuple[torch.Tensor, torch.Tensor]]  # per scale, coarse to fine: (h, c), each (B,K,C,h,w)


@dataclass
class RVOSMemory:
    """Per-video state of an `RVOS`.

    Args:
        masks: (B,K,H,W) the masks that enter the next step (one-shot: the last memorized; zero-shot: the
            slots' own last probabilities); None before the first step.
        states: the slots' cell states per scale; None before the first step.
        started: (B,K) bool, one-shot: the object has had a non-empty mask (its state may leave zero).
        features: the projected features of the frame the last step ran on (per scale, coarse to fine).
    """

    masks: torch.Tensor | None = None
    states: State | None = None
    started: torch.Tensor | None = None
    features: list[torch.Tensor] | None = None
    # proposals "centres": the ConvLSTM state of the dense heads (h, c), and one tracker per video of the batch
    centre_state: tuple[torch.Tensor, torch.Tensor] | None = None
    trackers: list[OverlapTracker] | None = None
    # segment's step: (frame signature, states after it), for memorize of the same frame and masks to reuse
    _stepped: tuple | None = field(default=None, repr=False)
    # the last encoded frame, its signature and features: segment(frame) then memorize(frame) encodes it once
    _cache: tuple | None = field(default=None, repr=False)

    @property
    def num_objects(self) -> int:
        return 0 if self.masks is None else self.masks.shape[1]


def _signature(frame: torch.Tensor) -> tuple:
    # a loop slices `video[:, :, t]` anew for segment and for memorize: equal address, shape and strides are the
    # same data while the cache holds the frame; the version counter catches in-place writes (inference tensors
    # have none, and are written in place only inside inference mode, never between the two calls)
    version = None if frame.is_inference() else frame._version
    return frame.data_ptr(), tuple(frame.shape), frame.stride(), version, frame.device, frame.dtype


@register_model("rvos", task="vos", tiny=dict(width=8, blocks=1, hidden_dim=32))
class RVOS(VOSModel):
    """Encoder + ConvLSTM decoder recurrent over objects and time, one-shot or zero-shot.

    Args:
        modality: the data's modality (`data.init_args.modality`): "rgb", "flow" or "rgb+flow".
        backbone: "small" (GroupNorm ResNet of `width` / `blocks`) or "resnet18" (torchvision's layers).
        width: channels at stride 4 of the small backbone (x2 at stride 8, x4 at stride 16).
        blocks: residual blocks per stage of the small backbone.
        pretrained: resnet18 only: ImageNet weights from the torch hub cache (never downloads).
        hidden_dim: channels of the stride-16 ConvLSTM (halved at 8, quartered at 4).
        kernel_size: kernel of the ConvLSTM gate convolutions.
        zero_shot: build the per-slot score head for unsupervised VOS (`propose`).
        max_objects: zero-shot slots per video (at most 20, the DAVIS unsupervised protocol's limit).
        match_radius: cells (at each scale) of the local attention that carries a slot's previous mask to the
            frame; 0 leaves it out (the paper's inputs, plus the previous features under the mask).
        proposals: zero-shot only: "slots" (the paper's recurrence over objects, matched to the objects in
            training) or "centres" (dense centre heads of `hidden_dim` channels with a ConvLSTM over time at
            stride 4, the frames' objects tracked by overlap and colour; see the module's docstring).
    """

    # each slot's recurrent state must see every frame
    memorize_every_frame = True

    def __init__(self, modality: str = "rgb", backbone: str = "small", width: int = 32, blocks: int = 2,
                 pretrained: bool = False, hidden_dim: int = 64, kernel_size: int = 3, zero_shot: bool = False,
                 max_objects: int = 10, match_radius: int = 2, proposals: str = "slots"):
        super().__init__()
        if modality not in MODALITY_CHANNELS:
            raise LitVideoError(f"rvos: unknown modality '{modality}' (data.init_args.modality); expected one of "
                                f"{', '.join(MODALITY_CHANNELS)}")
        if hidden_dim < 4 or kernel_size < 1 or kernel_size % 2 == 0:
            raise LitVideoError(f"rvos needs hidden_dim >= 4 and an odd kernel_size, got hidden_dim={hidden_dim}, "
                                f"kernel_size={kernel_size}")
        if isinstance(match_radius, bool) or not isinstance(match_radius, int) or match_radius < 0:
            raise LitVideoError(f"rvos match_radius must be an integer >= 0, got {match_radius!r}")
        if not 1 <= max_objects <= MAX_PROPOSALS:
            raise LitVideoError(f"rvos max_objects must be between 1 and {MAX_PROPOSALS}, got {max_objects}")
        if proposals not in PROPOSALS:
            raise LitVideoError(f"rvos proposals must be one of {', '.join(PROPOSALS)}, got {proposals!r}")
        if proposals == "centres" and not zero_shot:
            raise LitVideoError("rvos proposals: centres is a zero-shot mode (unsupervised VOS); build it with "
                                "zero_shot: true")
        if pretrained and modality == "flow":
            raise LitVideoError("rvos: pretrained ImageNet weights need the colours (modality rgb or rgb+flow)")
        self.modality, self.in_channels = modality, MODALITY_CHANNELS[modality]
        self.zero_shot, self.max_objects, self.match_radius = zero_shot, max_objects, match_radius
        carried = 1 if match_radius else 0  # the channel of the carried mask
        self.encoder = FeatureEncoder(self.in_channels, backbone, width, blocks, pretrained)
        self.hidden = (hidden_dim, hidden_dim // 2, hidden_dim // 4)  # strides 16, 8, 4
        self.centres = None
        if proposals == "centres":  # no slots: the dense heads and the tracker propose the objects
            self.centres = CentreHeads(self.encoder.channels, self.in_channels, dim=hidden_dim, fine=hidden_dim // 2,
                                       recurrent=hidden_dim // 2)
            self.score = self.mask_gain = None
            return
        skip_channels = tuple(reversed(self.encoder.channels))  # coarse to fine
        self.skips = nn.ModuleList(nn.Conv2d(c, h, 1) for c, h in zip(skip_channels, self.hidden, strict=True))
        cells = []
        for level, hidden in enumerate(self.hidden):
            coarser = self.hidden[level - 1] if level else 0
            # input: projected features, the coarser cell's hidden, slot k-1's hidden, the slot's mask, the
            # previous frame's features under that mask, the carried mask
            cells.append(ConvLSTMCell(hidden + coarser + hidden + 1 + hidden + carried, hidden, kernel_size))
        self.cells = nn.ModuleList(cells)
        # the mask read out from the finest hidden state beside the frame's own features and the slot's input
        # mask at that scale: the bounded hidden state alone learns sharp logits slowly
        fine = self.hidden[-1]
        self.predict = nn.Sequential(nn.Conv2d(2 * fine + 1 + carried, fine, 3, padding=1), nn.ReLU(inplace=True),
                                     nn.Conv2d(fine, 1, 3, padding=1))
        self.score = nn.Linear(self.hidden[0], 1) if zero_shot else None
        self.mask_gain = None
        if not zero_shot:
            # one-shot: logits start as the previous mask's (+-2 at gain 4), the decoded part near zero
            self.mask_gain = nn.Parameter(torch.tensor(4.0))
            with torch.no_grad():
                self.predict[-1].weight.mul_(0.1)
                self.predict[-1].bias.zero_()

    # ------------------------------------------------------------ shared parts
    def _check_frame(self, frame: torch.Tensor) -> None:
        if frame.ndim != 4 or frame.shape[1] != self.in_channels:
            raise ValueError(f"rvos built for modality '{self.modality}' takes frames (B,{self.in_channels},H,W), "
                             f"got {tuple(frame.shape)} (check data.init_args.modality)")

    def _padded_input(self, frame: torch.Tensor) -> torch.Tensor:
        """(B,C,H,W) frame -> the encoder's input, padded to its stride: flow in pixels to about unit scale,
        as the colours are."""
        if self.in_channels != 3:
            frame = torch.cat([frame[:, : self.in_channels - 2], frame[:, -2:] / FLOW_SCALE], dim=1)
        return pad_to_multiple(frame, STRIDE)

    def _features(self, frame: torch.Tensor, memory: RVOSMemory) -> list[torch.Tensor]:
        """(B,C,H,W) -> the projected features per scale, coarse to fine, cached for the same frame."""
        self._check_frame(frame)
        signature = _signature(frame)
        if memory._cache is not None and memory._cache[1] == signature:
            return memory._cache[2]
        features = self.encoder(self._padded_input(frame))  # (f4, f8, f16)
        projected = [skip(f) for skip, f in zip(self.skips, reversed(features), strict=True)]
        memory._cache = (frame, signature, projected)  # the frame is held: its address cannot be reused
        return projected

    def _step(self, features: list[torch.Tensor], masks: torch.Tensor, states: State | None,
              size: tuple[int, int], previous: list[torch.Tensor] | None = None,
              fresh: torch.Tensor | None = None) -> tuple[torch.Tensor, State, torch.Tensor]:
        """One frame through the decoder, slot after slot.

        Args:
            features: projected features per scale, coarse to fine, each (B,C_l,h_l,w_l).
            masks: (B,K,Hp,Wp) each slot's input mask at the padded size.
            states: the slots' states before this frame (None: zero).
            size: (H, W) of the frame before padding.
            previous: the features of the frame the masks belong to (None: this frame's).
            fresh: (B,K) bool, slots whose masks belong to this frame rather than to `previous`'s.

        Returns:
            logits (B,K,H,W), the new states, and the coarse hidden states (B,K,C_0,h_0,w_0).
        """
        batch, num_slots = masks.shape[:2]
        padded = masks.shape[-2:]
        new_h: list[list[torch.Tensor]] = [[] for _ in self.cells]
        new_c: list[list[torch.Tensor]] = [[] for _ in self.cells]
        readouts = []
        attention: dict[tuple[int, bool], torch.Tensor] = {}  # (level, fresh) -> local attention, for every slot
        for k in range(num_slots):
            coarser = None
            for level, (cell, feature) in enumerate(zip(self.cells, features, strict=True)):
                grid = feature.shape[-2:]
                stride = padded[0] // grid[0]
                mask = F.avg_pool2d(masks[:, k: k + 1].to(feature.dtype), stride) if stride > 1 else masks[:, k: k + 1]
                previous_slot = new_h[level][k - 1] if k else feature.new_zeros(batch, cell.hidden_channels, *grid)
                before = feature if previous is None else previous[level]
                if fresh is not None and previous is not None:
                    before = torch.where(fresh[:, k, None, None, None], feature, before)
                mask = mask.to(feature.dtype)
                inputs = [feature, previous_slot, mask, before * mask]
                if self.match_radius:
                    # the same for every slot whose mask belongs to the previous frame (fresh ones differ)
                    key = (level, fresh is not None and previous is not None and bool(fresh[:, k].any()))
                    if key[1] or key not in attention:
                        attention[key] = local_attention(feature, before, self.match_radius)
                    carried = carry_mask(attention[key], mask, self.match_radius)
                    inputs.append(carried)
                if coarser is not None:
                    inputs.insert(1, F.interpolate(coarser, size=grid, mode="bilinear", align_corners=False))
                if states is None:
                    state = cell.init_state(feature)
                else:
                    state = (states[level][0][:, k], states[level][1][:, k])
                coarser, (h, c) = cell(torch.cat(inputs, dim=1), state)
                new_h[level].append(h)
                new_c[level].append(c)
            evidence = carried if self.match_radius else mask  # where the previous mask says the object is now
            readout = self.predict(torch.cat([coarser, feature, *([mask, carried] if self.match_radius else [mask])],
                                             dim=1))  # (B,1,h_4,w_4)
            if self.mask_gain is not None:
                readout = readout + self.mask_gain * (evidence.to(readout.dtype) - 0.5)
            readouts.append(readout)
        logits = F.interpolate(torch.cat(readouts, dim=1), size=padded, mode="bilinear", align_corners=False)
        new_states = [(torch.stack(h, dim=1), torch.stack(c, dim=1)) for h, c in zip(new_h, new_c, strict=True)]
        return logits[..., : size[0], : size[1]], new_states, new_states[0][0]

    # ------------------------------------------------------------ one-shot
    def new_memory(self) -> RVOSMemory:
        return RVOSMemory()

    def segment(self, frame: torch.Tensor, memory: RVOSMemory) -> torch.Tensor:
        """frame (B,C,H,W) -> per-object foreground logits (B,K,H,W) for the K objects in `memory`."""
        self._refuse_given_masks()
        if memory.masks is None or memory.started is None:
            raise ValueError("segment needs a memorized frame first (memorize the first frame and its masks)")
        if memory.masks.shape[0] != frame.shape[0] or memory.masks.shape[2:] != frame.shape[2:]:
            raise ValueError(f"frame {tuple(frame.shape)} does not match the memorized masks "
                             f"{tuple(memory.masks.shape)}")
        features = self._features(frame, memory)
        masks = pad_to_multiple(memory.masks, STRIDE)
        logits, states, _ = self._step(features, masks, memory.states, frame.shape[-2:], memory.features)
        memory._stepped = (memory._cache[1], states)  # memorize(frame) with these objects runs this same step
        return logits

    def memorize(self, frame: torch.Tensor, masks: torch.Tensor, memory: RVOSMemory) -> None:
        """Advance every slot through `frame` and keep `masks` (B,K,H,W) for the next step; objects beyond
        those known join with empty previous masks and zero states."""
        self._refuse_given_masks()
        self._check_frame(frame)
        check_masks(frame, masks, memory.num_objects)
        batch, num_objects = masks.shape[:2]
        known = memory.num_objects
        previous = masks.new_zeros(masks.shape) if memory.masks is None else torch.cat(
            [memory.masks.to(masks.dtype), masks.new_zeros(batch, num_objects - known, *masks.shape[2:])], dim=1)
        started = torch.zeros(batch, num_objects, dtype=torch.bool, device=masks.device)
        if memory.started is not None:
            started[:, :known] = memory.started
        # an object's first non-empty mask is also the input of its own frame's step
        starting = (masks.flatten(2) > 0).any(dim=2) & ~started  # (B,K)
        previous = torch.where(starting[:, :, None, None], masks, previous)
        started = started | starting
        states = None
        if memory.states is not None and num_objects > known:
            states = [(torch.cat([h, h.new_zeros(batch, num_objects - known, *h.shape[2:])], dim=1),
                       torch.cat([c, c.new_zeros(batch, num_objects - known, *c.shape[2:])], dim=1))
                      for h, c in memory.states]
        elif memory.states is not None:
            states = memory.states
        features = self._features(frame, memory)
        stepped, memory._stepped = memory._stepped, None
        if stepped is not None and stepped[0] == memory._cache[1] and num_objects == known and not starting.any():
            new_states = stepped[1]  # segment(frame) ran exactly this step
        elif started.any():
            _, new_states, _ = self._step(features, pad_to_multiple(previous, STRIDE), states, frame.shape[-2:],
                                          memory.features, starting)
        if started.any():
            keep = started[:, :, None, None, None]
            memory.states = [(torch.where(keep, h, torch.zeros_like(h)), torch.where(keep, c, torch.zeros_like(c)))
                             for h, c in new_states]
        else:
            memory.states = None  # no object has been seen yet: every state is still zero
        memory.masks, memory.started, memory.features = masks, started, features

    def _refuse_given_masks(self) -> None:
        if self.centres is not None:
            raise LitVideoError("rvos with proposals: centres has no slots to follow given masks; it proposes "
                                "objects itself (model.init_args.task: unsupervised)")

    # ------------------------------------------------------------ zero-shot
    # The task trains a model with `dense_proposals` on `dense_loss` rather than matching its slots to objects
    @property
    def dense_proposals(self) -> bool:
        return self.centres is not None

    def dense_heads(self, frame: torch.Tensor, memory: RVOSMemory) -> torch.Tensor:
        """Proposals "centres": frame (B,C,H,W) -> the dense heads (B,4,H,W) (see `instance_centres`); the
        ConvLSTM's state advances (call once per frame, in order)."""
        self._check_frame(frame)
        padded = self._padded_input(frame)
        heads, memory.centre_state = self.centres(padded, self.encoder(padded), memory.centre_state)
        return heads[..., : frame.shape[-2], : frame.shape[-1]]

    def dense_loss(self, video: torch.Tensor, masks: torch.Tensor, dice_weight: float = 1.0) -> torch.Tensor:
        """Proposals "centres": the dense heads' loss on a batch of clips.

        Args:
            video: (B,C,T,H,W) frames.
            masks: (B,T,H,W) int64 object ids 0..K, void (255) left out of the foreground's loss.
            dice_weight: weight of the foreground's dice term.
        """
        memory = self.new_memory()
        heads = torch.stack([self.dense_heads(video[:, :, t], memory) for t in range(video.shape[2])], dim=1)
        return centre_losses(heads.flatten(0, 1), masks.flatten(0, 1), dice_weight)  # over the B*T frames

    def propose(self, frame: torch.Tensor, memory: RVOSMemory) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero-shot: frame (B,C,H,W) -> each slot's mask logits (B,S,H,W) and score logits (B,S), S =
        max_objects; every slot's state advances (call once per frame, in order)."""
        if not self.zero_shot:
            raise LitVideoError("rvos was built for one-shot VOS; build it with zero_shot: true to propose "
                                "objects without given masks")
        batch = frame.shape[0]
        if self.centres is not None:  # each frame's objects, grouped around their centres, tracked by overlap
            heads = self.dense_heads(frame, memory)
            if memory.trackers is None:
                memory.trackers = [OverlapTracker(self.max_objects) for _ in range(batch)]
            # the colours tell apart objects that touch and part again (flow alone: overlap alone)
            colours = frame[:, :3].float() if self.modality != "flow" else [None] * batch
            tracks = torch.stack([tracker.update(group_instances(frame_heads, self.max_objects), colour)
                                  for tracker, frame_heads, colour in zip(memory.trackers, heads, colours,
                                                                           strict=True)])
            return one_hot_proposals(tracks, self.max_objects)
        if memory.masks is None:
            memory.masks = frame.new_zeros(batch, self.max_objects, *frame.shape[-2:])
        features = self._features(frame, memory)
        logits, memory.states, coarse = self._step(features, pad_to_multiple(memory.masks, STRIDE), memory.states,
                                                   frame.shape[-2:], memory.features)
        memory.features = features
        memory.masks = torch.sigmoid(logits)
        scores = self.score(coarse.mean(dim=(3, 4))).squeeze(-1)  # (B,S)
        return logits, scores
