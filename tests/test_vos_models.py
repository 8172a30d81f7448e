"""VOS models (every model registered with task="vos"): the memory interface at any size and object count,
objects joining mid-video, gradients through a propagation, STM's affinity / top-k / memory bound /
query cache, eval determinism, compute profiling, and a tiny overfit of a translating object."""

from __future__ import annotations

import re
import time

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import ResNet18_Weights, resnet18

from lit_video.compute import count_flops, profile_model
from lit_video.errors import LitVideoError
from lit_video.models import create_model, list_models, model_entry, model_task, tiny_kwargs
from lit_video.models.losses import segmentation_loss
from lit_video.models.stm import STM, memory_affinity
from lit_video.models.vos_base import VOSModel
from lit_video.models.weights import cached_weights_path

VOS_MODELS = list_models(task="vos")


def needs_flow(name: str) -> bool:
    """Whether the model reads optical flow channels beside the colours (and refuses frames without them)."""
    return bool(getattr(model_entry(name), "requires_flow", False))


def channels(name: str) -> int:
    """Channels of the frames the tiny model takes: RGB, or RGB and the flow to the next frame."""
    return 5 if needs_flow(name) else 3


def tiny(name: str, **kwargs) -> VOSModel:
    torch.manual_seed(0)
    modality = {"modality": "rgb+flow"} if needs_flow(name) else {}
    return create_model(name, **{**tiny_kwargs(name), **modality, **kwargs})


