"""The two-stream network: one or both streams by modality, late fusion as a log-probability, the learned
fusion, TSN's cross-modality initialisation of the temporal stream, the frame models' modalities, the motion
x colour synthetic data, and the refusals."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cli_errors import assert_one_line_error, run_lit_video
from torchvision.models import ResNet18_Weights, resnet18

from lit_video.data.synthetic.spec import COLOURS, SynthSpec, SynthSpecError, colour_classes
from lit_video.errors import LitVideoError
from lit_video.models import create_model
from lit_video.models.layers import FLOW_SCALE
from lit_video.models.weights import cached_weights_path

TINY = dict(backbone="small", width=8, depth=2)
CHANNELS = {"rgb": 3, "flow": 2, "rgb+flow": 5}


def two_stream(modality: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("two_stream", 4, modality=modality, **{"clip_len": 6, **TINY, **kwargs})


def clip(modality: str, t: int = 6, batch: int = 2) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(batch, CHANNELS[modality], t, 32, 32)


@pytest.mark.parametrize("modality", list(CHANNELS))
def test_each_modality_gives_log_probabilities_and_trains(modality):
    model = two_stream(modality).train()
    out = model(clip(modality))
    assert out.shape == (2, 4) and torch.isfinite(out).all()
    torch.testing.assert_close(out.exp().sum(dim=1), torch.ones(2))  # a log-probability, not logits
    F.nll_loss(out, torch.tensor([0, 3])).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_each_stream_alone_has_only_its_own_parameters():
    spatial, temporal, both = two_stream("rgb"), two_stream("flow"), two_stream("rgb+flow")
    names = {m: {n.split(".")[0] for n, _ in model.named_parameters()}
             for m, model in (("rgb", spatial), ("flow", temporal), ("rgb+flow", both))}
    assert names["rgb"] == {"spatial", "spatial_head"}
    assert names["flow"] == {"temporal", "temporal_head"}
    assert names["rgb+flow"] == names["rgb"] | names["flow"]
    assert temporal.temporal.conv1.in_channels == 2 * 6  # x, y of each of the L = clip_len frames
    # a stream alone is that stream of the fused model (same seed, same layers, same order)
    both.load_state_dict({**spatial.state_dict(), **temporal.state_dict()})
    both.eval(), spatial.eval(), temporal.eval()
    x = clip("rgb+flow")
    with torch.no_grad():
        streams = both.stream_log_probs(both.forward_features(x))
        torch.testing.assert_close(streams["spatial"], spatial(x[:, :3]))
        torch.testing.assert_close(streams["temporal"], temporal(x[:, 3:]))


def test_average_fusion_is_the_log_of_the_mean_of_the_softmax_scores():
    model = two_stream("rgb+flow").eval()
    x = clip("rgb+flow")
    with torch.no_grad():
        streams = model.stream_log_probs(model.forward_features(x))
        expected = torch.log((streams["spatial"].exp() + streams["temporal"].exp()) / 2)
        torch.testing.assert_close(model(x), expected)
        torch.testing.assert_close(model.forward_head(model.forward_features(x)), model(x))


def test_learned_fusion_starts_as_the_mean_of_log_probabilities_and_learns():
    model = two_stream("rgb+flow", fusion="learned").eval()
    x = clip("rgb+flow")
    with torch.no_grad():
        streams = model.stream_log_probs(model.forward_features(x))
        expected = F.log_softmax((streams["spatial"] + streams["temporal"]) / 2, dim=1)
        torch.testing.assert_close(model(x), expected)
    before = model.fuse.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    F.nll_loss(model.train()(x), torch.tensor([1, 2])).backward()
    optimizer.step()
    assert not torch.equal(model.fuse.weight, before)
    # nothing to fuse with one stream: the option changes nothing there
    assert two_stream("flow", fusion="learned").fuse is None


def test_the_temporal_stream_stacks_flow_in_pixels_of_the_clip_and_fits_any_clip_length():
    model = two_stream("flow").eval()
    flow = torch.arange(2 * 3, dtype=torch.float32).reshape(1, 2, 3, 1, 1).expand(1, 2, 3, 4, 4)
    stacked = model.stack_flow(flow)  # a 3-frame clip for L = 6: zero flow after it
    assert stacked.shape == (1, 12, 4, 4)
    assert stacked[0, :, 0, 0].tolist() == [0, 3, 1, 4, 2, 5, 0, 0, 0, 0, 0, 0]  # x0, y0, x1, y1, ...
    longer = torch.arange(10, dtype=torch.float32).reshape(1, 1, 10, 1, 1).expand(1, 2, 10, 1, 1)
    assert model.stack_flow(longer)[0, ::2, 0, 0].tolist() == [2, 3, 4, 5, 6, 7]  # the middle 6 frames
    for t in (1, 6, 9):
        assert model(clip("flow", t)).shape == (2, 4)
    # flow arrives in pixels and is divided by FLOW_SCALE before the first layer
    x = clip("flow")
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), model.temporal(model.stack_flow(x / FLOW_SCALE)))


@pytest.fixture
def imagenet_resnet18(tmp_path, monkeypatch):
    """A random resnet18 state_dict where torchvision's ImageNet file would be cached."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    path = cached_weights_path(ResNet18_Weights.IMAGENET1K_V1)
    path.parent.mkdir(parents=True)
    torch.manual_seed(2)
    state = resnet18(weights=None).state_dict()
    torch.save(state, path)
    return state


