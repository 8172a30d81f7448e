"""DAVIS J&F equal to davis2017-evaluation: per-frame values against the official code (as vos-benchmark ships
it) and against a plain per-pixel reference for void, statistics, averaging, CSVs and `lit-video evaluate vos`."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from lit_video.cli import main
from lit_video.data.masks import write_mask
from lit_video.errors import LitVideoError
from lit_video.metrics.davis import (
    GLOBAL_COLUMNS,
    JFAccumulator,
    boundary_f,
    decay_bins,
    disk_radius,
    evaluate_sequence,
    frame_scores,
    jaccard,
    scores_from_frames,
    statistics,
)
from lit_video.metrics.davis_folder import evaluate_folder, write_csvs

vos_benchmark = pytest.importorskip("vos_benchmark.evaluator", reason="dev extra: pip install --no-deps vos-benchmark")


def blobs(rng: np.random.Generator, frames: int, height: int, width: int, objects: int,
          absent: float = 0.15) -> np.ndarray:
    """Object ids (T,H,W) uint8: moving ellipses of ids 1..objects (later ids drawn over earlier ones), each
    missing from a fraction `absent` of the frames, some with speckle holes."""
    yy, xx = np.mgrid[0:height, 0:width]
    ids = np.zeros((frames, height, width), np.uint8)
    for k in range(1, objects + 1):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(1, max(2, height / 2)), rng.uniform(1, max(2, width / 2))
        vy, vx = rng.normal(0, 2, 2)
        speckle = rng.random() < 0.3
        for t in range(frames):
            if rng.random() < absent:
                continue
            mask = ((yy - cy - vy * t) / ry) ** 2 + ((xx - cx - vx * t) / rx) ** 2 < 1
            if speckle:
                mask &= rng.random((height, width)) > 0.05
            ids[t][mask] = k
    return ids


def official_frames(pred: np.ndarray, gt: np.ndarray, num_objects: int,
                    bound_th: float = 0.008) -> tuple[np.ndarray, np.ndarray]:
    """Per-object per-frame J, F (K,T) from the official per-frame code (vos-benchmark's Evaluator.feed_frame:
    davis2017-evaluation's IoU and f_measure); an object in neither mask of a frame scores 1, as officially."""
    j, f = np.ones((num_objects, len(gt))), np.ones((num_objects, len(gt)))
    for t in range(len(gt)):
        evaluator = vos_benchmark.Evaluator(boundary=bound_th)
        evaluator.feed_frame(pred[t], gt[t])
        for k in range(1, num_objects + 1):
            if k in evaluator.object_iou:
                j[k - 1, t], f[k - 1, t] = evaluator.object_iou[k][-1], evaluator.boundary_f[k][-1]
    return j, f


def reference_frame(pred: np.ndarray, gt: np.ndarray, void: np.ndarray, radius: int) -> tuple[float, float]:
    """J and F of one frame written from the definitions, pixel by pixel: void pixels removed from both masks,
    seg2bmap's neighbour rule, and 'within the disk' as a squared distance to the other boundary's pixels."""
    pred, gt = pred & ~void, gt & ~void
    union = np.count_nonzero(pred | gt)
    j = 1.0 if union == 0 else np.count_nonzero(pred & gt) / union

    def bmap(seg):
        height, width = seg.shape
        out = np.zeros_like(seg)
        for y in range(height):
            for x in range(width):
                last_row, last_col = y == height - 1, x == width - 1
                if last_row and last_col:
                    neighbours = []  # the bottom-right corner is never a boundary
                elif last_row:
                    neighbours = [seg[y, x + 1]]
                elif last_col:
                    neighbours = [seg[y + 1, x]]
                else:
                    neighbours = [seg[y, x + 1], seg[y + 1, x], seg[y + 1, x + 1]]
                out[y, x] = any(seg[y, x] != n for n in neighbours)
        return out

    def matched(points, others):
        if not len(points) or not len(others):
            return 0
        d2 = ((points[:, None, :] - others[None, :, :]) ** 2).sum(-1)
        return int(np.count_nonzero((d2 <= radius * radius).any(axis=1)))

    bp, bg = np.argwhere(bmap(pred)), np.argwhere(bmap(gt))
    if len(bp) == 0 and len(bg) > 0:
        precision, recall = 1.0, 0.0
    elif len(bp) > 0 and len(bg) == 0:
        precision, recall = 0.0, 1.0
    elif len(bp) == 0 and len(bg) == 0:
        precision, recall = 1.0, 1.0
    else:
        precision, recall = matched(bp, bg) / len(bp), matched(bg, bp) / len(bg)
    f = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return j, f


# (frames, height, width, objects): odd sizes, single rows/columns, K > 7 (the other presence path), a
# frame big enough for radius 4 and one at DAVIS' 480p (radius 8)
CASES = [(6, 37, 53, 3), (5, 1, 40, 2), (5, 33, 1, 2), (3, 2, 2, 1), (9, 61, 97, 9), (4, 240, 427, 4),
         (2, 480, 854, 3)]


@pytest.mark.parametrize("frames, height, width, objects", CASES)
def test_per_frame_j_and_f_equal_the_official_code(frames, height, width, objects):
    rng = np.random.default_rng(height * 1000 + width)
    gt = blobs(rng, frames, height, width, objects)
    pred = blobs(rng, frames, height, width, objects)
    pred[1] = np.where(rng.random((height, width)) < 0.9, gt[1], 0)  # a close prediction
    pred[pred == objects] = 0  # the last object is never predicted: its masks are empty
    gt[-1] = 0  # a frame with no object at all
    official_j, official_f = official_frames(pred, gt, objects)

    scores = evaluate_sequence(pred, gt, objects, skip_first_last=False)
    np.testing.assert_allclose(scores["J_frames"], official_j, rtol=0, atol=1e-6)
    np.testing.assert_allclose(scores["F_frames"], official_f, rtol=0, atol=1e-6)
    assert (official_j[-1] == 0).any() or not (gt == objects).any()  # the missing object scores 0 where it is

    k = np.arange(1, objects + 1)[:, None, None, None]  # one-hot (K,T,H,W) binary masks
    j, f = frame_scores(pred[None] == k, gt[None] == k)
    np.testing.assert_allclose(j, official_j, rtol=0, atol=1e-6)
    np.testing.assert_allclose(f, official_f, rtol=0, atol=1e-6)
    np.testing.assert_allclose(jaccard(pred[None] == k, gt[None] == k), official_j, rtol=0, atol=1e-6)
    np.testing.assert_allclose(boundary_f(pred[None] == k, gt[None] == k), official_f, rtol=0, atol=1e-6)


def test_counts_without_numpy_popcount_are_the_same(monkeypatch):
    from lit_video.metrics import davis

    rng = np.random.default_rng(2)
    gt, pred = blobs(rng, 10, 41, 67, 3), blobs(rng, 10, 41, 67, 3)
    fast = evaluate_sequence(pred, gt, 3)
    monkeypatch.setattr(davis, "_lane_counts", davis._lane_counts_bytes)
    for key, value in evaluate_sequence(pred, gt, 3).items():
        np.testing.assert_array_equal(value, fast[key])


def test_wide_boundary_tolerance_equals_the_official_code():
    rng = np.random.default_rng(4)
    gt, pred = blobs(rng, 4, 70, 110, 3), blobs(rng, 4, 70, 110, 3)
    bound_th = 0.1  # radius ceil(0.1 * 130.4) = 14: a longer chain of row dilations than at 480p
    official_j, official_f = official_frames(pred, gt, 3, bound_th)
    scores = evaluate_sequence(pred, gt, 3, skip_first_last=False, bound_th=bound_th)
    np.testing.assert_allclose(scores["J_frames"], official_j, rtol=0, atol=1e-6)
    np.testing.assert_allclose(scores["F_frames"], official_f, rtol=0, atol=1e-6)


def test_void_pixels_left_out_match_a_per_pixel_reference():
    rng = np.random.default_rng(7)
    frames, height, width = 4, 23, 31
    gt = blobs(rng, frames, height, width, 2, absent=0)
    pred = np.where(rng.random(gt.shape) < 0.85, gt, blobs(rng, frames, height, width, 2, absent=0))
    void = np.zeros(gt.shape, bool)
    void[:, 5:9, :] = True  # a band across the objects, and object borders as DAVIS marks them
    void[:, :, 20:22] = True
    gt_void = np.where(void, 255, gt).astype(np.uint8)
    radius = disk_radius(height, width)

    expected = np.array([[reference_frame(pred[t] == k, gt[t] == k, void[t], radius) for t in range(frames)]
                         for k in (1, 2)])  # (K,T,2)
    j, f = frame_scores(pred[None] == np.array([1, 2])[:, None, None, None],
                        gt[None] == np.array([1, 2])[:, None, None, None], void=np.broadcast_to(void, (2, *void.shape)))
    np.testing.assert_allclose(j, expected[..., 0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(f, expected[..., 1], rtol=0, atol=1e-6)

    left_out = evaluate_sequence(pred, gt_void, 2, skip_first_last=False, ignore_void=True)
    np.testing.assert_allclose(left_out["J_frames"], expected[..., 0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(left_out["F_frames"], expected[..., 1], rtol=0, atol=1e-6)

    # officially (the default), void is background: predicted pixels there are false positives
    official = evaluate_sequence(pred, gt_void, 2, skip_first_last=False)
    background = np.array([[reference_frame(pred[t] == k, gt_void[t] == k, np.zeros_like(void[t]), radius)
                            for t in range(frames)] for k in (1, 2)])
    np.testing.assert_allclose(official["J_frames"], background[..., 0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(official["F_frames"], background[..., 1], rtol=0, atol=1e-6)
    assert not np.allclose(official["J_frames"], left_out["J_frames"])


@pytest.mark.parametrize("radius", [*range(10), 13, 18])  # 18: 1080p
def test_disk_dilation_equals_opencv_with_the_scikit_image_disk(radius):
    import cv2
    from skimage.morphology import disk

    from lit_video.metrics.davis import _dilate, _half_widths

    rng = np.random.default_rng(radius)
    plane = (rng.random((40, 57)) < 0.02).astype(np.uint8) * rng.integers(1, 256, (40, 57), dtype=np.uint8)
    dilated = _dilate(plane, _half_widths(radius))
    kernel = disk(radius).astype(np.uint8)
    for bit in range(8):  # every bit of the plane is one frame's boundary map
        expected = cv2.dilate(((plane >> bit) & 1).astype(np.uint8), kernel)
        np.testing.assert_array_equal((dilated >> bit) & 1, expected)


def test_disk_radius_and_integer_threshold():
    assert disk_radius(480, 854) == math.ceil(0.008 * math.hypot(480, 854)) == 8
    rng = np.random.default_rng(3)
    gt, pred = blobs(rng, 2, 30, 40, 1, absent=0), blobs(rng, 2, 30, 40, 1, absent=0)
    wide, narrow = boundary_f(pred == 1, gt == 1, bound_th=6), boundary_f(pred == 1, gt == 1, bound_th=1)
    assert (wide >= narrow).all() and (wide > narrow).any()
    with pytest.raises(ValueError, match="whole number"):
        boundary_f(pred == 1, gt == 1, bound_th=2.5)


def test_statistics_mean_recall_decay():
    values = np.array([0.9, 0.8, 0.7, 0.6, 0.55, 0.4, 0.3, 0.2, 0.1, 0.6])
    mean, recall, decay = statistics(values)
    assert mean == pytest.approx(values.mean())
    assert recall == pytest.approx(6 / 10)
    # n = 10: linspace(1, 10, 5) = 1, 3.25, 5.5, 7.75, 10 -> rounded minus one: 0, 2, 5, 7, 9
    assert decay == pytest.approx(values[0:3].mean() - values[7:10].mean())
    two = statistics(np.stack([values, values[::-1]]))
    assert two[0].shape == (2,) and two[2][1] == pytest.approx(values[::-1][0:3].mean() - values[::-1][7:10].mean())
    with_nan = statistics(np.array([1.0, np.nan, 0.0]))
    assert with_nan[0] == pytest.approx(0.5)  # nanmean, as officially
    assert all(math.isnan(v) for v in statistics(np.zeros(0)))


def test_decay_of_long_sequences_is_correct_and_the_official_wrap_is_reproducible():
    values = np.linspace(1.0, 0.0, 300)
    # n = 300: linspace(1, 300, 5) = 1, 75.75, 150.5, 225.25, 300 -> 0, 75, 150, 224, 299
    assert [(b.start, b.stop) for b in decay_bins(300)] == [(0, 76), (75, 151), (150, 225), (224, 300)]
    assert statistics(values)[2] == pytest.approx(values[0:76].mean() - values[224:300].mean())
    # the official uint8 ids: 299 -> 43, so the last bin [224:44] is empty and Decay is NaN
    assert decay_bins(300, official_decay_wrap=True)[3] == slice(224, 44)
    assert math.isnan(statistics(values, official_decay_wrap=True)[2])
    # at 256 frames only the +1 after id 255 wraps
    assert decay_bins(256, official_decay_wrap=True)[3] == slice(191, 0)
    # up to 255 frames both are the same
    short = np.linspace(1.0, 0.0, 255)
    assert statistics(short)[2] == statistics(short, official_decay_wrap=True)[2]
    scores = evaluate_sequence(np.ones((302, 4, 4), np.uint8), np.ones((302, 4, 4), np.uint8))
    wrapped = evaluate_sequence(np.ones((302, 4, 4), np.uint8), np.ones((302, 4, 4), np.uint8),
                                official_decay_wrap=True)
    assert scores["J_decay"][0] == 0 and math.isnan(wrapped["J_decay"][0])


def test_first_and_last_frames_are_not_scored_and_objects_come_from_the_first_frame():
    gt = np.zeros((6, 20, 20), np.uint8)
    gt[:, 2:8, 2:8] = 1
    gt[:, 12:18, 12:18] = 2
    gt[3:, 0:2, 0:2] = 3  # appears later: not an object of the semi-supervised evaluation
    gt[:, 19, :] = 255  # void, in the first frame too: not an object
    pred = np.where(gt == 255, 0, gt).astype(np.uint8)
    pred[0] = 0  # the first and last predictions are wrong but not scored
    pred[-1] = 0
    pred[pred == 3] = 0
    scores = evaluate_sequence(pred, gt)
    assert scores["J_frames"].shape == (2, 4) and (scores["J_frames"] == 1).all() and (scores["F"] == 1).all()
    every = evaluate_sequence(pred, gt, skip_first_last=False)
    assert every["J_frames"].shape == (2, 6) and every["J_frames"][:, 0].max() == 0 and every["J"][0] < 1

    pred[2, 0:2, 0:2] = 3
    with pytest.raises(LitVideoError, match="sequence dog: predicted object id 3 but the ground truth has 2"):
        evaluate_sequence(pred, gt, name="dog")
    missing = evaluate_sequence((gt == 1).astype(np.uint8), gt)  # object 2 never predicted: empty masks
    assert (missing["J_frames"][1] == 0).all() and (missing["F_frames"][1] == 0).all()


def test_torch_tensors_give_the_same_scores():
    rng = np.random.default_rng(11)
    gt, pred = blobs(rng, 5, 30, 44, 3), blobs(rng, 5, 30, 44, 3)
    gt[0, 0, 0] = 3
    on_numpy = evaluate_sequence(pred, gt)
    on_torch = evaluate_sequence(torch.from_numpy(pred).long(), torch.from_numpy(gt).long())
    for key, value in on_numpy.items():
        np.testing.assert_array_equal(value, on_torch[key])


def test_global_figures_average_objects_not_sequences():
    results = JFAccumulator()
    one = scores_from_frames(np.full((1, 4), 0.2), np.full((1, 4), 0.4))
    three = scores_from_frames(np.full((3, 4), 1.0), np.full((3, 4), 0.8))
    results.add("bear", one)
    results.add("cows", three)
    scores = results.global_scores()
    assert list(scores) == list(GLOBAL_COLUMNS)
    assert scores["J-Mean"] == pytest.approx((0.2 + 3 * 1.0) / 4)  # not (0.2 + 1.0) / 2
    assert scores["F-Mean"] == pytest.approx((0.4 + 3 * 0.8) / 4)
    assert scores["J&F-Mean"] == pytest.approx((scores["J-Mean"] + scores["F-Mean"]) / 2)
    assert scores["J-Recall"] == pytest.approx(3 / 4)
    assert results.per_object() == [("bear_1", 0.2, 0.4), ("cows_1", 1.0, 0.8), ("cows_2", 1.0, 0.8),
                                    ("cows_3", 1.0, 0.8)]


def test_csv_files_have_the_official_columns_and_format(tmp_path):
    results = JFAccumulator()
    results.add("bear", scores_from_frames(np.array([[0.51234, 0.7]]), np.array([[0.33333, 0.9]])))
    global_csv, sequence_csv = write_csvs(results, tmp_path / "out", "val")
    assert global_csv.name == "global_results-val.csv" and sequence_csv.name == "per-sequence_results-val.csv"
    j, f = (0.51234 + 0.7) / 2, (0.33333 + 0.9) / 2
    assert global_csv.read_text() == ("J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay\n"
                                      f"{(j + f) / 2:.3f},{j:.3f},{1:.3f},{0.51234 - 0.7:.3f},{f:.3f},{0.5:.3f},"
                                      f"{0.33333 - 0.9:.3f}\n")
    assert sequence_csv.read_text() == f"Sequence,J-Mean,F-Mean\nbear_1,{j:.3f},{f:.3f}\n"


def write_davis(root, pred_root, sequences: dict[str, tuple[np.ndarray, np.ndarray]], subset: str = "val",
                year: int = 2017) -> None:
    """A DAVIS-layout ground truth (Annotations/480p, ImageSets/<year>/<subset>.txt) and a results folder."""
    for name, (gt, pred) in sequences.items():
        for t in range(len(gt)):
            write_mask(root / "Annotations" / "480p" / name / f"{t:05d}.png", gt[t])
            write_mask(pred_root / name / f"{t:05d}.png", pred[t])
    (root / "ImageSets" / str(year)).mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / str(year) / f"{subset}.txt").write_text("".join(f"{n}\n" for n in sequences))


@pytest.fixture
def davis(tmp_path):
    rng = np.random.default_rng(5)
    sequences = {}
    for name, objects in (("bear", 1), ("bike-packing", 2), ("gold-fish", 3)):
        gt = blobs(rng, 7, 36, 64, objects, absent=0.1)
        gt[0, :2, :objects] = np.arange(1, objects + 1)  # every object in the first frame
        pred = np.where(rng.random(gt.shape) < 0.9, gt, 0).astype(np.uint8)
        pred[3] = np.roll(pred[3], 2, axis=1)
        gt[:, 20:22, :] = 255  # void (background for the official evaluation), in the first frame too
        sequences[name] = (gt, pred)
    write_davis(tmp_path / "DAVIS", tmp_path / "results", sequences)
    return tmp_path / "DAVIS", tmp_path / "results", sequences


def test_evaluate_vos_command_end_to_end(davis, tmp_path, capsys):
    root, results, sequences = davis
    expected = JFAccumulator()
    for name, (gt, pred) in sequences.items():
        objects = int(gt[0][gt[0] != 255].max())
        expected.add(name, scores_from_frames(*official_frames(pred[1:-1], gt[1:-1], objects)))

    assert main(["evaluate", "vos", "--gt", str(root), "--pred", str(results)]) == 0
    out = capsys.readouterr().out
    assert "Global results for val" in out and "Per sequence results for val" in out
    for name in ("bear_1", "bike-packing_2", "gold-fish_3"):
        assert name in out
    global_values = next(line for line in out.splitlines() if line.strip() and line.split()[0][0].isdigit())
    assert float(global_values.split()[0]) == pytest.approx(expected.global_scores()["J&F-Mean"], abs=1e-6)

    with open(results / "global_results-val.csv") as file:
        (row,) = list(csv.DictReader(file))
    assert list(row) == list(GLOBAL_COLUMNS)
    for column, value in expected.global_scores().items():
        assert row[column] == f"{value:.3f}"
    with open(results / "per-sequence_results-val.csv") as file:
        rows = list(csv.DictReader(file))
    assert [(r["Sequence"], r["J-Mean"], r["F-Mean"]) for r in rows] == [
        (name, f"{j:.3f}", f"{f:.3f}") for name, j, f in expected.per_object()]

    assert main(["evaluate", "vos", "--gt", str(root), "--pred", str(results), "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "per-sequence_results-val.csv").read_text() == \
        (results / "per-sequence_results-val.csv").read_text()


def test_davis_2016_scores_every_non_zero_pixel_as_one_object(tmp_path):
    rng = np.random.default_rng(8)
    gt = blobs(rng, 5, 24, 40, 2, absent=0)
    pred = np.where(gt > 0, 255, 0).astype(np.uint8)  # DAVIS 2016 results are often 0/255
    pred[2] = np.roll(pred[2], 3, axis=0)
    write_davis(tmp_path / "DAVIS", tmp_path / "results", {"blackswan": (gt, pred)}, year=2016)
    results = evaluate_folder(tmp_path / "DAVIS", tmp_path / "results", "val", year=2016)
    official_j, official_f = official_frames((pred[1:-1] > 0).astype(np.uint8), (gt[1:-1] > 0).astype(np.uint8), 1)
    ((name, j, f),) = results.per_object()
    assert name == "blackswan_1"
    assert j == pytest.approx(official_j.mean(), abs=1e-9) and f == pytest.approx(official_f.mean(), abs=1e-9)
    assert j < 1


def _error_line(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err
    return lines[0]


def test_missing_result_png_is_one_line(davis, capsys):
    root, results, _ = davis
    (results / "bike-packing" / "00003.png").unlink()
    line = _error_line(capsys, ["evaluate", "vos", "--gt", str(root), "--pred", str(results)])
    assert line.startswith("lit-video: error: ") and str(results / "bike-packing" / "00003.png") in line


def test_more_predicted_objects_than_ground_truth_is_one_line(davis, capsys):
    root, results, sequences = davis
    gt, pred = sequences["bear"]
    pred = pred.copy()
    pred[2, 0, 0] = 2
    write_mask(results / "bear" / "00002.png", pred[2])
    line = _error_line(capsys, ["evaluate", "vos", "--gt", str(root), "--pred", str(results)])
    assert "sequence bear: predicted object id 2 but the ground truth has 1 object(s)" in line


def test_missing_image_set_is_one_line(davis, capsys):
    root, results, _ = davis
    line = _error_line(capsys, ["evaluate", "vos", "--gt", str(root), "--pred", str(results), "--set", "test-dev"])
    assert str(root / "ImageSets" / "2017" / "test-dev.txt") in line and "no such file" in line
