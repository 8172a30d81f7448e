"""Objects without given masks, bottom-up (`lit_video.models.instance_centres`): the centre and offset targets,
grouping a frame's pixels around its centres, linking the frames' objects into tracks, the heads' loss, and
RVOS's `proposals: centres` mode that uses them."""

from __future__ import annotations

import pytest
import torch

from lit_video.errors import LitVideoError
from lit_video.models import create_model, tiny_kwargs
from lit_video.models.instance_centres import (
    OFFSET_UNIT,
    OverlapTracker,
    centre_losses,
    centre_targets,
    group_instances,
    one_hot_proposals,
)
from lit_video.tasks.vos import VideoObjectSegmentation


def two_touching_rectangles(shift: int = 0) -> torch.Tensor:
    """(1,24,32) ids: object 1 a 6x8 rectangle, object 2 a 6x6 one right beside it (they share an edge, so
    connected components would merge them), both moved right by `shift`."""
    ids = torch.zeros(1, 24, 32, dtype=torch.int64)
    ids[0, 4:10, 4 + shift:12 + shift] = 1
    ids[0, 4:10, 12 + shift:18 + shift] = 2
    return ids


def perfect_heads(ids: torch.Tensor) -> torch.Tensor:
    """(N,4,H,W) the heads' outputs that match the targets of `ids` exactly."""
    heat, offsets = centre_targets(ids)
    foreground = torch.where(ids > 0, 10.0, -10.0)
    return torch.cat([foreground[:, None], heat[:, None], offsets], dim=1)


def test_targets_put_each_centre_at_its_objects_centre_of_mass_and_point_every_pixel_there():
    ids = two_touching_rectangles()
    heat, offsets = centre_targets(ids)
    assert heat.shape == (1, 24, 32) and offsets.shape == (1, 2, 24, 32)
    # object 1 spans rows 4..9 and columns 4..11: its centre is (6.5, 7.5), between pixels, so the heatmap's
    # four nearest pixels share its maximum, exp(-0.5 / (2 sigma^2)) at sigma 2
    assert torch.allclose(heat[0, 6:8, 7:9], torch.tensor(0.5 / 8).neg().exp())
    rows, columns = torch.meshgrid(torch.arange(24.0), torch.arange(32.0), indexing="ij")
    for object_id, centre in ((1, (6.5, 7.5)), (2, (6.5, 14.5))):
        inside = ids[0] == object_id
        assert torch.allclose(rows[inside] + OFFSET_UNIT * offsets[0, 0][inside], torch.tensor(centre[0]))
        assert torch.allclose(columns[inside] + OFFSET_UNIT * offsets[0, 1][inside], torch.tensor(centre[1]))
    assert offsets[0][:, ids[0] == 0].abs().sum() == 0  # background points nowhere
    assert torch.equal(centre_targets(torch.zeros(2, 5, 5, dtype=torch.int64))[0], torch.zeros(2, 5, 5))


def test_grouping_around_the_centres_splits_touching_objects():
    ids = two_touching_rectangles()
    heads = perfect_heads(ids)[0]
    # the heatmap's four tied maxima of one centre: keep one, as a trained head's smooth peak would
    heads[1] = heads[1] + 1e-3 * torch.linspace(0, 1, 24 * 32).view(24, 32)
    objects = group_instances(heads)
    assert objects.max() == 2
    # the same partition as the truth, whatever the numbering
    for found in (1, 2):
        truth = ids[0][objects == found].unique()
        assert len(truth) == 1 and torch.equal(objects == found, ids[0] == truth[0])
    # groups under min_area pixels are background; without foreground there is no object
    assert group_instances(heads, min_area=40).max() == 1  # object 2 has 36 pixels
    heads[0] = -10
    assert group_instances(heads).max() == 0


