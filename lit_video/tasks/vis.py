"""Video instance segmentation: detect, segment and track every instance of the known categories.

Training matches a query-based model's instance queries to the clip's ground-truth instances (Hungarian
matching on class + mask costs over the clip) and applies the set criterion. Evaluation segments whole
videos (`segment_video`: the whole video at once offline, frame by frame with query association online),
keeps the `max_detections` best (query, category) pairs of each video as scored tubes, and computes
YouTube-VIS AP/AR over the whole evaluation set with `lit_video.metrics.ytvis` (AP needs the corpus: it is
computed once per epoch, after every rank's results are gathered). `predict` writes the submission
`results.json`.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from lit_video.data import keys
from lit_video.data.rle import encode_tube
from lit_video.errors import LitVideoError
from lit_video.models.registry import build_task_model
from lit_video.models.vis_criterion import HungarianMatcher, SetCriterion
from lit_video.tasks.base import VideoTask
from lit_video.tasks.checks import check_number
from lit_video.tasks.optim import OptimizerConfig

MASK_STRIDE = 4  # VIS models predict masks at a quarter of the input's resolution unless they say otherwise
# Logged overlays: YouTube-VIS annotates every 5th frame of 30 fps videos; tracks scored below the threshold
# are left out (both as `lit-video visualize vis` draws them by default)
VIS_FPS = 6.0
MEDIA_SCORE_THRESHOLD = 0.3


class ClipClassLogits(nn.Module):
    """A VIS model as a clip -> (B, C+1) network for the compute profile: the class logits averaged over
    queries (and frames, online), so the profile's classification loss back-propagates through every
    part of the model. Built on demand by `VideoInstanceSegmentation.compute_network`, never a submodule
    of the task."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        outputs = self.model(video)
        logits = outputs["logits"]  # (B,Q,C+1) or (B,T,Q,C+1)
        # the masks join through a zero-weighted term so their branch is part of the measured backward pass
        return logits.flatten(1, -2).mean(dim=1) + 0 * outputs["masks"].mean()


