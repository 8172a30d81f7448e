"""The model zoo: every registered model at several clip lengths / resolutions, weight loading offline,
embedding interpolation, and the torchvision wrappers being torchvision's exact architectures."""

from __future__ import annotations

import inspect
import re
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models import ResNet18_Weights, resnet18

import lit_video.models as models_package
from lit_video.errors import LitVideoError
from lit_video.models import create_model, list_models, model_entry, register_model, registry, tiny_kwargs
from lit_video.models import timesformer as timesformer_module
from lit_video.models import vivit as vivit_module
from lit_video.models.torchvision_video import _ARCHS
from lit_video.models.weights import cached_weights_path

# (clip_len, resolution): two of each, crossed; the largest last so the eval check below uses it.
SIZES = [(t, size) for t in (4, 8) for size in (32, 48)]
EXPECTED = {"c3d", "convlstm", "frame_baseline", "frame_early", "frame_late", "lrcn", "timesformer", "vivit", *_ARCHS}


def test_registry_lists_every_model_sorted_with_num_classes_first():
    names = list_models()
    assert names == sorted(names) and EXPECTED <= set(names)
    for name in names:
        first = next(iter(inspect.signature(model_entry(name)).parameters))
        assert first == "num_classes", name


# The package's models: other test files register stand-ins of their own (a model that runs out of memory),
# which this worker may have imported first.
PACKAGE_MODELS = [name for name in list_models() if model_entry(name).__module__.startswith("lit_video.")]


@pytest.mark.parametrize("name", PACKAGE_MODELS)
def test_forward_backward_at_several_sizes(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, **tiny_kwargs(name))
    for t, size in SIZES:
        x = torch.randn(2, 3, t, size, size)
        model.train()  # dropout active, BatchNorm on batch statistics
        logits = model(x)
        assert logits.shape == (2, 5) and torch.isfinite(logits).all(), (t, size)
        model.zero_grad(set_to_none=True)
        F.cross_entropy(logits, torch.tensor([0, 3])).backward()
        params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        no_grad = [n for n, p in params if p.grad is None]
        not_finite = [n for n, p in params if p.grad is not None and not torch.isfinite(p.grad).all()]
        assert not no_grad and not not_finite, (t, size, no_grad[:5], not_finite[:5])

    model.eval()
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.ndim == 2 and feats.shape[0] == 2
        torch.testing.assert_close(model.forward_head(feats), model(x))


def test_importing_the_package_imports_every_model_module_subpackages_included():
    root = Path(models_package.__file__).parent
    files = [p.relative_to(root.parent.parent).with_suffix("") for p in root.rglob("*.py")]
    expected = {".".join(f.parts[:-1] if f.name == "__init__" else f.parts) for f in files}
    assert {"lit_video.models.query_vis", "lit_video.models.stm"} <= expected
    assert expected <= set(sys.modules)


def test_unknown_model_and_argument_are_user_errors():
    with pytest.raises(LitVideoError, match="no_such_net.*known models:.*c3d"):
        create_model("no_such_net", 5)
    with pytest.raises(LitVideoError, match="c3d.*widht_mult"):
        create_model("c3d", 5, widht_mult=0.5)
    for lookup in (tiny_kwargs, model_entry):
        with pytest.raises(LitVideoError, match="no_such_net"):
            lookup("no_such_net")


def test_register_model_defaults_to_lower_cased_name(monkeypatch):
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    monkeypatch.setattr(registry, "_TINY", dict(registry._TINY))

    @register_model(tiny=dict(width=2))
    class MyNet(torch.nn.Module):
        def __init__(self, num_classes: int, width: int = 8):
            super().__init__()
            self.fc = torch.nn.Linear(width, num_classes)

    @register_model
    def Other_Net(num_classes: int) -> torch.nn.Module:
        return torch.nn.Linear(4, num_classes)

    assert "mynet" in list_models() and tiny_kwargs("mynet") == {"width": 2}
    assert create_model("mynet", 3, **tiny_kwargs("mynet")).fc.out_features == 3
    assert "other_net" in list_models() and tiny_kwargs("other_net") == {}


