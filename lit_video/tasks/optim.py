"""Optimizers and learning-rate schedules of every task: one config, decoupled weight decay that spares
biases and norm scales, and a per-step warm-up followed by a cosine (or constant) schedule."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import lightning as L
import torch
from torch import nn

from lit_video.errors import LitVideoError
from lit_video.tasks.checks import check_number


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


def as_optimizer_config(config: OptimizerConfig | dict | None) -> OptimizerConfig | None:
    """`config` checked (a dict, as a checkpoint's hyperparameters hold it, becomes an OptimizerConfig).

    Raises:
        LitVideoError: an unknown field, name or schedule, or a value out of range (naming
            `model.init_args.optimizer.<field>`).
    """

    if config is None:
        return None
    where = "model.init_args.optimizer"
    if isinstance(config, dict):
        fields = {field.name for field in dataclasses.fields(OptimizerConfig)}
        unknown = sorted(set(map(str, config)) - fields)
        if unknown:
            raise LitVideoError(f"{where}: unknown field '{unknown[0]}'; fields: {', '.join(sorted(fields))}")
        config = OptimizerConfig(**config)
    if not isinstance(config, OptimizerConfig):
        raise LitVideoError(f"{where} must be an OptimizerConfig or a dict of its fields, got {config!r}")
    for field, choices in (("name", ("adamw", "sgd")), ("schedule", ("cosine", "constant"))):
        if getattr(config, field) not in choices:
            raise LitVideoError(f"{where}.{field} must be one of {', '.join(choices)}, got {getattr(config, field)!r}")
    check_number("optimizer.lr", config.lr, 0, low_open=True)
    check_number("optimizer.weight_decay", config.weight_decay, 0)
    check_number("optimizer.momentum", config.momentum, 0, 1, high_open=True)
    check_number("optimizer.warmup_epochs", config.warmup_epochs, 0)
    return config


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
    # The schedule's length is read at every step, not fixed here: a compute budget sets `max_steps` once the
    # first steps have been measured, and a micro-batch search changes the batches per epoch, both after
    # this runs (see `lit_video.run_cost`, `lit_video.micro_batch`).
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, *_warmup_and_total_steps(trainer, config.warmup_epochs), config.schedule)
    )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _warmup_and_total_steps(trainer: L.Trainer, warmup_epochs: float) -> tuple[int, int]:
    """(warm-up steps, total optimizer steps) of the fit as the trainer is now configured."""
    total = trainer.estimated_stepping_batches
    total_steps = max(int(total), 1) if math.isfinite(total) else 2**62  # no end given: the cosine stays at its top
    batches = getattr(trainer, "num_training_batches", None)  # known once the training loader is set up
    if isinstance(batches, int | float) and math.isfinite(batches) and batches > 0:
        steps_per_epoch = max(math.ceil(batches / max(getattr(trainer, "accumulate_grad_batches", 1), 1)), 1)
    else:
        steps_per_epoch = max(total_steps / max(trainer.max_epochs or 1, 1), 1.0)
    return int(warmup_epochs * steps_per_epoch), total_steps
