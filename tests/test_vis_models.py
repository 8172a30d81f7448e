"""VIS models (every model registered with task="vis") and their matching, losses and association: output
shapes in both modes, whole-video segmentation, Hungarian matching against brute force, the set criterion
on perfect / wrong predictions, MinVIS association, gradients, and a tiny overfit of two moving squares."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lit_video.errors import LitVideoError
from lit_video.models import create_model, list_models, model_task, tiny_kwargs
from lit_video.models.losses import dice_loss, pairwise_dice_loss, pairwise_sigmoid_bce_loss, sigmoid_bce_loss
from lit_video.models.vis_association import associate
from lit_video.models.vis_base import ABSENT_LOGIT, VISModel
from lit_video.models.vis_criterion import HungarianMatcher, SetCriterion, resize_targets, semantic_targets
from lit_video.models.vis_decoders import peak_cells

VIS_MODELS = list_models(task="vis")
MODES = ("offline", "online")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(name: str = "query_vis", num_classes: int = 3, **kwargs) -> VISModel:
    torch.manual_seed(0)
    return create_model(name, num_classes=num_classes, task="vis", **{**tiny_kwargs(name), **kwargs})


def test_registry_lists_vis_models_apart():
    assert "query_vis" in VIS_MODELS and model_task("query_vis") == "vis"
    assert not set(VIS_MODELS) & (set(list_models()) | set(list_models(task="vos")))
    model = tiny(num_classes=7, mode="online")
    assert isinstance(model, VISModel) and model.num_classes == 7 and model.mode == "online"
    assert tiny().mode == "offline"  # the default
    for bad, match in [(dict(mode="causal"), "mode 'causal'.*offline, online"),
                       (dict(hidden_dim=30), "hidden_dim"), (dict(num_queries=0), "num_queries"),
                       (dict(memory_strides=(32,)), "memory_strides.*32"), (dict(mask_stride=8), "mask_stride")]:
        with pytest.raises(LitVideoError, match=match):
            tiny(**bad)
    with pytest.raises(LitVideoError, match="query_vis.*num_querys"):
        create_model("query_vis", num_classes=3, num_querys=5)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", VIS_MODELS)
def test_output_shapes(name, mode):
    model = tiny(name, num_classes=3, mode=mode)
    queries, layers = model.num_queries, tiny_kwargs(name)["num_layers"]
    out = model(torch.randn(2, 3, 4, 50, 66))  # padded to the encoder's stride inside, cropped back
    masks = (2, queries, 4, 13, 17)  # ceil(50/4), ceil(66/4)
    assert out["semantic"].shape == (2, 4, 4, 13, 17)  # C+1 dense logits per stride-4 cell
    logits = (2, queries, 4) if mode == "offline" else (2, 4, queries, 4)
    assert out["logits"].shape == logits and out["masks"].shape == masks
    hidden = tiny_kwargs(name)["hidden_dim"]
    embeddings = (2, queries, hidden) if mode == "offline" else (2, 4, queries, hidden)
    assert out["embeddings"].shape == embeddings
    assert len(out["aux"]) == layers  # the initial queries and every layer but the last
    assert all(a["logits"].shape == logits and a["masks"].shape == masks for a in out["aux"])
    assert torch.isfinite(out["masks"]).all() and torch.isfinite(out["logits"]).all()


@pytest.mark.parametrize("mode", MODES)
def test_stride_2_masks_are_the_stride_4_ones_upsampled_plus_each_querys_frame_detail(mode):
    coarse, fine = tiny(num_classes=3, mode=mode).eval(), tiny(num_classes=3, mode=mode, mask_stride=2).eval()
    missing, unexpected = fine.load_state_dict(coarse.state_dict(), strict=False)
    assert not unexpected and all(name.startswith("frame_detail.") for name in missing)
    video = torch.randn(1, 3, 2, 64, 96)
    with torch.no_grad():
        a = coarse(video)
        cropped = fine(torch.randn(1, 3, 2, 50, 66))  # padded inside, cropped back at each stride
        fine.frame_detail[-1].weight.zero_()
        fine.frame_detail[-1].bias.zero_()
        b = fine(video)
    assert cropped["masks"].shape == (1, fine.num_queries, 2, 25, 33)  # ceil(50/2), ceil(66/2)
    assert all(aux["masks"].shape == (1, fine.num_queries, 2, 13, 17) for aux in cropped["aux"])
    assert cropped["semantic"].shape == (1, 2, 4, 13, 17)  # the dense class logits stay at stride 4
    # without detail: the final masks are the stride-4 ones, bilinearly upsampled; the rest is unchanged
    upsampled = F.interpolate(a["masks"][0], size=(32, 48), mode="bilinear", align_corners=False)[None]
    assert b["masks"].shape == (1, fine.num_queries, 2, 32, 48)
    assert torch.allclose(b["masks"], upsampled, atol=1e-5)
    assert torch.allclose(b["logits"], a["logits"]) and torch.allclose(b["aux"][-1]["masks"], a["aux"][-1]["masks"])
    # with it, each query adds its own reading of the frame's stride-2 detail
    torch.nn.init.normal_(fine.frame_detail[-1].weight)
    with torch.no_grad():
        detailed = fine(video)["masks"] - upsampled  # (1,Q,2,32,48)
    assert detailed.abs().mean() > 0.01 and not torch.allclose(detailed[:, 0], detailed[:, 1])


def test_each_query_reads_its_masks_off_the_mask_features_and_the_projected_detail():
    """A query's mask logit at a cell is its mask embedding's dot product with the mask features there (every
    layer), plus, at stride 2, with the detail features after their 1x1 projection: what the decoder computes
    on the embeddings instead."""
    decoder = tiny().decoder.eval()
    groups, frames, dim = 2, 3, decoder.norm.normalized_shape[0]
    memory = [torch.randn(groups, frames, dim, 2, 3), torch.randn(groups, frames, dim, 4, 6)]  # coarsest first
    features = torch.randn(groups, frames, dim, 4, 6)  # (N,F,D,h4,w4)
    detail = torch.randn(groups, frames, 5, 8, 12)  # (N,F,Cd,h2,w2)
    projection = torch.nn.Conv2d(5, dim, 1)  # a bias as well as a weight
    with torch.no_grad():
        predictions, embeddings = decoder(memory, features, temporal=True, detail=detail,
                                          detail_projection=projection)
        initial = decoder.mask_head(decoder.norm(decoder.query_feat.weight))  # (Q,D)
        last = decoder.mask_head(embeddings)  # (N,Q,D)
        projected = projection(detail.flatten(0, 1)).view(groups, frames, dim, 8, 12)  # (N,F,D,h2,w2)
        coarse = torch.einsum("nqd,nfdhw->nqfhw", last, features)
        upsampled = F.interpolate(coarse.flatten(1, 2), size=(8, 12), mode="bilinear", align_corners=False)
        fine = upsampled.view(coarse.shape[:3] + (8, 12)) + torch.einsum("nqd,nfdhw->nqfhw", last, projected)
    torch.testing.assert_close(predictions[0]["masks"], torch.einsum("qd,nfdhw->nqfhw", initial, features))
    torch.testing.assert_close(predictions[-1]["masks"], fine, rtol=1e-4, atol=1e-4)


def test_masked_attention_blocks_outside_each_mask_and_never_everything():
    decoder = tiny().decoder
    masks = torch.full((1, 2, 2, 8, 8), -5.0)  # (N,Q,F,h,w): query 0 covers a corner, query 1 nothing
    masks[0, 0, 1, :4, :4] = 5
    blocked = decoder._attention_mask(masks, (4, 4))  # (heads,Q,F*4*4)
    assert blocked.shape == (decoder.num_heads, 2, 32)
    allowed = ~blocked[0, 0].view(2, 4, 4)
    assert allowed[1, :2, :2].all() and allowed.sum() == 4  # only its own cells, in its own frame
    assert not blocked[:, 1].any()  # an empty mask would attend to nothing (NaN): it sees everything


@pytest.mark.parametrize("strides", [(16,), (8, 4), (16, 8, 4)])
def test_queries_attend_to_the_chosen_pixel_decoder_levels(strides):
    model = tiny(memory_strides=strides)
    grids = []
    for layer in model.decoder.layers:  # record the memory length each layer attends to
        layer.cross_attn.register_forward_hook(lambda m, args, out: grids.append(args[1].shape[1]))
    out = model(torch.randn(1, 3, 2, 32, 64))
    assert out["masks"].shape == (1, model.num_queries, 2, 8, 16)
    tokens = {16: 2 * 2 * 4, 8: 2 * 4 * 8, 4: 2 * 8 * 16}  # frames x grid at each stride
    assert grids == [tokens[strides[k % len(strides)]] for k in range(len(model.decoder.layers))]


@pytest.mark.parametrize("mode", MODES)
def test_online_frames_are_independent_and_offline_frames_are_not(mode):
    model = tiny(mode=mode).eval()
    video = torch.randn(1, 3, 3, 32, 32)
    changed = video.clone()
    changed[:, :, 2] = torch.randn(1, 3, 32, 32)  # only the last frame differs
    with torch.no_grad():
        a, b = model(video), model(changed)
    first_frame_same = torch.allclose(a["masks"][:, :, 0], b["masks"][:, :, 0], atol=1e-5)
    assert first_frame_same == (mode == "online")
    # Reordering the frames reorders an online model's outputs and nothing else; an offline model knows
    # the frame order (temporal position encoding), so its queries change.
    order = torch.tensor([2, 0, 1])
    with torch.no_grad():
        shuffled = model(video[:, :, order])
    equivariant = torch.allclose(shuffled["masks"], a["masks"][:, :, order], atol=1e-4)
    assert equivariant == (mode == "online")


@pytest.mark.parametrize("mode", MODES)
def test_segment_video_on_a_long_video_in_seconds(mode):
    model = tiny(num_classes=4, mode=mode).eval()
    video = torch.randn(1, 3, 100, 96, 128)
    start = time.perf_counter()
    probs, masks = model.segment_video(video)
    elapsed = time.perf_counter() - start
    assert probs.shape == (model.num_queries, 4) and masks.shape == (model.num_queries, 100, 24, 32)
    assert (probs >= 0).all() and (probs.sum(-1) <= 1 + 1e-5).all()  # softmax without "no object"
    assert elapsed < 15, f"{elapsed:.1f} s"  # ~1 s on an idle core
    if mode == "online":  # the window only bounds memory: the same tracks
        windowed = model.segment_video(video, window=7)
        # the convolutions run on 7 frames at a time, not 100: with AVX2 kernels that rounds differently, by up
        # to 0.008 in these mask logits (of up to 4); a swapped or lost track would differ by whole units
        assert torch.allclose(windowed[0], probs, atol=1e-4) and torch.allclose(windowed[1], masks, atol=0.02)
    with pytest.raises(ValueError, match="one video"):
        model.segment_video(torch.randn(2, 3, 4, 32, 32))


def test_default_config_is_the_real_data_one():
    model = create_model("query_vis", num_classes=40, task="vis").eval()
    assert model.num_queries == 100 and len(model.decoder.layers) == 6
    assert model.decoder.query_feat.weight.shape[1] == 256 and hasattr(model.encoder, "conv1")  # resnet18
    with torch.no_grad():
        out = model(torch.randn(1, 3, 2, 32, 32))
    assert out["logits"].shape == (1, 100, 41) and out["masks"].shape == (1, 100, 2, 8, 8)


# ------------------------------------------------------------------------------------------- segment_video
class ScriptedVIS(VISModel):
    """Shows fixed tracks with their queries shuffled in every frame (`shuffled_tracks`); the frame index
    is read from the input's pixel (0,0,0). Offline, a window's queries take its first frame's order."""

    def __init__(self, mode: str, logits: torch.Tensor, masks: torch.Tensor, embeddings: torch.Tensor,
                 perms: torch.Tensor):
        super().__init__()
        self.mode, self.num_classes = mode, logits.shape[-1] - 1
        # per track (Q,C+1), (Q,T,h,w); per frame (T,Q,D) shuffled; query q of frame t = track perms[t, q]
        self.logits, self.masks, self.embeddings, self.perms = logits, masks, embeddings, perms

    def forward(self, video):
        frames = video[0, 0, :, 0, 0].long()  # (F,)
        if self.mode == "online":
            tracks = self.perms[frames]  # (F,Q)
            masks = torch.stack([self.masks[tracks[i], f] for i, f in enumerate(frames)], dim=1)  # (Q,F,h,w)
            return {"logits": self.logits[tracks][None], "masks": masks[None],
                    "embeddings": self.embeddings[frames][None]}
        tracks = self.perms[frames[0]]  # (Q,)
        return {"logits": self.logits[tracks][None], "masks": self.masks[tracks][:, frames][None],
                "embeddings": self.embeddings[frames[0]][None]}


