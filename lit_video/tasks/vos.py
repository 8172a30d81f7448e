"""Semi-supervised video object segmentation: each object's first mask is given, the model segments
it through the rest of the video.

Training propagates through a short clip (`clip_len` frames, STM-style): the first frame's ground
truth goes into memory, every later frame is segmented from memory and then memorized with its own
prediction, so the model learns from its own mistakes. Evaluation runs whole videos at full
annotation resolution: objects join when their first mask is given (mid-video in YouTube-VOS), a
frame is memorized every `mem_every` frames, and J&F is computed as davis2017-evaluation does.

The model returns one foreground logit map per object; objects compete for pixels through STM's
soft aggregation (`soft_aggregate`), so a pixel ends up with at most one object.

`task="unsupervised"` gives no mask at all: a zero-shot model (`propose`) decodes slots on every frame, each a
mask and a score; training matches the slots to the clip's objects by Hungarian assignment (`match_slots`,
`unsupervised_loss`), evaluation proposes up to 20 objects per video and scores them with DAVIS's unsupervised
protocol.
"""

from __future__ import annotations

import copy
import inspect
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn
from torchmetrics.aggregation import CatMetric

from lit_video.data import keys
from lit_video.data.masks import VOID
from lit_video.errors import LitVideoError
from lit_video.models.losses import (
    dice_loss,
    pairwise_dice_loss,
    pairwise_sigmoid_bce_loss,
    segmentation_loss,
    sigmoid_bce_loss,
)
from lit_video.models.registry import build_task_model, list_models, model_entry
from lit_video.tasks.base import VideoTask
from lit_video.tasks.checks import check_number
from lit_video.tasks.optim import OptimizerConfig
from lit_video.video.flow import mirror_frames

_EPS = 1e-7
TRAIN_VOID = ("ignore", "background")  # how the training loss reads void pixels
VOS_FPS = 24.0  # frame rate of the logged overlays (DAVIS' own; `lit-video visualize vos` writes at the same)