def test_the_tracker_keeps_each_objects_track_whatever_the_frames_number_them():
    tracker = OverlapTracker(max_tracks=3, gap=2)
    first = tracker.update(two_touching_rectangles(0)[0])
    assert torch.equal(first, two_touching_rectangles(0)[0])  # tracks 1, 2 in the order the frame gives
    swapped = two_touching_rectangles(1)[0]
    swapped = torch.where(swapped > 0, 3 - swapped, 0)  # the next frame numbers them the other way round
    assert torch.equal(tracker.update(swapped), two_touching_rectangles(1)[0])
    # object 2 is missed for two frames (the gap), then found again: it returns to its track
    only_first = two_touching_rectangles(2)[0]
    only_first[only_first == 2] = 0
    tracker.update(only_first)
    tracker.update(only_first)
    assert torch.equal(tracker.update(two_touching_rectangles(2)[0]), two_touching_rectangles(2)[0])
    # a new object far from both starts track 3; a fourth track would exceed max_tracks: left out
    frame = two_touching_rectangles(2)[0]
    frame[16:22, 20:26] = 3
    frame[16:22, 2:6] = 4
    tracks = tracker.update(frame)
    assert set(tracks.unique().tolist()) == {0, 1, 2, 3} and (tracks[16:22, 2:6] == 0).all()
    # beyond the gap a lost track is not continued: the object starts over (here: no room left)
    tracker = OverlapTracker(max_tracks=5, gap=1)
    tracker.update(two_touching_rectangles(0)[0])
    tracker.update(torch.zeros(24, 32, dtype=torch.int64))
    tracker.update(torch.zeros(24, 32, dtype=torch.int64))
    assert set(tracker.update(two_touching_rectangles(0)[0]).unique().tolist()) == {0, 3, 4}


def test_colours_keep_two_objects_that_touch_and_part_on_their_own_tracks():
    """Red A on the left, blue B on the right; they meet (one object on the frame), then part having crossed
    over. Overlap alone gives the right-hand object (A) to B's track, whose last mask lies there; the tracks'
    colours give it back to A's."""
    def frame(a_columns, b_columns, merged=False):
        objects = torch.zeros(16, 32, dtype=torch.int64)
        colours = torch.zeros(3, 16, 32)
        for object_id, columns, channel in ((1, a_columns, 0), (2, b_columns, 2)):
            objects[4:12, columns] = 1 if merged else object_id
            colours[channel, 4:12, columns] = 1.0
        return objects, colours

    # columns: A 4..11 and B 18..25; then one object over 8..21; then A 16..23 and B 6..13
    video = [frame(slice(4, 12), slice(18, 26)), frame(slice(8, 15), slice(15, 22), merged=True),
             frame(slice(16, 24), slice(6, 14))]
    for appearance_weight, a_ends_on in ((0.0, 2), (1.0, 1)):
        tracker = OverlapTracker(appearance_weight=appearance_weight)
        tracks = [tracker.update(objects, colours) for objects, colours in video]
        assert tracks[0][8, 5] == 1 and tracks[0][8, 20] == 2
        assert tracks[2][8, 20] == a_ends_on  # where A (red) ends up


def test_proposals_are_one_slot_per_track():
    tracks = two_touching_rectangles()  # (1,H,W) tracks 1 and 2
    logits, scores = one_hot_proposals(tracks, num_slots=4)
    assert logits.shape == (1, 4, 24, 32) and scores.tolist() == [[10.0, 10.0, -10.0, -10.0]]
    assert torch.equal(logits[0, 0] > 0, tracks[0] == 1) and (logits[0, 2:] < 0).all()


def test_the_loss_is_least_for_the_targets_and_never_reads_void():
    ids = two_touching_rectangles().repeat(2, 1, 1)
    perfect = perfect_heads(ids)
    noisy = perfect + 0.5 * torch.randn(perfect.shape, generator=torch.Generator().manual_seed(0))
    assert centre_losses(perfect, ids) < 0.2 * centre_losses(noisy, ids)
    void = ids.clone()
    void[:, :, 20:] = 255  # a void band, here over background
    changed = noisy.clone()
    changed[:, :, :, 20:] = 7.0  # any output at void pixels
    assert torch.allclose(centre_losses(changed, void), centre_losses(noisy, void))
    assert not torch.allclose(centre_losses(changed, ids), centre_losses(noisy, ids))