def shuffled_tracks(frames: int, queries: int, classes: int, seed: int = 0):
    """Q tracks with distinct embeddings, classes and masks, and per-frame permutations (T,Q) of their
    queries: query q of frame t shows track perms[t, q].

    Returns:
        per track logits (Q,C+1) and masks (Q,T,h,w); per frame shuffled embeddings (T,Q,D); perms.
    """
    generator = torch.Generator().manual_seed(seed)
    base = torch.randn(queries, 16, generator=generator)
    logits = torch.randn(queries, classes + 1, generator=generator) * 3
    masks = torch.randn(queries, frames, 5, 6, generator=generator)
    perms = torch.stack([torch.randperm(queries, generator=generator) for _ in range(frames)])
    embeddings = base[perms] + 0.05 * torch.randn(frames, queries, 16, generator=generator)  # (T,Q,D)
    return logits, masks, embeddings, perms


def test_associate_recovers_shuffled_queries():
    frames, queries = 7, 9
    _, _, embeddings, perms = shuffled_tracks(frames, queries, 2)
    for momentum in (0.0, 0.5):  # a running mean of each track's embeddings follows them as well
        order = associate(embeddings, momentum=momentum)
        assert order.shape == (frames, queries) and order.dtype == np.int64
        assert (order[0] == np.arange(queries)).all()
        for t in range(frames):  # the query picked for each track at frame t is that track's query of frame 0
            assert torch.equal(perms[t][order[t]], perms[0])


