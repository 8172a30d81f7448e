"""What every task shares, so that a task module holds only its own logic.

`VideoTask` owns the hyperparameters, the example input, the training-loss check, the monitored best
validation metric, the predictions path, per-video outputs gathered across ranks, the optimizer and its
schedule, and one evaluation step for validation and test. It also keeps the compute profile's network
out of the module tree: a task's `state_dict` holds each weight once, and `forward` is inference.

What an evaluation epoch found video by video (`EvaluatedVideos`: per-video scores, and the frames and
predictions of a few seeded videos) is kept for `lit_video.validation_media.ValidationMedia`, which logs it
to W&B: tasks call `keep_media` in `evaluation_step` and `report_videos` in
`evaluation_epoch_end`; both do nothing unless that callback asked for media (`media_videos`).
"""

from __future__ import annotations

import hashlib
import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import numpy as np
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
from lit_video.video.transforms import rgb_as_255

# Logged media are at most this many pixels wide or high (480p DAVIS frames become 270x480): a few chosen videos
# are kept in memory through an evaluation epoch, and their overlays stay quick to draw, encode and load
MEDIA_MAX_SIDE = 480

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


def media_rank(video_id: Any, seed: int) -> int:
    """A video's place in the seeded order that chooses the videos whose media are logged: a hash of the seed
    and the id, the same in every process and on every rank (Python's `hash` of a string is not)."""
    digest = hashlib.blake2b(f"{seed}/{video_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def clip_frames(video: torch.Tensor, modality: str = "rgb") -> np.ndarray:
    """A clip as the model saw it, back to pictures: (C,T,h,w) normalized (or uint8) -> uint8 (T,h',w',3) RGB,
    shrunk to at most MEDIA_MAX_SIDE pixels wide and high (aspect kept).

    A flow-only clip has no RGB channels: its frames are mid-grey (masks and text stay readable on them)."""
    height, width = video.shape[-2:]
    scale = min(1.0, MEDIA_MAX_SIDE / max(height, width))
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    if modality == "flow":
        return np.full((video.shape[1], *size, 3), 128, np.uint8)
    rgb = rgb_as_255(video[:3].float())  # (3,T,h,w) in [0, 255]
    if scale < 1:
        rgb = torch.nn.functional.interpolate(rgb.transpose(0, 1), size=size, mode="bilinear", antialias=True)
        rgb = rgb.transpose(0, 1)  # (3,T,h',w')
    return rgb.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 3, 0).cpu().numpy()


