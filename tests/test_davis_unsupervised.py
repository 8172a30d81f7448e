"""DAVIS unsupervised J&F equal to davis2017-evaluation's `_evaluate_unsupervised`: hand-built cases with their
answers, random cases against a transcription of the official code, and `lit-video evaluate vos --task
unsupervised` end to end."""

from __future__ import annotations

import csv
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from cli_errors import assert_one_line_error, run_lit_video

from lit_video.data.masks import write_mask
from lit_video.errors import LitVideoError
from lit_video.metrics.davis import JFAccumulator, evaluate_sequence, evaluate_unsupervised_sequence
from lit_video.metrics.davis_folder import evaluate_folder

cv2 = pytest.importorskip("cv2")
vos_utils = pytest.importorskip("vos_benchmark.utils", reason="dev extra: pip install --no-deps vos-benchmark")
REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- the official code, transcribed
# davis2017-evaluation's metrics.py / utils.py / evaluation.py / davis.py / results.py, with vos-benchmark's copy
# of its `_seg2bmap` (np.bool spelled bool): what the numbers must equal.
def official_iou(annotation, segmentation, void_pixels):
    annotation, segmentation = annotation.astype(bool), segmentation.astype(bool)
    void_pixels = void_pixels.astype(bool)
    inters = np.sum((segmentation & annotation) & np.logical_not(void_pixels), axis=(-2, -1))
    union = np.sum((segmentation | annotation) & np.logical_not(void_pixels), axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        j = inters / union
    j[np.isclose(union, 0)] = 1
    return j


def official_f_measure(foreground_mask, gt_mask, void_pixels, bound_th=0.008):
    from skimage.morphology import disk

    void_pixels = void_pixels.astype(bool)
    bound_pix = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(foreground_mask.shape))
    fg_boundary = vos_utils._seg2bmap(foreground_mask * np.logical_not(void_pixels))
    gt_boundary = vos_utils._seg2bmap(gt_mask * np.logical_not(void_pixels))
    fg_dil = cv2.dilate(fg_boundary.astype(np.uint8), disk(bound_pix).astype(np.uint8))
    gt_dil = cv2.dilate(gt_boundary.astype(np.uint8), disk(bound_pix).astype(np.uint8))
    gt_match, fg_match = gt_boundary * fg_dil, fg_boundary * gt_dil
    n_fg, n_gt = np.sum(fg_boundary), np.sum(gt_boundary)
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision, recall = np.sum(fg_match) / float(n_fg), np.sum(gt_match) / float(n_gt)
    return 0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def official_boundary(annotation, segmentation, void_pixels):
    return np.array([official_f_measure(segmentation[t], annotation[t], void_pixels[t]) for t in range(len(annotation))])


def official_statistics(per_frame_values):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean, recall = np.nanmean(per_frame_values), np.nanmean(per_frame_values > 0.5)
        ids = (np.round(np.linspace(1, len(per_frame_values), 5) + 1e-10) - 1).astype(np.uint8)
        bins = [per_frame_values[ids[i]:ids[i + 1] + 1] for i in range(4)]
        decay = np.nanmean(bins[0]) - np.nanmean(bins[3])
    return mean, recall, decay