def test_pretrained_streams_use_cross_modality_initialisation(imagenet_resnet18):
    rgb = imagenet_resnet18["conv1.weight"]  # (64, 3, 7, 7)
    mean = rgb.mean(dim=1, keepdim=True)
    model = create_model("two_stream", 4, modality="rgb+flow", clip_len=5, backbone="resnet18", pretrained=True)
    torch.testing.assert_close(model.spatial.conv1.weight, rgb)
    torch.testing.assert_close(model.temporal.conv1.weight, mean.expand(-1, 10, -1, -1))
    torch.testing.assert_close(model.temporal.layer4[1].conv2.weight, imagenet_resnet18["layer4.1.conv2.weight"])
    # a frame model on RGB and flow: the RGB filters, then their colour average for each flow channel
    frames = create_model("frame_late", 4, modality="rgb+flow", pretrained=True)
    torch.testing.assert_close(frames.encoder.conv1.weight, torch.cat([rgb, mean, mean], dim=1))


@pytest.mark.parametrize("name", ["frame_single", "frame_late", "frame_early", "frame_slow"])
@pytest.mark.parametrize("modality", ["flow", "rgb+flow"])
def test_the_frame_models_take_every_modality(name, modality):
    torch.manual_seed(0)
    model = create_model(name, 4, modality=modality, **TINY)
    out = model(clip(modality, t=8))
    assert out.shape == (2, 4) and torch.isfinite(out).all()
    with pytest.raises(LitVideoError, match=re.escape(f"modality '{modality}' expects {CHANNELS[modality]} input channels")):
        model(clip("rgb", t=8))


@pytest.mark.parametrize("kwargs, message", [
    (dict(modality="depth"), "unknown modality 'depth'"),
    (dict(fusion="max"), "fusion must be one of average, learned, got 'max'"),
    (dict(clip_len=0), "clip_len must be an integer >= 1, got 0"),
    (dict(pretrained=True), "'small' backbone has no pretrained weights"),
    (dict(backbone="vgg"), "unknown frame backbone 'vgg'"),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(LitVideoError, match=message):
        create_model("two_stream", 4, **{**TINY, **kwargs})
    with pytest.raises(LitVideoError, match="two_stream.*expects 5 input channels"):
        two_stream("rgb+flow")(clip("rgb"))


def test_motion_x_colour_classes_cross_every_motion_with_a_colour_and_leave_the_rest_as_it_was():
    spec = SynthSpec(num_classes=2, videos_per_class=1, num_frames=4, size=(32, 40), seed=4)
    classes = spec.classes(2)
    assert [c.name for c in classes] == ["MoveRightOrange", "MoveRightGreen", "MoveLeftOrange", "MoveLeftGreen"]
    assert classes[1].label == "moving right, green" and classes[1].velocity == spec.motions[0].velocity
    assert spec.classes() == spec.motions and spec.classes(None) == spec.motions
    plain, coloured = spec.render(0, 0), spec.render(0, 0, colours=2)
    changed = np.any(plain != coloured, axis=-1)  # (T, H, W): the moving shapes' pixels only
    assert 0 < changed.mean() < 0.3
    orange = np.asarray(COLOURS["orange"])
    assert np.all(coloured[changed] == orange)  # every shape pixel that changed is the class colour
    with pytest.raises(SynthSpecError, match="colours must be an integer between 2 and 6, got 1"):
        colour_classes(spec.motions, 1)


def test_data_synth_colours_writes_the_crossed_classes_and_refuses_bad_values(tmp_path):
    out = tmp_path / "ucf101"
    result = run_lit_video("data", "synth", "--format", "ucf101", "--out", out, "--num-classes", "2", "--colours", "3",
                           "--videos-per-class", "2", "--num-frames", "4", "--size", "32x40")
    assert result.returncode == 0, result.output
    assert "12 videos of 6 motion x colour classes" in result.stdout
    names = (out / "ucfTrainTestlist" / "classInd.txt").read_text().split()
    assert names[1::2] == ["MoveRightOrange", "MoveRightGreen", "MoveRightBlue", "MoveLeftOrange", "MoveLeftGreen",
                           "MoveLeftBlue"]
    assert json.loads((out / ".lit-video-synth.json").read_text())["colours"] == 3
    for args, fragments in [(("--format", "ucf101", "--colours", "7"), ("--colours", "between 2 and 6", "7")),
                            (("--format", "davis", "--colours", "2"), ("--colours", "ucf101, hmdb51, kinetics", "davis"))]:
        refused = tmp_path / "refused"
        assert_one_line_error(run_lit_video("data", "synth", "--out", refused, *args), *fragments)
        assert not refused.exists()
