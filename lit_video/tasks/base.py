"""What every task shares, so that a task module holds only its own logic.

`VideoTask` owns the hyperparameters, the example input, the training-loss check, the monitored best
validation metric, the predictions path, per-video outputs gathered across ranks, the optimizer and its
schedule, and one evaluation step for validation and test. It also keeps the compute profile's network
out of the module tree: a task's `state_dict` holds each weight once, and `forward` is inference.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.model_helpers import _restricted_classmethod
from torch import nn
from torchmetrics import MaxMetric

from lit_video.tasks.checks import check_clip_size
from lit_video.tasks.optim import (
    OptimizerConfig,
    as_optimizer_config,
    optimizer_and_schedule,
    weight_decay_groups,
)
from lit_video.video.flow import MODALITY_CHANNELS, check_modality

# Checkpoints written while VOS, VIS and captioning registered their compute-profile wrapper as a submodule
# hold every weight a second time under this prefix.
LEGACY_PROFILE_PREFIX = "profiled_network."


def gather_from_ranks(payload: Any) -> list[Any]:
    """Every rank's `payload` (picklable), in rank order; `[payload]` outside distributed runs."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        parts = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(parts, payload)
        return parts
    return [payload]


class VideoTask(L.LightningModule):
    """Base of the task LightningModules.

    A task names, as keywords of its class statement, `monitor` (the validation metric whose best value is
    logged as `val/<monitor>_best`, the sweeps' usual objective), `monitor_note` (how the end-of-fit line
    describes it) and `predictions` (the file or folder `predict` writes in the log folder by default):

        class VideoClassifier(VideoTask, monitor="acc_video", predictions="predictions.jsonl", ...):

    Its `__init__` passes the arguments below to this one, then builds its `model` (with
    `lit_video.models.registry.build_task_model`). It implements `training_step` (ending in
    `log_training_loss`), `evaluation_step`, `evaluation_epoch_end` and `predict_step`; a task whose
    model is not a clip -> (B, K) network also overrides `compute_network`.

    Args:
        model: the task's `model` argument (left out of the hyperparameters when it is a ready module).
        clip_len, resolution: the clip size of the example input (B, C, T, H, W) that the compute
            profile and the model summary run.
        optimizer: optimizer and schedule.
        predictions_path: where `predict` writes; None = `default_predictions` in the trainer's log folder.
        modality: what the clips' channels hold (rgb: 3, flow: 2, rgb+flow: 5), linked from the DataModule;
            sets the example input's channels. A task that takes it passes it to `build_task_model`.
    """

    monitor: str = ""
    monitor_note: str = ""
    default_predictions: str = "predictions"
    # Evaluation goes through each video frame by frame (VOS, VIS): the compute record then also gives the
    # evaluation's seconds per frame, the speed column of those benchmarks' tables.
    frame_level_evaluation: bool = False

    def __init_subclass__(cls, monitor: str | None = None, monitor_note: str | None = None,
                          predictions: str | None = None, frame_level_evaluation: bool | None = None, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        for name, value in (("monitor", monitor), ("monitor_note", monitor_note),
                            ("default_predictions", predictions), ("frame_level_evaluation", frame_level_evaluation)):
            if value is not None:
                setattr(cls, name, value)

    def __init__(
        self,
        model: Any,
        clip_len: int,
        resolution: int | list[int],
        optimizer: OptimizerConfig | None,
        predictions_path: str | None,
        modality: str = "rgb",
    ):
        check_clip_size(clip_len, resolution)
        check_modality(modality, "model.init_args.modality")
        optimizer = as_optimizer_config(optimizer)
        super().__init__()
        # The hyperparameters are the arguments of the task's own __init__ (the frame that called this one),
        # so that `load_from_checkpoint` rebuilds the task from them. Where predictions go is the choice of
        # the run that writes them, not a property of the trained model: kept out of the checkpoint, so that
        # `predict --ckpt_path X --model.init_args.predictions_path P` writes to P (LightningCLI lets a
        # checkpoint's hyperparameters override the command line).
        frame = inspect.currentframe()
        caller = frame.f_back if type(self).__init__ is not VideoTask.__init__ else frame
        ignore = ["predictions_path", *(["model"] if isinstance(model, nn.Module) else [])]
        self.save_hyperparameters(ignore=ignore, frame=caller)
        self.optimizer_config = optimizer or OptimizerConfig()
        self.predictions_path = predictions_path
        height, width = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
        self.modality = modality
        channels = MODALITY_CHANNELS[modality]
        self.example_input_array = torch.zeros(1, channels, clip_len, height, width)  # (B, C, T, H, W)
        self.val_best = MaxMetric()
        # this rank's per-video outputs of the running evaluation or prediction epoch, by video id
        self.video_outputs: dict[Any, Any] = {}

    def compute_network(self) -> nn.Module:
        """The clip (B, C, T, H, W) -> (B, K) network whose cost the compute profile measures: `model`
        here. Tasks whose model is not such a network return a new wrapper around it, never a registered
        submodule, so that each weight appears once in `state_dict`."""
        return self.model

    # ---------------------------------------------------------------- training
    def log_training_loss(self, loss: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Logs `train/loss` and returns it; a non-finite loss stops the run at the step that produced it."""
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss.item()} at step {self.global_step}")
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        return loss

    def configure_optimizers(self):
        groups = weight_decay_groups(self, self.optimizer_config.weight_decay)  # no decay on biases / norms
        return optimizer_and_schedule(self.optimizer_config, groups, self.trainer)

    # -------------------------------------------------------------- evaluation
    def evaluation_step(self, batch: dict, stage: str) -> None:
        """One validation or test batch; `stage` is "val" or "test"."""
        raise NotImplementedError

    def evaluation_epoch_end(self, stage: str) -> dict[str, Any] | None:
        """Logs the epoch's `<stage>/*` metrics and returns them by name (None when none were computed)."""
        return None

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.evaluation_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self.evaluation_step(batch, "test")

    def on_validation_epoch_start(self) -> None:
        self.video_outputs = {}

    on_test_epoch_start = on_validation_epoch_start
    on_predict_epoch_start = on_validation_epoch_start

    def on_validation_epoch_end(self) -> None:
        values = self.evaluation_epoch_end("val")
        if values is None or not self.monitor or self.trainer.sanity_checking:
            return
        value = torch.as_tensor(values[self.monitor])
        if torch.isnan(value):
            return
        self.val_best(value)
        self.log(f"val/{self.monitor}_best", self.val_best.compute(), prog_bar=True)

    def on_test_epoch_end(self) -> None:
        self.evaluation_epoch_end("test")

    def on_fit_end(self) -> None:
        if self.val_best.update_called:
            rank_zero_info(f"best val/{self.monitor}: {self.val_best.compute():.3f} {self.monitor_note}")

    def gathered_outputs(self) -> dict[Any, Any]:
        """Every rank's `video_outputs`, each video once (a distributed sampler repeats videos to even out the
        ranks), in rank order; this rank's are cleared."""
        mine, self.video_outputs = self.video_outputs, {}
        merged: dict[Any, Any] = {}
        for part in gather_from_ranks(mine):
            for video_id, output in part.items():
                merged.setdefault(video_id, output)
        return merged

    # ------------------------------------------------------------- prediction
    def predictions_location(self) -> str:
        """`predictions_path`, else `default_predictions` in the trainer's log folder."""
        return self.predictions_path or os.path.join(self.trainer.log_dir or ".", self.default_predictions)

    def predictions_file(self) -> str:
        """`predictions_location()`, with its folder created."""
        path = self.predictions_location()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return path

    # ------------------------------------------------------------ checkpoints
    @_restricted_classmethod
    def load_from_checkpoint(cls, checkpoint_path, map_location=None, hparams_file=None, strict=None,
                             weights_only: bool | None = True, **kwargs: Any):
        """Lightning's `load_from_checkpoint`, reading the checkpoint as data (`weights_only=True`) unless the
        caller passes `weights_only=False` for a file it trusts: Lightning would run code pickled in a
        checkpoint given by URL."""
        return super().load_from_checkpoint(checkpoint_path, map_location=map_location, hparams_file=hparams_file,
                                            strict=strict, weights_only=True if weights_only is None else weights_only,
                                            **kwargs)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Older checkpoints of VOS, VIS and captioning stored the model twice; its `model.*` copy is the one.
        state = checkpoint.get("state_dict") or {}
        for key in [key for key in state if key.startswith(LEGACY_PROFILE_PREFIX)]:
            del state[key]