def test_associate_tells_look_alike_queries_apart_by_where_their_masks_lie():
    # Two duplicate queries of one object (the same embedding) in three frames; their masks trade places
    # in frame 1 and back in frame 2. Embeddings alone cannot follow them; the mask overlap does.
    embeddings = torch.ones(3, 2, 4)  # (T,Q,D)
    masks = torch.full((3, 2, 4, 8), -10.0)  # (T,Q,h,w) logits
    left, right = (slice(None), slice(0, 3)), (slice(None), slice(5, 8))
    for t, (a, b) in enumerate([(left, right), (right, left), (left, right)]):
        masks[t, 0][a] = masks[t, 1][b] = 10.0
    order = associate(embeddings, masks, masks, overlap_weight=1.0)
    assert order.tolist() == [[0, 1], [1, 0], [0, 1]]  # track 0 stays on the left
    with pytest.raises(ValueError, match="overlap_weight needs first_masks"):
        associate(embeddings, overlap_weight=1.0)


def test_associate_follows_slowly_drifting_embeddings():
    # Each frame's embeddings drift far from frame 0 over the video, but little between neighbours:
    # matching to the previous frame (MinVIS) keeps the tracks; matching to frame 0 would not.
    generator = torch.Generator().manual_seed(1)
    frames, queries = 30, 6
    steps = 0.3 * torch.randn(frames, queries, 8, generator=generator)
    steps[0] = torch.randn(queries, 8, generator=generator)
    embeddings = steps.cumsum(0)  # (T,Q,D) random walks, query q = track q in every frame
    order = associate(embeddings)
    assert (order == np.arange(queries)).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16-mixed evaluation: the same tracks
        assert (associate(embeddings) == order).all()