def random_masks(batch: int, objects: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Soft masks (B,K,H,W) in [0, 1] whose sum over objects stays <= 1, like aggregated probabilities."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, objects + 1, height, width, generator=generator) * 3
    return logits.softmax(dim=1)[:, 1:]


def frames(count: int, batch: int = 2, height: int = 32, width: int = 32, seed: int = 0,
           channels: int = 3) -> list[Tensor]:
    """`count` random normalized frames (B,C,H,W); with 5 channels the last two are a random flow in pixels."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, channels, height, width, generator=generator) for _ in range(count)]


def test_registry_keeps_vos_models_apart_from_classifiers():
    assert {"stm", "masktrack"} <= set(VOS_MODELS)
    assert not set(VOS_MODELS) & set(list_models())  # the classification loops never see them
    assert set(list_models(task=None)) == (set(list_models()) | set(VOS_MODELS) | set(list_models(task="vis"))
                                           | set(list_models(task="captioning")))
    assert model_task("stm") == "vos" and model_task("c3d") == "classification"
    assert isinstance(create_model("stm", task="vos", **tiny_kwargs("stm")), VOSModel)

    with pytest.raises(LitVideoError, match="'stm' is a vos model and takes no num_classes"):
        create_model("stm", 5)
    listed = re.escape(", ".join(VOS_MODELS))
    wrong_task = f"'c3d' is a classification model, not a vos model; vos models: {listed}$"
    with pytest.raises(LitVideoError, match=wrong_task):
        create_model("c3d", task="vos")
    with pytest.raises(LitVideoError, match="'c3d' is a classification model and needs num_classes"):
        create_model("c3d")
    with pytest.raises(LitVideoError, match="stm.*widht"):
        create_model("stm", widht=8)
    with pytest.raises(LitVideoError, match="no_such_vos.*known models:.*masktrack.*stm"):
        create_model("no_such_vos", task="vos")
    for bad, match in [
        (dict(similarity="cosine"), "cosine"), (dict(max_memory_frames=1), "max_memory_frames"),
        (dict(top_k=0), "top_k"), (dict(backbone="vgg"), "vgg.*small, resnet18"),
        (dict(pretrained=True), "small.*no pretrained"), (dict(memory_stride=32), "out_stride.*32"),
        (dict(fine_skip_dim=-1), "fine_skip_dim"),
    ]:
        with pytest.raises(LitVideoError, match=match):
            create_model("stm", **bad)


@pytest.mark.parametrize("name", VOS_MODELS)
def test_any_size_and_object_count(name):
    model = tiny(name).eval()
    with torch.no_grad():
        for height, width in [(16, 16), (20, 36), (48, 33)]:
            for objects in (1, 3):
                first, query = frames(2, height=height, width=width, channels=channels(name))
                memory = model.new_memory()
                with pytest.raises(ValueError, match="memorize"):
                    model.segment(query, memory)
                model.memorize(first, random_masks(2, objects, height, width), memory)
                logits = model.segment(query, memory)
                assert logits.shape == (2, objects, height, width), (height, width, objects)
                assert torch.isfinite(logits).all()
                model.memorize(query, logits.sigmoid(), memory)
                assert model.segment(first, memory).shape == (2, objects, height, width)
        with pytest.raises(ValueError, match="already holds 3 objects"):
            model.memorize(first, random_masks(2, 2, height, width), memory)
        with pytest.raises(ValueError, match="same B, H, W"):
            model.memorize(first, random_masks(2, 3, height + 1, width), memory)


@pytest.mark.parametrize("stride", [4, 8, 16])
def test_stm_reads_memory_at_its_memory_stride_and_builds_no_deeper_stages(stride):
    model = tiny("stm", memory_stride=stride).eval()
    built = {name for name, _ in model.key_encoder.named_children()}
    assert ("layer3" in built) == (stride == 16) and ("layer2" in built) == (stride >= 8)
    first, query = frames(2, height=20, width=36)  # padded to a multiple of the stride, cropped back
    memory = model.new_memory()
    with torch.no_grad():
        model.memorize(first, random_masks(2, 2, 20, 36), memory)
        assert model.segment(query, memory).shape == (2, 2, 20, 36)
    grid = (-(-20 // stride), -(-36 // stride))
    assert memory.frames[0].key.shape[-2:] == grid and memory.frames[0].values.shape[-2:] == grid


@pytest.mark.parametrize("name", VOS_MODELS)
def test_objects_joining_mid_video_were_absent_before(name):
    # Memory grown at frame 1 == memory that had the two new objects as empty masks from frame 0 on.
    model = tiny(name).eval()
    f0, f1, f2 = frames(3, channels=channels(name))
    m0, m1 = random_masks(2, 1, 32, 32, seed=1), random_masks(2, 3, 32, 32, seed=2)
    with torch.no_grad():
        grown = model.new_memory()
        model.memorize(f0, m0, grown)
        assert model.segment(f1, grown).shape == (2, 1, 32, 32)
        model.memorize(f1, m1, grown)
        joined = model.segment(f2, grown)

        padded = model.new_memory()
        model.memorize(f0, torch.cat([m0, torch.zeros(2, 2, 32, 32)], dim=1), padded)
        model.memorize(f1, m1, padded)
        torch.testing.assert_close(joined, model.segment(f2, padded), rtol=1e-5, atol=1e-5)

        # ... and the new objects' predictions do come from the masks they joined with
        other = model.new_memory()
        model.memorize(f0, m0, other)
        model.memorize(f1, torch.cat([m1[:, :1], m1[:, 1:].flip(-1)], dim=1), other)
        changed = model.segment(f2, other)
        assert (changed[:, 1:] - joined[:, 1:]).abs().max() > 1e-3


@pytest.mark.parametrize("name", VOS_MODELS)
def test_gradients_reach_every_parameter_and_the_first_masks(name):
    model = tiny(name).train()
    f0, f1, f2 = frames(3, channels=channels(name))
    first = random_masks(2, 2, 32, 32).requires_grad_()
    targets = [(random_masks(2, 2, 32, 32, seed=s) > 0.3).float() for s in (3, 4)]
    memory = model.new_memory()
    model.memorize(f0, first, memory)
    logits1 = model.segment(f1, memory)
    model.memorize(f1, logits1.sigmoid(), memory)
    logits2 = model.segment(f2, memory)
    loss2 = F.binary_cross_entropy_with_logits(logits2, targets[1])
    # frame 2 depends on frame 0's masks only through what memory carried forward
    (first_grad,) = torch.autograd.grad(loss2, first, retain_graph=True)
    assert first_grad.abs().sum() > 0
    (F.binary_cross_entropy_with_logits(logits1, targets[0]) + loss2).backward()
    params = list(model.named_parameters())
    no_grad = [n for n, p in params if p.grad is None or not torch.isfinite(p.grad).all()]
    zero_grad = [n for n, p in params if p.grad is not None and p.grad.abs().sum() == 0]
    assert not no_grad and not zero_grad, (no_grad[:5], zero_grad[:5])


@pytest.mark.parametrize("name", VOS_MODELS)
def test_eval_is_deterministic_and_videos_do_not_share_state(name):
    model = tiny(name).eval()
    video_a, video_b = frames(3, seed=5, channels=channels(name)), frames(3, seed=6, channels=channels(name))
    masks_a, masks_b = random_masks(2, 2, 32, 32, seed=7), random_masks(2, 2, 32, 32, seed=8)

    def propagate(video, masks, memory):
        model.memorize(video[0], masks, memory)
        outputs = []
        for frame in video[1:]:
            outputs.append(model.segment(frame, memory))
            model.memorize(frame, outputs[-1].sigmoid(), memory)
        return outputs

    with torch.no_grad():
        alone = propagate(video_a, masks_a, model.new_memory())
        again = propagate(video_a, masks_a, model.new_memory())
        # two videos in flight at once, frames interleaved
        memory_a, memory_b = model.new_memory(), model.new_memory()
        model.memorize(video_a[0], masks_a, memory_a)
        model.memorize(video_b[0], masks_b, memory_b)
        interleaved = []
        for frame_a, frame_b in zip(video_a[1:], video_b[1:]):
            interleaved.append(model.segment(frame_a, memory_a))
            model.memorize(frame_a, interleaved[-1].sigmoid(), memory_a)
            model.memorize(frame_b, model.segment(frame_b, memory_b).sigmoid(), memory_b)
    for x, y, z in zip(alone, again, interleaved):
        assert torch.equal(x, y)
        torch.testing.assert_close(x, z, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name, kwargs", [("stm", dict(top_k=2)), ("masktrack", {})])
def test_mixed_precision_propagation(name, kwargs):
    # bf16 autocast, as Lightning's "bf16-mixed" runs it: a propagation and its backward pass work
    model = tiny(name, **kwargs).train()
    f0, f1, f2 = frames(3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        memory = model.new_memory()
        model.memorize(f0, random_masks(2, 2, 32, 32), memory)
        model.memorize(f1, model.segment(f1, memory).sigmoid(), memory)
        logits = model.segment(f2, memory)
    assert logits.shape == (2, 2, 32, 32) and torch.isfinite(logits.float()).all()
    logits.float().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("similarity", ["l2", "dot"])
def test_affinity_is_a_softmax_over_memory_and_top_k_keeps_k(similarity):
    torch.manual_seed(0)
    memory_keys, query_keys = torch.randn(2, 4, 10), torch.randn(2, 4, 6)  # (B,Ck,N), (B,Ck,M)
    if similarity == "l2":  # -|k - q|^2 / sqrt(Ck), from pairwise distances
        logits = -torch.cdist(memory_keys.transpose(1, 2), query_keys.transpose(1, 2)).pow(2) / 2
    else:
        logits = torch.einsum("bcn,bcm->bnm", memory_keys, query_keys) / 2
    full = memory_affinity(memory_keys, query_keys, similarity)
    torch.testing.assert_close(full, logits.softmax(dim=1), rtol=1e-5, atol=1e-6)
    for k in (10, 25):  # k >= N reads everything
        torch.testing.assert_close(memory_affinity(memory_keys, query_keys, similarity, top_k=k), full)
    for k in (1, 3):
        top = memory_affinity(memory_keys, query_keys, similarity, top_k=k)
        assert ((top > 0).sum(dim=1) == k).all()
        kept = full >= full.topk(k, dim=1).values[:, -1:]  # the k largest of each query position
        torch.testing.assert_close(top, full * kept / (full * kept).sum(dim=1, keepdim=True))


def test_the_readout_is_each_objects_memorized_values_weighted_by_the_query_frames_affinity():
    model = tiny("stm").eval()
    f0, f1, query = frames(3, height=64, width=48)  # a 4x3 grid at the memory stride
    memory = model.new_memory()
    decoded = []
    model.decoder.register_forward_pre_hook(lambda module, args: decoded.append(args[0]))
    with torch.no_grad():
        model.memorize(f0, random_masks(2, 2, 64, 48), memory)
        model.memorize(f1, random_masks(2, 2, 64, 48, seed=1), memory)
        model.segment(query, memory)
        query_keys = model.key_proj(model.key_encoder(query)[-1])  # (B,Ck,4,3)
        affinity = memory_affinity(memory.keys(), query_keys.flatten(2))  # (B,N,12)
        values = memory.values()  # (B,K,Cv,N)
        expected = torch.einsum("bkcn,bnm->bkcm", values, affinity).reshape(-1, values.shape[2], 4, 3)  # (B*K,Cv,h,w)
    (decoder_in,) = decoded  # (B*K,Cv+c,h,w): the readout, then the query frame's features
    torch.testing.assert_close(decoder_in[:, :values.shape[2]], expected)


def test_top_k_changes_the_readout_only_below_the_memory_size():
    model = tiny("stm").eval()
    f0, f1, query = frames(3)
    memory = model.new_memory()
    with torch.no_grad():
        model.memorize(f0, random_masks(2, 2, 32, 32), memory)
        model.memorize(f1, random_masks(2, 2, 32, 32, seed=1), memory)
        positions = memory.keys().shape[2]
        assert positions == 2 * (32 // 16) ** 2  # two frames of 2x2 stride-16 positions

        def readout(k):
            model.top_k = k
            return model.segment(query, memory)

        everything = readout(None)
        assert torch.equal(readout(positions), everything) and torch.equal(readout(positions + 5), everything)
        assert (readout(2) - everything).abs().max() > 1e-4


def test_memory_keeps_the_first_and_the_newest_frames():
    model = tiny("stm", max_memory_frames=3).eval()
    video = frames(7, seed=3)
    masks = [random_masks(2, 2, 32, 32, seed=s) for s in range(6)]
    with torch.no_grad():
        bounded = model.new_memory()
        for frame, mask in zip(video, masks):
            model.memorize(frame, mask, bounded)
        assert bounded.num_frames == 3
        kept = model.new_memory()
        for i in (0, 4, 5):
            model.memorize(video[i], masks[i], kept)
        torch.testing.assert_close(model.segment(video[6], bounded), model.segment(video[6], kept))

        model.max_memory_frames = None
        unbounded = model.new_memory()
        for frame, mask in zip(video, masks):
            model.memorize(frame, mask, unbounded)
        assert unbounded.num_frames == 6


def test_masktrack_remembers_only_the_latest_masks():
    model = tiny("masktrack").eval()
    f0, f1, query = frames(3)
    m0, m1 = random_masks(2, 2, 32, 32), random_masks(2, 2, 32, 32, seed=1)
    with torch.no_grad():
        both, latest, first = model.new_memory(), model.new_memory(), model.new_memory()
        model.memorize(f0, m0, both)
        model.memorize(f1, m1, both)
        model.memorize(f1, m1, latest)
        model.memorize(f0, m0, first)
        torch.testing.assert_close(model.segment(query, both), model.segment(query, latest))
        assert (model.segment(query, both) - model.segment(query, first)).abs().max() > 1e-4


def test_stm_reuses_the_segmented_frames_features_unless_it_changed():
    model = tiny("stm").eval()
    calls = []
    model.key_encoder.register_forward_hook(lambda *_: calls.append(1))
    video = torch.stack(frames(3), dim=2)  # (B,3,T,H,W): frames are sliced anew for each call, as loops do
    masks = random_masks(2, 2, 32, 32)
    with torch.no_grad():
        cached = model.new_memory()
        model.memorize(video[:, :, 0], masks, cached)
        probabilities = model.segment(video[:, :, 1], cached).sigmoid()
        calls.clear()
        model.memorize(video[:, :, 1], probabilities, cached)
        assert not calls  # the key encoder did not run again

        fresh = model.new_memory()
        model.memorize(video[:, :, 0], masks, fresh)
        model.memorize(video[:, :, 1].clone(), probabilities, fresh)
        query = video[:, :, 2]
        torch.testing.assert_close(model.segment(query, cached), model.segment(query, fresh))

        changed = model.new_memory()
        model.memorize(video[:, :, 0], masks, changed)
        model.segment(video[:, :, 1], changed)
        video[:, :, 1] += 1  # written in place after segmenting: the features are stale
        calls.clear()
        model.memorize(video[:, :, 1], probabilities, changed)
        assert calls
        other = model.new_memory()  # another tensor of the same shape (and version): not the same frame
        model.memorize(video[:, :, 0], masks, other)
        model.segment(video[:, :, 1].clone(), other)
        calls.clear()
        model.memorize(video[:, :, 1].clone(), probabilities, other)
        assert calls
        reference = model.new_memory()
        model.memorize(video[:, :, 0], masks, reference)
        model.memorize(video[:, :, 1].clone(), probabilities, reference)
        torch.testing.assert_close(model.segment(query, changed), model.segment(query, reference))


class Propagation(nn.Module):
    """(B,3,T,H,W) -> (B,2) pooled logits of a propagation from a fixed first mask: a module the compute
    profile can measure."""

    def __init__(self, model: VOSModel):
        super().__init__()
        self.model = model

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        first = torch.zeros(video.shape[0], 1, *video.shape[-2:], device=video.device)
        first[..., 4:12, 4:12] = 1
        memory = self.model.new_memory()
        self.model.memorize(video[:, :, 0], first, memory)
        pooled = []
        for t in range(1, video.shape[2]):
            logits = self.model.segment(video[:, :, t], memory)  # (B,1,H,W)
            self.model.memorize(video[:, :, t], logits.sigmoid(), memory)
            pooled.append(torch.cat([-logits, logits], dim=1).mean(dim=(2, 3)))
        return torch.stack(pooled).mean(dim=0)


@pytest.mark.parametrize("name", VOS_MODELS)
def test_a_propagation_can_be_profiled(name):
    network = Propagation(tiny(name))
    c = channels(name)
    short, long = torch.zeros(1, c, 2, 32, 32), torch.zeros(1, c, 3, 32, 32)
    assert 0 < count_flops(network, short) < count_flops(network, long)
    profile = profile_model(network, clip_len=3, resolution=32, batch_size=1, steps=1, warmup=0, device="cpu",
                            channels=c)
    assert profile.gflops > 0 and profile.train_clips_per_s > 0 and profile.peak_memory_mb > 0


def translating_square(size: int = 32, side: int = 10, shift: tuple[int, int] = (9, 7), with_flow: bool = False):
    """Two frames (1,3,H,W) of a textured square on a noisy background, moved by `shift` (rows, columns) ->
    frames, masks. With `with_flow` the frames have 5 channels: the colours, then the true flow to the next
    frame in pixels (x, y), the square's shift on frame 0 and none on frame 1."""
    generator = torch.Generator().manual_seed(0)
    background = torch.randn(1, 3, size, size, generator=generator) * 0.3
    color = torch.tensor([1.5, -1.0, 0.5])[:, None, None]
    texture = torch.randn(1, 3, side, side, generator=generator) * 0.5 + color  # (1,3,side,side)
    frames_, masks = [], []
    for y, x in [(4, 4), (4 + shift[0], 4 + shift[1])]:
        frame, mask = background.clone(), torch.zeros(1, 1, size, size)
        frame[..., y:y + side, x:x + side] = texture
        mask[..., y:y + side, x:x + side] = 1
        if with_flow:
            flow = torch.zeros(1, 2, size, size)
            if not frames_:
                flow[:, 0, y:y + side, x:x + side], flow[:, 1, y:y + side, x:x + side] = shift[1], shift[0]
            frame = torch.cat([frame, flow], dim=1)
        frames_.append(frame)
        masks.append(mask)
    return frames_, masks


@pytest.mark.parametrize("name", VOS_MODELS)
def test_tiny_model_learns_a_translating_object(name):
    model = tiny(name).train()
    (f0, f1), (m0, m1) = translating_square(with_flow=needs_flow(name))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):  # about 30 ms a step on one idle core
        memory = model.new_memory()
        model.memorize(f0, m0, memory)
        logits = model.segment(f1, memory)
        loss = F.binary_cross_entropy_with_logits(logits, m1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.3 * losses[0], losses[::5]
    predicted, target = logits.detach() > 0, m1 > 0
    assert (predicted & target).sum() / (predicted | target).sum() > 0.7  # the square, where it moved to


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """An empty torch hub cache at tmp_path/hub (TORCH_HOME), whatever the machine has cached."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return tmp_path / "hub"


def test_resnet18_backbone_loads_cached_imagenet_weights_and_never_downloads(empty_hub):
    start = time.perf_counter()
    with pytest.raises(LitVideoError, match="not in the torch hub cache"):
        create_model("stm", backbone="resnet18", pretrained=True)
    assert time.perf_counter() - start < 5  # no network attempt

    torch.manual_seed(0)
    imagenet = resnet18(weights=None).state_dict()
    path = cached_weights_path(ResNet18_Weights.IMAGENET1K_V1)
    path.parent.mkdir(parents=True)
    torch.save(imagenet, path)
    model = create_model("stm", backbone="resnet18", pretrained=True, key_dim=8, value_dim=16, decoder_dim=16)
    assert isinstance(model, STM)
    assert torch.equal(model.key_encoder.conv1.weight, imagenet["conv1.weight"])
    assert torch.equal(model.key_encoder.layer3[1].conv2.weight, imagenet["layer3.1.conv2.weight"])
    value_conv1 = model.value_encoder.conv1.weight  # (64, 5, 7, 7): RGB filters, then zeros for the masks
    assert torch.equal(value_conv1[:, :3], imagenet["conv1.weight"]) and not value_conv1[:, 3:].any()
    shallow = create_model("stm", backbone="resnet18", pretrained=True, key_dim=8, value_dim=16, decoder_dim=16,
                           memory_stride=8)  # layer3's weights are skipped, not an error
    assert torch.equal(shallow.key_encoder.layer2[0].conv1.weight, imagenet["layer2.0.conv1.weight"])
    model.eval()
    memory = model.new_memory()
    first, query = frames(2, batch=1)
    with torch.no_grad():
        model.memorize(first, random_masks(1, 2, 32, 32), memory)
        assert model.segment(query, memory).shape == (1, 2, 32, 32)


@pytest.mark.parametrize("fine_skip_dim", [0, 4])
def test_fine_skips_let_stm_draw_details_finer_than_its_stride(fine_skip_dim):
    """A 2-pixel checkerboard object, marked by colour in the frame: segmenting the memorized frame itself,
    a decoder with stride-2/1 skips learns it; one that upsamples from stride 4 cannot draw it."""
    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    target = ((yy // 2 + xx // 2) % 2 == 0) & (yy >= 8) & (yy < 24) & (xx >= 8) & (xx < 24)  # (32,32)
    frame = torch.where(target, torch.tensor([2.0, -1.0, -1.0])[:, None, None], torch.tensor(-1.0))[None]
    model = tiny("stm", memory_stride=4, fine_skip_dim=fine_skip_dim)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        memory = model.new_memory()
        model.memorize(frame, target[None, None].float(), memory)
        logits = model.segment(frame, memory)[0, 0]  # (32,32)
        loss = F.binary_cross_entropy_with_logits(logits, target.float())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    predicted = logits.detach() > 0
    iou = float((predicted & target).sum() / (predicted | target).sum())
    assert (iou > 0.9) if fine_skip_dim else (iou < 0.7), iou


@pytest.mark.parametrize("kwargs", [{}, dict(memory_stride=4, fine_skip_dim=4)])
def test_stm_segments_each_video_of_a_batch_as_if_alone(kwargs):
    """The decoder shares each frame's skip features among that frame's objects: with two videos of three
    objects in one batch, every video's logits equal those it gets on its own."""
    model = tiny("stm", **kwargs).eval()
    first, query = frames(2, height=32, width=48)
    masks = random_masks(2, 3, 32, 48)
    with torch.no_grad():
        together = model.new_memory()
        model.memorize(first, masks, together)
        batched = model.segment(query, together)  # (2,3,32,48)
        for b in range(2):
            alone = model.new_memory()
            model.memorize(first[b:b + 1], masks[b:b + 1], alone)
            torch.testing.assert_close(batched[b:b + 1], model.segment(query[b:b + 1], alone), rtol=1e-4, atol=1e-4)


def test_segmentation_loss_gives_the_recorded_values():
    """The values the loss gave on fixed inputs before it moved to `lit_video.models.losses` (the learning
    figures rest on it): plain, bootstrapped, cross-entropy alone, and a heavy soft-Jaccard weight."""
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 12, 10, generator=generator) * 2  # (B,K+1,H,W)
    target = torch.randint(0, 3, (2, 12, 10), generator=generator)  # (B,H,W)
    target[0, :2] = 255  # VOID rows and columns
    target[1, :, :3] = 255
    values = [segmentation_loss(logits, target), segmentation_loss(logits, target, 0.5, bootstrap=0.3),
              segmentation_loss(logits, target, dice_weight=0), segmentation_loss(logits, target, 2.0, 0.05)]
    assert [float(v) for v in values] == pytest.approx([2.70084, 4.5597887, 1.9210304, 7.6160574], rel=1e-5)
