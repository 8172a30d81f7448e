"""The VOS models of the motion family: flowprop (the previous mask warped along optical flow, then refined)
and RVOS (a ConvLSTM decoder recurrent over objects and time, one-shot and zero-shot): the warp, shapes at any
size and object count, refusals, gradients, and the task memorizing them at every frame."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lit_video.compute import count_flops
from lit_video.errors import LitVideoError
from lit_video.models import create_model, tiny_kwargs
from lit_video.models.flowprop import backward_flow, object_motion, translate_masks, warp_masks
from lit_video.models.vos_base import carry_mask, local_attention
from lit_video.tasks.vos import VideoObjectSegmentation
from lit_video.video.flow import mirror_frames

CHANNELS = {"rgb": 3, "flow": 2, "rgb+flow": 5}


def tiny(name: str, **kwargs):
    torch.manual_seed(0)
    return create_model(name, task="vos", **{**tiny_kwargs(name), **kwargs})


def frames(count: int, channels: int = 5, batch: int = 2, height: int = 32, width: int = 32, seed: int = 0):
    """`count` random frames (B,C,H,W); the last two channels of a flow modality are flow in pixels."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        frame = torch.randn(batch, channels, height, width, generator=generator)
        if channels != 3:
            frame[:, -2:] *= 3  # a few pixels of motion
        out.append(frame)
    return out


def soft_masks(batch: int, objects: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, objects + 1, height, width, generator=generator) * 3).softmax(dim=1)[:, 1:]


def square(height: int, width: int, top: int, left: int, side: int) -> torch.Tensor:
    mask = torch.zeros(1, 1, height, width)
    mask[..., top:top + side, left:left + side] = 1
    return mask


# ---------------------------------------------------------------- flowprop
def uncorrected_prediction(model, mask: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """flowprop's foreground on the next frame (bool, like `mask`) with its learned correction switched off:
    the carried mask alone, `mask` memorized with `flow` on a random frame."""
    model.eval()
    for parameter in model.decoder.predict.parameters():
        torch.nn.init.zeros_(parameter)
    frame0, frame1 = frames(2, batch=1, height=mask.shape[-2], width=mask.shape[-1])
    frame0[:, -2:] = flow
    memory = model.new_memory()
    with torch.no_grad():
        model.memorize(frame0, mask, memory)
        return model.segment(frame1, memory) > 0


def test_a_mask_is_warped_exactly_along_a_constant_flow():
    mask = square(24, 32, top=5, left=6, side=8)
    flow = torch.zeros(1, 2, 24, 32)
    flow[:, 0], flow[:, 1] = 3.0, -2.0  # 3 px right, 2 px up
    warped, backward = warp_masks(mask, flow)
    # exact up to the float rounding of grid_sample's normalized coordinates
    torch.testing.assert_close(warped, square(24, 32, top=3, left=9, side=8), rtol=0, atol=1e-5)
    assert torch.equal(backward, flow)
    # the model: with its correction switched off, the prediction is exactly the warped mask
    assert torch.equal(uncorrected_prediction(tiny("flowprop"), mask, flow), square(24, 32, top=3, left=9, side=8) > 0)


def test_the_backward_flow_of_a_smooth_motion_inverts_it():
    """A zoom about the centre, f(p) = 0.3 (p - c), has the backward flow g(q) = (0.3 / 1.3) (q - c): the
    fixed-point iterations find it; using the forward flow as if it were backward is off by up to ~1 px."""
    height, width = 33, 33
    ys, xs = torch.meshgrid(torch.arange(height) - 16.0, torch.arange(width) - 16.0, indexing="ij")
    forward = 0.3 * torch.stack([xs, ys])[None]  # (1,2,H,W)
    exact = forward / 1.3
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))  # sources inside the frame
    assert (forward - exact)[inner].abs().max() > 0.8
    assert (backward_flow(forward, iterations=5) - exact)[inner].abs().max() < 0.02


def test_an_object_moves_by_the_median_flow_of_its_interior():
    """The flow inside the square is 3 px right and 2 px up; its border row and column carry the background's
    (zero) flow, as a smoothing flow method gives them, and one interior pixel is an outlier: the object still
    moves by exactly (3, -2), while the per-pixel warp leaves the border behind."""
    mask = square(24, 32, top=6, left=6, side=8)
    flow = torch.zeros(1, 2, 24, 32)
    flow[:, 0, 7:13, 7:13], flow[:, 1, 7:13, 7:13] = 3.0, -2.0
    flow[:, :, 9, 9] = 15.0
    assert torch.equal(object_motion(mask, flow), torch.tensor([[[3.0, -2.0]]]))
    target = square(24, 32, top=4, left=9, side=8)
    torch.testing.assert_close(translate_masks(mask, flow), target, rtol=0, atol=1e-5)
    assert (warp_masks(mask, flow)[0] - target).abs().sum() > 8
    # every object its own motion; an empty mask stays where it is (nowhere)
    two = torch.cat([mask, torch.zeros_like(mask)], dim=1)  # (1,2,H,W)
    assert torch.equal(object_motion(two, flow)[0, 1], torch.zeros(2))
    assert torch.equal(uncorrected_prediction(tiny("flowprop", warp="object"), mask, flow), target > 0)
    with pytest.raises(LitVideoError, match="warp must be one of field, object"):
        tiny("flowprop", warp="affine")


