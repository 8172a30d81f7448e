"""Video captioning: an encoder-decoder trained with teacher forcing, scored as papers score it.

Training feeds one caption drawn at random per clip (BOS + tokens + EOS) and applies label-smoothed
cross-entropy to next-token predictions. Evaluation decodes every video (beam search, or greedy with
`beam_size: 1`), gathers the captions of every rank and scores the whole evaluation corpus with
pycocoevalcap (BLEU-1..4, METEOR when Java runs, ROUGE-L, CIDEr-D): CIDEr-D's idf comes from the corpus,
so scoring video by video or rank by rank would give different (for one video: zero) numbers. `predict`
writes the COCO caption results JSON.

The tokenizer comes from the DataModule (`data.tokenizer_config`, linked by the CLI) and is stored in the
task's hyperparameters, so every checkpoint and run folder carries its vocabulary.
"""

from __future__ import annotations

import json
import os
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import nn
from torchmetrics import MaxMetric

from lit_video.data import keys
from lit_video.data.tokenizer import CaptionTokenizer, tokenizer_from_config
from lit_video.errors import LitVideoError
from lit_video.models.registry import build_task_model
from lit_video.tasks.classification import OptimizerConfig, optimizer_and_schedule, weight_decay_groups
from lit_video.tasks.distributed import gather_from_ranks


class TeacherForcedLogits(nn.Module):
    """A captioner as a clip -> (B, V) network for the compute profile: the logits of a fixed caption
    of `length` tokens, averaged over its positions, so the profile's backward pass runs through the
    encoder and every decoder layer."""

    def __init__(self, model: nn.Module, vocab_size: int, length: int):
        super().__init__()
        self.model = model
        self.register_buffer("tokens", torch.arange(length)[None] % vocab_size, persistent=False)  # (1,L)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        tokens = self.tokens.expand(len(video), -1)  # (B,L)
        return self.model(video, tokens).mean(dim=1)  # (B,L,V) -> (B,V)


