"""Video classification: clip-level training, clip- and video-level evaluation.

Training sees one random clip per video. Evaluation batches carry every view of a video (num_clips x
crops), so the video-level prediction is the softmax averaged over its views, as papers report it;
both accuracies are logged and `val/acc_video_best` is the sweep objective.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from lit_video.data import keys
from lit_video.models.registry import build_task_model
from lit_video.tasks.base import VideoTask
from lit_video.tasks.checks import check_number
from lit_video.tasks.optim import OptimizerConfig

ModelFactory = Callable[[int], nn.Module]


def video_level_probabilities(view_logits: torch.Tensor) -> torch.Tensor:
    """(B, V, K) per-view logits -> (B, K) class probabilities averaged over the V views."""
    return view_logits.softmax(dim=-1).mean(dim=1)


class VideoClassifier(VideoTask, monitor="acc_video", predictions="predictions.jsonl",
                      monitor_note="(softmax averaged over each video's views)"):
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
        modality: rgb, flow or rgb+flow, linked from the DataModule; given to models that take it.
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
        modality: str = "rgb",
    ):
        check_number("num_classes", num_classes, 2, integer=True)  # linked from the DataModule
        check_number("label_smoothing", label_smoothing, 0, 1, high_open=True)
        super().__init__(model, clip_len, resolution, optimizer, predictions_path, modality)
        self.model = build_task_model(model, "classification", model_kwargs, num_classes=num_classes,
                                      clip_len=clip_len, resolution=resolution, modality=modality)
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing

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

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> logits (B, num_classes)."""
        return self.model(video)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits = self(batch[keys.VIDEO])  # (B, K)
        labels = batch[keys.LABEL]
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        self.log_training_loss(loss, len(labels))
        self.train_acc(logits, labels)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, batch_size=len(labels))
        return loss

    def evaluation_step(self, batch: dict, stage: str) -> None:
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
        if self.media_wanted:  # each video's class, for the confusion matrix of the epoch
            confidence, predicted = probabilities.float().max(dim=1)  # (B,), (B,)
            self.video_outputs.update(
                (video_id, {"label": label, "predicted": guess, "probability": p}) for video_id, label, guess, p
                in zip(batch[keys.VIDEO_ID], labels.tolist(), predicted.tolist(), confidence.tolist(), strict=True))

    def evaluation_epoch_end(self, stage: str) -> dict[str, torch.Tensor]:
        # Computed here rather than logged as Metric objects: the best-so-far value needs this epoch's
        # video accuracy before Lightning would reset it. compute() syncs across DDP ranks.
        values = {name: metric.compute() for name, metric in self.eval_metrics[stage].items()}
        for metric in self.eval_metrics[stage].values():
            metric.reset()
        for name, value in values.items():
            self.log(f"{stage}/{name}", value, prog_bar=name == "acc_video")
        if self.media_wanted:
            datamodule = getattr(self.trainer, "datamodule", None)
            names = list(getattr(datamodule, "classes", None) or range(self.num_classes))
            self.report_videos(stage, self.gathered_outputs(), class_names=[str(name) for name in names])
        return values

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
        self.video_outputs.update((row["video_id"], row) for row in rows)
        return rows

    def on_predict_epoch_end(self) -> None:
        path = self.predictions_file()
        if self.trainer.world_size > 1:  # every rank writes the videos it predicted
            root, extension = os.path.splitext(path)
            path = f"{root}.rank{self.global_rank}{extension}"
        with open(path, "w") as file:
            file.writelines(json.dumps(row) + "\n" for row in self.video_outputs.values())
        self.video_outputs = {}
        self.print(f"wrote per-video class scores to {path}")