def test_missing_checkpoint_names_the_path():
    with pytest.raises(LitVideoError, match="/no/such.pt"):
        create_model("mc3_18", 5, checkpoint="/no/such.pt")


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """An empty torch hub cache at tmp_path/hub (TORCH_HOME), whatever the machine has cached."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    assert torch.hub.get_dir() == str(tmp_path / "hub")
    return tmp_path / "hub"


@pytest.mark.parametrize("name, kwargs", [("r3d_18", {}), ("frame_late", {"backbone": "resnet18"})])
def test_pretrained_without_cached_weights_fails_fast(empty_hub, name, kwargs):
    start = time.perf_counter()
    with pytest.raises(LitVideoError, match=re.escape(str(empty_hub / "checkpoints")) + r"/.*\.pth.*checkpoint="):
        create_model(name, 5, pretrained=True, **kwargs)
    assert time.perf_counter() - start < 5  # no network attempt (offline downloads hang for minutes)


def test_pretrained_weights_load_from_the_hub_cache_with_a_new_head(empty_hub):
    _, weights = _ARCHS["s3d"]
    reference = create_model("s3d", 400)  # same keys and shapes as torchvision's K400 file
    path = cached_weights_path(weights)
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)

    model = create_model("s3d", 5, pretrained=True)
    assert model.classifier[1].out_channels == 5
    backbone = {k: v for k, v in reference.state_dict().items() if not k.startswith("classifier.")}
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in backbone.items())
    model.eval()
    reference.eval()
    x = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), reference.forward_features(x))


def test_early_fusion_inflates_pretrained_filters(empty_hub):
    # A pretrained early-fusion model answers a static clip exactly like the 2D network answers one frame.
    path = cached_weights_path(ResNet18_Weights.IMAGENET1K_V1)
    path.parent.mkdir(parents=True)
    torch.save(resnet18(weights=None).state_dict(), path)
    late = create_model("frame_late", 5, pretrained=True).eval()
    early = create_model("frame_early", 5, pretrained=True, early_frames=3).eval()
    clip = torch.randn(2, 3, 1, 64, 64).expand(-1, -1, 5, -1, -1)  # five identical frames
    with torch.no_grad():
        torch.testing.assert_close(early.forward_features(clip), late.forward_features(clip), atol=1e-4, rtol=1e-4)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    trained = create_model("s3d", 5).eval()
    path = tmp_path / "s3d.pt"
    torch.save(trained.state_dict(), path)
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        expected = trained(x)
        torch.manual_seed(1)  # a different initialisation, overwritten by the checkpoint
        assert not torch.allclose(create_model("s3d", 5).eval()(x), expected)
        torch.testing.assert_close(create_model("s3d", 5, checkpoint=str(path)).eval()(x), expected, rtol=0, atol=0)

        # A Lightning checkpoint stores the model under a prefix; the prefix is found and removed.
        lightning_path = tmp_path / "last.ckpt"
        torch.save({"state_dict": {f"model.{k}": v for k, v in trained.state_dict().items()}}, lightning_path)
        torch.testing.assert_close(create_model("s3d", 5, checkpoint=str(lightning_path)).eval()(x), expected)

        # Fine-tuning on another label set: the backbone loads, the head of another size is fresh.
        other = create_model("s3d", 7, checkpoint=str(path)).eval()
        torch.testing.assert_close(other.forward_features(x), trained.forward_features(x))

    with pytest.raises(LitVideoError, match="do not fit"):
        create_model("mc3_18", 5, checkpoint=str(path))


def test_mvit_loads_weights_of_another_native_size(tmp_path):
    # Tables resized at load time give what torchvision's run-time interpolation gives.
    torch.manual_seed(0)
    source = create_model("mvit_v2_s", 5, clip_len=4, resolution=32).eval()
    path = tmp_path / "mvit.ckpt"  # as a LightningModule saves it, under "state_dict" with a prefix
    torch.save({"state_dict": {f"model.{k}": v for k, v in source.state_dict().items()}}, path)
    target = create_model("mvit_v2_s", 5, checkpoint=str(path), clip_len=8, resolution=64).eval()
    assert target.blocks[0].attn.rel_pos_t.shape[0] == 2 * 4 - 1
    x = torch.randn(1, 3, 8, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("module, name", [(timesformer_module, "timesformer"), (vivit_module, "vivit")])
def test_interpolating_embeddings_to_the_native_size_is_the_identity(monkeypatch, module, name):
    torch.manual_seed(0)
    model = create_model(name, 5, num_frames=8, img_size=32, **tiny_kwargs(name)).eval()
    x = torch.randn(2, 3, 8, 32, 32)
    resize, calls = module.resize_embedding, []

    def forced(*args, **kwargs):  # the same helper, told to interpolate even at equal sizes
        calls.append(args[1:3])
        return resize(*args, **{**kwargs, "force": True})

    with torch.no_grad():
        native = model(x)
        monkeypatch.setattr(module, "resize_embedding", forced)
        through_interpolation = model(x)
        monkeypatch.undo()
        assert len(calls) == 2 and all(old == new for old, new in calls)  # spatial and temporal, same sizes
        torch.testing.assert_close(through_interpolation, native, rtol=0, atol=1e-6)

        for t, size in [(4, 48), (16, 48), (1, 32)]:
            out = model(torch.randn(2, 3, t, size, size))
            assert out.shape == (2, 5) and torch.isfinite(out).all()


def test_c3d_has_the_papers_parameters_at_16x112x112():
    with torch.device("meta"):
        model = create_model("c3d", 487)  # Sports-1M
        x = torch.empty(1, 3, 16, 112, 112)
        assert model.features(x).shape == (1, 512, 1, 4, 4)  # pool5 already on fc6's grid
        assert model(x).shape == (1, 487)
    assert sum(p.numel() for p in model.parameters()) == 79_991_015  # conv 27.66M + fc 52.34M


@pytest.mark.parametrize("name", sorted(_ARCHS))
def test_torchvision_wrappers_are_torchvisions_architectures(name):
    builder, weights = _ARCHS[name]
    # torchvision reports GMACs at 16x112x112 for the ResNets, 16x224x224 for the others.
    size = 112 if name in ("r3d_18", "mc3_18", "r2plus1d_18") else 224
    with torch.device("meta"):
        model = create_model(name, 400).eval()
        x = torch.empty(1, 3, 16, size, size)
        with FlopCounterMode(display=False) as counter:
            assert model(x).shape == (1, 400)
    assert sum(p.numel() for p in model.parameters()) == weights.meta["num_params"]
    assert counter.get_total_flops() / 2e9 == pytest.approx(weights.meta["_ops"], abs=1e-3)