class VideoCaptioning(L.LightningModule):
    """Caption videos with an encoder-decoder model.

    Args:
        model: a registry name of a captioning model (`lit_video.models.list_models(task="captioning")`), a
            class from a config's class_path (called with vocab_size and the special token ids), or a module.
        model_kwargs: keyword arguments for a registry name.
        tokenizer: the DataModule's tokenizer as a config dict; linked from `data.tokenizer_config`.
        clip_len: frames per clip; linked from the DataModule (used for the compute profile).
        resolution: crop size; linked from the DataModule (used for the compute profile).
        label_smoothing: of the next-token cross-entropy.
        max_caption_len: generated tokens at most, EOS included.
        beam_size: beams of the evaluation and prediction search; 1 = greedy decoding.
        length_penalty: beams are ranked by log-probability / length ** length_penalty (0 = raw sum).
        meteor: compute METEOR too (when Java runs; it starts a JVM, ~5 s per evaluation).
        optimizer: optimizer and schedule.
        predictions_path: where `predict` writes the results JSON (default `results.json` in the log folder).
    """

    def __init__(
        self,
        model: str | nn.Module = "caption_transformer",
        model_kwargs: dict[str, Any] | None = None,
        tokenizer: dict | None = None,
        clip_len: int = 8,
        resolution: int | list[int] = 112,
        label_smoothing: float = 0.1,
        max_caption_len: int = 24,
        beam_size: int = 3,
        length_penalty: float = 1.0,
        meteor: bool = True,
        optimizer: OptimizerConfig | None = None,
        predictions_path: str | None = None,
    ):
        super().__init__()
        if tokenizer is None:
            raise LitVideoError("model.init_args.tokenizer is missing: it is linked from a captioning DataModule "
                                "(data.tokenizer_config), e.g. lit_video.data.msrvtt.MSRVTTDataModule")
        if beam_size < 1 or max_caption_len < 2:
            raise LitVideoError(f"model.init_args: beam_size must be >= 1 and max_caption_len >= 2, got "
                                f"{beam_size} and {max_caption_len}")
        self.save_hyperparameters(ignore=["model"] if isinstance(model, nn.Module) else None)
        self.tokenizer: CaptionTokenizer = tokenizer_from_config(tokenizer)
        special = {"vocab_size": self.tokenizer.vocab_size, "pad_id": self.tokenizer.pad_id,
                   "bos_id": self.tokenizer.bos_id, "eos_id": self.tokenizer.eos_id}
        self.model = build_task_model(model, "captioning", model_kwargs or {}, **special)
        self.label_smoothing = label_smoothing
        self.max_caption_len = max_caption_len
        self.beam_size = beam_size
        self.length_penalty = length_penalty
        self.meteor = meteor
        self.optimizer_config = optimizer or OptimizerConfig()
        self.predictions_path = predictions_path
        height, width = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
        self.example_input_array = torch.zeros(1, 3, clip_len, height, width)  # (B,C,T,H,W), for the profile
        self.profiled_network = TeacherForcedLogits(self.model, self.tokenizer.vocab_size, max_caption_len - 1)
        self.val_cider_best = MaxMetric()
        # this rank's {video_id: caption} and {video_id: references} of the running evaluation epoch
        self._captions: dict[str, str] = {}
        self._references: dict[str, list[str]] = {}
        self._warned_views = False

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(B,C,T,H,W) -> (B,V) pooled teacher-forced logits (see TeacherForcedLogits)."""
        return self.profiled_network(video)

    # ---------------------------------------------------------------- training
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        video, tokens = batch[keys.VIDEO], batch[keys.CAPTION_TOKENS]  # (B,C,T,H,W), (B,L)
        logits = self.model(video, tokens[:, :-1])  # (B,L-1,V): position i predicts token i+1
        targets = tokens[:, 1:]  # (B,L-1)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=self.tokenizer.pad_id,
                               label_smoothing=self.label_smoothing)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss.item()} at step {self.global_step}")
        real = targets != self.tokenizer.pad_id
        accuracy = (logits.argmax(dim=-1) == targets)[real].float().mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=len(video))
        self.log("train/token_acc", accuracy, batch_size=len(video))
        return loss

    # -------------------------------------------------------------- evaluation
    @torch.no_grad()
    def caption(self, video: torch.Tensor) -> list[str]:
        """Captions of a batch of clips.

        Args:
            video: (B,C,T,H,W) normalized clips, or (B,V,C,T,H,W) evaluation views (the middle view is
                captioned: a caption describes the whole video, which uniform frame sampling already spans).
        """
        if video.dim() == 6:
            if video.shape[1] > 1 and not self._warned_views:
                rank_zero_warn(f"captioning decodes one view per video; {video.shape[1]} views were sampled "
                               f"(num_clips x num_crops), the middle one is used")
                self._warned_views = True
            video = video[:, video.shape[1] // 2]
        tokens, _ = self.model.generate(video, max_len=self.max_caption_len, beam_size=self.beam_size,
                                        length_penalty=self.length_penalty)  # (B,L')
        return [self.tokenizer.decode(row) for row in tokens.tolist()]

    def _evaluation_step(self, batch: dict) -> None:
        for video_id, caption, references in zip(batch[keys.VIDEO_ID], self.caption(batch[keys.VIDEO]),
                                                 batch[keys.REFERENCES], strict=True):
            self._captions[video_id] = caption
            self._references[video_id] = list(references)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluation_step(batch)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluation_step(batch)

    def predict_step(self, batch: dict, batch_idx: int) -> list[str]:
        self._evaluation_step(batch)
        return list(batch[keys.VIDEO_ID])

    def on_validation_epoch_start(self) -> None:
        self._captions, self._references = {}, {}

    on_test_epoch_start = on_validation_epoch_start
    on_predict_epoch_start = on_validation_epoch_start

    def _gathered(self) -> tuple[dict[str, str], dict[str, list[str]]]:
        """Every rank's captions and references (a distributed sampler's repeated videos count once)."""
        mine = (self._captions, self._references)
        self._captions, self._references = {}, {}
        captions, references = {}, {}
        for part_captions, part_references in gather_from_ranks(mine):
            for video_id, caption in part_captions.items():
                captions.setdefault(video_id, caption)
                references.setdefault(video_id, part_references[video_id])
        return captions, references

    def _evaluate_epoch(self, stage: str) -> dict[str, float] | None:
        from lit_video.metrics.captions import score_corpus

        captions, references = self._gathered()
        references = {video_id: refs for video_id, refs in references.items() if refs}
        stats = None
        if self.trainer.is_global_zero and references:
            # once, on the whole corpus (METEOR and the PTB tokenizer start a JVM: not once per rank)
            stats = score_corpus(references, {v: captions[v] for v in references}, meteor=self.meteor)
        stats = self.trainer.strategy.broadcast(stats, src=0)
        if stats is None:
            rank_zero_warn(f"{stage}: the evaluated videos have no reference captions; no scores are computed")
            return None
        for name, value in stats.items():
            self.log(f"{stage}/{name}", float(value), prog_bar=name == "CIDEr", rank_zero_only=False,
                     sync_dist=False)
        if not self.trainer.sanity_checking:
            example = min(references)
            rank_zero_info(f"{stage}: " + ", ".join(f"{k} {v:.3f}" for k, v in stats.items())
                           + f" on {len(references)} videos; {example}: {captions[example]!r}")
        return stats

    def on_validation_epoch_end(self) -> None:
        stats = self._evaluate_epoch("val")
        if stats is None or self.trainer.sanity_checking:
            return
        self.val_cider_best(torch.tensor(stats["CIDEr"]))
        self.log("val/CIDEr_best", self.val_cider_best.compute(), prog_bar=True)

    def on_test_epoch_end(self) -> None:
        self._evaluate_epoch("test")

    def on_fit_end(self) -> None:
        if self.val_cider_best.update_called:
            rank_zero_info(f"best val/CIDEr: {self.val_cider_best.compute():.3f} (CIDEr-D, pycocoevalcap scale)")

    # ------------------------------------------------------------- prediction
    def _predictions_path(self) -> str:
        return self.predictions_path or os.path.join(self.trainer.log_dir or ".", "results.json")

    def on_predict_epoch_end(self) -> None:
        captions, _ = self._gathered()
        if self.trainer.is_global_zero:
            path = self._predictions_path()
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            # COCO caption results; `video_id` repeats the id for tools that read videos by that name
            results = [{"image_id": video_id, "video_id": video_id, "caption": caption}
                       for video_id, caption in captions.items()]
            with open(path, "w") as f:
                json.dump(results, f, indent=1)
            self.print(f"wrote the captions of {len(results)} videos to {path} (COCO caption results format)")

    def configure_optimizers(self):
        groups = weight_decay_groups(self, self.optimizer_config.weight_decay)
        return optimizer_and_schedule(self.optimizer_config, groups, self.trainer)
