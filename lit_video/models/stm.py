"""Space-time memory network for semi-supervised VOS (STM, Oh et al. 2019, with STCN's changes, Cheng et
al. 2021): past frames and their object masks are encoded into a key/value memory; a new frame's key
attends over every memorized position, and the read-out values are decoded into per-object masks.

As in STCN, keys come from the frame alone (one key encoder for query and memory frames, so the affinity
is computed once and shared by all objects), values from the frame plus one object's mask plus the
other objects' masks, and the similarity is the negative squared L2 distance by default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from lit_video.errors import LitVideoError
from lit_video.models.registry import register_model
from lit_video.models.vos_base import (
    FeatureEncoder,
    FineEncoder,
    ResBlock,
    SkipDecoder,
    VOSModel,
    check_masks,
    pad_to_multiple,
    per_object,
)

SIMILARITIES = ("l2", "dot")


def memory_affinity(
    memory_keys: torch.Tensor, query_keys: torch.Tensor, similarity: str = "l2", top_k: int | None = None
) -> torch.Tensor:
    """Attention of every query position over every memory position.

    Args:
        memory_keys: (B, Ck, N) keys of all memorized positions (frames x height x width).
        query_keys: (B, Ck, M) keys of the query frame's positions.
        similarity: "l2" (STCN: negative squared distance) or "dot" (STM: dot product), both / sqrt(Ck).
        top_k: keep only the k most similar memory positions of each query position and renormalize
            (STM's top-k filtering); None or k >= N reads all of them.

    Returns:
        (B, N, M) weights, each column summing to 1 over the memory positions.
    """
    num_memory = memory_keys.shape[2]
    scale = 1 / math.sqrt(memory_keys.shape[1])
    if similarity == "l2":
        # -|k - q|^2 = 2 k.q - |k|^2 - |q|^2; |q|^2 is the same for all memory positions of one query,
        # so the softmax over N does not see it and it is never computed. -|k|^2 joins the product as one
        # more key channel, against a query channel of ones: the logits come out of a single matrix
        # product, with no elementwise pass over the N x M of them (forward or backward), the costliest
        # part of a memory read.
        memory_keys = torch.cat([2 * memory_keys, -memory_keys.pow(2).sum(dim=1, keepdim=True)], dim=1)
        query_keys = torch.cat([query_keys, torch.ones_like(query_keys[:, :1])], dim=1)  # (B, Ck+1, M)
    # (B, M, N): each query position's logits over the memory positions lie contiguous for the softmax
    logits = query_keys.transpose(1, 2) @ (memory_keys * scale)
    if top_k is not None and top_k < num_memory:
        top, index = logits.topk(top_k, dim=2)  # (B, M, k)
        weights = top.softmax(dim=2)  # float32 under autocast, whatever the dtype of the logits
        return weights.new_zeros(logits.shape).scatter(2, index, weights).transpose(1, 2)
    return logits.softmax(dim=2).transpose(1, 2)  # (B, N, M)


@dataclass
class MemoryFrame:
    """One memorized frame.

    Args:
        frame: (B, 3, Hp, Wp) the padded frame, and features: (B, c, h, w) its key-encoder features at the
            memory stride: kept to encode values for objects that join memory later.
        mask_sum: (B, 1, Hp, Wp) sum of all objects' masks (the "other objects" of a joining object).
        key: (B, Ck, h, w).
        values: (B, K, Cv, h, w), one value map per object.
        given: the frame holds a given (ground-truth) mask: it is the first memorized frame or an object
            joined memory there. A bounded memory never evicts it.
    """

    frame: torch.Tensor
    features: torch.Tensor
    mask_sum: torch.Tensor
    key: torch.Tensor
    values: torch.Tensor
    given: bool = False


@dataclass
class STMMemory:
    """Per-video state of an `STM`: the memorized frames; those holding given masks are always kept."""

    frames: list[MemoryFrame] = field(default_factory=list)
    num_objects: int = 0
    # the last segmented frame and its key-encoder features, so memorizing that same frame right after
    # segmenting it (what every propagation loop does) does not run the key encoder twice
    _query: tuple | None = field(default=None, repr=False)

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def keys(self) -> torch.Tensor:
        """(B, Ck, N) keys of all memorized positions."""
        return torch.cat([f.key.flatten(2) for f in self.frames], dim=2)

    def values(self) -> torch.Tensor:
        """(B, K, Cv, N) values of all memorized positions."""
        return torch.cat([f.values.flatten(3) for f in self.frames], dim=3)

    def remember_query(self, frame: torch.Tensor, features: torch.Tensor, signature: tuple) -> None:
        """Keep `frame`'s key-encoder features (B,c,h,w) for a `memorize` of the same frame."""
        self._query = (frame, _tensor_signature(frame) + signature, features)

    def query_features(self, frame: torch.Tensor, signature: tuple) -> torch.Tensor | None:
        """The key-encoder features of `frame` if it is the last segmented frame, unchanged since."""
        if self._query is None:
            return None
        previous, previous_signature, features = self._query
        same_data = (frame._base if frame._base is not None else frame) is (
            previous._base if previous._base is not None else previous)
        return features if same_data and _tensor_signature(frame) + signature == previous_signature else None


def _tensor_signature(t: torch.Tensor) -> tuple:
    # Loops slice `video[:, :, t]` anew for segment and for memorize: two view objects of one base. Equal
    # base, offset, shape and strides mean the same data; the version counter (shared by all views of a
    # base) changes with any in-place write. Inference tensors have no version counter: they are only
    # written in place inside inference mode, which propagation loops do not do between the two calls.
    version = None if t.is_inference() else t._version
    return t.storage_offset(), tuple(t.shape), t.stride(), t.dtype, t.device, version


@register_model("stm", task="vos", tiny=dict(width=8, blocks=1, key_dim=8, value_dim=16, decoder_dim=16))
class STM(VOSModel):
    """Space-time memory network (STCN-style keys and values).

    Args:
        backbone: encoder of the keys and values: "small" (GroupNorm ResNet of `width` / `blocks`) or
            "resnet18" (torchvision's layers, BatchNorm).
        width: channels at stride 4 of the small backbone (x2 at stride 8, x4 at stride 16).
        blocks: residual blocks per stage of the small backbone.
        pretrained: resnet18 only: ImageNet weights from the torch hub cache (never downloads).
        key_dim: channels of a key.
        value_dim: channels of a value.
        decoder_dim: channels of the decoder at stride 16 (halved at 8 and at 4).
        similarity: "l2" (STCN) or "dot" (STM).
        top_k: read only the k most similar memory positions per query position; None reads all.
        max_memory_frames: the most frames memory holds; None = unbounded. At least 2. Frames that hold
            given masks (the first memorized frame, and each frame where an object joins, e.g. mid-video in
            YouTube-VOS) are never evicted: past the bound, the oldest frame of predicted masks goes. When
            the given frames alone reach the bound, memory keeps them all plus the newest frame, so it can
            hold more than `max_memory_frames` frames (an object's only given mask is never forgotten).
        memory_stride: stride of the keys, values and affinity read (16, 8 or 4). STM reads at 16 on 480p
            frames (a 30x54 grid); on small frames a finer stride keeps a comparable grid (8 or 4 for
            ~100-pixel frames), at the cost of an affinity that grows with the square of the positions.
        fine_skip_dim: channels of extra decoder skips computed from the frame at strides 1 and 2 (x2 at
            2); 0 = the decoder's finest skip is the encoder's stride 4 and it upsamples from there.
    """

    def __init__(
        self,
        backbone: str = "small",
        width: int = 64,
        blocks: int = 2,
        pretrained: bool = False,
        key_dim: int = 64,
        value_dim: int = 256,
        decoder_dim: int = 128,
        similarity: str = "l2",
        top_k: int | None = None,
        max_memory_frames: int | None = None,
        memory_stride: int = 16,
        fine_skip_dim: int = 0,
    ):
        super().__init__()
        if similarity not in SIMILARITIES:
            raise LitVideoError(f"stm: unknown similarity '{similarity}'; known: {', '.join(SIMILARITIES)}")
        if top_k is not None and top_k < 1:
            raise LitVideoError(f"stm: top_k must be >= 1 or None, got {top_k}")
        if fine_skip_dim < 0:
            raise LitVideoError(f"stm: fine_skip_dim must be >= 0, got {fine_skip_dim}")
        if max_memory_frames is not None and max_memory_frames < 2:
            # memory needs room for the first frame (given masks) and the newest one beside it
            raise LitVideoError(f"stm: max_memory_frames must be >= 2 or None, got {max_memory_frames}")
        self.similarity = similarity
        self.top_k = top_k
        self.max_memory_frames = max_memory_frames
        self.memory_stride = memory_stride  # FeatureEncoder checks it

        self.key_encoder = FeatureEncoder(3, backbone, width, blocks, pretrained, out_stride=memory_stride)
        *skip_channels, c_key = self.key_encoder.channels  # finer strides | the memory stride
        # A bias shared by query and memory keys cancels in an L2 distance: only the dot product uses one.
        self.key_proj = nn.Conv2d(c_key, key_dim, 3, padding=1, bias=similarity == "dot")
        # frame + this object's mask + the sum of the other objects' masks
        self.value_encoder = FeatureEncoder(5, backbone, width, blocks, pretrained, out_stride=memory_stride)
        self.value_fuse = nn.Sequential(
            ResBlock(self.value_encoder.channels[-1] + c_key, value_dim), ResBlock(value_dim, value_dim)
        )
        self.fine_encoder = FineEncoder(3, fine_skip_dim) if fine_skip_dim else None
        fine_channels = self.fine_encoder.channels if self.fine_encoder is not None else ()  # strides 1, 2
        self.decoder = SkipDecoder(value_dim + c_key, (*fine_channels, *skip_channels), decoder_dim)

    def new_memory(self) -> STMMemory:
        return STMMemory()

    def segment(self, frame: torch.Tensor, memory: STMMemory) -> torch.Tensor:
        """frame (B,3,H,W) -> per-object foreground logits (B,K,H,W) for the K objects in `memory`."""
        if not memory.frames:
            raise ValueError("segment needs a memorized frame first (memorize the first frame and its masks)")
        height, width = frame.shape[-2:]
        x = pad_to_multiple(frame, self.memory_stride)  # (B,3,Hp,Wp)
        *skips, features = self.key_encoder(x)  # finer strides | (B,c,h,w) at the memory stride
        memory.remember_query(frame, features, self._cache_signature())
        query = self.key_proj(features)  # (B,Ck,h,w)
        batch, _, h, w = query.shape
        affinity = memory_affinity(memory.keys(), query.flatten(2), self.similarity, self.top_k)  # (B,N,h*w)
        values = memory.values()  # (B,K,Cv,N)
        num_objects, value_dim = values.shape[1:3]
        # one affinity for all objects, read in its own contiguous (h*w, N) layout (a transposed view of the
        # returned one), so that its gradient comes back contiguous for the softmax's backward
        readout = torch.bmm(affinity.transpose(1, 2), values.flatten(1, 2).transpose(1, 2))  # (B,h*w,K*Cv)
        readout = readout.transpose(1, 2).reshape(batch * num_objects, value_dim, h, w)  # (B*K,Cv,h,w)
        decoder_in = torch.cat([readout, per_object(features, num_objects)], dim=1)  # (B*K,Cv+c,h,w)
        if self.fine_encoder is not None:
            skips = [*self.fine_encoder(x), *skips]  # strides 1, 2, then the encoder's
        # skips stay one per frame: the decoder projects each once and shares it among the frame's objects
        logits = self.decoder(decoder_in, tuple(skips), x.shape[-2:])  # (B*K,1,Hp,Wp)
        return logits.view(batch, num_objects, *x.shape[-2:])[..., :height, :width]  # (B,K,H,W)

    def memorize(self, frame: torch.Tensor, masks: torch.Tensor, memory: STMMemory) -> None:
        """Add `frame` (B,3,H,W) and per-object soft masks (B,K,H,W) to `memory`; objects beyond those
        memory holds join it, with empty masks in the frames memorized before."""
        check_masks(frame, masks, memory.num_objects)
        x = pad_to_multiple(frame, self.memory_stride)  # (B,3,Hp,Wp)
        masks = pad_to_multiple(masks.to(x.dtype), self.memory_stride)  # (B,K,Hp,Wp)
        features = memory.query_features(frame, self._cache_signature())
        if features is None:
            features = self.key_encoder(x)[-1]  # (B,c,h,w) at the memory stride
        num_objects = masks.shape[1]
        if num_objects > memory.num_objects and memory.frames:
            joining = num_objects - memory.num_objects
            for old in memory.frames:
                empty = old.mask_sum.new_zeros(old.mask_sum.shape[0], joining, *old.mask_sum.shape[2:])
                others = old.mask_sum.expand_as(empty)  # every object there before is "another object"
                new_values = self._encode_values(old.frame, old.features, empty, others)
                old.values = torch.cat([old.values, new_values], dim=1)
        # the first frame carries the given masks of the first objects, a frame where objects join theirs
        given = not memory.frames or num_objects > memory.num_objects
        mask_sum = masks.sum(dim=1, keepdim=True)  # (B,1,Hp,Wp)
        values = self._encode_values(x, features, masks, mask_sum - masks)  # (B,K,Cv,h,w)
        memory.frames.append(MemoryFrame(x, features, mask_sum, self.key_proj(features), values, given))
        memory.num_objects = num_objects
        if self.max_memory_frames is not None and len(memory.frames) > self.max_memory_frames:
            self._evict(memory)

    @staticmethod
    def _evict(memory: STMMemory) -> None:
        """Drop the oldest frame of predicted masks, never a given one nor the newest frame; with none to
        drop, memory stays over its bound."""
        # an object that joins mid-video has one given mask: evicting it would leave only predictions of
        # predictions of it, and the newest frame is what the next one looks most like
        for index, frame in enumerate(memory.frames[:-1]):
            if not frame.given:
                del memory.frames[index]
                return

    def _encode_values(self, x: torch.Tensor, features: torch.Tensor, masks: torch.Tensor,
                       others: torch.Tensor) -> torch.Tensor:
        """Frame (B,3,Hp,Wp), its key features (B,c,h,w), K masks and other-object masks (B,K,Hp,Wp)
        -> values (B,K,Cv,h,w)."""
        batch, num_objects = masks.shape[:2]
        inputs = torch.cat([per_object(x, num_objects), masks.flatten(0, 1).unsqueeze(1),
                            others.flatten(0, 1).unsqueeze(1)], dim=1)  # (B*K,5,Hp,Wp)
        encoded = self.value_encoder(inputs)[-1]  # (B*K,cv,h,w)
        fused = torch.cat([encoded, per_object(features, num_objects)], dim=1)  # (B*K,cv+c,h,w)
        values = self.value_fuse(fused)  # (B*K,Cv,h,w)
        return values.view(batch, num_objects, *values.shape[1:])

    def _cache_signature(self) -> tuple:
        # features computed without gradients (or in another mode) must not be reused where they are needed
        return torch.is_grad_enabled(), self.training