@pytest.mark.parametrize("modality", ["rgb+flow", "flow"])
def test_a_mirrored_video_carries_the_mirrored_masks(modality):
    """Flip TTA: the mirror of a frame negates its flow's x component, so the mirrored pass moves the mirrored
    mask the mirrored way (a plain flip would carry it 3 px the wrong way)."""
    mask = square(24, 32, top=6, left=4, side=8)
    frame = frames(1, CHANNELS[modality], batch=1, height=24, width=32)[0]
    frame[:, -2], frame[:, -1] = 3.0, 1.0
    moved = translate_masks(mask, frame[:, -2:])
    mirrored = mirror_frames(frame, modality)
    torch.testing.assert_close(mirrored[:, :-2], frame[:, :-2].flip(-1))
    torch.testing.assert_close(translate_masks(mask.flip(-1), mirrored[:, -2:]), moved.flip(-1), rtol=0, atol=1e-5)
    assert not torch.allclose(translate_masks(mask.flip(-1), frame.flip(-1)[:, -2:]), moved.flip(-1), atol=0.5)
    assert torch.equal(mirror_frames(frame[:, :3], "rgb"), frame[:, :3].flip(-1))


@pytest.mark.parametrize("modality, match_radius", [("rgb+flow", 0), ("flow", 0), ("rgb+flow", 1)])
def test_flowprop_any_size_and_object_count(modality, match_radius):
    model = tiny("flowprop", modality=modality, match_radius=match_radius).eval()
    with torch.no_grad():
        for height, width in [(16, 16), (20, 36)]:
            for objects in (1, 3):
                first, query = frames(2, CHANNELS[modality], height=height, width=width)
                memory = model.new_memory()
                with pytest.raises(ValueError, match="memorize"):
                    model.segment(query, memory)
                model.memorize(first, soft_masks(2, objects, height, width), memory)
                logits = model.segment(query, memory)
                assert logits.shape == (2, objects, height, width) and torch.isfinite(logits).all()
                model.memorize(query, logits.sigmoid(), memory)
                assert model.segment(first, memory).shape == (2, objects, height, width)
        with pytest.raises(ValueError, match="already holds 3 objects"):
            model.memorize(first, soft_masks(2, 2, height, width), memory)


def test_flowprop_refuses_frames_without_flow_in_one_line():
    with pytest.raises(LitVideoError, match="data.init_args.modality rgb\\+flow or flow, got 'rgb'") as error:
        create_model("flowprop", task="vos", modality="rgb")
    assert "\n" not in str(error.value)
    model = tiny("flowprop")
    (rgb,) = frames(1, channels=3)
    with pytest.raises(ValueError, match="data.init_args.modality"):
        model.memorize(rgb, soft_masks(2, 1, 32, 32), model.new_memory())
    with pytest.raises(LitVideoError, match="warp_iterations"):
        create_model("flowprop", task="vos", warp_iterations=-1)
    for bad in (-1, True, 1.5):
        with pytest.raises(LitVideoError, match="match_radius must be an integer >= 0"):
            create_model("flowprop", task="vos", match_radius=bad)
    with pytest.raises(LitVideoError, match="match_radius > 0 matches colours") as error:
        create_model("flowprop", task="vos", modality="flow", match_radius=2)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name, modality, kwargs", [("flowprop", "rgb+flow", {}), ("rvos", "rgb+flow", {}),
                                                    ("rvos", "rgb", {}), ("flowprop", "rgb+flow", {"match_radius": 1})])
def test_gradients_reach_every_parameter_and_the_first_masks(name, modality, kwargs):
    # with match_radius, the appearance encoder gets gradients only through the carried mask it feeds
    model = tiny(name, modality=modality, **kwargs).train()
    f0, f1, f2 = frames(3, CHANNELS[modality])
    first = soft_masks(2, 2, 32, 32).requires_grad_()
    targets = [(soft_masks(2, 2, 32, 32, seed=s) > 0.3).float() for s in (3, 4)]
    memory = model.new_memory()
    model.memorize(f0, first, memory)
    logits1 = model.segment(f1, memory)
    model.memorize(f1, logits1.sigmoid(), memory)
    logits2 = model.segment(f2, memory)
    loss2 = F.binary_cross_entropy_with_logits(logits2, targets[1])
    (first_grad,) = torch.autograd.grad(loss2, first, retain_graph=True)
    assert first_grad.abs().sum() > 0
    (F.binary_cross_entropy_with_logits(logits1, targets[0]) + loss2).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, missing