@pytest.mark.parametrize("mode", MODES)
def test_segment_video_reorders_queries_into_tracks(mode):
    frames, queries, classes = 6, 5, 3
    logits, masks, embeddings, perms = shuffled_tracks(frames, queries, classes)
    model = ScriptedVIS(mode, logits, masks, embeddings, perms)
    video = torch.arange(frames, dtype=torch.float32).view(1, 1, frames, 1, 1).expand(1, 3, frames, 4, 4)
    window = None if mode == "online" else 2  # offline: windows of 2 frames, associated by embedding
    probs, tracks = model.segment_video(video.contiguous(), window=window)
    order = perms[0]  # tracks come out in frame 0's query order
    assert torch.allclose(probs, logits[order].softmax(-1)[:, :classes], atol=1e-6)
    assert torch.equal(tracks, masks[order])


class OneTrackLeaves(VISModel):
    """Online, two queries in track order: query 0 says "no object" in frame 1 (its instance has left), query
    1 sees its instance throughout; every mask covers the whole frame."""

    mode, num_classes = "online", 2

    def forward(self, video):
        frames = video.shape[2]
        logits = torch.tensor([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0]]).repeat(1, frames, 1, 1)  # (1,T,Q,C+1)
        logits[0, 1, 0] = torch.tensor([0.0, 0.0, 4.0])
        return {"logits": logits, "masks": torch.ones(1, 2, frames, 4, 4),
                "embeddings": torch.eye(2).repeat(1, frames, 1, 1)}  # (1,T,Q,D)


def test_an_online_track_is_empty_where_its_query_says_no_object():
    video = torch.zeros(1, 3, 3, 16, 16)
    kept_probs, kept = OneTrackLeaves().segment_video(video)
    probs, masks = OneTrackLeaves().segment_video(video, absent_threshold=0.5)  # (Q,C), (Q,T,h,w)
    assert torch.equal(kept, torch.ones(2, 3, 4, 4)) and torch.equal(probs, kept_probs)
    assert (masks[0, 1] == ABSENT_LOGIT).all() and (masks[0, 1].sigmoid() < 1e-6).all()
    assert torch.equal(masks[0, [0, 2]], kept[0, [0, 2]]) and torch.equal(masks[1], kept[1])


# ------------------------------------------------------------------------------------------- matching
def pair_cost(logits, masks, labels, gt, weights=(2.0, 5.0, 5.0)):
    """Reference cost of one query vs one instance, written from the definition: logits (C+1,),
    masks (T,h,w), gt (T,h,w)."""
    p, g = masks.sigmoid().flatten(), gt.flatten().float()
    dice = 1 - (2 * (p * g).sum() + 1) / (p.sum() + g.sum() + 1)
    bce = F.binary_cross_entropy_with_logits(masks.flatten(), g)
    return -weights[0] * logits.softmax(-1)[labels] + weights[1] * dice + weights[2] * bce


def perfect_logits(masks: torch.Tensor) -> torch.Tensor:
    return (masks.float() * 2 - 1) * 30  # confident and right everywhere


def test_matcher_picks_the_obvious_assignment():
    torch.manual_seed(0)
    gt = torch.zeros(3, 2, 16, 16, dtype=torch.bool)  # (K,T,h,w) moving rectangles
    for k, (y, x) in enumerate([(1, 1), (8, 2), (3, 9)]):
        for t in range(2):
            gt[k, t, y + t:y + t + 6, x + 2 * t:x + 2 * t + 5] = True
    labels = torch.tensor([2, 0, 1])
    queries = torch.randn(5, 2, 16, 16)  # (Q,T,h,w)
    logits = torch.zeros(5, 4)
    for query, instance in [(4, 0), (1, 2), (2, 1)]:
        queries[query] = perfect_logits(gt[instance]) / 6  # +-5: sampled points between cells stay sane
        logits[query, labels[instance]] = 10
    for num_points in (None, 256):
        (rows, cols), = HungarianMatcher(num_points=num_points)(logits[None], queries[None],
                                                              [{"labels": labels, "masks": gt}])
        assert sorted(zip(rows.tolist(), cols.tolist())) == [(1, 2), (2, 1), (4, 0)]


def test_matcher_equals_brute_force_on_random_costs():
    generator = torch.Generator().manual_seed(0)
    for trial in range(6):
        queries, instances = 5, 3 if trial % 2 else 4
        logits = torch.randn(queries, 4, generator=generator)
        masks = torch.randn(queries, 3, 4, 4, generator=generator)
        gt = torch.rand(instances, 3, 4, 4, generator=generator) > 0.6
        gt[0, 1] = False  # an instance absent from one frame: an empty mask there
        labels = torch.randint(0, 3, (instances,), generator=generator)
        (rows, cols), = HungarianMatcher()(logits[None], masks[None], [{"labels": labels, "masks": gt}])
        cost = torch.tensor([[float(pair_cost(logits[q], masks[q], labels[k], gt[k]))
                              for k in range(instances)] for q in range(queries)])
        best = min(sum(cost[q, k] for k, q in enumerate(perm))
                   for perm in itertools.permutations(range(queries), instances))
        assert len(rows) == instances and sorted(cols.tolist()) == list(range(instances))
        assert float(cost[rows, cols].sum()) == pytest.approx(float(best), abs=1e-4)


