"""Optimizers and learning-rate schedules of every task: one config, decoupled weight decay that spares
biases and norm scales, and a per-step warm-up followed by a cosine (or constant) schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import lightning as L
import torch
from torch import nn


@dataclass
class OptimizerConfig:
    """Optimizer and learning-rate schedule.

    Args:
        name: "adamw" or "sgd" (SGD uses Nesterov momentum).
        lr: peak learning rate.
        weight_decay: decoupled (AdamW) or L2 (SGD) weight decay; not applied to biases and norms.
        momentum: SGD momentum.
        warmup_epochs: linear warm-up from lr/100, in (fractional) epochs.
        schedule: "cosine" (to zero at the last step) or "constant" after the warm-up.
    """

    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.05
    momentum: float = 0.9
    warmup_epochs: float = 0.0
    schedule: Literal["cosine", "constant"] = "cosine"


def lr_factor(step: int, warmup_steps: int, total_steps: int, schedule: str = "cosine") -> float:
    """Learning-rate multiplier: linear warm-up from 1/100, then cosine to zero (or constant)."""
    if step < warmup_steps:
        return 0.01 + 0.99 * step / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def weight_decay_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """The trainable parameters of `module` in two optimizer groups: decayed, and biases / norm scales
    (1-d parameters), which most recipes do not decay."""
    decay, no_decay = [], []
    for parameter in module.parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim <= 1 else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def optimizer_and_schedule(config: OptimizerConfig, groups: list[dict], trainer: L.Trainer) -> dict:
    """The optimizer of `config` over parameter `groups` (each with its weight_decay) and its per-step
    warm-up + cosine / constant schedule, as `configure_optimizers` returns them."""
    if config.name == "sgd":
        optimizer = torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0)
    else:
        optimizer = torch.optim.AdamW(groups, lr=config.lr)
    total_steps = max(int(trainer.estimated_stepping_batches), 1)
    steps_per_epoch = max(total_steps / max(trainer.max_epochs or 1, 1), 1.0)
    warmup_steps = int(config.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup_steps, total_steps, config.schedule)
    )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