class VideoInstanceSegmentation(VideoTask, monitor="AP", predictions="results.json", frame_level_evaluation=True,
                                monitor_note="(YouTube-VIS AP over IoU 0.50:0.95)"):
    """YouTube-VIS-style video instance segmentation with a query-based model (offline or online).

    Args:
        model: a registry name of a VIS model (`lit_video.models.list_models(task="vis")`), or a module.
        model_kwargs: keyword arguments for a registry name.
        mode: "offline" (queries span the clip) or "online" (per-frame queries associated over time): the
            registry model's `mode`, a key of its own so that sweeps can vary it; None = the model's default
            (or `model_kwargs`' mode).
        num_classes: categories; linked from the DataModule.
        clip_len: frames per training clip; linked from the DataModule (used for the example input).
        resolution: training crop; linked from the DataModule (used for the example input).
        class_weight, dice_weight, mask_weight: weights of the cross-entropy, dice and sigmoid BCE losses,
            used alike in the matching costs (Mask2Former's 2 / 5 / 5).
        eos_coef: weight of the "no object" class in the cross-entropy.
        semantic_weight: weight of the dense per-pixel class loss on the model's "semantic" logits (models
            that predict them); 0 turns it off (and leaves `query_vis`'s semantic head untrained).
        track_weight: online mode: weight of the contrastive loss that teaches the query embeddings of an
            instance in consecutive frames to be each other's most similar (what the association uses);
            0 turns it off.
        mask_score: score a tube by its class probability times its mask's mean confidence (the mean
            sigmoid inside the predicted mask, as Mask2Former ranks instances) rather than the class
            probability alone.
        num_points: mask losses at this many random points per instance (None = every cell of the masks).
        deep_supervision: the same losses after every decoder layer.
        max_detections: tubes kept per video (the best query x category scores), as Mask2Former-VIS
            and MinVIS keep 10 on YouTube-VIS.
        eval_window: frames per forward pass when segmenting a whole video (None = all at once).
        association_overlap: online (and offline windows): weight of the mask IoU between adjacent frames
            in the association of queries to tracks, beside their embedding similarity (0 = MinVIS's
            embeddings alone).
        association_momentum: how much of a track's past embedding it keeps when it takes a new query
            (0 = MinVIS: the previous frame's query alone).
        absent_threshold: online: a track's mask is empty in the frames where its query's "no object"
            probability exceeds this (null = every frame's mask as decoded).
        optimizer: optimizer and schedule.
        predictions_path: where `predict` writes `results.json` (default: `results.json` in the log folder).
    """

    def __init__(
        self,
        model: str | nn.Module = "query_vis",
        model_kwargs: dict[str, Any] | None = None,
        mode: str | None = None,
        num_classes: int = 0,
        clip_len: int = 5,
        resolution: int | list[int] = 384,
        class_weight: float = 2.0,
        dice_weight: float = 5.0,
        mask_weight: float = 5.0,
        eos_coef: float = 0.1,
        semantic_weight: float = 5.0,
        track_weight: float = 0.0,
        mask_score: bool = True,
        num_points: int | None = None,
        deep_supervision: bool = True,
        max_detections: int = 10,
        eval_window: int | None = None,
        association_overlap: float = 1.0,
        association_momentum: float = 0.5,
        absent_threshold: float | None = 0.5,
        optimizer: OptimizerConfig | None = None,
        predictions_path: str | None = None,
    ):
        if num_classes < 1:
            raise LitVideoError(f"model.init_args.num_classes must be >= 1 (linked from the DataModule), got "
                                f"{num_classes}")
        if not 0 <= association_momentum < 1 or association_overlap < 0:
            raise LitVideoError(f"model.init_args.association_momentum must be in [0, 1) and association_overlap "
                                f">= 0, got {association_momentum} and {association_overlap}")
        if absent_threshold is not None and not 0 < absent_threshold < 1:
            raise LitVideoError(f"model.init_args.absent_threshold must be in (0, 1) or null, got {absent_threshold}")
        if max_detections < 1:
            raise LitVideoError(f"model.init_args.max_detections must be >= 1, got {max_detections}")
        for name, weight in (("class_weight", class_weight), ("dice_weight", dice_weight),
                             ("mask_weight", mask_weight), ("semantic_weight", semantic_weight),
                             ("track_weight", track_weight)):
            check_number(name, weight, 0)
        check_number("eos_coef", eos_coef, 0, 1, low_open=True)
        check_number("num_points", num_points, 1, integer=True, optional=True)
        check_number("eval_window", eval_window, 1, integer=True, optional=True)
        super().__init__(model, clip_len, resolution, optimizer, predictions_path)
        model_kwargs = dict(model_kwargs or {})
        if mode is not None:
            if not isinstance(model, str):
                raise LitVideoError("model.init_args.mode applies to a registry model name; a model module "
                                    "has its own mode")
            model_kwargs["mode"] = mode
        self.model = build_task_model(model, "vis", model_kwargs, num_classes=num_classes)
        matcher = HungarianMatcher(class_weight, dice_weight, mask_weight, num_points=num_points)
        self.criterion = SetCriterion(num_classes, matcher, eos_coef,
                                      {"class": class_weight, "dice": dice_weight, "mask": mask_weight,
                                       "semantic": semantic_weight, "track": track_weight},
                                      deep_supervision=deep_supervision, num_points=num_points)
        self.max_detections = max_detections
        self.mask_score = mask_score
        self.eval_window = eval_window
        self.association = {"overlap_weight": association_overlap, "momentum": association_momentum,
                            "absent_threshold": absent_threshold}
        self._warned_no_ground_truth = False

    def forward(self, video: torch.Tensor) -> list[list[tuple[int, float, torch.Tensor]]]:
        """(B,C,T,H,W) clips -> for each, its scored tubes at the clip's size (see `detect`)."""
        return [self.detect(clip, tuple(clip.shape[-2:])) for clip in video]

    def compute_network(self) -> nn.Module:
        """The model as a clip -> pooled class logits network (see ClipClassLogits)."""
        return ClipClassLogits(self.model)

    # ---------------------------------------------------------------- training
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        video = batch[keys.VIDEO]  # (B,C,T,H,W)
        outputs = self.model(video)
        losses = self.criterion(outputs, clip_targets(batch))
        loss = self.log_training_loss(losses["loss"], len(video))
        for name in ("loss_class", "loss_dice", "loss_mask", "loss_semantic", "loss_track"):
            if name in losses:
                self.log(f"train/{name}", losses[name], batch_size=len(video))
        return loss

    # -------------------------------------------------------------- evaluation
    @torch.no_grad()
    def detect(self, video: torch.Tensor, original_size: tuple[int, int]) -> list[tuple[int, float, torch.Tensor]]:
        """The scored tubes of one whole video.

        Args:
            video: (C,T,h,w) normalized frames.
            original_size: (H, W) the masks are written at (the annotation file's size).

        Returns:
            up to `max_detections` (class index, score, bool masks (T,H,W)), best first.
        """
        class_probs, mask_logits = self.model.segment_video(video[None], window=self.eval_window,
                                                                **self.association)  # (Q,C), (Q,T,hs,ws)
        height, width = video.shape[-2:]
        if self.mask_score:
            confidence = mask_logits.float().sigmoid().flatten(1)  # (Q,T*hs*ws)
            inside = confidence > 0.5
            class_probs = class_probs * ((confidence * inside).sum(1) / inside.sum(1).clamp(min=1))[:, None]
        num_classes = class_probs.shape[1]
        mask_stride = getattr(self.model, "mask_stride", MASK_STRIDE)
        scores, flat = class_probs.flatten().topk(min(self.max_detections, class_probs.numel()))
        detections = []
        for score, index in zip(scores.tolist(), flat.tolist(), strict=True):
            query, label = divmod(index, num_classes)
            logits = mask_logits[query][:, None]  # (T,1,hs,ws)
            # back to the (padded) input's size, cropped to the frame, then to the annotation size
            logits = F.interpolate(logits, scale_factor=mask_stride, mode="bilinear", align_corners=False)
            logits = F.interpolate(logits[..., :height, :width], size=original_size, mode="bilinear",
                                   align_corners=False)
            detections.append((label, score, logits[:, 0] > 0))  # (T,H,W)
        return detections

    def evaluation_step(self, batch: dict, stage: str) -> int:
        """Keeps the video's scored tubes, as results of the YouTube-VIS submission format, for the epoch's
        AP (and `predict`'s results file); returns the video's id."""
        if len(batch[keys.VIDEO]) != 1:
            raise LitVideoError("VIS evaluation takes one whole video per batch (the VIS DataModule's "
                                "evaluation loaders have batch_size 1)")
        original_size = tuple(int(s) for s in batch[keys.ORIGINAL_SIZE][0])
        video_id = int(batch[keys.ANNOTATION_VIDEO_ID][0])
        category_ids = self._category_ids()
        detections = self.detect(batch[keys.VIDEO][0], original_size)
        self.video_outputs.setdefault(video_id, []).extend(
            {"video_id": video_id, "category_id": category_ids[label], "score": score,
             "segmentations": encode_tube(masks)}
            for label, score, masks in detections
        )
        self.keep_media(video_id, lambda: self._overlay(batch, detections))
        return video_id

    def _overlay(self, batch: dict, detections: list[tuple[int, float, torch.Tensor]]) -> dict:
        """The media of an evaluated video: the tracks scored at least MEDIA_SCORE_THRESHOLD (track k in
        palette colour k, the best on top, written "category score") beside the annotated instances."""
        names = self._category_names()
        tracks = [(label, score, masks) for label, score, masks in detections if score >= MEDIA_SCORE_THRESHOLD]
        predicted = torch.zeros_like(batch[keys.MASKS][0], dtype=torch.uint8)  # (T,H,W)
        for k in range(len(tracks), 0, -1):  # the last first: the best-scored track is drawn over the others
            predicted[tracks[k - 1][2]] = k
        texts = {k: f"{names[label]} {score:.2f}" for k, (label, score, _) in enumerate(tracks, start=1)}
        count = int(batch[keys.NUM_OBJECTS][0])
        truth_texts = {k: names[int(label)] for k, label in enumerate(batch[keys.CATEGORIES][0][:count].tolist(), 1)}
        return self.overlay_media(batch[keys.VIDEO][0], predicted, batch[keys.MASKS][0], VIS_FPS, texts, truth_texts)

    def _category_names(self) -> list[str]:
        """The name of each class index (the DataModule's, else its annotation file's category id)."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        names = getattr(datamodule, "classes", None)
        return list(names) if names else [str(i) for i in self._category_ids()]

    def _category_ids(self) -> list[int]:
        """The annotation file's category id of each class index (the DataModule's, else 1..C)."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        ids = getattr(datamodule, "category_ids", None)
        return list(ids) if ids is not None else list(range(1, self.model.num_classes + 1))

    def _gathered_results(self) -> list[dict]:
        """Every rank's results, each video once."""
        return [result for results in self.gathered_outputs().values() for result in results]

    def evaluation_epoch_end(self, stage: str) -> dict[str, float] | None:
        from lit_video.metrics.ytvis import evaluate_results

        results = self._gathered_results()
        datamodule = self.trainer.datamodule
        ground_truth = datamodule.ground_truth(stage) if hasattr(datamodule, "ground_truth") else None
        if ground_truth is None:
            if not self._warned_no_ground_truth:
                rank_zero_warn(f"{stage}: the evaluated split has no ground truth; no AP is computed")
                self._warned_no_ground_truth = True
            return None
        stats = evaluate_results(ground_truth, results)  # the same on every rank: same inputs
        for name, value in stats.items():
            self.log(f"{stage}/{name}", float(value), prog_bar=name == "AP", rank_zero_only=False,
                     sync_dist=False)
        if self.media_wanted:  # each video's AP, for the per-video table
            from lit_video.metrics.ytvis import evaluate_per_video

            tracks = Counter(r["video_id"] for r in results if r["score"] >= MEDIA_SCORE_THRESHOLD)
            per_video = evaluate_per_video(ground_truth, results, {result["video_id"] for result in results})
            self.report_videos(stage, {video_id: {"AP": scores["AP"], "AP50": scores["AP50"], "tracks": tracks[video_id]}
                                       for video_id, scores in per_video.items()})
        return stats

    # ------------------------------------------------------------- prediction
    def predict_step(self, batch: dict, batch_idx: int) -> int:
        return self.evaluation_step(batch, "predict")

    def on_predict_epoch_end(self) -> None:
        results = self._gathered_results()
        if self.trainer.is_global_zero:
            path = self.predictions_file()
            with open(path, "w") as f:
                json.dump(results, f)
            self.print(f"wrote {len(results)} scored tubes of {len({r['video_id'] for r in results})} videos "
                       f"to {path} (the YouTube-VIS submission format)")


def clip_targets(batch: dict) -> list[dict[str, torch.Tensor]]:
    """A training batch -> the set criterion's targets: per clip {"labels": (K,), "masks": bool (K,T,H,W)}.

    MASKS (B,T,H,W) holds instance k at value k (1..K of NUM_OBJECTS), CATEGORIES (B,Kmax) their classes."""
    masks, categories, counts = batch[keys.MASKS], batch[keys.CATEGORIES], batch[keys.NUM_OBJECTS]
    targets = []
    for clip_masks, clip_categories, count in zip(masks, categories, counts.tolist(), strict=True):
        ids = torch.arange(1, count + 1, device=clip_masks.device)  # (K,)
        targets.append({"labels": clip_categories[:count],
                        "masks": clip_masks[None] == ids[:, None, None, None]})  # (K,T,H,W)
    return targets