def test_matcher_scores_masks_over_all_frames_of_the_clip():
    # Query 0 is right on frame 0 only, query 1 wrong on frame 0 but right on the three others: a per-frame
    # matcher of frame 0 would pick query 0; the clip-level cost picks query 1.
    gt = torch.zeros(1, 4, 8, 8, dtype=torch.bool)
    for t in range(4):
        gt[0, t, 2 + t:6 + t, 1:5] = True
    good_first = perfect_logits(gt[0]).clone()
    good_first[1:] = perfect_logits(~gt[0, 1:])
    good_rest = perfect_logits(gt[0]).clone()
    good_rest[0] = perfect_logits(~gt[0, 0])
    logits = torch.zeros(2, 2)
    (rows, cols), = HungarianMatcher()(logits[None], torch.stack([good_first, good_rest])[None],
                                       [{"labels": torch.tensor([0]), "masks": gt}])
    assert rows.tolist() == [1] and cols.tolist() == [0]


def test_ground_truth_is_area_averaged_to_the_prediction_grid():
    masks = torch.zeros(1, 2, 32, 32, dtype=torch.bool)
    masks[0, 0, 4:12, 8:16] = True  # whole 4x4 cells
    masks[0, 1, 0:2, 0:4] = True  # half of one cell
    small = resize_targets(masks, (8, 8))
    assert small.shape == (1, 2, 8, 8)
    assert small[0, 0, 1:3, 2:4].eq(1).all() and small[0, 0].sum() == 4
    assert small[0, 1, 0, 0] == 0.5 and small[0, 1].sum() == 0.5
    # a 30x30 frame is padded to 32 (bottom / right) like the model's input: its last cells are half real
    full = resize_targets(torch.ones(1, 1, 30, 30), (8, 8))
    assert full[0, 0, :7, :7].eq(1).all() and full[0, 0, 7, :7].eq(0.5).all() and full[0, 0, 7, 7] == 0.25


def test_semantic_targets_share_each_cell_between_its_classes_and_background():
    masks = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    masks[0, 0, 0:4, 0:4] = True  # one whole cell of class 2
    masks[1, 0, 4:6, 4:8] = True  # half a cell of class 0
    dense = semantic_targets([{"labels": torch.tensor([2, 0]), "masks": masks}], num_classes=3, size=(2, 2))
    assert dense.shape == (1, 1, 4, 2, 2)  # (B,T,C+1,h,w)
    assert torch.allclose(dense.sum(2), torch.ones(1, 1, 2, 2))  # a distribution in every cell
    assert dense[0, 0, :, 0, 0].tolist() == [0, 0, 1, 0]
    assert dense[0, 0, :, 1, 1].tolist() == [0.5, 0, 0, 0.5]
    assert dense[0, 0, :, 0, 1].tolist() == [0, 0, 0, 1]  # background only


def test_peak_cells_put_one_query_on_each_object_before_a_second_on_the_largest():
    scores = torch.zeros(2, 2, 8, 8)  # (N,F,h,w)
    yy, xx = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    scores[0, 0] = 0.9 * torch.exp(-((yy - 2) ** 2 + (xx - 2) ** 2) / 8)  # a large object
    scores[0, 1, 6, 6] = 0.3  # a faint small one, in the second frame
    picked = peak_cells(scores, 3)  # (N,3) into F*h*w
    assert picked.shape == (2, 3)
    assert picked[0, :2].tolist() == [2 * 8 + 2, 64 + 6 * 8 + 6]  # both peaks, best first
    ramp = torch.linspace(0, 1, 64).view(1, 1, 8, 8)  # one peak, in the last cell
    assert peak_cells(ramp, 3)[0].tolist() == [63, 62, 61]  # then the best cells that are not peaks
    assert len(set(peak_cells(scores, 10)[1].tolist())) == 10  # a flat map still gives distinct cells


def test_selected_queries_start_on_the_foreground_peaks():
    model = tiny(num_classes=2, query_init="selected", num_queries=2)
    features = torch.randn(1, 1, model.decoder.norm.normalized_shape[0], 4, 6)  # (N,F,D,h,w)
    semantic = torch.zeros(1, 1, 3, 4, 6)  # (N,F,C+1,h,w): background everywhere ...
    semantic[0, 0, 2] = 5.0
    semantic[0, 0, 0, 1, 1] = semantic[0, 0, 1, 2, 4] = 10.0  # ... but two objects
    content, position = model._select_queries(features, semantic)
    cells = features[0, 0].flatten(1).T  # (h*w,D)
    expected = model.selected_content(cells[[1 * 6 + 1, 2 * 6 + 4]])
    assert torch.allclose(content[0], expected) or torch.allclose(content[0], expected.flip(0))
    assert position.shape == content.shape == (1, 2, features.shape[2])
    with pytest.raises(LitVideoError, match="query_init 'selected' needs at least num_queries"):
        model._select_queries(features[..., :1, :1], semantic[..., :1, :1])
    with pytest.raises(LitVideoError, match="unknown query_init 'random'"):
        tiny(query_init="random")


# ------------------------------------------------------------------------------------------- criterion
def clip_targets():
    """Two clips of 3 frames at 8x8: clip 0 has instances of classes 1 and 0 (the second absent from frame
    1), clip 1 one instance of class 2 and one absent from the whole clip."""
    gt0 = torch.zeros(2, 3, 8, 8, dtype=torch.bool)
    gt0[0, :, 1:4, 1:4] = True
    gt0[1, 0, 4:8, 4:8] = gt0[1, 2, 4:8, 2:6] = True
    gt1 = torch.zeros(2, 3, 8, 8, dtype=torch.bool)
    gt1[0, :, 2:6, 3:7] = True
    return [{"labels": torch.tensor([1, 0]), "masks": gt0}, {"labels": torch.tensor([2, 1]), "masks": gt1}]


