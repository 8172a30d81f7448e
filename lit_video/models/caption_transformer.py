"""Video captioning: a video encoder (per-frame CNN or a registered classification backbone) feeding a
transformer encoder over space-time tokens, and a causal transformer decoder over caption tokens, with
batched greedy and beam search decoding.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from lit_video.errors import LitVideoError
from lit_video.models.frame_encoders import BACKBONES, build_frame_encoder
from lit_video.models.registry import create_model, list_models, model_entry, register_model
from lit_video.models.weights import load_weights, read_state_dict


def _classifier_head(backbone: nn.Module) -> tuple[str, int]:
    """(name, input features) of a classification model's final layer, found as the last Linear /
    Conv whose output size is 1 (the backbone is built with one class, see `CaptionTransformer`)."""
    found = None
    for name, module in backbone.named_modules():
        if isinstance(module, nn.Linear) and module.out_features == 1:
            found = (name, module.in_features)
        elif isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d) and module.out_channels == 1:
            found = (name, module.in_channels)
    if found is None:
        raise LitVideoError(f"cannot find the classifier head of {type(backbone).__name__} to read its feature "
                            f"size; give the model a `num_features` attribute")
    return found


@register_model(
    "caption_transformer",
    task="captioning",
    tiny=dict(backbone="small", width=8, depth=2, hidden_dim=32, num_encoder_layers=1, num_decoder_layers=2,
              num_heads=2, ffn_dim=64, max_len=32),
)
class CaptionTransformer(nn.Module):
    """Encoder-decoder captioner: video -> memory tokens (B, N, D) -> next-token logits.

    Args:
        vocab_size: V, the tokenizer's vocabulary size (special tokens included).
        pad_id: padding token id (masked out as a key; never generated).
        bos_id: begin-of-sequence id that starts every decoder input (never generated).
        eos_id: end-of-sequence id that finishes a caption.
        encoder: "frames" (a 2D CNN per frame, `backbone`) or the name of a registered classification model
            whose `forward_features` encodes the clip.
        encoder_kwargs: arguments of the registered classification model (e.g. its tiny config).
        backbone: per-frame CNN of the "frames" encoder: "small" or "resnet18".
        pretrained: True loads the backbone's own pretrained weights from the torch hub cache (never
            downloads); a path loads a local state_dict / checkpoint into the video backbone.
        width: channels of the first layer of the "small" backbone.
        depth: layers of the "small" backbone.
        token_grid: each frame's feature map is average-pooled to token_grid x token_grid tokens, so that
            where things are (and which way they move) survives into the memory.
        max_frames: learned temporal positions; longer clips interpolate them.
        hidden_dim: D, the width of both transformers.
        num_encoder_layers: transformer layers over the space-time tokens (0 = none).
        num_decoder_layers: transformer decoder layers.
        num_heads: attention heads (divides hidden_dim).
        ffn_dim: hidden size of the feed-forward blocks.
        dropout: dropout in both transformers and on the embeddings.
        max_len: learned decoder positions: the longest token input (BOS included) the decoder accepts.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        pad_id: int = 0,
        bos_id: int = 1,
        eos_id: int = 2,
        encoder: str = "frames",
        encoder_kwargs: dict[str, Any] | None = None,
        backbone: str = "small",
        pretrained: bool | str = False,
        width: int = 32,
        depth: int = 4,
        token_grid: int = 2,
        max_frames: int = 32,
        hidden_dim: int = 256,
        num_encoder_layers: int = 2,
        num_decoder_layers: int = 3,
        num_heads: int = 4,
        ffn_dim: int = 1024,
        dropout: float = 0.1,
        max_len: int = 64,
    ):
        super().__init__()
        special = {"pad_id": pad_id, "bos_id": bos_id, "eos_id": eos_id}
        if any(not 0 <= i < vocab_size for i in special.values()) or len(set(special.values())) < 3:
            raise LitVideoError(f"caption_transformer: pad_id, bos_id and eos_id must be distinct ids below "
                                f"vocab_size={vocab_size}, got {special}")
        if hidden_dim % num_heads:
            raise LitVideoError(f"caption_transformer: hidden_dim ({hidden_dim}) must be a multiple of "
                                f"num_heads ({num_heads})")
        if min(token_grid, max_frames, max_len, num_decoder_layers) < 1 or num_encoder_layers < 0:
            raise LitVideoError("caption_transformer: token_grid, max_frames, max_len and num_decoder_layers "
                                "must be >= 1 and num_encoder_layers >= 0")
        self.vocab_size, self.pad_id, self.bos_id, self.eos_id = vocab_size, pad_id, bos_id, eos_id
        self.token_grid, self.max_frames, self.max_len, self.hidden_dim = token_grid, max_frames, max_len, hidden_dim
        self.encoder_name = encoder
        if encoder == "frames":
            if encoder_kwargs:
                raise LitVideoError("caption_transformer: encoder_kwargs applies to a registered encoder model, "
                                    "not to encoder='frames' (use backbone, width, depth)")
            if backbone not in BACKBONES:
                raise LitVideoError(f"caption_transformer: unknown backbone '{backbone}'; known backbones: "
                                    f"{', '.join(BACKBONES)}")
            self.frame_encoder = build_frame_encoder(backbone, pretrained=pretrained is True, width=width,
                                                     depth=depth)
            if isinstance(pretrained, str | os.PathLike):
                # torchvision's ImageNet file has a classifier ("fc") that the frame encoder dropped
                load_weights(self.frame_encoder, read_state_dict(pretrained), source=str(pretrained),
                             ignore_prefixes=("fc.",))
            feature_dim = self.frame_encoder.out_dim
        else:
            self.video_backbone, feature_dim = self._build_backbone(encoder, dict(encoder_kwargs or {}), pretrained)
        self.input_proj = nn.Linear(feature_dim, hidden_dim)
        self.temporal_embed = nn.Parameter(torch.zeros(max_frames, hidden_dim))
        self.spatial_embed = nn.Parameter(torch.zeros(token_grid * token_grid, hidden_dim))
        self.memory_drop = nn.Dropout(dropout)
        self.video_transformer = (
            nn.TransformerEncoder(
                nn.TransformerEncoderLayer(hidden_dim, num_heads, ffn_dim, dropout, batch_first=True,
                                           norm_first=True),
                num_encoder_layers, norm=nn.LayerNorm(hidden_dim), enable_nested_tensor=False,
            )
            if num_encoder_layers
            else None
        )
        self.token_embed = nn.Embedding(vocab_size, hidden_dim)
        self.position_embed = nn.Parameter(torch.zeros(max_len, hidden_dim))
        self.token_drop = nn.Dropout(dropout)
        self.decoder = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(hidden_dim, num_heads, ffn_dim, dropout, batch_first=True, norm_first=True),
            num_decoder_layers, norm=nn.LayerNorm(hidden_dim),
        )
        # The output projection reuses the token embedding (weight tying, as in GPT / T5): captioning
        # vocabularies are large next to the data, and tying halves the parameters that see each word.
        self.output_bias = nn.Parameter(torch.zeros(vocab_size))
        for param in (self.temporal_embed, self.spatial_embed, self.position_embed, self.token_embed.weight):
            nn.init.trunc_normal_(param, std=0.02)

    @staticmethod
    def _build_backbone(name: str, kwargs: dict[str, Any], pretrained: bool | str) -> tuple[nn.Module, int]:
        """A registered classification model used for its `forward_features`, and its feature size."""
        if name not in list_models():
            raise LitVideoError(f"caption_transformer: encoder must be 'frames' or a classification model; "
                                f"'{name}' is not one (known: {', '.join(list_models())})")
        accepted = inspect.signature(model_entry(name)).parameters
        checkpoint = None
        if pretrained is True:
            kwargs["pretrained"] = True
        elif isinstance(pretrained, str | os.PathLike):
            if "checkpoint" in accepted:
                kwargs["checkpoint"] = str(pretrained)
            else:
                checkpoint = pretrained
        # One class: the head is never used, and a one-output layer is easy to find (see _classifier_head).
        backbone = create_model(name, 1, task="classification", **kwargs)
        head_name, head_in = _classifier_head(backbone)
        if checkpoint is not None:
            load_weights(backbone, read_state_dict(checkpoint), source=str(checkpoint),
                         head_prefixes=(head_name + ".",))
        # The head gets no gradient; freezing it keeps DDP from waiting for one.
        backbone.get_submodule(head_name).requires_grad_(False)
        return backbone, int(getattr(backbone, "num_features", head_in))

    def forward(self, video: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced next-token logits.

        Args:
            video: (B, C, T, H, W) normalized clips.
            tokens: (B, L) int64 decoder inputs: BOS, caption ids, then anything (EOS, pad_id); L <= max_len.

        Returns:
            (B, L, V) logits; position i predicts token i + 1 and sees tokens 0..i only.
        """
        return self.decode(self.encode(video), tokens)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> memory (B, N, D): T x token_grid**2 space-time tokens for the "frames" encoder;
        for a registered backbone one token if it pools, else the tokens of its feature map."""
        if video.dim() != 5:
            raise LitVideoError(f"caption_transformer: video must be (B, C, T, H, W), got shape {tuple(video.shape)}")
        batch, frames = video.shape[0], video.shape[2]
        grid = self.token_grid
        if self.encoder_name == "frames":
            fmap = self.frame_encoder.forward_map(rearrange(video, "b c t h w -> (b t) c h w"))  # (B*T, F, h, w)
            fmap = F.adaptive_avg_pool2d(fmap, grid)  # (B*T, F, g, g): any resolution gives g x g tokens
            feats = rearrange(fmap, "(b t) f gh gw -> b t (gh gw) f", b=batch, t=frames)  # (B, T, S, F)
        else:
            out = self.video_backbone.forward_features(video)
            if out.dim() == 2:  # pooled clip features (B, F): one token
                feats = out[:, None, None]  # (B, 1, 1, F)
            elif out.dim() == 3:  # a token sequence (B, N, F): temporal positions only
                feats = out[:, :, None]  # (B, N, 1, F)
            elif out.dim() == 5:  # a feature map (B, F, t, h, w)
                fmap = F.adaptive_avg_pool3d(out, (out.shape[2], grid, grid))  # (B, F, t, g, g)
                feats = rearrange(fmap, "b f t gh gw -> b t (gh gw) f")  # (B, t, S, F)
            else:
                raise LitVideoError(f"caption_transformer: {self.encoder_name}.forward_features returned shape "
                                    f"{tuple(out.shape)}; expected (B, F), (B, N, F) or (B, F, T, H, W)")
        x = self.input_proj(feats)  # (B, T', S, D)
        x = x + self._temporal_positions(x.shape[1])[:, None]
        if x.shape[2] == self.spatial_embed.shape[0]:
            x = x + self.spatial_embed
        x = self.memory_drop(x.flatten(1, 2))  # (B, N, D), N = T' * S
        return self.video_transformer(x) if self.video_transformer is not None else x

    def _temporal_positions(self, frames: int) -> torch.Tensor:
        """(T', D) learned positions; interpolated linearly when the clip has more than max_frames steps, so a
        sweep may raise clip_len without retraining the embedding from scratch."""
        if frames <= self.max_frames:
            return self.temporal_embed[:frames]
        table = self.temporal_embed.t()[None]  # (1, D, max_frames)
        return F.interpolate(table, size=frames, mode="linear", align_corners=True)[0].t()  # (T', D)

    def decode(self, memory: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """memory (B, N, D), tokens (B, L) -> logits (B, L, V), causal over the tokens."""
        length = tokens.shape[1]
        if length > self.max_len:
            raise LitVideoError(f"caption_transformer: {length} decoder tokens exceed max_len={self.max_len}; "
                                f"raise model max_len or shorten the captions")
        x = self.token_drop(self.token_embed(tokens) + self.position_embed[:length])  # (B, L, D)
        causal = torch.ones(length, length, dtype=torch.bool, device=tokens.device).triu(1)  # True = blocked
        padding = tokens == self.pad_id  # (B, L)
        # a query with every key masked gives NaN; BOS is never padding, whatever the input holds
        padding[:, 0] = False
        h = self.decoder(x, memory, tgt_mask=causal, tgt_is_causal=True, tgt_key_padding_mask=padding)
        return F.linear(h, self.token_embed.weight, self.output_bias)  # (B, L, V)

    @torch.no_grad()
    def generate(
        self, video: torch.Tensor, max_len: int, beam_size: int = 1, length_penalty: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Batched greedy (beam_size=1) or beam search decoding; BOS and pad_id are never generated.

        Beams are ranked by sum(log p) / length**length_penalty, where length counts the tokens up to and
        including EOS (0 = the raw sum). Every batch item and beam runs in one tensor: the loop is over time
        steps only. The model should be in eval mode (dropout), which is the caller's job.

        Args:
            video: (B, C, T, H, W) normalized clips.
            max_len: most tokens to generate, EOS included (at most the model's max_len).
            beam_size: K beams per clip.
            length_penalty: exponent of the length normalisation of the final ranking.

        Returns:
            tokens: (B, L') int64 without BOS, EOS where a caption finished, pad_id after it; L' <= max_len.
            scores: (B,) the ranking score of each returned caption.
        """
        if max_len < 1 or max_len > self.max_len or beam_size < 1:
            raise LitVideoError(f"caption_transformer: generate needs 1 <= max_len <= {self.max_len} (the "
                                f"model's max_len) and beam_size >= 1, got max_len={max_len}, beam_size={beam_size}")
        memory = self.encode(video)  # (B, N, D)
        batch, beams, vocab = memory.shape[0], beam_size, self.vocab_size
        device = memory.device
        memory = memory.repeat_interleave(beams, dim=0)  # (B*K, N, D), beams of a clip adjacent
        seqs = torch.full((batch * beams, 1), self.bos_id, dtype=torch.long, device=device)  # (B*K, 1+t)
        # Only beam 0 is alive at the start: K copies of the same BOS would fill the beam with duplicates.
        scores = torch.full((batch, beams), float("-inf"), device=device)  # (B, K) sum of log-probs
        scores[:, 0] = 0.0
        finished = torch.zeros(batch, beams, dtype=torch.bool, device=device)
        lengths = torch.zeros(batch, beams, dtype=torch.long, device=device)
        # A finished beam may only extend with pad at no cost: it keeps its score and occupies one slot.
        frozen = torch.full((vocab,), float("-inf"), device=device)
        frozen[self.pad_id] = 0.0
        offsets = torch.arange(batch, device=device)[:, None] * beams  # (B, 1) row of each clip's beam 0
        for _ in range(max_len):
            # Without a key/value cache each step re-reads the prefix; captions are short, so this costs
            # little next to the video encoder and keeps the stock torch decoder.
            logits = self.decode(memory, seqs)[:, -1].float()  # (B*K, V)
            log_probs = logits.log_softmax(dim=-1)
            log_probs[:, [self.bos_id, self.pad_id]] = float("-inf")
            log_probs = torch.where(finished[..., None], frozen, log_probs.view(batch, beams, vocab))  # (B, K, V)
            candidates = (scores[..., None] + log_probs).view(batch, beams * vocab)  # (B, K*V)
            scores, flat = candidates.topk(beams, dim=1)  # (B, K)
            parent, token = flat // vocab, flat % vocab
            parent_finished = finished.gather(1, parent)
            lengths = lengths.gather(1, parent) + (~parent_finished).long()
            finished = parent_finished | (token == self.eos_id)
            seqs = torch.cat([seqs[(parent + offsets).flatten()], token.reshape(-1, 1)], dim=1)
            if finished.all():
                break
        ranked = scores / lengths.clamp(min=1).float() ** length_penalty  # (B, K)
        best_score, best = ranked.max(dim=1)  # (B,)
        tokens = seqs.view(batch, beams, -1)[torch.arange(batch, device=device), best, 1:]  # (B, L')
        return tokens, best_score
