"""What a model costs at a clip size: parameters, FLOPs, peak memory, training and inference clips/s.

FLOPs come from Lightning's `measure_flops` (PyTorch's FlopCounterMode), which counts a
multiply-add as 2 FLOPs. torchvision and most papers publish MACs (multiply-adds) under the name
"GFLOPs": the profile reports both, `gflops = 2 x gmacs`, per clip, forward pass only.

This is a probe on synthetic clips (`lit-video profile`); what a real fit costs is measured as it trains
by `lit_video.run_cost`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from lightning.fabric.utilities.throughput import measure_flops
from torch import nn


@dataclass
class ComputeProfile:
    """One model at one clip size.

    Args:
        clip_len, height, width: the clip.
        params: parameters (all), trainable_params: those with requires_grad.
        gflops: forward FLOPs per clip (1e9), counting a multiply-add as 2.
        gmacs: forward multiply-adds per clip (1e9), the figure torchvision and papers publish.
        peak_memory_mb: peak memory of one training step at `batch_size`: measured on CUDA; on the CPU
            the sum of weights, gradients, AdamW state, the batch and the activations saved for backward.
        memory_source: "cuda" or "estimate".
        train_clips_per_s: forward + backward + optimizer step throughput.
        infer_clips_per_s: forward throughput without gradients.
        batch_size, device: where and how throughput was measured.
    """

    clip_len: int
    height: int
    width: int
    params: int
    trainable_params: int
    gflops: float
    gmacs: float
    peak_memory_mb: float
    memory_source: str
    train_clips_per_s: float
    infer_clips_per_s: float
    batch_size: int
    device: str

    def as_metrics(self, prefix: str = "compute/") -> dict[str, float]:
        return {f"{prefix}{k}": v for k, v in asdict(self).items() if isinstance(v, int | float)}


def resolve_device(name: str | None, what: str = "device") -> torch.device:
    """The device called `name` (cpu, cuda, cuda:1, mps, ...), checked to exist and work here.

    Args:
        name: a torch device string; None picks cuda when a GPU is available, else cpu.
        what: how to call the setting in an error (e.g. "--device").

    Raises:
        LitVideoError: not a device name, a GPU that is not there, or a device that cannot hold a tensor.
    """
    from lit_video.errors import LitVideoError

    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise LitVideoError(f"{what} {name!r}: not a device (expected cpu, cuda, cuda:N or mps)") from None
    if device.type == "meta":
        raise LitVideoError(f"{what} {name!r}: the meta device holds no data to measure (use cpu or cuda)")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise LitVideoError(f"{what} {name!r}: no CUDA GPU is available here (use --device cpu)")
        if device.index is not None and device.index >= count:
            raise LitVideoError(f"{what} {name!r}: there are {count} CUDA GPUs here (cuda:0..cuda:{count - 1})")
    try:
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError) as err:
        # backends missing from this build explain at length: their first sentence says it
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0].split(". ")[0]
        raise LitVideoError(f"{what} {name!r}: cannot be used here: {reason}") from None
    return device


def count_flops(model: nn.Module, clip: torch.Tensor) -> int:
    """Forward FLOPs of `model` on `clip` (B, C, T, H, W); counted on the meta device when the model
    allows it (no computation, no memory), on a copy of the clip's device otherwise."""
    try:
        meta_model = copy.deepcopy(model).to("meta")
        meta_clip = clip.to("meta")
        return int(measure_flops(meta_model, lambda: meta_model(meta_clip)))
    except (NotImplementedError, RuntimeError):
        with torch.no_grad():
            return int(measure_flops(model, lambda: model(clip)))


def _saved_activation_bytes(model: nn.Module, clip: torch.Tensor) -> int:
    """Bytes of the tensors autograd keeps for backward in one forward pass (each storage once)."""
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor):
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(clip).float().sum().backward()
    model.zero_grad(set_to_none=True)
    return sum(seen.values())


def _timed(step, repeats: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / repeats


def profile_model(
    model: nn.Module,
    clip_len: int,
    resolution: int | tuple[int, int],
    num_classes: int | None = None,
    batch_size: int = 2,
    steps: int = 3,
    warmup: int = 1,
    device: str | torch.device | None = None,
    channels: int = 3,
) -> ComputeProfile:
    """Measure `model` at one clip size. The timing trains it for a few steps with a tiny learning
    rate: pass a copy when its weights matter.

    Args:
        model: takes (B, channels, T, H, W), returns (B, num_classes).
        clip_len: frames per clip.
        resolution: crop size, int or (height, width).
        num_classes: output classes (read from one forward pass when None).
        batch_size: clips per timed step.
        steps, warmup: timed and untimed steps for each throughput figure; steps=0 counts parameters
            and FLOPs only (throughput and memory are NaN).
        device: where to measure; the model's own device when None.
        channels: input channels of a clip: 3 for RGB, 2 for optical flow, 5 for both.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(device)
    height, width = (resolution, resolution) if isinstance(resolution, int) else resolution
    clip = torch.randn(1, channels, clip_len, height, width, device=device)  # (1, C, T, H, W)
    batch = torch.randn(batch_size, channels, clip_len, height, width, device=device)
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    model.eval()
    flops = count_flops(model, clip)
    if steps <= 0:
        nan = float("nan")
        return ComputeProfile(clip_len, height, width, params, trainable, flops / 1e9, flops / 2e9, nan, "none",
                              nan, nan, batch_size, str(device))
    with torch.inference_mode():
        num_classes = num_classes or model(clip).shape[-1]
        infer_seconds = _timed(lambda: model(batch), steps, warmup, device)

    model.train()
    labels = torch.randint(0, num_classes, (batch_size,), device=device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)

    def train_step():
        loss = F.cross_entropy(model(batch).float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train_seconds = _timed(train_step, steps, warmup, device)
    if device.type == "cuda":
        peak, source = torch.cuda.max_memory_allocated(device), "cuda"
    else:
        weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        # weights + gradients + AdamW's two moments, the batch, and the activations kept for backward
        peak = 4 * weight_bytes + batch.numel() * batch.element_size() + _saved_activation_bytes(model, batch)
        source = "estimate"
    return ComputeProfile(
        clip_len=clip_len, height=height, width=width, params=params, trainable_params=trainable,
        gflops=flops / 1e9, gmacs=flops / 2e9, peak_memory_mb=peak / 2**20, memory_source=source,
        train_clips_per_s=batch_size / train_seconds, infer_clips_per_s=batch_size / infer_seconds,
        batch_size=batch_size, device=str(device),
    )


def profiled_network(task: nn.Module) -> nn.Module:
    """What to profile of a task: the clip -> (B, K) network its `compute_network()` builds (the VOS, VIS
    and captioning models are not clip -> output networks; each of these tasks wraps its model in one, on
    demand, so the wrapper is never part of the task's `state_dict`), else its `model`, else the task."""
    build = getattr(task, "compute_network", None)
    return build() if callable(build) else getattr(task, "model", task)