def offline_outputs(targets, queries=4, classes=3, assignment=((0, 2), (1, 3))):
    """Perfect offline outputs: per clip, query assignment[b][k] shows instance k (those present)."""
    logits = torch.full((2, queries, classes + 1), -10.0)
    logits[..., classes] = 10  # every other query says "no object"
    masks = torch.full((2, queries, 3, 8, 8), -30.0)
    for b, target in enumerate(targets):
        for k, query in enumerate(assignment[b]):
            if target["masks"][k].any():
                logits[b, query] = -10
                logits[b, query, target["labels"][k]] = 10
                masks[b, query] = perfect_logits(target["masks"][k])
    return {"logits": logits, "masks": masks}


def online_outputs(targets, queries=4, classes=3):
    """Perfect online outputs: in every frame, query k + 1 shows instance k where it is visible."""
    logits = torch.full((2, 3, queries, classes + 1), -10.0)
    logits[..., classes] = 10
    masks = torch.full((2, queries, 3, 8, 8), -30.0)
    for b, target in enumerate(targets):
        for k in range(len(target["labels"])):
            for t in range(3):
                if target["masks"][k, t].any():
                    logits[b, t, k + 1] = -10
                    logits[b, t, k + 1, target["labels"][k]] = 10
                    masks[b, k + 1, t] = perfect_logits(target["masks"][k, t])
    return {"logits": logits, "masks": masks}


def criterion(**kwargs) -> SetCriterion:
    return SetCriterion(3, HungarianMatcher(), **kwargs)


@pytest.mark.parametrize("mode", MODES)
def test_criterion_is_zero_for_perfect_predictions_and_grows_with_errors(mode):
    targets = clip_targets()
    perfect = offline_outputs(targets) if mode == "offline" else online_outputs(targets)
    losses = criterion()({**perfect, "aux": [perfect]}, targets)
    assert set(losses) == {"loss", "loss_class", "loss_dice", "loss_mask"}
    assert all(float(v) < 1e-3 for v in losses.values()), losses

    wrong_class = {k: v.clone() for k, v in perfect.items()}
    wrong_class["logits"] = wrong_class["logits"].roll(1, dims=-1)  # every query one class off
    shifted_masks = {**perfect, "masks": perfect["masks"].roll(2, dims=-1)}  # every mask 2 cells off
    for wrong, term in [(wrong_class, "loss_class"), (shifted_masks, "loss_dice"),
                        (shifted_masks, "loss_mask")]:
        assert float(criterion()(wrong, targets)[term]) > 0.5, term

    # deep supervision: a wrong earlier layer adds to the loss, unless it is off
    with_aux = criterion()({**perfect, "aux": [wrong_class]}, targets)["loss"]
    assert float(with_aux) > 1
    assert float(criterion(deep_supervision=False)({**perfect, "aux": [wrong_class]}, targets)["loss"]) < 1e-3


def test_online_criterion_matches_each_frame_to_its_visible_instances():
    # The perfect online outputs say "no object" for an instance in the frames where it is absent; a
    # criterion that matched every instance in every frame would count those as misses.
    targets = clip_targets()
    outputs = online_outputs(targets)
    assert float(criterion()(outputs, targets)["loss"]) < 1e-3
    # and an instance absent from a whole offline clip is no target either (clip 1's second instance)
    assert float(criterion()(offline_outputs(targets), targets)["loss"]) < 1e-3


def test_track_loss_rewards_embeddings_that_follow_each_instance_across_frames():
    targets = clip_targets()
    outputs = online_outputs(targets)  # query k + 1 shows instance k in every frame where it is visible
    codes = 10 * torch.eye(4)  # (Q,D): one direction per query
    consistent = codes[None, None].repeat(2, 3, 1, 1)  # (B,T,Q,D): query k keeps its direction
    swapped = consistent.clone()
    swapped[:, 1] = consistent[:, 1, [0, 2, 1, 3]]  # frame 1: queries 1 and 2 trade embeddings
    weighted = criterion(weights={"track": 1.0})
    good = weighted({**outputs, "embeddings": consistent}, targets)
    bad = weighted({**outputs, "embeddings": swapped}, targets)
    assert float(good["loss_track"]) < 1e-3 < 1 < float(bad["loss_track"])
    assert float(bad["loss"]) - float(good["loss"]) == pytest.approx(float(bad["loss_track"]), rel=1e-4)
    assert "loss_track" not in criterion()({**outputs, "embeddings": swapped}, targets)  # weight 0: off
    # offline outputs have one embedding per clip: nothing to associate, no term
    offline = weighted({**offline_outputs(targets), "embeddings": torch.randn(2, 4, 4)}, targets)
    assert "loss_track" not in offline


def test_criterion_weights_no_object_by_eos_coef():
    targets = clip_targets()
    outputs = offline_outputs(targets)
    unmatched = outputs["logits"][..., 3] > 0  # (B,Q) queries that are no object's
    outputs["logits"][unmatched] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # now they doubt
    per_query = F.cross_entropy(outputs["logits"][unmatched], torch.full((int(unmatched.sum()),), 3),
                                reduction="none")
    matched = int((~unmatched).sum())
    for eos_coef in (0.1, 0.5, 1.0):
        expected = eos_coef * per_query.sum() / (matched + eos_coef * len(per_query))  # weighted mean
        loss = criterion(eos_coef=eos_coef)(outputs, targets)["loss_class"]
        assert float(loss) == pytest.approx(float(expected), rel=1e-4)
    assert float(criterion(eos_coef=0.0)(outputs, targets)["loss_class"]) < 1e-6


