"""Captioning models (every model registered with task="captioning"): teacher-forced shapes, causality and
padding, greedy and beam search against step-by-step and exhaustive references, batching, any clip size,
the encoder variants and pretrained weights from a local file, and a tiny overfit of four captions."""

from __future__ import annotations

import itertools
import time

import pytest
import torch

from lit_video.errors import LitVideoError
from lit_video.models import create_model, list_models, model_task, tiny_kwargs

CAPTION_MODELS = list_models(task="captioning")
PAD, BOS, EOS = 0, 1, 2


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(name: str = "caption_transformer", vocab_size: int = 12, seed: int = 0, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    special = dict(pad_id=PAD, bos_id=BOS, eos_id=EOS)
    return create_model(name, task="captioning", vocab_size=vocab_size,
                        **{**special, **tiny_kwargs(name), "dropout": 0.0, **kwargs})


def random_model(seed: int, vocab_size: int = 12, **kwargs) -> torch.nn.Module:
    """A tiny model in eval mode whose next-token distributions are peaked and differ from clip to clip and
    step to step (a freshly initialised one is nearly uniform; with large tied token embeddings it only
    repeats its last token), so that searches have something to find."""
    model = tiny(vocab_size=vocab_size, seed=seed, **kwargs).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() > 1 and "embed" not in name:
                param.normal_(0, 2 / param.shape[-1] ** 0.5, generator=generator)
        model.position_embed.normal_(0, 1.0, generator=generator)
        model.token_embed.weight.normal_(0, 0.3, generator=generator)
        model.output_bias.normal_(0, 1.0, generator=generator)
    return model


def videos(batch: int = 3, frames: int = 4, size: int = 32, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    # a colour per clip and frame: pooled CNN features of pure noise would be nearly the same for every clip
    colours = 2 * torch.randn(batch, 3, frames, 1, 1, generator=generator)
    return colours + torch.randn(batch, 3, frames, size, size, generator=generator)  # (B, C, T, H, W)


def sequence_log_prob(model, video: torch.Tensor, tokens: list[int]) -> float:
    """Sum of log p(token_i | video, BOS, tokens_<i) by teacher forcing, for one clip (1,C,T,H,W)."""
    inputs = torch.tensor([[BOS, *tokens[:-1]]])  # (1, L)
    log_probs = model(video, inputs)[0].log_softmax(dim=-1)  # (L, V)
    return log_probs[torch.arange(len(tokens)), torch.tensor(tokens)].sum().item()


def trim(row: torch.Tensor) -> list[int]:
    """A generated row up to and including EOS (pads dropped)."""
    ids = row.tolist()
    return ids[:ids.index(EOS) + 1] if EOS in ids else ids


def test_registry_and_argument_errors():
    assert "caption_transformer" in CAPTION_MODELS and model_task("caption_transformer") == "captioning"
    assert not set(CAPTION_MODELS) & set(list_models())  # the classification loops never see them
    for bad, match in [(dict(hidden_dim=31), "hidden_dim"), (dict(eos_id=PAD), "distinct"),
                       (dict(encoder="stm"), "'stm' is not one"), (dict(backbone="vgg"), "unknown backbone"),
                       (dict(token_grid=0), "token_grid")]:
        with pytest.raises(LitVideoError, match=match):
            tiny(**bad)
    with pytest.raises(LitVideoError, match="caption_transformer.*num_layer"):
        create_model("caption_transformer", task="captioning", vocab_size=9, num_layers=2)
    model = tiny().eval()
    with pytest.raises(LitVideoError, match="exceed max_len=32"):
        model(videos(1), torch.ones(1, 33, dtype=torch.long))
    with pytest.raises(LitVideoError, match=r"\(B, C, T, H, W\)"):
        model(videos(1)[0], torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(LitVideoError, match="max_len"):
        model.generate(videos(1), max_len=40)


@pytest.mark.parametrize("name", CAPTION_MODELS)
def test_forward_shapes_and_gradients(name):
    model = tiny(name, vocab_size=15)
    tokens = torch.randint(3, 15, (2, 9))  # (B, L)
    tokens[:, 0] = BOS
    logits = model(videos(2), tokens)
    assert logits.shape == (2, 9, 15) and torch.isfinite(logits).all()
    logits.logsumexp(-1).mean().backward()
    frozen = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not frozen, f"parameters without gradient: {frozen}"


def test_decoder_is_causal():
    model = random_model(0)
    video = videos(2)
    tokens = torch.randint(3, 12, (2, 8))
    tokens[:, 0] = BOS
    base = model(video, tokens)
    for i in range(7):
        changed = tokens.clone()
        changed[:, i + 1:] = torch.randint(3, 12, changed[:, i + 1:].shape)
        logits = model(video, changed)
        torch.testing.assert_close(logits[:, :i + 1], base[:, :i + 1])
        assert not torch.allclose(logits[:, i + 1:], base[:, i + 1:])  # the later positions do see the change


def test_padding_leaves_the_caption_alone():
    model = random_model(1)
    video = videos(2)
    caption = torch.tensor([[BOS, 5, 7, 4, EOS], [BOS, 9, EOS, PAD, PAD]])  # (B, L), batch-padded
    padded = torch.cat([caption, torch.full((2, 4), PAD)], dim=1)  # padded to a longer max_caption_len
    logits = model(video, padded)
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(logits[:, :5], model(video, caption))
    torch.testing.assert_close(logits[1:, :3], model(video[1:], caption[1:, :3]))
    # a row of nothing but padding after BOS still gives finite logits (no fully masked attention row)
    assert torch.isfinite(model(video, torch.tensor([[BOS, PAD, PAD]] * 2))).all()


def test_greedy_equals_stepwise_argmax_and_reports_its_log_prob():
    model = random_model(2)
    video = videos(4, seed=2)
    tokens, scores = model.generate(video, max_len=10, beam_size=1, length_penalty=0.0)
    _, normalised = model.generate(video, max_len=10, beam_size=1, length_penalty=1.0)
    assert tokens.dtype == torch.int64 and tokens.shape[0] == 4 and scores.shape == (4,)
    for b in range(4):
        reference: list[int] = []
        while len(reference) < 10 and (not reference or reference[-1] != EOS):
            logits = model(video[b:b + 1], torch.tensor([[BOS, *reference]]))[0, -1]  # (V,)
            logits[[BOS, PAD]] = float("-inf")  # generate never emits these
            reference.append(int(logits.argmax()))
        assert trim(tokens[b]) == reference
        log_prob = sequence_log_prob(model, video[b:b + 1], reference)
        assert scores[b].item() == pytest.approx(log_prob, abs=1e-4)
        assert normalised[b].item() == pytest.approx(log_prob / len(reference), abs=1e-4)
    assert len({tuple(trim(row)) for row in tokens}) > 1  # the clips do steer the captions


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_wide_beam_finds_the_exhaustive_optimum(length_penalty):
    # 3 generable tokens (EOS and two words), at most 3 steps: 15 captions, so 16 beams keep them all
    model = random_model(3, vocab_size=5, max_len=8)
    video = videos(2, seed=3)
    tokens, scores = model.generate(video, max_len=3, beam_size=16, length_penalty=length_penalty)
    captions = [list(c) for n in range(1, 4) for c in itertools.product((EOS, 3, 4), repeat=n)
                if EOS not in c[:-1] and (EOS in c or n == 3)]
    assert len(captions) == 15
    for b in range(2):
        ranked = {tuple(c): sequence_log_prob(model, video[b:b + 1], c) / len(c) ** length_penalty
                  for c in captions}
        best = max(ranked, key=ranked.get)
        assert trim(tokens[b]) == list(best)
        assert scores[b].item() == pytest.approx(ranked[best], abs=1e-4)


def test_beam_search_beats_greedy_and_scores_its_sequence():
    better = 0
    for seed in range(4):
        model = random_model(10 + seed)
        video = videos(3, seed=seed)
        greedy_tokens, greedy = model.generate(video, max_len=8, beam_size=1, length_penalty=0.0)
        beam_tokens, beam = model.generate(video, max_len=8, beam_size=4, length_penalty=0.0)
        assert (beam >= greedy - 1e-5).all(), f"seed {seed}: beam {beam} < greedy {greedy}"
        better += int((beam > greedy + 1e-3).sum())
        for b in range(3):
            assert beam[b].item() == pytest.approx(sequence_log_prob(model, video[b:b + 1], trim(beam_tokens[b])),
                                                   abs=1e-4)
    assert better > 0  # the search did find captions that greedy decoding missed


def test_generated_layout_max_len_and_padding_after_eos():
    model = random_model(4)
    with torch.no_grad():
        model.output_bias[EOS] += 1  # some captions finish, some run into max_len
    video = videos(8, seed=4)
    for beam_size in (1, 3):
        tokens, scores = model.generate(video, max_len=6, beam_size=beam_size)
        assert tokens.dtype == torch.int64 and tokens.shape[0] == 8 and 1 <= tokens.shape[1] <= 6
        assert torch.isfinite(scores).all() and (scores <= 0).all()
        assert not ((tokens == BOS).any())
        finished = 0
        for row in tokens.tolist():
            end = row.index(EOS) + 1 if EOS in row else len(row)
            finished += EOS in row
            assert PAD not in row[:end] and all(t == PAD for t in row[end:])
        assert 0 < finished < 8 and tokens.shape[1] == 6  # the unfinished ones stopped at max_len
    tokens, _ = model.generate(video, max_len=1, beam_size=2)
    assert tokens.shape == (8, 1)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_batch_equals_items_alone(beam_size):
    model = random_model(5)
    video = videos(3, seed=5)
    tokens, scores = model.generate(video, max_len=8, beam_size=beam_size, length_penalty=1.0)
    for b in range(3):
        alone, score = model.generate(video[b:b + 1], max_len=8, beam_size=beam_size, length_penalty=1.0)
        assert trim(tokens[b]) == trim(alone[0])
        assert scores[b].item() == pytest.approx(score.item(), abs=1e-4)


@pytest.mark.parametrize("frames,height,width", [(1, 32, 32), (3, 40, 56), (12, 64, 48)])
def test_any_clip_length_and_resolution(frames, height, width):
    model = tiny(max_frames=8).eval()
    video = torch.randn(2, 3, frames, height, width)
    memory = model.encode(video)
    assert memory.shape == (2, frames * 2 * 2, 32)  # T x token_grid**2 tokens
    tokens, _ = model.generate(video, max_len=5, beam_size=2)
    assert tokens.shape[0] == 2 and tokens.shape[1] <= 5


def test_temporal_positions_interpolate_beyond_max_frames():
    model = tiny(max_frames=8)
    table = model.temporal_embed.detach()
    torch.testing.assert_close(model._temporal_positions(8), table)
    torch.testing.assert_close(model._temporal_positions(5), table[:5])
    longer = model._temporal_positions(15).detach()  # each original position lands on every other step
    assert longer.shape == (15, 32)
    torch.testing.assert_close(longer[::2], table)
    torch.testing.assert_close(longer[1::2], (table[:-1] + table[1:]) / 2)


def test_resnet18_frame_encoder():
    model = tiny(backbone="resnet18", pretrained=False).eval()
    assert model.frame_encoder.out_dim == 512
    video = videos(1, frames=2, size=64)
    assert model.encode(video).shape == (1, 2 * 4, 32)
    tokens, _ = model.generate(video, max_len=3, beam_size=2)
    assert tokens.shape[0] == 1


@pytest.mark.parametrize("encoder", ["lrcn", "r3d_18"])
def test_registered_classifier_as_encoder(encoder):
    model = tiny(encoder=encoder, encoder_kwargs=tiny_kwargs(encoder)).eval()
    video = videos(2, frames=4, size=32)
    assert model.encode(video).shape == (2, 1, 32)  # a pooled clip feature is one memory token
    tokens, _ = model.generate(video, max_len=4, beam_size=2)
    assert tokens.shape[0] == 2
    head = {"lrcn": "head", "r3d_18": "fc"}[encoder]
    assert not any(p.requires_grad for p in model.video_backbone.get_submodule(head).parameters())
    model.train()
    model(video, torch.tensor([[BOS, 5, EOS]] * 2)).sum().backward()
    grads = [p.grad for n, p in model.video_backbone.named_parameters() if not n.startswith(head + ".")]
    assert all(g is not None for g in grads)


def test_pretrained_from_a_local_file(tmp_path):
    # a whole captioning checkpoint ("model." prefix of a LightningModule): its frame encoder is found inside
    source = tiny(seed=1)
    path = tmp_path / "encoder.pt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in source.frame_encoder.state_dict().items()}}, path)
    model = tiny(seed=2, pretrained=str(path))
    for key, value in source.frame_encoder.state_dict().items():
        torch.testing.assert_close(model.frame_encoder.state_dict()[key], value)
    # a classifier trained on other classes: backbone loaded, head skipped
    classifier = create_model("lrcn", 7, **tiny_kwargs("lrcn"))
    torch.save(classifier.state_dict(), tmp_path / "lrcn.pt")
    model = tiny(encoder="lrcn", encoder_kwargs=tiny_kwargs("lrcn"), pretrained=str(tmp_path / "lrcn.pt"))
    torch.testing.assert_close(model.video_backbone.lstm.weight_hh_l0, classifier.lstm.weight_hh_l0)
    with pytest.raises(LitVideoError, match="checkpoint file not found"):
        tiny(pretrained=str(tmp_path / "missing.pt"))
    with pytest.raises(LitVideoError, match="no pretrained weights"):
        tiny(pretrained=True)  # the small CNN has none


def test_overfits_four_captions():
    torch.manual_seed(0)
    model = tiny(vocab_size=16, hidden_dim=64, ffn_dim=128, num_heads=4, num_decoder_layers=2)
    video = videos(4, seed=7)
    captions = [[5, 9, 3, EOS], [7, 7, 12, 4, 8, EOS], [15, 6, EOS], [3, 10, 11, 13, 14, EOS]]
    tokens = torch.full((4, 7), PAD)  # (B, L): BOS, ids, EOS, pad
    for b, caption in enumerate(captions):
        tokens[b, :len(caption) + 1] = torch.tensor([BOS, *caption])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    start = time.perf_counter()
    for _ in range(150):
        logits = model(video, tokens[:, :-1])  # (B, L-1, V)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten(), ignore_index=PAD)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    for beam_size in (1, 3):
        generated, _ = model.generate(video, max_len=7, beam_size=beam_size)
        assert [trim(row) for row in generated] == captions, f"loss {loss.item():.3f}"
    # a guard against the test growing, not a benchmark: about 10 s alone, 23 s seen beside a busy suite
    assert time.perf_counter() - start < 45
