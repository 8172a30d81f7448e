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
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import nn

from lit_video.data import keys
from lit_video.data.tokenizer import CaptionTokenizer, tokenizer_from_config
from lit_video.errors import LitVideoError
from lit_video.models.registry import build_task_model
from lit_video.tasks.base import VideoTask, clip_frames
from lit_video.tasks.checks import check_number
from lit_video.tasks.optim import OptimizerConfig

MEDIA_FPS = 4.0  # frame rate of the logged clips: a few sampled frames, slow enough to follow


class TeacherForcedLogits(nn.Module):
    """A captioner as a clip -> (B, V) network for the compute profile: the logits of a fixed caption
    of `length` tokens, averaged over its positions, so the profile's backward pass runs through the
    encoder and every decoder layer. Built on demand by `VideoCaptioning.compute_network`, never a
    submodule of the task."""

    def __init__(self, model: nn.Module, vocab_size: int, length: int):
        super().__init__()
        self.model = model
        self.register_buffer("tokens", torch.arange(length)[None] % vocab_size, persistent=False)  # (1,L)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        tokens = self.tokens.expand(len(video), -1)  # (B,L)
        return self.model(video, tokens).mean(dim=1)  # (B,L,V) -> (B,V)


class VideoCaptioning(VideoTask, monitor="CIDEr", predictions="results.json",
                      monitor_note="(CIDEr-D, pycocoevalcap scale)"):
    """Caption videos with an encoder-decoder model.

    Args:
        model: a registry name of a captioning model (`lit_video.models.list_models(task="captioning")`), a
            class from a config's class_path (called with vocab_size and the special token ids), or a module.
        model_kwargs: keyword arguments for a registry name.
        tokenizer: the DataModule's tokenizer as a config dict; linked from `data.tokenizer_config`.
        clip_len: frames per clip; linked from the DataModule (used for the example input).
        resolution: crop size; linked from the DataModule (used for the example input).
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
        tokenizer: dict[str, Any] | None = None,
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
        if tokenizer is None:
            raise LitVideoError("model.init_args.tokenizer is missing: it is linked from a captioning DataModule "
                                "(data.tokenizer_config), e.g. lit_video.data.formats.msrvtt.MSRVTTDataModule")
        if beam_size < 1 or max_caption_len < 2:
            raise LitVideoError(f"model.init_args: beam_size must be >= 1 and max_caption_len >= 2, got "
                                f"{beam_size} and {max_caption_len}")
        check_number("label_smoothing", label_smoothing, 0, 1, high_open=True)
        check_number("length_penalty", length_penalty)
        super().__init__(model, clip_len, resolution, optimizer, predictions_path)
        self.tokenizer: CaptionTokenizer = tokenizer_from_config(tokenizer)
        special = {"vocab_size": self.tokenizer.vocab_size, "pad_id": self.tokenizer.pad_id,
                   "bos_id": self.tokenizer.bos_id, "eos_id": self.tokenizer.eos_id}
        self.model = build_task_model(model, "captioning", model_kwargs, **special)
        self.label_smoothing = label_smoothing
        self.max_caption_len = max_caption_len
        self.beam_size = beam_size
        self.length_penalty = length_penalty
        self.meteor = meteor
        self._warned_views = False

    @torch.no_grad()
    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(B,C,T,H,W) clips -> (B,L') generated token ids (beam search; `caption` decodes them)."""
        tokens, _ = self.model.generate(video, max_len=self.max_caption_len, beam_size=self.beam_size,
                                        length_penalty=self.length_penalty)
        return tokens

    def compute_network(self) -> nn.Module:
        """The model as a clip -> pooled teacher-forced logits network (see TeacherForcedLogits)."""
        return TeacherForcedLogits(self.model, self.tokenizer.vocab_size, self.max_caption_len - 1)

    # ---------------------------------------------------------------- training
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        video, tokens = batch[keys.VIDEO], batch[keys.CAPTION_TOKENS]  # (B,C,T,H,W), (B,L)
        logits = self.model(video, tokens[:, :-1])  # (B,L-1,V): position i predicts token i+1
        targets = tokens[:, 1:]  # (B,L-1)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=self.tokenizer.pad_id,
                               label_smoothing=self.label_smoothing)
        self.log_training_loss(loss, len(video))
        real = targets != self.tokenizer.pad_id
        accuracy = (logits.argmax(dim=-1) == targets)[real].float().mean()
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
        return [self.tokenizer.decode(row) for row in self(video).tolist()]

    def evaluation_step(self, batch: dict, stage: str) -> None:
        """Keeps each video's caption and reference captions for the epoch's corpus scores."""
        video = batch[keys.VIDEO]  # (B,C,T,H,W), or (B,V,C,T,H,W) of which the middle view is captioned
        for index, (video_id, caption, references) in enumerate(zip(
                batch[keys.VIDEO_ID], self.caption(video), batch[keys.REFERENCES], strict=True)):
            self.video_outputs[video_id] = (caption, list(references))
            clip = video[index, video.shape[1] // 2] if video.dim() == 6 else video[index]  # (C,T,H,W)
            self.keep_media(video_id, lambda clip=clip: {"frames": clip_frames(clip), "fps": MEDIA_FPS})

    def _gathered(self) -> tuple[dict[str, str], dict[str, list[str]]]:
        """Every rank's captions and references, by video id."""
        gathered = self.gathered_outputs()
        captions = {video_id: caption for video_id, (caption, _) in gathered.items()}
        references = {video_id: references for video_id, (_, references) in gathered.items()}
        return captions, references

    def evaluation_epoch_end(self, stage: str) -> dict[str, float] | None:
        from lit_video.metrics.captions import evaluate_corpus

        captions, references = self._gathered()
        references = {video_id: refs for video_id, refs in references.items() if refs}
        scored = None
        if self.trainer.is_global_zero and references:
            # once, on the whole corpus (METEOR and the PTB tokenizer start a JVM: not once per rank)
            scored = evaluate_corpus(references, {v: captions[v] for v in references}, meteor=self.meteor)
        scored = self.trainer.strategy.broadcast(scored, src=0)
        stats = None if scored is None else scored.scores
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
        self.report_videos(stage, {video_id: {"predicted": caption, "references": references.get(video_id, []),
                                              "CIDEr": scored.video_cider.get(str(video_id), float("nan"))}
                                   for video_id, caption in captions.items()})
        return stats

    # ------------------------------------------------------------- prediction
    def predict_step(self, batch: dict, batch_idx: int) -> list[str]:
        self.evaluation_step(batch, "predict")
        return list(batch[keys.VIDEO_ID])

    def on_predict_epoch_end(self) -> None:
        captions, _ = self._gathered()
        if self.trainer.is_global_zero:
            path = self.predictions_file()
            # COCO caption results; `video_id` repeats the id for tools that read videos by that name
            results = [{"image_id": video_id, "video_id": video_id, "caption": caption}
                       for video_id, caption in captions.items()]
            with open(path, "w") as f:
                json.dump(results, f, indent=1)
            self.print(f"wrote the captions of {len(results)} videos to {path} (COCO caption results format)")