def test_criterion_with_sampled_points_and_empty_batches():
    targets = clip_targets()
    perfect = offline_outputs(targets)
    sampled = SetCriterion(3, HungarianMatcher(num_points=64), num_points=64)
    # points between cells see interpolated (soft) targets: a perfect prediction is low, not zero
    right = sampled({**perfect, "masks": perfect["masks"] / 6}, targets)
    shifted = sampled({**perfect, "masks": perfect["masks"].roll(2, dims=-1) / 6}, targets)
    for term in ("loss_dice", "loss_mask"):
        assert float(right[term]) < 0.5 * float(shifted[term]), term
    # clips without any instance: every query is "no object", no mask loss, still differentiable
    empty = [{"labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 3, 8, 8)}] * 2
    outputs = {k: v.clone().requires_grad_() for k, v in perfect.items()}
    losses = criterion()(outputs, empty)
    assert float(losses["loss_dice"]) == 0 and float(losses["loss_class"]) > 1  # two queries claimed objects
    losses["loss"].backward()
    assert outputs["logits"].grad.abs().sum() > 0
    with pytest.raises(LitVideoError, match="unknown VIS loss weights.*dise"):
        SetCriterion(3, HungarianMatcher(), weights={"dise": 1.0})


def test_criterion_adds_the_dense_class_loss_when_weighted():
    targets = clip_targets()
    perfect = offline_outputs(targets)
    dense = semantic_targets(targets, 3, (8, 8))  # (B,T,C+1,h,w)
    good = {**perfect, "semantic": 40 * dense - 20}
    bad = {**perfect, "semantic": 40 * dense.roll(1, dims=2) - 20}  # every cell's class one off
    weighted = criterion(weights={"semantic": 2.0})
    assert float(weighted(good, targets)["loss_semantic"]) < 1e-3
    assert float(weighted(bad, targets)["loss_semantic"]) > 10
    assert float(weighted(bad, targets)["loss"]) > 2 * 10
    assert "loss_semantic" not in criterion()(bad, targets)  # weight 0 (the default): off


# ------------------------------------------------------------------------------------------- loss values
# What the losses gave on fixed inputs before they were split into `losses` / `vis_criterion`: the learning
# figures rest on them, so a refactoring must give the same values.
LOSS_VALUES = {  # (online, num_points) -> (losses, the matcher's (rows, cols) per clip)
    (False, None): (
        {"loss": 23.2125454, "loss_class": 2.09343767, "loss_dice": 0.576726377, "loss_mask": 1.32490063,
         "loss_semantic": 1.8247261},
        [[[1, 3], [0, 1]], [[0, 2], [0, 1]]],
    ),
    (False, 7): (
        {"loss": 20.459631, "loss_class": 1.24147129, "loss_dice": 0.566478431, "loss_mask": 1.23180079,
         "loss_semantic": 1.8247261},
        [[[2, 3], [0, 1]], [[0, 1], [1, 0]]],
    ),
    (True, None): (
        {"loss": 25.2125702, "loss_class": 0.700279117, "loss_dice": 0.517538726, "loss_mask": 1.3687582,
         "loss_semantic": 1.79731321, "loss_track": 10.2641935},
        [[[2, 3], [0, 1]], [[0, 2], [0, 1]]],
    ),
    (True, 7): (
        {"loss": 19.9125328, "loss_class": 0.81539309, "loss_dice": 0.505635738, "loss_mask": 1.11484909,
         "loss_semantic": 1.79731321, "loss_track": 2.08758688},
        [[[1, 3], [0, 1]], [[0, 3], [1, 0]]],
    ),
}
PAIRWISE_DICE = [
    0.463552773, 0.446807623, 0.432760596, 0.524477124, 0.535054803, 0.476259649, 0.436917722, 0.548199654,
    0.47913605, 0.452995062, 0.431277871, 0.478293121, 0.555943847, 0.53273201, 0.548016548
]  # (5,3) flattened
PAIRWISE_BCE = [
    1.28249967, 1.19024444, 1.1977284, 1.76616454, 1.73899293, 1.44252992, 1.12592816, 1.53326154,
    1.30910039, 0.984935105, 0.946834743, 1.16739821, 1.3321594, 1.22921145, 1.36550736
]  # (5,3) flattened


def seeded_targets_and_outputs(online: bool) -> tuple[list[dict], dict]:
    """Random targets (one instance absent from a frame, one from the whole clip) and random outputs with
    every key the criterion reads: logits, masks at stride 2 of the targets, semantic, embeddings, aux."""
    g = torch.Generator().manual_seed(1)
    masks0 = torch.rand(2, 2, 16, 16, generator=g) > 0.6  # (K,T,H,W)
    masks1 = torch.rand(2, 2, 16, 16, generator=g) > 0.5
    masks1[1, 1] = False
    masks1[0] = False
    targets = [{"labels": torch.tensor([0, 2]), "masks": masks0},
               {"labels": torch.tensor([1, 1]), "masks": masks1}]
    batch, queries, classes, frames, dim = 2, 4, 3, 2, 6
    shape = (batch, frames, queries, classes + 1) if online else (batch, queries, classes + 1)
    outputs = {"logits": torch.randn(*shape, generator=g) * 2,
               "masks": torch.randn(batch, queries, frames, 8, 8, generator=g) * 3,
               "semantic": torch.randn(batch, frames, classes + 1, 8, 8, generator=g)}
    embeddings_shape = (batch, frames, queries, dim) if online else (batch, queries, dim)
    outputs["embeddings"] = torch.randn(*embeddings_shape, generator=g)
    outputs["aux"] = [{"logits": torch.randn(*shape, generator=g),
                       "masks": torch.randn(batch, queries, frames, 4, 4, generator=g) * 2}]
    return targets, outputs


@pytest.mark.parametrize("online, points", list(LOSS_VALUES))
def test_criterion_and_matcher_give_the_recorded_values(online, points):
    expected_losses, expected_matches = LOSS_VALUES[(online, points)]
    targets, outputs = seeded_targets_and_outputs(online)
    criterion = SetCriterion(3, HungarianMatcher(2.0, 5.0, 5.0, num_points=points), eos_coef=0.1,
                             weights={"semantic": 0.5, "track": 0.3}, num_points=points)
    torch.manual_seed(2)  # the sampled points
    losses = criterion(outputs, targets)
    assert {k: float(v) for k, v in losses.items()} == pytest.approx(expected_losses, rel=1e-5)
    if online:  # the matcher on the first frame alone
        outputs = {"logits": outputs["logits"][:, 0], "masks": outputs["masks"][:, :, :1]}
        targets = [{**t, "masks": t["masks"][:, :1]} for t in targets]
    torch.manual_seed(2)
    matches = criterion.matcher(outputs["logits"], outputs["masks"], targets)
    assert [[rows.tolist(), cols.tolist()] for rows, cols in matches] == expected_matches


def test_pairwise_matching_costs_give_the_recorded_values():
    g = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(5, 40, generator=g) * 3, torch.rand(3, 40, generator=g)
    dice, bce = pairwise_dice_loss(logits, targets), pairwise_sigmoid_bce_loss(logits, targets)  # (5,3)
    torch.testing.assert_close(dice.flatten(), torch.tensor(PAIRWISE_DICE), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(bce.flatten(), torch.tensor(PAIRWISE_BCE), rtol=1e-5, atol=1e-7)
    # and each pair's cost is the per-pair loss the criterion takes on matched masks
    for q, k in [(0, 0), (4, 2)]:
        pair = logits[q:q + 1], targets[k:k + 1]
        torch.testing.assert_close(dice_loss(*pair)[0], dice[q, k])
        torch.testing.assert_close(sigmoid_bce_loss(*pair)[0], bce[q, k])


# ------------------------------------------------------------------------------------------- training
def two_squares(frames: int = 4, size: int = 64) -> tuple[torch.Tensor, dict]:
    """A red square moving right (class 0) and a green one moving up-left (class 1) on grey: video
    (1,3,T,H,W) roughly normalized, target {labels, masks (2,T,H,W)}."""
    video = torch.full((3, frames, size, size), -1.0)
    masks = torch.zeros(2, frames, size, size, dtype=torch.bool)
    for t in range(frames):
        masks[0, t, 8 + 2 * t:24 + 2 * t, 8 + 4 * t:28 + 4 * t] = True
        masks[1, t, 36 - 2 * t:56 - 2 * t, 40 - 3 * t:56 - 3 * t] = True
    colors = torch.tensor([[2.0, -1.0, -1.0], [-1.0, 2.0, -1.0]])
    for k in range(2):
        video = torch.where(masks[k][None], colors[k][:, None, None, None], video)
    return video[None], {"labels": torch.tensor([0, 1]), "masks": masks}


@pytest.mark.parametrize("query_init, mask_stride", [("learned", 4), ("selected", 4), ("learned", 2)])
@pytest.mark.parametrize("mode", MODES)
def test_gradients_reach_every_parameter(mode, query_init, mask_stride):
    model = tiny(num_classes=2, mode=mode, query_init=query_init, mask_stride=mask_stride)
    video, target = two_squares(frames=2)
    SetCriterion(2, HungarianMatcher(), weights={"semantic": 1.0})(model(video), [target])["loss"].backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


@pytest.mark.parametrize("query_init, mask_stride", [("learned", 4), ("selected", 4), ("learned", 2)])
@pytest.mark.parametrize("mode", MODES)
def test_tiny_model_overfits_two_moving_squares(mode, query_init, mask_stride):
    video, target = two_squares()
    model = tiny(num_classes=2, mode=mode, query_init=query_init, mask_stride=mask_stride)
    loss_fn = SetCriterion(2, HungarianMatcher(), weights={"semantic": 1.0})
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40 if query_init == "learned" else 100):
        loss = loss_fn(model(video), [target])["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], losses
    probs, masks = model.eval().segment_video(video)
    full = F.interpolate(masks, size=video.shape[-2:], mode="bilinear", align_corners=False) > 0  # (Q,T,H,W)
    for k in range(2):
        track = int(probs[:, k].argmax())  # the best-scored track of the instance's class
        assert float(probs[track, k]) > 0.8
        gt = target["masks"][k]
        iou = float((full[track] & gt).sum() / (full[track] | gt).sum())
        assert iou > 0.8, (k, iou)