def official_unsupervised(gt_ids: np.ndarray, res_ids: np.ndarray, max_n_proposals: int = 20):
    """DAVIS.get_all_masks(seq, True), Results.read_masks and DAVISEvaluation._evaluate_unsupervised; then
    db_statistics per row -> (J (K,3), F (K,3)) of mean, recall, decay per row."""
    from scipy.optimize import linear_sum_assignment

    masks = gt_ids.astype(np.float64)
    masks[masks == 255] = 0
    num_objects = int(np.max(masks[0, ...]))
    tmp = np.ones((num_objects, *masks.shape)) * np.arange(1, num_objects + 1)[:, None, None, None]
    all_gt_masks = (tmp == masks[None, ...]) > 0
    res = res_ids.astype(np.float64)
    num_proposals = int(np.max(res))
    tmp = np.ones((num_proposals, *res.shape)) * np.arange(1, num_proposals + 1)[:, None, None, None]
    all_res_masks = (tmp == res[None, ...]) > 0

    if all_res_masks.shape[0] > max_n_proposals:
        raise SystemExit("too many proposals")
    elif all_res_masks.shape[0] < all_gt_masks.shape[0]:
        zero_padding = np.zeros((all_gt_masks.shape[0] - all_res_masks.shape[0], *all_res_masks.shape[1:]))
        all_res_masks = np.concatenate([all_res_masks, zero_padding], axis=0)
    j_res = np.zeros((all_res_masks.shape[0], all_gt_masks.shape[0], all_gt_masks.shape[1]))
    f_res = np.zeros((all_res_masks.shape[0], all_gt_masks.shape[0], all_gt_masks.shape[1]))
    for ii in range(all_gt_masks.shape[0]):
        for jj in range(all_res_masks.shape[0]):
            void_masks = all_gt_masks[ii, ...] == 255  # always False: the masks are binary already
            j_res[jj, ii, :] = official_iou(all_gt_masks[ii, ...], all_res_masks[jj, ...], void_masks)
            f_res[jj, ii, :] = official_boundary(all_gt_masks[ii, ...], all_res_masks[jj, ...], void_masks)
    all_metrics = (np.mean(j_res, axis=2) + np.mean(f_res, axis=2)) / 2
    row_ind, col_ind = linear_sum_assignment(-all_metrics)
    j_rows, f_rows = j_res[row_ind, col_ind, :], f_res[row_ind, col_ind, :]
    return (np.array([official_statistics(row) for row in j_rows]).reshape(-1, 3),
            np.array([official_statistics(row) for row in f_rows]).reshape(-1, 3))


# --------------------------------------------------------------------------- data
def squares(frames: int = 3, size: int = 20) -> np.ndarray:
    """Object 1: rows/cols 2..7, object 2: rows/cols 10..15, in every frame (T,H,W) uint8."""
    ids = np.zeros((frames, size, size), np.uint8)
    ids[:, 2:8, 2:8] = 1
    ids[:, 10:16, 10:16] = 2
    return ids


def blobs(rng: np.random.Generator, frames: int, height: int, width: int, objects: int) -> np.ndarray:
    """Object ids (T,H,W): moving ellipses 1..objects, each missing from some frames."""
    yy, xx = np.mgrid[0:height, 0:width]
    ids = np.zeros((frames, height, width), np.uint8)
    for k in range(1, objects + 1):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(2, height / 2), rng.uniform(2, width / 2)
        vy, vx = rng.normal(0, 2, 2)
        for t in range(frames):
            if rng.random() < 0.15:
                continue
            ids[t][((yy - cy - vy * t) / ry) ** 2 + ((xx - cx - vx * t) / rx) ** 2 < 1] = k
    return ids