@pytest.mark.parametrize("match_radius", [0, 1])
def test_flowprop_objects_joining_mid_video_were_absent_before(match_radius):
    model = tiny("flowprop", match_radius=match_radius).eval()
    f0, f1, f2 = frames(3)
    m0, m1 = soft_masks(2, 1, 32, 32, seed=1), soft_masks(2, 3, 32, 32, seed=2)
    with torch.no_grad():
        grown = model.new_memory()
        model.memorize(f0, m0, grown)
        model.memorize(f1, m1, grown)
        padded = model.new_memory()
        model.memorize(f0, torch.cat([m0, torch.zeros(2, 2, 32, 32)], dim=1), padded)
        model.memorize(f1, m1, padded)
        torch.testing.assert_close(model.segment(f2, grown), model.segment(f2, padded))


def test_flowprop_propagation_can_be_profiled():
    model = tiny("flowprop")
    network = VideoObjectSegmentation(model=model, clip_len=3, resolution=32).compute_network()
    short, long = torch.zeros(1, 5, 2, 32, 32), torch.zeros(1, 5, 3, 32, 32)
    assert 0 < count_flops(network, short) < count_flops(network, long)


def test_local_attention_carries_a_mask_to_where_its_features_moved():
    # a distinctive feature at cell (3, 3) of the previous frame moves one cell right; the rest is alike
    previous, current = torch.zeros(1, 8, 7, 7), torch.zeros(1, 8, 7, 7)
    previous[0, 0, 3, 3] = current[0, 0, 3, 4] = 10.0
    mask = torch.zeros(1, 1, 7, 7)
    mask[0, 0, 3, 3] = 1.0
    carried = carry_mask(local_attention(current, previous, radius=1), mask, radius=1)  # (1,1,7,7)
    assert carried[0, 0, 3, 4] > 0.99
    assert carried[0, 0, 3, 3] < 0.2  # its features match no masked cell of the previous frame
    assert carried[0, 0, :, :2].sum() == 0 and carried[0, 0, :2].sum() == 0  # beyond the radius: nothing


# ---------------------------------------------------------------- rvos
@pytest.mark.parametrize("modality", ["rgb", "rgb+flow"])
def test_rvos_one_shot_and_zero_shot_shapes(modality):
    channels = CHANNELS[modality]
    one_shot = tiny("rvos", modality=modality).eval()
    zero_shot = tiny("rvos", modality=modality, zero_shot=True, max_objects=4).eval()
    with torch.no_grad():
        for height, width in [(16, 16), (20, 36)]:
            video = frames(3, channels, height=height, width=width)
            memory = one_shot.new_memory()
            one_shot.memorize(video[0], soft_masks(2, 3, height, width), memory)
            for frame in video[1:]:
                logits = one_shot.segment(frame, memory)
                assert logits.shape == (2, 3, height, width) and torch.isfinite(logits).all()
                one_shot.memorize(frame, logits.sigmoid(), memory)
            memory = zero_shot.new_memory()
            outputs = [zero_shot.propose(frame, memory) for frame in video]
            for logits, scores in outputs:
                assert logits.shape == (2, 4, height, width) and scores.shape == (2, 4)
                assert torch.isfinite(logits).all() and torch.isfinite(scores).all()
            # the slots' states carry over: the same frame after others gives other proposals
            assert not torch.equal(outputs[0][0], zero_shot.propose(video[0], memory)[0])
    with pytest.raises(LitVideoError, match="zero_shot: true"):
        one_shot.propose(video[0], one_shot.new_memory())
    with pytest.raises(ValueError, match="modality"):
        one_shot.memorize(frames(1, channels + 2)[0], soft_masks(2, 1, 32, 32), one_shot.new_memory())


def test_rvos_decodes_objects_in_turn():
    """Recurrence over objects: slot k sees what slots before it produced, never what comes after it."""
    model = tiny("rvos").eval()
    f0, f1 = frames(2, channels=3)
    masks = soft_masks(2, 3, 32, 32)
    changed = masks.clone()
    changed[:, 1] = changed[:, 1].flip(-1)  # only object 1's mask differs
    with torch.no_grad():
        results = []
        for given in (masks, changed):
            memory = model.new_memory()
            model.memorize(f0, given, memory)
            results.append(model.segment(f1, memory))
    assert torch.equal(results[0][:, 0], results[1][:, 0])  # slot 0 comes first: unaffected
    assert not torch.equal(results[0][:, 2], results[1][:, 2])  # slot 2 comes after the change