def soft_aggregate(object_logits: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
    """STM's soft aggregation of independent per-object predictions into one distribution per pixel.

    Each object's foreground probability p_k is a sigmoid; background is prod(1 - p_k); the K+1 odds
    are renormalized with a softmax over their logits (odds ratios).

    Args:
        object_logits: (B,K,H,W) per-object foreground logits.
        present: (B,K) bool; absent (padding) objects get probability 0.

    Returns:
        (B,K+1,H,W) logits whose softmax over dim 1 is the aggregated distribution, background first.
    """
    probabilities = torch.sigmoid(object_logits.float())  # (B,K,H,W)
    if present is not None:
        probabilities = probabilities * present[:, :, None, None].to(probabilities.dtype)
    background = torch.prod(1 - probabilities, dim=1, keepdim=True)  # (B,1,H,W)
    every = torch.cat([background, probabilities], dim=1).clamp(_EPS, 1 - _EPS)  # (B,K+1,H,W)
    logits = torch.log(every / (1 - every))
    if present is not None:  # keep padding objects at exactly zero probability after the softmax
        absent = torch.cat([present.new_zeros(present.shape[0], 1), ~present], dim=1)  # (B,K+1)
        logits = logits.masked_fill(absent[:, :, None, None], float("-inf"))
    return logits


class ClipPropagation(nn.Module):
    """One training-style propagation as a module (B,C,T,H,W) -> (B,2): what the compute profile
    measures. A square in the middle of frame 0 is the given mask; the output pools the aggregated
    logits so the profile's classification loss can back-propagate through the whole propagation.
    Zero-shot (`zero_shot`), the model proposes on every frame instead, as unsupervised training runs it.
    Built on demand by `VideoObjectSegmentation.compute_network`, never a submodule of the task."""

    def __init__(self, model: nn.Module, zero_shot: bool = False):
        super().__init__()
        self.model, self.zero_shot = model, zero_shot

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if self.zero_shot:
            return self._propose(video)
        batch, _, frames, height, width = video.shape
        first = torch.zeros(batch, 1, height, width, device=video.device, dtype=video.dtype)
        first[:, :, height // 4: 3 * height // 4, width // 4: 3 * width // 4] = 1
        memory = self.model.new_memory()
        self.model.memorize(video[:, :, 0], first, memory)
        pooled = []
        for t in range(1, frames):
            logits = soft_aggregate(self.model.segment(video[:, :, t], memory))  # (B,2,H,W)
            self.model.memorize(video[:, :, t], logits.softmax(dim=1)[:, 1:], memory)
            pooled.append(logits.mean(dim=(2, 3)))
        return torch.stack(pooled).mean(dim=0)  # (B,2)

    def _propose(self, video: torch.Tensor) -> torch.Tensor:
        memory = self.model.new_memory()
        pooled = []
        for t in range(video.shape[2]):
            if getattr(self.model, "dense_proposals", False):
                pooled.append(self.model.dense_heads(video[:, :, t], memory)[:, :2].mean(dim=(2, 3)))  # (B,2)
            else:
                logits, scores = self.model.propose(video[:, :, t], memory)  # (B,S,H,W), (B,S)
                pooled.append(torch.stack([logits.mean(dim=(1, 2, 3)), scores.mean(dim=1)], dim=1))  # (B,2)
        return torch.stack(pooled).mean(dim=0)  # (B,2)


class VideoObjectSegmentation(VideoTask, monitor="JF", predictions="predictions", frame_level_evaluation=True,
                              monitor_note="(J&F mean over objects, davis2017-evaluation semantics)"):
    """Semi-supervised VOS with a memory or mask-propagation model.

    Args:
        model: a registry name of a VOS model (`lit_video.models.list_models(task="vos")`), or a ready
            nn.Module with `new_memory`, `segment` and `memorize`.
        model_kwargs: keyword arguments for a registry name.
        clip_len: frames per training clip; linked from the DataModule.
        resolution: training crop; linked from the DataModule (used for the example input).
        mem_every: evaluation memorizes every `mem_every`-th frame (and every frame where an object's
            mask is given).
        dice_weight: weight of the soft-Jaccard loss beside the cross-entropy (unsupervised: of the dice loss of
            each matched slot).
        bootstrap: fraction of hardest pixels kept in the cross-entropy (None = all); semi-supervised only.
        online_steps: OSVOS-style online fine-tuning: this many steps on each evaluated video's given
            masks before segmenting it (a copy of the weights; 0 = off).
        online_lr: learning rate of the online fine-tuning.
        flip_tta: evaluation also segments the mirrored video, with a memory of its own, and averages the
            two passes' logits (test-time augmentation, as XMem's `--flip`): twice the evaluation compute.
        task: "semi-supervised" (each object's first mask is given) or "unsupervised" (no mask is given: a
            zero-shot model proposes up to 20 objects per video; training matches its slots to the clip's
            objects by Hungarian assignment; evaluation is DAVIS's unsupervised protocol). A registry model
            that has a `zero_shot` argument is built with it on for "unsupervised".
        train_void: how the training loss reads void (255) pixels: "ignore" leaves them out (the usual
            choice), "background" counts them as background, as davis2017-evaluation scores them. A model fed
            its own masks (flowprop, RVOS) learns under "ignore" that growing a mask into the void band along
            its border costs nothing, and the growth compounds frame after frame.
        optimizer: optimizer and schedule.
        predictions_path: the folder where `predict` writes palette PNGs (default `predictions/` in the log
            folder), in the DataModule's layout (DAVIS: `<seq>/<frame>.png`; YouTube-VOS: the submission
            layout).
    """

    def __init__(
        self,
        model: str | nn.Module = "stm",
        model_kwargs: dict[str, Any] | None = None,
        clip_len: int = 3,
        resolution: int | list[int] = 384,
        mem_every: int = 5,
        dice_weight: float = 1.0,
        bootstrap: float | None = None,
        online_steps: int = 0,
        online_lr: float = 1e-5,
        flip_tta: bool = False,
        task: str = "semi-supervised",
        train_void: str = "ignore",
        optimizer: OptimizerConfig | None = None,
        predictions_path: str | None = None,
        modality: str = "rgb",
    ):
        if mem_every < 1:
            raise LitVideoError(f"model.init_args.mem_every must be >= 1, got {mem_every}")
        if clip_len < 2:
            raise LitVideoError(f"data.init_args.clip_len must be >= 2 for VOS training, got {clip_len}")
        check_number("dice_weight", dice_weight, 0)
        check_number("bootstrap", bootstrap, 0, 1, low_open=True, optional=True)
        check_number("online_steps", online_steps, 0, integer=True)
        check_number("online_lr", online_lr, 0, low_open=True)
        _check_task_mode(task, online_steps, flip_tta, bootstrap)
        if train_void not in TRAIN_VOID:
            raise LitVideoError(f"model.init_args.train_void must be one of {', '.join(TRAIN_VOID)}, got {train_void!r}")
        super().__init__(model, clip_len, resolution, optimizer or OptimizerConfig(weight_decay=0.0),
                         predictions_path, modality)
        if task == "unsupervised":
            model_kwargs = _zero_shot_kwargs(model, model_kwargs)
        self.model = build_task_model(model, "vos", model_kwargs, modality=modality)
        self.task_mode = task
        if task == "unsupervised" and not getattr(self.model, "zero_shot", False):
            name = model if isinstance(model, str) else type(self.model).__name__
            raise LitVideoError(f"model '{name}' cannot segment without given masks (model.init_args.task: "
                                f"unsupervised); zero-shot models: {', '.join(_zero_shot_models())}")
        self.dice_weight, self.bootstrap, self.train_void = dice_weight, bootstrap, train_void  # the training loss
        self.mem_every, self.flip_tta = mem_every, flip_tta  # how evaluation propagates
        self.online_steps, self.online_lr = online_steps, online_lr  # OSVOS-style fine-tuning per video
        self.eval_scores = nn.ModuleDict({stage: nn.ModuleDict({
            name: CatMetric() for name in ("J", "F", "J_recall", "F_recall", "J_decay", "F_decay")})
            for stage in ("val", "test")})

    def forward(self, video: torch.Tensor, first_masks: torch.Tensor | None = None) -> torch.Tensor:
        """Segment clips from the masks of their objects in the first frame, as evaluation does.

        Args:
            video: (B,C,T,H,W) normalized frames.
            first_masks: (B,K,H,W) bool masks of K objects in frame 0; None = no object (all background).

        Returns:
            (B,T,H,W) int64 predicted ids 0..K.
        """
        batch, _, frames, height, width = video.shape
        if first_masks is None:
            first_masks = torch.zeros(batch, 0, height, width, dtype=torch.bool, device=video.device)
        num_objects = first_masks.shape[1]
        ids = torch.arange(1, num_objects + 1, device=video.device)[None, :, None, None]  # (1,K,1,1)
        masks = torch.zeros(batch, frames, height, width, dtype=torch.int64, device=video.device)
        masks[:, 0] = (first_masks.bool() * ids).amax(dim=1) if num_objects else 0  # (B,H,W)
        first_frames = torch.zeros(num_objects, dtype=torch.int64, device=video.device)
        return torch.stack([self.segment_video(clip, clip_masks, first_frames)
                            for clip, clip_masks in zip(video, masks, strict=True)])

    def compute_network(self) -> nn.Module:
        """One training-style propagation through the clip (see ClipPropagation)."""
        return ClipPropagation(self.model, zero_shot=self.task_mode == "unsupervised")

    # ---------------------------------------------------------------- training
    def propagate_clip(self, video: torch.Tensor, masks: torch.Tensor, num_objects: torch.Tensor) -> torch.Tensor:
        """Training propagation: frame 0's ground truth into memory, then segment and memorize each frame.

        Args:
            video: (B,C,T,H,W) normalized frames.
            masks: (B,T,H,W) int64 ids 0..K, VOID ignored.
            num_objects: (B,) objects of each clip (ids above it do not occur).

        Returns:
            the mean loss over frames 1..T-1.
        """
        num_slots = max(int(num_objects.max()), 1)
        present = torch.arange(num_slots, device=video.device)[None] < num_objects[:, None]  # (B,K)
        first = _one_hot(masks[:, 0], num_slots).to(video.dtype)  # (B,K,H,W)
        memory = self.model.new_memory()
        self.model.memorize(video[:, :, 0], first, memory)
        losses = []
        for t in range(1, video.shape[2]):
            logits = soft_aggregate(self.model.segment(video[:, :, t], memory), present)  # (B,K+1,H,W)
            losses.append(segmentation_loss(logits, masks[:, t], self.dice_weight, self.bootstrap))
            if t < video.shape[2] - 1:
                self.model.memorize(video[:, :, t], logits.softmax(dim=1)[:, 1:], memory)
        return torch.stack(losses).mean()

    def propose_clip(self, video: torch.Tensor, masks: torch.Tensor, num_objects: torch.Tensor) -> torch.Tensor:
        """Unsupervised training: the zero-shot model proposes slots on every frame of the clip, no mask given;
        its slots are matched to the clip's objects (`unsupervised_loss`). A model with `dense_proposals`
        (RVOS's `proposals: centres`) has per-pixel targets instead and gives its own loss (`dense_loss`).

        Args:
            video: (B,C,T,H,W) normalized frames.
            masks: (B,T,H,W) int64 ids 0..K, VOID ignored.
            num_objects: (B,) objects of each clip.

        Returns:
            the loss of the clip.
        """
        if getattr(self.model, "dense_proposals", False):  # per-pixel targets: nothing to match
            return self.model.dense_loss(video, masks, self.dice_weight)
        memory = self.model.new_memory()
        logits, scores = zip(*(self.model.propose(video[:, :, t], memory) for t in range(video.shape[2])), strict=True)
        # (B,S,T,H,W) slot logits, (B,S,T) slot score logits
        return unsupervised_loss(torch.stack(logits, dim=2), torch.stack(scores, dim=2), masks, num_objects,
                                 self.dice_weight)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        propagate = self.propose_clip if self.task_mode == "unsupervised" else self.propagate_clip
        masks = batch[keys.MASKS]
        if self.train_void == "background":
            masks = masks.masked_fill(masks == VOID, 0)
        loss = propagate(batch[keys.VIDEO], masks, batch[keys.NUM_OBJECTS])
        return self.log_training_loss(loss, len(batch[keys.MASKS]))

    # -------------------------------------------------------------- evaluation
    @torch.no_grad()
    def segment_video(self, video: torch.Tensor, masks: torch.Tensor, first_frames: torch.Tensor,
                      model: nn.Module | None = None) -> torch.Tensor:
        """Segment one whole video from each object's given mask.

        Args:
            video: (C,T,h,w) normalized frames (possibly smaller than the annotations).
            masks: (T,H,W) int64 at annotation resolution; object k's mask at frame first_frames[k-1]
                is the given one (other frames are not read).
            first_frames: (K,) the frame of each object's given mask.
            model: the network to use (default: this task's; online fine-tuning passes a copy).

        Returns:
            (T,H,W) int64 predicted ids 0..K at annotation resolution.
        """
        model = model or self.model
        _, num_frames, height, width = video.shape
        full_size = masks.shape[-2:]
        # Objects join memory in order of appearance: the model addresses them by slot 0..K-1.
        order = torch.argsort(first_frames, stable=True)  # slot -> object index
        slot_first = first_frames[order]
        # each view: a memory, the mirror that maps masks into that view and back, and the one for frames (a
        # mirrored flow field also changes the sign of its x component)
        views = [(model.new_memory(), lambda x: x, lambda x: x)]
        if self.flip_tta:
            views.append((model.new_memory(), lambda x: x.flip(-1), partial(mirror_frames, modality=self.modality)))
        predicted = torch.zeros((num_frames, *full_size), dtype=torch.int64, device=masks.device)
        # slot_ids -> object ids: 0 stays background, slot s (channel s+1) is object order[s] + 1
        object_ids = torch.cat([torch.zeros(1, dtype=torch.int64, device=order.device), order + 1])
        joined, last_memorized = 0, None
        # a recurrent or flow-warping model's state must advance through every frame, whatever mem_every says
        every_frame = getattr(model, "memorize_every_frame", False)
        for t in range(num_frames):
            frame = video[None, :, t]  # (1,C,h,w)
            arriving = int((slot_first == t).sum())
            if joined:
                logits = torch.stack([mirror(model.segment(mirror_frame(frame), memory))
                                      for memory, mirror, mirror_frame in views]).mean(dim=0)  # (1,J,h,w)
                probabilities = soft_aggregate(logits).softmax(dim=1)  # (1,J+1,h,w)
            else:
                probabilities = torch.ones(1, 1, height, width, device=video.device)
            if arriving:
                probabilities = self._add_given_masks(probabilities, masks[t], order[joined:joined + arriving] + 1,
                                                      (height, width))
                joined += arriving
            full = F.interpolate(probabilities, size=full_size, mode="bilinear", align_corners=False)
            predicted[t] = object_ids[full[0].argmax(dim=0)]  # (H,W)
            if joined and (every_frame or arriving or last_memorized is None or t - last_memorized >= self.mem_every):
                for memory, mirror, mirror_frame in views:
                    model.memorize(mirror_frame(frame), mirror(probabilities[:, 1:]), memory)
                last_memorized = t
        return predicted

    @torch.no_grad()
    def propose_video(self, video: torch.Tensor, full_size: tuple[int, ...]) -> torch.Tensor:
        """Unsupervised: the zero-shot model's proposals on one whole video, no mask given.

        On each frame the slots whose score is above 0.5 compete for the pixels (soft aggregation); a slot
        keeps its identity through the video, and the slots used anywhere become proposals 1..N in slot order
        (N <= the model's slots <= 20, the DAVIS unsupervised protocol's limit).

        Args:
            video: (C,T,h,w) normalized frames.
            full_size: (H, W) of the annotations.

        Returns:
            (T,H,W) int64 proposal ids 0..N at annotation resolution.
        """
        memory = self.model.new_memory()
        predicted = torch.zeros((video.shape[1], *full_size), dtype=torch.int64, device=video.device)
        for t in range(video.shape[1]):
            logits, scores = self.model.propose(video[None, :, t], memory)  # (1,S,h,w), (1,S)
            probabilities = soft_aggregate(logits, scores.sigmoid() > 0.5).softmax(dim=1)  # (1,S+1,h,w)
            full = F.interpolate(probabilities, size=full_size, mode="bilinear", align_corners=False)
            predicted[t] = full[0].argmax(dim=0)  # slot + 1, 0 = background
        used = torch.unique(predicted)
        used = used[used > 0]
        renumber = torch.zeros(int(predicted.max()) + 1, dtype=torch.int64, device=predicted.device)
        renumber[used] = torch.arange(1, len(used) + 1, device=predicted.device)
        return renumber[predicted]

    @staticmethod
    def _add_given_masks(probabilities: torch.Tensor, frame_masks: torch.Tensor, object_ids: torch.Tensor,
                         size: tuple[int, int]) -> torch.Tensor:
        """Append the arriving objects' given masks as new slots; they override earlier objects' pixels.

        probabilities: (1,J+1,h,w); frame_masks: (H,W) ids at annotation size; object_ids: (A,) ids of the
        arriving objects. Returns (1,J+A+1,h,w)."""
        given = torch.stack([(frame_masks == i) for i in object_ids]).float()[None]  # (1,A,H,W)
        given = F.interpolate(given, size=size, mode="bilinear", align_corners=False).clamp(0, 1)  # (1,A,h,w)
        covered = given.amax(dim=1, keepdim=True)  # (1,1,h,w)
        return torch.cat([probabilities * (1 - covered), given], dim=1)

    def _online_finetune(self, video: torch.Tensor, masks: torch.Tensor, first_frames: torch.Tensor) -> nn.Module:
        """OSVOS-style: a copy of the model trained for `online_steps` on the video's given masks."""
        height, width = video.shape[-2:]
        # Lightning evaluates under inference mode: a copy made there would have inference-tensor weights
        # that autograd refuses, so the copy and everything it trains on are made outside it
        with torch.inference_mode(False), torch.enable_grad():
            model = copy.deepcopy(self.model).train()
            optimizer = torch.optim.Adam(model.parameters(), lr=self.online_lr)
            frames, targets = [], []
            for t in sorted(set(first_frames.tolist())):
                target = masks[t].clone()
                # only the objects given at frame t are known there; others count as background
                known = torch.isin(target, torch.nonzero(first_frames == t).flatten() + 1) | (target == VOID)
                target = torch.where(known, target, torch.zeros_like(target))
                frames.append(video[:, t].clone())
                targets.append(F.interpolate(target[None, None].float(), size=(height, width), mode="nearest")[0, 0])
            num_objects = len(first_frames)
            for step in range(self.online_steps):
                t = step % len(frames)
                frame = frames[t][None]  # (1,C,h,w)
                target = targets[t].long()[None]  # (1,h,w)
                first = _one_hot(target, num_objects).float()
                memory = model.new_memory()
                model.memorize(frame, first, memory)
                logits = soft_aggregate(model.segment(frame, memory))
                loss = segmentation_loss(logits, target, self.dice_weight)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return model.eval()

    def _evaluate_video(self, batch: dict) -> torch.Tensor:
        if len(batch[keys.MASKS]) != 1:
            raise LitVideoError("VOS evaluation takes one whole video per batch (the VOS DataModules' "
                                "evaluation loaders have batch_size 1)")
        video, masks, first_frames = batch[keys.VIDEO][0], batch[keys.MASKS][0], batch[keys.FIRST_FRAMES][0]
        if self.task_mode == "unsupervised":
            return self.propose_video(video, masks.shape[-2:])
        model = self._online_finetune(video, masks, first_frames) if self.online_steps > 0 else None
        return self.segment_video(video, masks, first_frames, model)

    def evaluation_step(self, batch: dict, stage: str) -> None:
        from lit_video.metrics.davis import evaluate_sequence

        predicted = self._evaluate_video(batch)
        annotated = batch[keys.ANNOTATED][0]
        first_frames = batch[keys.FIRST_FRAMES][0]
        gt = batch[keys.MASKS][0]
        if self.task_mode == "unsupervised":  # every frame scored, proposals matched to objects (Hungarian)
            from lit_video.metrics.davis import evaluate_unsupervised_sequence

            scores = evaluate_unsupervised_sequence(predicted[annotated], gt[annotated], num_objects=len(first_frames),
                                                    name=str(batch[keys.VIDEO_ID][0]))
            rows = torch.as_tensor(scores["objects"]).long() - 1  # the object each row scores
        else:
            scores = evaluate_sequence(predicted[annotated], gt[annotated], num_objects=len(first_frames))
            rows = torch.arange(len(first_frames))
        for name, metric in self.eval_scores[stage].items():
            metric.update(torch.as_tensor(scores[name], dtype=torch.float32, device=self.device))
        categories = batch.get(keys.OBJECT_CATEGORIES)
        names = None if categories is None else [c[0] if isinstance(c, list | tuple) else c for c in categories]
        video_id = batch[keys.VIDEO_ID][0]
        # kept per video for the per-sequence report and the seen / unseen split at the epoch's end
        self.video_outputs[video_id] = ([float(x) for x in scores["J"]], [float(x) for x in scores["F"]],
                                        None if names is None else [names[int(k)] for k in rows])
        self.keep_media(video_id, lambda: self._overlay(batch, predicted, names))

    def _overlay(self, batch: dict, predicted: torch.Tensor, names: list[str] | None) -> dict:
        """The media of an evaluated video: objects in the dataset's ids and palette, with their category when
        the dataset names one (an unsupervised model's proposals 1..N as they are)."""
        video, gt = batch[keys.VIDEO][0], batch[keys.MASKS][0]
        if self.task_mode == "unsupervised":
            return self.overlay_media(video, predicted, gt, VOS_FPS)
        object_ids = batch[keys.OBJECT_IDS][0]
        texts = {i: f"{i} {name}" for i, name in zip(object_ids.tolist(), names, strict=True)} if names else None
        return self.overlay_media(video, predicted, gt, VOS_FPS, texts, texts, object_ids)

    def evaluation_epoch_end(self, stage: str) -> dict[str, torch.Tensor]:
        # Means over every object of every video, as davis2017-evaluation averages (not per video).
        values = {}
        for name, metric in self.eval_scores[stage].items():
            values[name] = metric.compute().float().nanmean() if metric.update_called else torch.tensor(float("nan"))
            metric.reset()
        values["JF"] = (values["J"] + values["F"]) / 2
        outputs = self.gathered_outputs()  # every rank's per-video (J, F, categories)
        values.update(self._seen_unseen_scores(outputs))
        for name, value in values.items():
            self.log(f"{stage}/{name}", value, prog_bar=name == "JF")
        self.report_videos(stage, {video_id: {"J&F": (np.nanmean(j) + np.nanmean(f)) / 2, "J": np.nanmean(j),
                                              "F": np.nanmean(f), "objects": len(j)}
                                   for video_id, (j, f, _) in outputs.items() if j})
        return values

    def _seen_unseen_scores(self, outputs: dict) -> dict[str, torch.Tensor]:
        """J and F of the objects whose category the training videos hold (seen) and of the others (unseen),
        and their mean (YouTube-VOS's "overall"), from the per-video outputs; empty when the DataModule gives
        no categories."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        seen = getattr(datamodule, "seen_categories", None)
        if not outputs or seen is None or any(output[2] is None for output in outputs.values()):
            return {}
        from lit_video.metrics.ytvos import seen_unseen_scores

        j, f, categories = ([x for output in outputs.values() for x in output[part]] for part in range(3))
        scores = seen_unseen_scores({"J": np.asarray(j), "F": np.asarray(f)}, categories, seen)
        return {name: torch.tensor(float(value)) for name, value in scores.items()}

    # ------------------------------------------------------------- prediction
    def predict_step(self, batch: dict, batch_idx: int) -> str:
        predicted = self._evaluate_video(batch)
        datamodule = self.trainer.datamodule
        video_id = batch[keys.VIDEO_ID][0]
        frame_names = [name[0] if isinstance(name, list | tuple) else name for name in batch[keys.FRAME_NAMES]]
        out_dir = self.predictions_location()
        wanted = set(datamodule.frames_to_write(video_id))
        # proposals (unsupervised) are written as ids 1..N; objects as the dataset's own ids
        object_ids = (torch.arange(1, int(predicted.max()) + 1) if self.task_mode == "unsupervised"
                      else batch[keys.OBJECT_IDS][0])
        for t, name in enumerate(frame_names):
            if name in wanted:  # in the dataset's palette and layout
                datamodule.write_prediction(out_dir, video_id, name, predicted[t], object_ids)
        return video_id

    def on_predict_epoch_end(self) -> None:
        self.print(f"wrote palette PNG predictions to {self.predictions_location()}")


TASK_MODES = ("semi-supervised", "unsupervised")


def _check_task_mode(task: str, online_steps: int, flip_tta: bool, bootstrap: float | None) -> None:
    """One-line refusals of a task mode and of the options it cannot combine with."""
    if task not in TASK_MODES:
        raise LitVideoError(f"model.init_args.task must be one of {', '.join(TASK_MODES)}, got {task!r}")
    if task == "unsupervised" and online_steps:
        raise LitVideoError("model.init_args.online_steps fine-tunes on the given masks; task unsupervised gives "
                            "none (set online_steps: 0)")
    if task == "unsupervised" and flip_tta:
        raise LitVideoError("model.init_args.flip_tta is for task semi-supervised: the mirrored pass of an "
                            "unsupervised model proposes its own objects in its own order")
    if task == "unsupervised" and bootstrap is not None:
        raise LitVideoError("model.init_args.bootstrap keeps the hardest pixels of the semi-supervised loss; task "
                            "unsupervised trains a set loss on its matched slots (leave bootstrap unset)")


def _zero_shot_models() -> list[str]:
    """The registered VOS models that take a `zero_shot` argument."""
    return [name for name in list_models(task="vos") if "zero_shot" in inspect.signature(model_entry(name)).parameters]


def _zero_shot_kwargs(model: str | nn.Module, model_kwargs: dict[str, Any] | None) -> dict[str, Any] | None:
    """`model_kwargs` with zero_shot on for a registry model that takes it (and was not told otherwise)."""
    if isinstance(model, str) and model in _zero_shot_models():
        return {"zero_shot": True, **(model_kwargs or {})}
    return model_kwargs


def match_slots(logits: torch.Tensor, scores: torch.Tensor, target: torch.Tensor,
                num_objects: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Hungarian assignment of a clip's predicted slots to its objects.

    The cost of a (slot, object) pair over the whole clip, void pixels left out: the sigmoid cross-entropy
    plus the dice loss of the slot's mask against the object's, plus the score's cross-entropy against
    "is an object" (DETR's matching cost, in time as VisTR's).

    Args:
        logits: (S,T,H,W) slot mask logits.
        scores: (S,T) slot score logits.
        target: (T,H,W) int64 ids 0..K, VOID ignored.
        num_objects: K.

    Returns:
        (slots, objects): int64 (M,) each, M = min(S, K); objects 0-based.
    """
    if num_objects == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=logits.device)
        return empty, empty
    with torch.no_grad():
        valid = (target != VOID).flatten()  # (N,)
        pixels = logits.float().flatten(1)[:, valid]  # (S,N')
        objects = torch.arange(1, num_objects + 1, device=target.device)
        truth = (target.flatten()[valid][None] == objects[:, None]).float()  # (K,N')
        cost = pairwise_sigmoid_bce_loss(pixels, truth) + pairwise_dice_loss(pixels, truth)
        cost = cost + F.softplus(-scores.float()).mean(dim=1, keepdim=True)  # (S,K)
        slots, matched = linear_sum_assignment(cost.cpu().numpy())
    return (torch.as_tensor(slots, dtype=torch.int64, device=logits.device),
            torch.as_tensor(matched, dtype=torch.int64, device=logits.device))


def unsupervised_loss(logits: torch.Tensor, scores: torch.Tensor, masks: torch.Tensor, num_objects: torch.Tensor,
                      dice_weight: float = 1.0) -> torch.Tensor:
    """Set loss of zero-shot slots against a clip's objects, whatever order the slots come in (DETR's and
    Mask2Former's, over the clip as VisTR's).

    Slots are matched to objects (`match_slots`); each matched slot's mask learns its object over the whole
    clip (sigmoid cross-entropy plus dice, void left out), and every slot's score learns whether it was
    matched. An unmatched slot's mask costs nothing: DAVIS's unsupervised protocol does not score proposals
    left over after matching, and a loss that pushed them to empty (the aggregated per-pixel cross-entropy of
    the semi-supervised task) teaches a slot to drop an object whenever another slot may take it; on
    synthetic DAVIS it learned less than half as fast.

    Args:
        logits: (B,S,T,H,W) slot mask logits.
        scores: (B,S,T) slot score logits.
        masks: (B,T,H,W) int64 ids 0..K, VOID ignored.
        num_objects: (B,) objects of each clip.
        dice_weight: weight of the dice term beside the cross-entropy.

    Returns:
        the mean loss over the clips.
    """
    losses = []
    for clip_logits, clip_scores, target, count in zip(logits, scores, masks, num_objects, strict=True):
        slots, objects = match_slots(clip_logits, clip_scores, target, int(count))
        matched = torch.zeros_like(clip_scores)  # (S,T)
        matched[slots] = 1
        score_loss = F.binary_cross_entropy_with_logits(clip_scores.float(), matched.float())
        if not len(slots):  # no object in the clip: only the scores learn
            losses.append(score_loss + clip_logits.sum() * 0)
            continue
        valid = (target != VOID).flatten()  # (N,) over the clip's T*H*W pixels
        pixels = clip_logits.float().flatten(1)[slots][:, valid]  # (M,N')
        truth = (target.flatten()[valid][None] == (objects + 1)[:, None]).float()  # (M,N')
        mask_loss = sigmoid_bce_loss(pixels, truth).mean() + dice_weight * dice_loss(pixels, truth).mean()
        losses.append(mask_loss + score_loss)
    return torch.stack(losses).mean()


def _one_hot(ids: torch.Tensor, num_objects: int) -> torch.Tensor:
    """(B,H,W) ids 0..K (VOID anywhere) -> (B,K,H,W) bool masks of objects 1..K."""
    objects = torch.arange(1, num_objects + 1, device=ids.device)
    return ids[:, None] == objects[None, :, None, None]
