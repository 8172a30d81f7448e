"""Which classifiers see frame order: shuffling the frames of a clip changes the output of every temporal
model (transformers with temporal attention, recurrent models, 3D convolutions, early and slow fusion, the
two-stream temporal stream) and leaves the late-fusion models (per-frame features averaged) unchanged."""

from __future__ import annotations

import pytest
import torch

from lit_video.models import create_model, tiny_kwargs

CLIP = (2, 3, 8, 32, 32)  # (B, C, T, H, W)
PERMUTATION = torch.tensor([3, 0, 6, 1, 7, 2, 5, 4])  # no frame keeps its place


def _outputs(name: str, channels: int = 3, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """The outputs of the tiny `name` (eval mode, fixed seed) for a random clip and for its shuffled frames."""
    torch.manual_seed(0)
    model = create_model(name, 5, **{**tiny_kwargs(name), **kwargs}).eval()
    clip = torch.randn(CLIP[0], channels, *CLIP[2:])
    with torch.no_grad():
        return model(clip), model(clip[:, :, PERMUTATION])


def _relative_change(name: str, channels: int = 3, **kwargs) -> float:
    """How much shuffling the frames changes the output of the tiny `name`, relative to how much another
    random clip changes it: about 1e-6 (float rounding) for an order-blind model; 0.2 for the freshly
    initialised TimeSformer, whose time embedding (sinusoidal at first) is all that tells frames apart, and
    0.1 to 1 for the other temporal models."""
    torch.manual_seed(0)
    model = create_model(name, 5, **{**tiny_kwargs(name), **kwargs}).eval()
    clip, other = torch.randn(CLIP[0], channels, *CLIP[2:]), torch.randn(CLIP[0], channels, *CLIP[2:])
    with torch.no_grad():
        original, shuffled, different = model(clip), model(clip[:, :, PERMUTATION]), model(other)
    assert torch.isfinite(original).all() and torch.isfinite(shuffled).all()
    return float((original - shuffled).abs().max() / (original - different).abs().max())


@pytest.mark.parametrize("name", ["timesformer", "vivit", "convlstm", "lrcn", "c3d", "r2plus1d", "frame_early",
                                  "frame_slow"])
def test_temporal_models_see_the_order_of_frames(name):
    assert _relative_change(name) > 1e-4, f"{name} gives the same output for shuffled frames"


@pytest.mark.parametrize("name, modality, channels", [("frame_late", "rgb", 3), ("frame_late", "flow", 2),
                                                      ("two_stream", "rgb", 3)])
def test_late_fusion_models_do_not(name, modality, channels):
    original, shuffled = _outputs(name, channels, modality=modality)
    torch.testing.assert_close(shuffled, original, rtol=1e-5, atol=1e-5)


def test_two_streams_temporal_stream_sees_the_order_and_the_fused_model_with_it():
    assert _relative_change("two_stream", 2, modality="flow", clip_len=8) > 1e-4
    assert _relative_change("two_stream", 5, modality="rgb+flow", clip_len=8) > 1e-4


def test_slow_fusion_reaches_one_frame_from_any_clip_length_and_sees_its_order():
    torch.manual_seed(0)
    model = create_model("frame_slow", 5, **tiny_kwargs("frame_slow")).eval()
    for t in (1, 3, 4, 5, 10, 16, 33):
        clip = torch.randn(2, 3, t, 32, 32)
        with torch.no_grad():
            out = model(clip)
            assert out.shape == (2, 5) and torch.isfinite(out).all(), t
            if t > 4:  # beyond the first convolution's window, the order still matters
                assert not torch.allclose(model(clip.flip(2)), out, atol=1e-4), t


def test_the_single_frame_model_sees_the_middle_frame_only():
    torch.manual_seed(0)
    model = create_model("frame_single", 5, **tiny_kwargs("frame_single")).eval()
    clip = torch.randn(2, 3, 8, 32, 32)
    others = torch.randn(2, 3, 8, 32, 32)
    others[:, :, 4] = clip[:, :, 4]  # the middle frame of 8 (index T // 2)
    with torch.no_grad():
        torch.testing.assert_close(model(others), model(clip))
        assert not torch.allclose(model(clip[:, :, PERMUTATION]), model(clip))
