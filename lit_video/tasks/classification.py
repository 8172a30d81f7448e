"""Video classification: clip-level training, clip- and video-level evaluation.

Training sees one random clip per video. Evaluation batches carry every view of a video (num_clips x
crops), so the video-level prediction is the softmax averaged over its views, as papers report it;
both accuracies are logged and `val/acc_video_best` is the sweep objective.
"""

from __future__ import annotations

import inspect
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from lit_video.data import keys
from lit_video.errors import LitVideoError

ModelFactory = Callable[[int], nn.Module]


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


def video_level_probabilities(view_logits: torch.Tensor) -> torch.Tensor:
    """(B, V, K) per-view logits -> (B, K) class probabilities averaged over the V views."""
    return view_logits.softmax(dim=-1).mean(dim=1)


class VideoClassifier(L.LightningModule):
    """Cross-entropy classification of clips.

    Args:
        model: a registry name (see `lit_video.models.list_models()`), or a callable that takes
            num_classes and returns an nn.Module (a model class, from a config's class_path), or a
            ready nn.Module. Models take (B, C, T, H, W) and return (B, num_classes).
        model_kwargs: keyword arguments for a registry name.
        num_classes: classes; linked from the DataModule by the CLI.
        clip_len: frames per clip; linked from the DataModule (used for the example input).
        resolution: crop size; linked from the DataModule.
        label_smoothing: cross-entropy label smoothing.
        optimizer: optimizer and schedule.
        predictions_path: where `predict` writes per-video class scores (JSON lines); default
            `predictions.jsonl` in the trainer's log folder.
    """

    def __init__(
        self,
        model: str | ModelFactory = "r2plus1d_18",
        model_kwargs: dict[str, Any] | None = None,
        num_classes: int = 2,
        clip_len: int = 8,
        resolution: int | list[int] = 112,
        label_smoothing: float = 0.0,
        optimizer: OptimizerConfig | None = None,
        predictions_path: str | None = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["model"] if isinstance(model, nn.Module) else None)
        self.model = build_model(model, num_classes, model_kwargs or {}, clip_len=clip_len, resolution=resolution)
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.optimizer_config = optimizer or OptimizerConfig()
        self.predictions_path = predictions_path
        height, width = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
        self.example_input_array = torch.zeros(1, 3, clip_len, height, width)  # (B, C, T, H, W)

        top5 = min(5, num_classes)
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.eval_metrics = nn.ModuleDict()
        for stage in ("val", "test"):
            self.eval_metrics[stage] = nn.ModuleDict({
                "acc_clip": MulticlassAccuracy(num_classes, average="micro"),
                "acc_video": MulticlassAccuracy(num_classes, average="micro"),
                f"acc_video_top{top5}": MulticlassAccuracy(num_classes, top_k=top5, average="micro"),
                "loss": MeanMetric(),
            })
        self.val_acc_video_best = MaxMetric()
        self._predictions: list[dict] = []

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> logits (B, num_classes)."""
        return self.model(video)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits = self(batch[keys.VIDEO])  # (B, K)
        labels = batch[keys.LABEL]
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss.item()} at step {self.global_step}")
        self.train_acc(logits, labels)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(labels))
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, batch_size=len(labels))
        return loss

    def _eval_step(self, batch: dict, stage: str) -> torch.Tensor:
        video, labels = batch[keys.VIDEO], batch[keys.LABEL]  # (B, V, C, T, H, W), (B,)
        num_views = video.shape[1]
        view_logits = self(video.flatten(0, 1)).unflatten(0, (-1, num_views))  # (B, V, K)
        metrics = self.eval_metrics[stage]
        view_labels = labels.repeat_interleave(num_views)  # (B*V,)
        metrics["loss"](F.cross_entropy(view_logits.flatten(0, 1), view_labels))
        metrics["acc_clip"](view_logits.flatten(0, 1), view_labels)
        probabilities = video_level_probabilities(view_logits)  # (B, K)
        for name, metric in metrics.items():
            if name.startswith("acc_video"):
                metric(probabilities, labels)
        return probabilities

    def _log_eval_epoch(self, stage: str) -> dict[str, torch.Tensor]:
        # Computed here rather than logged as Metric objects: the best-so-far value needs this epoch's
        # video accuracy before Lightning would reset it. compute() syncs across DDP ranks.
        values = {f"{stage}/{name}": metric.compute() for name, metric in self.eval_metrics[stage].items()}
        for metric in self.eval_metrics[stage].values():
            metric.reset()
        for name, value in values.items():
            self.log(name, value, prog_bar=name.endswith("/acc_video"))
        return values

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        values = self._log_eval_epoch("val")
        if self.trainer.sanity_checking:
            return
        self.val_acc_video_best(values["val/acc_video"])
        self.log("val/acc_video_best", self.val_acc_video_best.compute(), prog_bar=True)

    def on_fit_end(self) -> None:
        if self.val_acc_video_best.update_called:
            rank_zero_info(f"best val/acc_video: {self.val_acc_video_best.compute():.3f} "
                           f"(softmax averaged over each video's views)")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_eval_epoch("test")

    def predict_step(self, batch: dict, batch_idx: int) -> list[dict]:
        video = batch[keys.VIDEO]
        if video.dim() == 5:  # a training-style batch: one view per video
            video = video[:, None]
        num_views = video.shape[1]
        probabilities = video_level_probabilities(self(video.flatten(0, 1)).unflatten(0, (-1, num_views)))
        rows = [
            {"video_id": video_id, "label": int(label), "predicted": int(p.argmax()), "scores": p.tolist()}
            for video_id, label, p in zip(batch[keys.VIDEO_ID], batch[keys.LABEL], probabilities.float().cpu())
        ]
        self._predictions.extend(rows)
        return rows

    def on_predict_epoch_end(self) -> None:
        path = self.predictions_path or os.path.join(self.trainer.log_dir or ".", "predictions.jsonl")
        if self.trainer.world_size > 1:
            root, extension = os.path.splitext(path)
            path = f"{root}.rank{self.global_rank}{extension}"
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as file:
            file.writelines(json.dumps(row) + "\n" for row in self._predictions)
        self._predictions = []
        self.print(f"wrote per-video class scores to {path}")

    def configure_optimizers(self):
        groups = weight_decay_groups(self, self.optimizer_config.weight_decay)
        return optimizer_and_schedule(self.optimizer_config, groups, self.trainer)


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


def build_model(
    model: str | ModelFactory | nn.Module,
    num_classes: int,
    model_kwargs: dict[str, Any] | None = None,
    clip_len: int | None = None,
    resolution: int | list[int] | None = None,
) -> nn.Module:
    """A registry name, a factory taking num_classes, or a module -> the module.

    Architectures built for one clip size (their factory takes `clip_len` / `resolution`, e.g.
    torchvision's MViT) get the DataModule's unless `model_kwargs` sets them."""
    model_kwargs = dict(model_kwargs or {})
    if isinstance(model, nn.Module):
        return model
    if isinstance(model, str):
        from lit_video.models import create_model, model_entry

        accepted = inspect.signature(model_entry(model)).parameters
        for name, value in (("clip_len", clip_len), ("resolution", resolution)):
            if value is not None and name in accepted:
                model_kwargs.setdefault(name, value)
        return create_model(model, num_classes, **model_kwargs)
    if model_kwargs:
        raise LitVideoError("model_kwargs applies to a registry name; put a class's arguments in its init_args")
    return model(num_classes)