def test_rvos_refuses_bad_arguments_in_one_line():
    for bad, match in [(dict(max_objects=21), "max_objects"), (dict(modality="depth"), "modality"),
                       (dict(kernel_size=2), "kernel_size")]:
        with pytest.raises(LitVideoError, match=match) as error:
            create_model("rvos", task="vos", **bad)
        assert "\n" not in str(error.value)


# ---------------------------------------------------------------- the task
@pytest.mark.parametrize("name", ["flowprop", "rvos"])
def test_recurrent_models_are_memorized_at_every_frame_whatever_mem_every_says(name, monkeypatch):
    modality = "rgb+flow" if name == "flowprop" else "rgb"
    model = tiny(name, modality=modality)
    task = VideoObjectSegmentation(model=model, resolution=32, mem_every=5).eval()
    video = torch.randn(CHANNELS[modality], 8, 32, 32)  # (C,T,h,w)
    masks = torch.zeros(8, 32, 32, dtype=torch.int64)
    masks[0, 8:20, 8:20] = 1
    calls = []
    original = model.memorize
    monkeypatch.setattr(model, "memorize", lambda *args: calls.append(1) or original(*args))
    task.segment_video(video, masks, torch.tensor([0]))
    assert len(calls) == 8
    # a model without the attribute keeps mem_every
    monkeypatch.setattr(type(model), "memorize_every_frame", False)
    calls.clear()
    task.segment_video(video, masks, torch.tensor([0]))
    assert len(calls) == 2  # frames 0 and 5


def test_zero_shot_rvos_training_lowers_the_matched_loss_on_a_clip():
    """Unsupervised training end to end on one clip of two moving squares: proposals, Hungarian matching and the
    loss back-propagate through the recurrence, and the loss falls whatever slots the squares settle in."""
    from lit_video.tasks.vos import unsupervised_loss

    torch.manual_seed(0)
    model = tiny("rvos", zero_shot=True, max_objects=3).train()
    generator = torch.Generator().manual_seed(0)
    video = torch.randn(1, 3, 3, 32, 32, generator=generator) * 0.3  # (B,C,T,H,W) noisy background
    masks = torch.zeros(1, 3, 32, 32, dtype=torch.int64)
    for t in range(3):
        video[0, :, t, 4 + 2 * t:12 + 2 * t, 4:12] = torch.tensor([1.5, -1.0, 0.5])[:, None, None]
        masks[0, t, 4 + 2 * t:12 + 2 * t, 4:12] = 1
        video[0, :, t, 18:26, 16 + 2 * t:24 + 2 * t] = torch.tensor([-1.0, 1.5, -0.5])[:, None, None]
        masks[0, t, 18:26, 16 + 2 * t:24 + 2 * t] = 2
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        memory = model.new_memory()
        logits, scores = zip(*(model.propose(video[:, :, t], memory) for t in range(3)), strict=True)
        loss = unsupervised_loss(torch.stack(logits, dim=2), torch.stack(scores, dim=2), masks, torch.tensor([2]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) / 3 < 0.5 * losses[0], losses[::4]


@pytest.mark.parametrize("train_void", ["ignore", "background"])
def test_train_void_decides_what_the_loss_sees_of_void_pixels(train_void, monkeypatch):
    task = VideoObjectSegmentation(model=tiny("flowprop"), resolution=32, train_void=train_void)
    masks = torch.zeros(1, 3, 32, 32, dtype=torch.int64)
    masks[:, :, 8:20, 8:20] = 1
    masks[:, :, 20:22, 8:20] = 255  # a void band along the object's border
    seen = []
    monkeypatch.setattr(task, "propagate_clip", lambda video, clip_masks, num_objects: seen.append(clip_masks) or
                        torch.zeros((), requires_grad=True))
    monkeypatch.setattr(task, "log", lambda *args, **kwargs: None)
    task.training_step({"video": torch.zeros(1, 5, 3, 32, 32), "masks": masks, "num_objects": torch.tensor([1])}, 0)
    (given,) = seen
    void = masks == 255
    assert torch.equal(given[~void], masks[~void])
    assert (given[void] == (255 if train_void == "ignore" else 0)).all()


def test_train_void_refuses_other_values_in_one_line():
    with pytest.raises(LitVideoError, match="train_void must be one of ignore, background, got 'zero'") as error:
        VideoObjectSegmentation(model=tiny("flowprop"), resolution=32, train_void="zero")
    assert "\n" not in str(error.value)