def label_maps(labels: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Integer label maps (T,H,W), ids 0..255, resized to `size` (h, w) by nearest neighbour -> uint8 (T,h,w)."""
    if tuple(labels.shape[-2:]) != tuple(size):
        labels = torch.nn.functional.interpolate(labels[None].float(), size=tuple(size), mode="nearest-exact")[0]
    return labels.to(torch.uint8).cpu().numpy()


@dataclass
class EvaluatedVideos:
    """What an evaluation epoch found video by video, kept on the task (`VideoTask.evaluated_videos`) for the
    callback that logs it (`lit_video.validation_media.ValidationMedia`).

    Attributes:
        stage: "val" or "test".
        rows: every evaluated video's results, by video id: {column: value} (scores, captions, classes).
        media: the chosen videos' media, by video id, in their seeded order (see `VideoTask.keep_media`).
        class_names: classification: the name of each class index; its rows hold "label" and "predicted".
    """

    stage: str
    rows: dict[Any, dict[str, Any]]
    media: dict[Any, dict[str, Any]] = field(default_factory=dict)
    class_names: list[str] | None = None


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
        # How many videos' frames and predictions an evaluation epoch keeps, and the seed that chooses them:
        # set by the ValidationMedia callback (0: no media, no per-video report).
        self.media_videos = 0
        self.media_seed = 0
        self._media_candidates: dict[Any, tuple[int, dict[str, Any]]] = {}  # this rank's: id -> (rank, media)
        self.evaluated_videos: EvaluatedVideos | None = None

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
        self._media_candidates = {}
        self.evaluated_videos = None

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

    # ------------------------------------------------------------------ media
    @property
    def media_wanted(self) -> bool:
        """Whether this evaluation epoch keeps media and reports its videos: a callback asked for media, and a
        validation or test epoch runs (not the sanity check, not `predict`)."""
        if self.media_videos <= 0 or self._trainer is None:
            return False
        trainer = self.trainer
        return (trainer.validating or trainer.testing) and not trainer.sanity_checking

    def keep_media(self, video_id: Any, media: Callable[[], dict[str, Any]]) -> None:
        """Keep a video's media when it is one of the epoch's chosen videos; `media` runs only then.

        The chosen videos are the `media_videos` evaluated videos of smallest `media_rank(id, media_seed)`: the
        same videos every epoch and in every run of the same data and seed, whatever order or rank evaluates
        them (each rank keeps its smallest ranks so far; `report_videos` merges the ranks').

        Args:
            video_id: the id `report_videos` rows use.
            media: returns {"frames": uint8 (T,H,W,3), "fps": float} and, for an overlay, "predicted" (and
                "truth") uint8 (T,H,W) label maps with their texts "predicted_names" ("truth_names"), {id: text}.
        """
        if not self.media_wanted:
            return
        rank = media_rank(video_id, self.media_seed)
        kept = self._media_candidates
        if video_id not in kept and len(kept) >= self.media_videos:
            last = max(kept, key=lambda known: kept[known][0])
            if rank >= kept[last][0]:
                return
            del kept[last]
        kept[video_id] = (rank, media())

    def overlay_media(self, video: torch.Tensor, predicted: torch.Tensor, truth: torch.Tensor | None, fps: float,
                      predicted_names: Mapping[int, str] | None = None, truth_names: Mapping[int, str] | None = None,
                      object_ids: torch.Tensor | None = None) -> dict[str, Any]:
        """The media of a segmented video for `keep_media`: the frames the model saw (`clip_frames`) with the
        predicted (and true) label maps at their size.

        Args:
            video: (C,T,h,w) normalized frames.
            predicted, truth: (T,H,W) integer label maps (0 background, 1..254 ids drawn in their palette
                colour, 255 void), at any size.
            fps: frame rate of the video.
            predicted_names, truth_names: the text drawn by each id (default: the id).
            object_ids: (K,) the ids labels 1..K of both maps are drawn as (the dataset's object ids, whose
                palette colours its masks have); None: the labels are the ids.
        """
        frames = clip_frames(video, self.modality)  # (T,h,w,3)
        size = frames.shape[1:3]
        drawn_as = np.arange(256, dtype=np.uint8)  # label -> id, applied to the resized maps (fewer pixels)
        if object_ids is not None:
            drawn_as[1:len(object_ids) + 1] = object_ids.cpu().numpy()
        return {"frames": frames, "fps": fps, "predicted": drawn_as[label_maps(predicted, size)],
                "predicted_names": dict(predicted_names or {}),
                "truth": None if truth is None else drawn_as[label_maps(truth, size)],
                "truth_names": dict(truth_names or {})}

    def report_videos(self, stage: str, rows: dict[Any, dict[str, Any]], class_names: list[str] | None = None) -> None:
        """Keep the epoch's per-video results and the chosen videos' media as `evaluated_videos` (when media are
        wanted). Called by every rank from `evaluation_epoch_end`, with every rank's rows.

        Args:
            stage: "val" or "test".
            rows: every evaluated video's results, by the ids `keep_media` was given.
            class_names: classification: the class names, rows holding "label" and "predicted" indices.
        """
        if not self.media_wanted:
            return
        mine, self._media_candidates = self._media_candidates, {}
        ranks: dict[Any, int] = {}
        for part in gather_from_ranks({video_id: rank for video_id, (rank, _) in mine.items()}):
            ranks.update(part)
        chosen = sorted(ranks, key=lambda video_id: (ranks[video_id], str(video_id)))[: self.media_videos]
        media: dict[Any, dict[str, Any]] = {}
        for part in gather_from_ranks({video_id: mine[video_id][1] for video_id in chosen if video_id in mine}):
            media.update(part)
        self.evaluated_videos = EvaluatedVideos(stage, rows, {video_id: media[video_id] for video_id in chosen},
                                                class_names)

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