# ---------------------------------------------------------------- RVOS proposals: centres
def centres_rvos(**kwargs):
    torch.manual_seed(0)
    return create_model("rvos", task="vos", **{**tiny_kwargs("rvos"), "zero_shot": True, "proposals": "centres",
                                               "max_objects": 5, **kwargs})


def test_centres_rvos_proposes_tracks_as_slots_and_its_recurrence_carries_over():
    model = centres_rvos(modality="rgb+flow").eval()
    video = torch.randn(3, 2, 5, 20, 36)  # (T,B,C,H,W)
    with torch.no_grad():
        memory = model.new_memory()
        outputs = [model.propose(frame, memory) for frame in video]
        for logits, scores in outputs:
            assert logits.shape == (2, 5, 20, 36) and scores.shape == (2, 5)
        # the ConvLSTM's state carries over: the same frame after others gives other heads
        again = model.new_memory()
        first = model.dense_heads(video[0], again)
        assert not torch.equal(first, model.dense_heads(video[0], again))


def test_centres_rvos_trains_every_parameter_on_its_dense_loss():
    model = centres_rvos().train()
    video = torch.randn(2, 3, 3, 24, 32)  # (B,C,T,H,W)
    masks = two_touching_rectangles()[:, None].repeat(2, 3, 1, 1)  # (B,T,H,W)
    model.dense_loss(video, masks).backward()
    assert all(parameter.grad is not None and parameter.grad.abs().sum() > 0 for parameter in model.parameters())


def test_centres_rvos_refuses_given_masks_and_one_shot_builds_in_one_line():
    model = centres_rvos()
    for call in (lambda: model.memorize(torch.randn(1, 3, 16, 16), torch.zeros(1, 1, 16, 16), model.new_memory()),
                 lambda: model.segment(torch.randn(1, 3, 16, 16), model.new_memory())):
        with pytest.raises(LitVideoError, match="proposes objects itself") as error:
            call()
        assert "\n" not in str(error.value)
    for bad, match in [(dict(zero_shot=False), "zero_shot: true"), (dict(proposals="boxes"), "proposals")]:
        with pytest.raises(LitVideoError, match=match):
            centres_rvos(**bad)


def test_the_unsupervised_task_trains_centres_rvos_on_its_dense_loss(monkeypatch):
    model = centres_rvos()
    task = VideoObjectSegmentation(model=model, task="unsupervised", resolution=32)
    calls = []
    original = model.dense_loss
    monkeypatch.setattr(model, "dense_loss", lambda *args: calls.append(1) or original(*args))
    video = torch.randn(2, 3, 3, 24, 32)
    masks = two_touching_rectangles()[:, None].repeat(2, 3, 1, 1)
    loss = task.propose_clip(video, masks, torch.tensor([2, 2]))
    assert calls == [1] and torch.isfinite(loss)
    predicted = task.propose_video(video[0], (24, 32))  # (T,H,W) proposals 1..N
    assert predicted.shape == (3, 24, 32) and predicted.max() <= 5


@pytest.mark.parametrize("proposals", ["centres", "slots"])
def test_the_compute_profile_of_an_unsupervised_task_runs_its_proposals(proposals, monkeypatch):
    """What the compute profile counts (`compute_network`) is the zero-shot path training runs, never the
    one-shot propagation from a given mask."""
    model = centres_rvos(proposals=proposals)
    task = VideoObjectSegmentation(model=model, task="unsupervised", resolution=32)
    monkeypatch.setattr(model, "memorize", lambda *args: pytest.fail("memorize called"))
    network = task.compute_network()
    pooled = network(torch.randn(2, 3, 3, 32, 32))  # (B,C,T,H,W)
    assert pooled.shape == (2, 2)
    pooled.sum().backward()
    assert model.encoder.stem[0].weight.grad.abs().sum() > 0