def proposals_from(rng: np.random.Generator, gt: np.ndarray, num_proposals: int) -> np.ndarray:
    """A prediction: the ground truth's objects under shuffled proposal ids, damaged (pixels dropped, a frame
    shifted), plus proposals of their own (random blobs)."""
    num_objects = int(gt[gt != 255].max(initial=0))
    pred = blobs(rng, *gt.shape, max(num_proposals - num_objects, 0))
    pred = np.where(pred > 0, pred + num_objects, 0)
    table = np.zeros(256, np.uint8)
    table[1:num_objects + 1] = rng.permutation(np.arange(1, num_objects + 1))
    kept = (rng.random(gt.shape) < 0.85) & (gt != 255)
    pred = np.where(kept & (gt > 0), table[gt], pred).astype(np.uint8)
    pred[len(pred) // 2] = np.roll(pred[len(pred) // 2], 3, axis=1)
    pred[pred > num_proposals] = 0
    return pred


# --------------------------------------------------------------------------- hand-built cases
def test_permuted_ids_are_matched_and_rows_follow_the_proposals():
    gt = squares()
    gt[2, 10:16, 10:16] = 0  # object 2 absent from the last frame, in both: that frame scores 1
    pred = np.where(gt == 1, 2, np.where(gt == 2, 1, 0)).astype(np.uint8)  # ids swapped
    scores = evaluate_unsupervised_sequence(pred, gt, name="swap")
    # rows in ascending proposal order: proposal 1 scores object 2, proposal 2 scores object 1
    assert scores["proposals"].tolist() == [1, 2] and scores["objects"].tolist() == [2, 1]
    assert np.array_equal(scores["J_frames"], np.ones((2, 3))) and np.array_equal(scores["F_frames"], np.ones((2, 3)))
    assert scores["J"].tolist() == [1.0, 1.0] and scores["F_decay"].tolist() == [0.0, 0.0]
    assert scores["pair_scores"].tolist() == [[0.0, 1.0], [1.0, 0.0]]
    # the semi-supervised reading of the same masks scores 0: the ids are what it checks
    assert evaluate_sequence(pred, gt, skip_first_last=False)["J"].tolist() == [0.0, 0.0]


def test_more_proposals_than_objects_leaves_the_extra_ones_out():
    gt = squares()
    pred = np.zeros_like(gt)
    pred[:, 16:19, 0:3] = 1  # a proposal on nothing
    pred[gt == 1] = 2
    pred[gt == 2] = 3
    scores = evaluate_unsupervised_sequence(pred, gt)
    assert scores["proposals"].tolist() == [2, 3] and scores["objects"].tolist() == [1, 2]
    assert scores["J"].tolist() == [1.0, 1.0] and scores["F"].tolist() == [1.0, 1.0]
    assert scores["pair_scores"].shape == (3, 2) and scores["pair_scores"][0].tolist() == [0.0, 0.0]
    results = JFAccumulator()
    results.add("bear", scores)
    assert results.names == ["bear_1", "bear_2"]


def test_fewer_proposals_than_objects_pads_with_empty_proposals():
    gt = squares()
    pred = np.where(gt == 2, 1, 0).astype(np.uint8)  # one proposal, on object 2
    scores = evaluate_unsupervised_sequence(pred, gt)
    # proposal 1 takes object 2 (J = F = 1); the empty padding proposal 2 takes object 1: J = 0 (nothing of it),
    # F = 0 (no predicted boundary: precision 1, recall 0)
    assert scores["proposals"].tolist() == [1, 2] and scores["objects"].tolist() == [2, 1]
    assert scores["J"].tolist() == [1.0, 0.0] and scores["F"].tolist() == [1.0, 0.0]
    assert scores["J_recall"].tolist() == [1.0, 0.0]
    # no proposal at all: both objects get an empty one
    empty = evaluate_unsupervised_sequence(np.zeros_like(gt), gt)
    assert empty["J"].tolist() == [0.0, 0.0] and empty["proposals"].tolist() == [1, 2]


def test_void_is_background_officially_and_left_out_on_request():
    gt = squares()
    gt[:, 10:16, 10:16] = 0
    gt[:, 2:8, 8] = 255  # a one-pixel void band right of object 1
    pred = np.zeros_like(gt)
    pred[:, 2:8, 2:9] = 1  # object 1 and the void band
    official = evaluate_unsupervised_sequence(pred, gt)
    assert official["J"].tolist() == [pytest.approx(36 / 42, abs=1e-12)]  # void pixels count as false positives
    assert official["F"].tolist() == [1.0]  # one pixel off, within the 1-pixel tolerance of a 20x20 frame
    (official_j, official_f) = official_unsupervised(gt, pred)
    assert official_j[0, 0] == pytest.approx(36 / 42, abs=1e-12) and official_f[0, 0] == 1.0
    left_out = evaluate_unsupervised_sequence(pred, gt, ignore_void=True)
    assert left_out["J"].tolist() == [1.0] and left_out["F"].tolist() == [1.0]


def test_more_than_the_allowed_proposals_is_one_line_naming_the_sequence():
    gt = squares()
    pred = np.where(gt > 0, gt, 0).astype(np.uint8)
    pred[0, 19, 19] = 20
    assert evaluate_unsupervised_sequence(pred, gt, name="bear")["proposals"].tolist() == [1, 2]  # 20 is allowed
    pred[1, 19, 19] = 21
    with pytest.raises(LitVideoError) as caught:
        evaluate_unsupervised_sequence(pred, gt, name="bear")
    assert str(caught.value).startswith("sequence bear: proposal id 21 is above the 20 proposals allowed")
    assert "\n" not in str(caught.value)
    pred[1, 19, 19] = 255  # a 255 in a result is proposal 255, as the official reader counts it
    with pytest.raises(LitVideoError, match="proposal id 255"):
        evaluate_unsupervised_sequence(pred, gt, name="bear")
    assert evaluate_unsupervised_sequence(pred, gt, max_proposals=255)["J"].shape == (2,)


def test_a_proposal_near_an_object_matches_boundary_pixels_across_the_gap():
    # 160x240 frames: a 3-pixel tolerance (ceil(0.008 * 288)); the proposal is 2 pixels right of the object, so
    # no pixel is shared (J = 0) but its left edge is within reach of the object's right edge (F > 0)
    gt = np.zeros((2, 160, 240), np.uint8)
    gt[:, 40:80, 40:80] = 1
    pred = np.zeros_like(gt)
    pred[:, 40:80, 82:122] = 1
    scores = evaluate_unsupervised_sequence(pred, gt)
    official_j, official_f = official_unsupervised(gt, pred)
    assert scores["J"].tolist() == [0.0] and official_j[0, 0] == 0.0
    assert 0 < scores["F"][0] == pytest.approx(official_f[0, 0], abs=1e-12)


# --------------------------------------------------------------------------- against the official code
@pytest.mark.parametrize("seed, frames, height, width, objects, proposals", [
    (0, 6, 24, 32, 2, 2),
    (1, 9, 30, 40, 3, 6),  # more proposals than objects
    (2, 7, 28, 36, 4, 2),  # fewer
    (3, 10, 20, 56, 1, 5),
    (4, 8, 40, 30, 3, 20),  # the most allowed
    (5, 12, 36, 48, 5, 7),  # more than 8 frames: two groups
])
def test_random_sequences_equal_the_official_code(seed, frames, height, width, objects, proposals):
    rng = np.random.default_rng(seed)
    gt = blobs(rng, frames, height, width, objects)
    gt[0, :2, :objects] = np.arange(1, objects + 1)  # every object in the first frame
    pred = proposals_from(rng, gt, proposals)
    pred[-1, -1, -1] = proposals  # the largest id is there
    gt[:, height // 2, :] = np.where(gt[:, height // 2, :] > 0, 255, 0)  # some void, read as background
    scores = evaluate_unsupervised_sequence(pred, gt)
    official_j, official_f = official_unsupervised(gt, pred)
    assert len(scores["J"]) == objects
    for column, key in enumerate(("", "_recall", "_decay")):
        np.testing.assert_allclose(scores["J" + key], official_j[:, column], atol=1e-6, rtol=0)
        np.testing.assert_allclose(scores["F" + key], official_f[:, column], atol=1e-6, rtol=0)
    np.testing.assert_allclose((scores["J"] + scores["F"]) / 2, official_j[:, 0] / 2 + official_f[:, 0] / 2,
                               atol=1e-6, rtol=0)


def test_torch_input_gives_the_same_scores():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    gt = blobs(rng, 5, 24, 32, 2)
    gt[0, 0, :2] = [1, 2]
    pred = proposals_from(rng, gt, 3)
    numpy_scores = evaluate_unsupervised_sequence(pred, gt)
    torch_scores = evaluate_unsupervised_sequence(torch.from_numpy(pred).long(), torch.from_numpy(gt).long())
    for key, value in numpy_scores.items():
        assert np.array_equal(value, torch_scores[key]), key


# --------------------------------------------------------------------------- a results folder
def write_unsupervised_davis(root, results, sequences: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Annotations_unsupervised/480p/<seq>/, ImageSets/2017/val.txt, and a results folder."""
    for name, (gt, pred) in sequences.items():
        for t in range(len(gt)):
            write_mask(root / "Annotations_unsupervised" / "480p" / name / f"{t:05d}.png", gt[t])
            write_mask(results / name / f"{t:05d}.png", pred[t])
    (root / "ImageSets" / "2017").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("".join(f"{n}\n" for n in sequences))


@pytest.fixture
def unsupervised_davis(tmp_path):
    rng = np.random.default_rng(11)
    sequences = {}
    for name, objects, proposals in (("bear", 1, 3), ("dogs-jump", 3, 2), ("gold-fish", 2, 4)):
        gt = blobs(rng, 6, 30, 44, objects)
        gt[0, :2, :objects] = np.arange(1, objects + 1)
        pred = proposals_from(rng, gt, proposals)
        pred[0, -1, -1] = proposals
        sequences[name] = (gt, pred)
    write_unsupervised_davis(tmp_path / "DAVIS", tmp_path / "results", sequences)
    return tmp_path / "DAVIS", tmp_path / "results", sequences


def test_evaluate_vos_unsupervised_end_to_end(unsupervised_davis, tmp_path):
    root, results, sequences = unsupervised_davis
    expected = {}
    for name, (gt, pred) in sequences.items():
        official_j, official_f = official_unsupervised(gt, pred)
        for k in range(len(official_j)):
            expected[f"{name}_{k + 1}"] = (official_j[k], official_f[k])
    rows = list(expected.values())
    j_mean, f_mean = np.mean([j[0] for j, _ in rows]), np.mean([f[0] for _, f in rows])
    expected_global = [(j_mean + f_mean) / 2, j_mean, np.mean([j[1] for j, _ in rows]),
                       np.mean([j[2] for j, _ in rows]), f_mean, np.mean([f[1] for _, f in rows]),
                       np.mean([f[2] for _, f in rows])]

    result = run_lit_video("evaluate", "vos", "--task", "unsupervised", "--gt", root, "--pred", results,
                           "--out", tmp_path / "out")
    assert result.returncode == 0, result.output
    assert "Global results for val" in result.stdout and "gold-fish_2" in result.stdout
    with open(tmp_path / "out" / "global_results-val.csv") as file:
        (row,) = list(csv.DictReader(file))
    assert list(row.values()) == [f"{value:.3f}" for value in expected_global]
    with open(tmp_path / "out" / "per-sequence_results-val.csv") as file:
        per_sequence = [(r["Sequence"], r["J-Mean"], r["F-Mean"]) for r in csv.DictReader(file)]
    assert per_sequence == [(name, f"{j[0]:.3f}", f"{f[0]:.3f}") for name, (j, f) in expected.items()]
    # every frame is scored: the first frame's prediction counts (the semi-supervised task skips it)
    first = results / "bear" / "00000.png"
    gt, pred = sequences["bear"]
    write_mask(first, np.zeros_like(pred[0]))
    changed = evaluate_folder(root, results, task="unsupervised").per_object()[0]
    assert changed[1] != pytest.approx(float(expected["bear_1"][0][0]), abs=1e-9)

    # the bad inputs of this task, each one line: a missing first-frame result, too many proposals, no
    # Annotations_unsupervised, DAVIS 2016
    first.unlink()
    assert_one_line_error(run_lit_video("evaluate", "vos", "--task", "unsupervised", "--gt", root, "--pred", results),
                          str(first), "no such mask")
    write_mask(first, np.where(pred[0] > 0, 21, 0).astype(np.uint8))
    assert_one_line_error(run_lit_video("evaluate", "vos", "--task", "unsupervised", "--gt", root, "--pred", results),
                          "sequence bear", "proposal id 21", "20 proposals")
    write_mask(first, pred[0])
    (root / "Annotations_unsupervised").rename(root / "elsewhere")
    assert_one_line_error(run_lit_video("evaluate", "vos", "--task", "unsupervised", "--gt", root, "--pred", results),
                          str(root / "Annotations_unsupervised" / "480p"), "no such folder")
    with pytest.raises(LitVideoError, match="unsupervised task is DAVIS 2017"):
        evaluate_folder(root, results, year=2016, task="unsupervised")


# --------------------------------------------------------------------------- the layout and the DataModule
def test_synthetic_davis_writes_the_unsupervised_annotations(davis_root):
    """Every moving shape clearly visible in the first frame is a salient object: the semi-supervised objects
    with their ids, then the distractors that the semi-supervised annotation leaves out."""
    from lit_video.data.masks import VOID, read_mask

    semi, unsupervised = davis_root / "Annotations" / "480p", davis_root / "Annotations_unsupervised" / "480p"
    sequences = sorted(p.name for p in semi.iterdir())
    assert sorted(p.name for p in unsupervised.iterdir()) == sequences
    distractors = 0
    for sequence in sequences:
        files = sorted(p.name for p in (semi / sequence).iterdir())
        assert sorted(p.name for p in (unsupervised / sequence).iterdir()) == files
        given = np.stack([read_mask(semi / sequence / f) for f in files])  # (T,H,W)
        salient = np.stack([read_mask(unsupervised / sequence / f) for f in files])
        objects = int(given[given != VOID].max())
        both = (given != VOID) & (salient != VOID)
        # an annotated object's pixels keep its id; the ids above it are shapes the given masks call background
        assert np.array_equal(salient[both & (given > 0)], given[both & (given > 0)])
        assert not np.isin(salient[both & (given == 0)], np.arange(1, objects + 1)).any()
        extra = sorted(set(np.unique(salient[0]).tolist()) - {0, VOID} - set(range(1, objects + 1)))
        assert extra == list(range(objects + 1, objects + 1 + len(extra)))  # numbered on, no gap
        assert set(np.unique(salient).tolist()) - {0, VOID} == set(range(1, objects + 1 + len(extra)))
        distractors += len(extra)
    assert distractors > 0  # single-object sequences always have moving distractors


def test_datamodule_reads_the_unsupervised_annotations(tmp_path):
    from lit_video.data import keys
    from lit_video.data.formats.davis import DAVISDataModule
    from lit_video.data.masks import read_mask
    from lit_video.data.synthetic.vos import VosSynthSpec, write_davis
    from lit_video.errors import DatasetLayoutError

    root = tmp_path / "davis"
    plans = write_davis(root, VosSynthSpec(num_videos=5, num_frames=4, size=(48, 64), seed=1, valid_every=2))
    sequence = next(p.name for p in plans if p.split == "val" and len(p.object_ids) > 1)
    folder = root / "Annotations_unsupervised" / "480p" / sequence
    for path in sorted(folder.glob("*.png")):  # the unsupervised release groups objects: here, all into one
        mask = read_mask(path)
        write_mask(path, np.where((mask > 0) & (mask != 255), 1, mask).astype(np.uint8))
    position = [p.name for p in plans if p.split == "val"].index(sequence)
    unsupervised = DAVISDataModule(str(root), annotations="unsupervised", num_workers=0).make_dataset("val")[position]
    semi = DAVISDataModule(str(root), num_workers=0).make_dataset("val")[position]
    assert unsupervised[keys.VIDEO_ID] == semi[keys.VIDEO_ID] == sequence
    expected = np.stack([read_mask(p) for p in sorted(folder.glob("*.png"))])
    assert np.array_equal(unsupervised[keys.MASKS].numpy(), expected) and unsupervised[keys.NUM_OBJECTS] == 1
    assert semi[keys.NUM_OBJECTS] > 1

    with pytest.raises(DatasetLayoutError, match="annotations must be one of semi-supervised, unsupervised"):
        DAVISDataModule(str(root), annotations="unsupervized")
    with pytest.raises(DatasetLayoutError, match="DAVIS 2017 release"):
        DAVISDataModule(str(root), year=2016, annotations="unsupervised")
    # no Annotations_unsupervised: one line from the real entry point, naming the folder
    shutil.rmtree(root / "Annotations_unsupervised")
    result = run_lit_video("validate", "--config", REPO / "experiments" / "synthetic" / "vos_stm_tiny.yaml",
                           "--data.init_args.root", root, "--data.init_args.annotations", "unsupervised",
                           "--data.init_args.num_workers", "0", "--trainer.precision", "32", cwd=REPO)
    assert_one_line_error(result, str(root / "Annotations_unsupervised" / "480p"), "no such folder")
