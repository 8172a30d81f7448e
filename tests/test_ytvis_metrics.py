"""YouTube-VIS AP/AR (`lit_video.metrics.ytvis`, `lit-video evaluate vis`).

The reference does not share the module's code path: a video of T frames of HxW is, for the sequence IoU, one
image of (T*H)xW with its frames stacked (a null frame = empty rows), since the stacked image's intersection and
union are the frame sums. Stacked masks go to pycocotools' stock image COCOeval, with `area` set to the
YouTube-VIS average frame area and the YouTube-VIS area ranges; on random ground truth and results the 12
numbers must agree to 1e-6."""

from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from lit_video.cli import main
from lit_video.data.rle import encode_tube
from lit_video.metrics.ytvis import METRICS_FILE, STAT_KEYS, evaluate_results, format_table, sequence_iou

NUM_CATEGORIES = 4


# --------------------------------------------------------------------------- random ground truth and results
def _compressed(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def _uncompressed(mask: np.ndarray) -> dict:
    """Column-major run lengths starting with a run of zeros, written out here rather than by pycocotools."""
    flat = mask.astype(np.uint8).flatten(order="F")
    edges = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], edges, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0, *counts]
    return {"size": list(mask.shape), "counts": counts}


def _shape(height: int, width: int, cy: float, cx: float, ry: float, rx: float, ellipse: bool) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    if ellipse:
        return ((yy - cy) / max(ry, 0.5)) ** 2 + ((xx - cx) / max(rx, 0.5)) ** 2 <= 1
    return (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)


def _random_tube(rng: np.random.Generator, length: int, height: int, width: int, size: float,
                 gaps: bool = True) -> np.ndarray:
    """A moving shape (T,H,W) bool of about `size` of the frame's extent, absent in some frames (entering,
    leaving, occluded)."""
    masks = np.zeros((length, height, width), bool)
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    vy, vx = rng.normal(0, 0.05 * height), rng.normal(0, 0.05 * width)
    ry, rx = size * height / 2 * rng.uniform(0.7, 1.0), size * width / 2 * rng.uniform(0.7, 1.0)
    ellipse = bool(rng.random() < 0.5)
    start, stop = 0, length
    if gaps and length > 2:
        start = int(rng.integers(0, 2))
        stop = length - int(rng.integers(0, 2))
    for t in range(start, stop):
        masks[t] = _shape(height, width, cy + vy * t, cx + vx * t, ry, rx, ellipse)
    if gaps and length > 3 and rng.random() < 0.3:
        masks[int(rng.integers(1, length - 1))] = False  # occluded mid-video
    return masks


def _jitter(rng: np.random.Generator, masks: np.ndarray, amount: int) -> np.ndarray:
    out = np.zeros_like(masks)
    for t, mask in enumerate(masks):
        dy, dx = rng.integers(-amount, amount + 1, 2)
        out[t] = np.roll(mask, (int(dy), int(dx)), axis=(0, 1))
    if len(masks) > 2 and rng.random() < 0.3:
        out[int(rng.integers(0, len(masks)))] = False  # a frame predicted absent
    return out


def _segmentations(rng: np.random.Generator, masks: np.ndarray, ground_truth: bool) -> list:
    """Per-frame segmentations: null where absent (an empty RLE now and then), compressed or uncompressed RLE."""
    out = []
    for mask in masks:
        if not mask.any() and (ground_truth or rng.random() < 0.5) and rng.random() < 0.8:
            out.append(None)
        elif ground_truth and rng.random() < 0.3:
            out.append(_uncompressed(mask))
        else:
            out.append(_compressed(mask))
    return out


def random_case(seed: int) -> tuple[dict, list, dict, list, list]:
    """-> (ground-truth JSON, results list, {video id: (T,H,W)}, ground-truth instances, detections); the
    instances are dicts of video, category, masks (T,H,W) bool, iscrowd / score."""
    rng = np.random.default_rng(seed)
    video_shapes = {3: (4, 24, 32), 5: (5, 40, 28), 8: (3, 30, 36), 9: (4, 32, 40),  # small objects only
                    11: (3, 276, 300), 14: (4, 300, 280),  # room for medium and large objects
                    17: (3, 20, 24)}  # more than 100 detections
    crowded, empty_gt, no_results, tied = 17, 8, 9, 5
    categories = [{"id": c, "name": f"class{c}"} for c in (1, 2, 4, 7)[:NUM_CATEGORIES]]
    cat_ids = [c["id"] for c in categories]
    gts, dts = [], []
    for vid, (length, height, width) in video_shapes.items():
        if vid == empty_gt:
            continue
        for _ in range(int(rng.integers(1, 5))):
            big = height > 200
            size = float(rng.choice([0.2, 0.55, 1.3])) if big else float(rng.uniform(0.2, 0.6))
            masks = _random_tube(rng, length, height, width, size)
            if big and rng.random() < 0.3:  # exactly 128² in every frame: both small and medium
                masks = np.zeros((length, height, width), bool)
                masks[:, 10:138, 20:148] = True
            if not masks.any():
                continue
            gts.append({"video": vid, "category": int(rng.choice(cat_ids)), "masks": masks,
                        "iscrowd": int(rng.random() < 0.1 and vid != crowded)})
    for gt in gts:
        vid, masks = gt["video"], gt["masks"]
        if vid == no_results:
            continue
        for _ in range(int(rng.integers(1 if vid == crowded else 0, 3))):  # matches and duplicates
            amount = int(rng.integers(0, masks.shape[1] // 12 + 1))  # from exact to poor
            dts.append({"video": vid, "category": gt["category"], "masks": _jitter(rng, masks, amount)})
        if rng.random() < 0.4:  # the right mask with the wrong category
            wrong = int(rng.choice([c for c in cat_ids if c != gt["category"]]))
            dts.append({"video": vid, "category": wrong, "masks": _jitter(rng, masks, 1)})
    for vid, (length, height, width) in video_shapes.items():
        if vid == no_results:
            continue
        for _ in range(int(rng.integers(0, 4))):  # false-positive tubes
            dts.append({"video": vid, "category": int(rng.choice(cat_ids)),
                        "masks": _random_tube(rng, length, height, width, float(rng.uniform(0.1, 0.9)))})
    # in the crowded video, 130 false positives of one category outscore its true matches: the 100-detection
    # cut (per video and category) drops those
    length, height, width = video_shapes[crowded]
    crowded_gts = [g for g in gts if g["video"] == crowded]
    assert crowded_gts
    for _ in range(130):
        dts.append({"video": crowded, "category": crowded_gts[0]["category"], "score": float(rng.uniform(0.1, 1)),
                    "masks": _random_tube(rng, length, height, width, float(rng.uniform(0.1, 0.3)))})
    # one video and category with 24 equally scored detections, a third of them good: only the results' order
    # (a stable sort) decides which of them match
    tied_gt = next(g for g in gts if g["video"] == tied)
    length, height, width = video_shapes[tied]
    for k in range(24):
        masks = (_jitter(rng, tied_gt["masks"], int(rng.integers(0, 2))) if k % 3 == 0
                 else _random_tube(rng, length, height, width, float(rng.uniform(0.2, 0.6))))
        dts.append({"video": tied, "category": tied_gt["category"], "score": 0.5, "masks": masks})
    order = rng.permutation(len(dts))
    dts = [dts[i] for i in order]
    for dt in dts:
        if dt["video"] == crowded and "score" not in dt:  # a true match or duplicate
            dt["score"] = float(rng.uniform(0.0, 0.09))
        elif "score" not in dt:
            score = float(rng.uniform(0.05, 1.0))
            dt["score"] = round(score, 1) if rng.random() < 0.3 else score  # ties: the results' order decides

    videos = [{"id": vid, "height": h, "width": w, "length": t,
               "file_names": [f"v{vid}/{i:05d}.jpg" for i in range(t)]} for vid, (t, h, w) in video_shapes.items()]
    annotations = []
    for i, gt in enumerate(gts):
        segmentations = _segmentations(rng, gt["masks"], ground_truth=True)
        areas = [int(m.sum()) if s else None for m, s in zip(gt["masks"], segmentations)]
        annotations.append({"id": 100 + i, "video_id": gt["video"], "category_id": gt["category"],
                            "segmentations": segmentations, "areas": areas, "iscrowd": gt["iscrowd"],
                            "bboxes": [None] * len(areas)})
    gt_json = {"videos": videos, "annotations": annotations, "categories": categories}
    results = [{"video_id": dt["video"], "category_id": dt["category"], "score": dt["score"],
                "segmentations": _segmentations(rng, dt["masks"], ground_truth=False)} for dt in dts]
    return gt_json, results, video_shapes, gts, dts


# --------------------------------------------------------------------------- the stacked-image reference
class _PlainCrowdIoU(COCOeval):
    """The stock image COCOeval, except that a crowd region's IoU is the plain IoU (as the YouTube-VIS code
    computes it) instead of COCO's intersection over the detection's area: the crowd flag is hidden while the
    IoUs are computed and is back for the matching."""

    def computeIoU(self, imgId, catId):  # noqa: N802, N803
        crowd = [(g, g["iscrowd"]) for g in self._gts[imgId, catId]]
        for g, _ in crowd:
            g["iscrowd"] = 0
        try:
            return super().computeIoU(imgId, catId)
        finally:
            for g, flag in crowd:
                g["iscrowd"] = flag


def _index(dataset: dict) -> COCO:
    index = COCO()
    index.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        index.createIndex()
    return index


def _average_frame_area(masks: np.ndarray) -> float:
    areas = masks.reshape(len(masks), -1).sum(axis=1)
    return float(areas[areas > 0].mean()) if (areas > 0).any() else 0.0


def reference_stats(video_shapes: dict, gts: list, dts: list, categories: list,
                    max_dets: int = 100) -> dict[str, float]:
    images = [{"id": vid, "height": t * h, "width": w} for vid, (t, h, w) in video_shapes.items()]

    def stacked(masks: np.ndarray) -> dict:
        t, h, w = masks.shape
        return mask_utils.encode(np.asfortranarray(masks.reshape(t * h, w).astype(np.uint8)))

    gt_anns = [{"id": i + 1, "image_id": g["video"], "category_id": g["category"], "iscrowd": g["iscrowd"],
                "segmentation": stacked(g["masks"]), "area": _average_frame_area(g["masks"])}
               for i, g in enumerate(gts)]
    dt_anns = [{"id": i + 1, "image_id": d["video"], "category_id": d["category"], "iscrowd": 0,
                "score": d["score"], "segmentation": stacked(d["masks"]), "area": _average_frame_area(d["masks"])}
               for i, d in enumerate(dts)]
    evaluator = _PlainCrowdIoU(_index({"images": images, "annotations": gt_anns, "categories": categories}),
                               _index({"images": images, "annotations": dt_anns, "categories": categories}),
                               iouType="segm")
    evaluator.params.areaRng = [[0, 1e5**2], [0, 128**2], [128**2, 256**2], [256**2, 1e5**2]]
    evaluator.params.maxDets = [1, 10, max_dets]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return dict(zip(STAT_KEYS, map(float, evaluator.stats)))


def test_equals_stacked_image_coco_evaluation_on_random_cases():
    seen = {key: [] for key in STAT_KEYS}
    for seed in range(8):
        gt_json, results, video_shapes, gts, dts = random_case(seed)
        gt_before, results_before = copy.deepcopy(gt_json), copy.deepcopy(results)
        ours = evaluate_results(gt_json, results)
        expected = reference_stats(video_shapes, gts, dts, gt_json["categories"])
        for key in STAT_KEYS:
            assert ours[key] == pytest.approx(expected[key], abs=1e-6), (seed, key)
            seen[key].append(ours[key])
        assert gt_json == gt_before and results == results_before  # the inputs are left as they were
    # the cases reach every area range, the 100-detection cut and imperfect scores
    for key in ("APs", "APm", "APl"):
        assert any(0 <= value for value in seen[key]), key
    assert any(0 < value < 1 for value in seen["AP"])
    assert any(ar1 < ar100 for ar1, ar100 in zip(seen["AR1"], seen["AR100"]))


def test_the_hundred_detection_cut_is_exercised():
    """Video 17 has more than 100 detections and its true matches score below 100 of them: the reference
    without the cut (maxDets 1000) gives another AR, so the agreement above covers the cut."""
    gt_json, results, video_shapes, gts, dts = random_case(0)
    assert sum(dt["video"] == 17 for dt in dts) > 100
    ours = evaluate_results(gt_json, results)
    uncut = reference_stats(video_shapes, gts, dts, gt_json["categories"], max_dets=1000)
    assert uncut["AR100"] > ours["AR100"] + 1e-3


# --------------------------------------------------------------------------- hand-checked cases
def _video(vid: int, length: int, height: int, width: int) -> dict:
    return {"id": vid, "height": height, "width": width, "length": length}


def _gt_file(videos: list, instances: list, categories=(1, 2)) -> dict:
    """instances: (video id, category, masks (T,H,W)) or with a 4th iscrowd."""
    annotations = []
    for i, (vid, category, masks, *crowd) in enumerate(instances):
        annotations.append({"id": i + 1, "video_id": vid, "category_id": category,
                            "segmentations": encode_tube(masks, null_empty=True),
                            "areas": [int(m.sum()) or None for m in masks], "iscrowd": crowd[0] if crowd else 0})
    return {"videos": videos, "annotations": annotations, "categories": [{"id": c} for c in categories]}


def _result(vid: int, category: int, masks: np.ndarray, score: float) -> dict:
    return {"video_id": vid, "category_id": category, "segmentations": encode_tube(masks), "score": score}


def test_sequence_iou_of_a_two_frame_example_by_hand():
    gt = np.zeros((2, 10, 10), bool)
    gt[0, 0:4, 0:5] = True  # 20 pixels
    gt[1, 0:2, 0:5] = True  # 10 pixels; the detection has nothing in this frame
    dt = np.zeros((2, 10, 10), bool)
    dt[0, 2:6, 0:5] = True  # 20 pixels, 10 of them on the ground truth
    # frame 0: intersection 10, union 30; frame 1: only the ground truth, union 10 -> 10 / 40
    iou = sequence_iou([[_compressed(dt[0]), None]], [encode_tube(gt)], 10, 10)
    assert iou.shape == (1, 1) and iou[0, 0] == pytest.approx(10 / 40, abs=1e-12)
    # the other way round (only the detection in frame 1) and a third frame empty in both: 10 / (30 + 20)
    dt2 = np.zeros((3, 10, 10), bool)
    dt2[:2] = dt
    dt2[1, 5:9, 0:5] = True
    gt2 = np.zeros((3, 10, 10), bool)
    gt2[0] = gt[0]
    iou = sequence_iou([encode_tube(dt2)], [[_compressed(gt2[0]), None, None]], 10, 10)
    assert iou[0, 0] == pytest.approx(10 / 50, abs=1e-12)
    # no segmentation anywhere: IoU 0
    assert sequence_iou([[None, None]], [[None, None]], 10, 10)[0, 0] == 0


def test_perfect_prediction_scores_one():
    masks = np.zeros((3, 20, 20), bool)
    masks[0, 2:8, 2:8] = masks[1, 3:9, 3:9] = True  # absent in the last frame
    other = np.zeros((3, 20, 20), bool)
    other[:, 10:18, 5:15] = True
    gt = _gt_file([_video(1, 3, 20, 20), _video(2, 3, 20, 20)], [(1, 1, masks), (1, 2, other), (2, 2, other)])
    stats = evaluate_results(gt, [_result(1, 1, masks, 0.9), _result(1, 2, other, 0.8), _result(2, 2, other, 0.7)])
    for key in STAT_KEYS:
        expected = -1.0 if key in ("APm", "APl", "ARm", "ARl") else 1.0  # small objects only
        assert stats[key] == expected, key


def test_a_single_detection_of_iou_0_6():
    gt_masks = np.zeros((2, 10, 10), bool)
    gt_masks[0, 0:5, 0:10] = gt_masks[1, 0:5, 0:10] = True  # 50 + 50
    dt_masks = np.zeros((2, 10, 10), bool)
    dt_masks[0, 0:5, 0:10] = True  # 50 on 50
    dt_masks[1, 0:5, 0:2] = True  # 10 on 50: intersection 60, union 100
    gt = _gt_file([_video(1, 2, 10, 10)], [(1, 1, gt_masks)])
    stats = evaluate_results(gt, [_result(1, 1, dt_masks, 0.5)])
    assert stats["AP50"] == pytest.approx(1) and stats["AP75"] == 0
    assert stats["AP"] == pytest.approx(0.3)  # matched at 0.50, 0.55, 0.60 of the ten thresholds
    assert stats["AR1"] == pytest.approx(0.3)


def test_empty_results_score_zero_and_ranges_without_ground_truth_minus_one():
    masks = np.zeros((2, 16, 16), bool)
    masks[:, 4:12, 4:12] = True
    stats = evaluate_results(_gt_file([_video(1, 2, 16, 16)], [(1, 1, masks)]), [])
    assert stats == {key: (-1.0 if key in ("APm", "APl", "ARm", "ARl") else 0.0) for key in STAT_KEYS}


def test_results_on_a_video_without_annotations_are_false_positives():
    masks = np.zeros((2, 16, 16), bool)
    masks[:, 4:12, 4:12] = True
    gt = _gt_file([_video(1, 2, 16, 16), _video(2, 2, 16, 16)], [(1, 1, masks)])
    stats = evaluate_results(gt, [_result(2, 1, masks, 0.9), _result(1, 1, masks, 0.8)])
    assert stats["AP50"] == pytest.approx(0.5)  # precision 1/2 at recall 1
    assert stats["AR100"] == 1


def test_wrong_category_and_crowd():
    masks = np.zeros((2, 16, 16), bool)
    masks[:, 2:8, 2:8] = True
    crowd = np.zeros((2, 16, 16), bool)
    crowd[:, 9:15, 2:15] = True
    gt = _gt_file([_video(1, 2, 16, 16)], [(1, 1, masks), (1, 1, crowd, 1)])
    assert evaluate_results(gt, [_result(1, 2, masks, 0.9)])["AP"] == 0
    # detections on the crowd region, scored above the true one, count neither way
    on_crowd = [_result(1, 1, crowd, 0.95), _result(1, 1, crowd, 0.94)]
    assert evaluate_results(gt, [*on_crowd, _result(1, 1, masks, 0.5)])["AP"] == pytest.approx(1)
    gt["annotations"][1]["iscrowd"] = 0  # now they are two duplicates, one a false positive
    assert evaluate_results(gt, [*on_crowd, _result(1, 1, masks, 0.5)])["AP"] < 1


def test_polygons_and_uncompressed_rle_score_as_the_compressed_rle():
    """The same ground truth as polygons, uncompressed or compressed RLE gives the same numbers."""
    height, width = 30, 40
    polygon = [[5.0, 4.0, 30.0, 6.0, 22.0, 25.0, 8.0, 20.0], [33.0, 2.0, 38.0, 2.0, 36.0, 9.0]]  # two parts
    # the official conversion: pycocotools' frPyObjects, parts merged
    official = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygon, height, width)))
    assert official.sum() > 100
    uncompressed, compressed = _uncompressed(official), _compressed(official)
    rng = np.random.default_rng(0)
    detections = [np.roll(official, (int(dy), int(dx)), axis=(0, 1)) for dy, dx in rng.integers(-3, 4, (4, 2))]
    results = [{"video_id": 1, "category_id": 1, "score": 0.9 - i / 10, "segmentations": [_compressed(d), None]}
               for i, d in enumerate(detections)]
    area = int(official.sum())
    stats = []
    for form in (polygon, uncompressed, compressed):
        gt = {"videos": [_video(1, 2, height, width)], "categories": [{"id": 1}],
              "annotations": [{"id": 1, "video_id": 1, "category_id": 1, "segmentations": [form, None],
                               "areas": [area, None], "iscrowd": 0}]}
        stats.append(evaluate_results(gt, results))
    assert stats[0] == stats[1] == stats[2]
    assert 0 < stats[0]["AP"] < 1


def test_area_comes_from_the_annotations_areas_field():
    """Ground-truth areas are the file's `areas` (as officially), so a big stated area moves the instance to
    the large range although its mask is small; an unmatched small detection is then left out of APl."""
    masks = np.zeros((2, 16, 16), bool)
    masks[:, 4:12, 4:12] = True
    gt = _gt_file([_video(1, 2, 16, 16)], [(1, 1, masks)])
    results = [_result(1, 1, masks, 0.9)]
    assert evaluate_results(gt, results)["APs"] == pytest.approx(1)
    gt["annotations"][0]["areas"] = [300**2, 0]  # zero areas are left out of the mean, as nulls
    stats = evaluate_results(gt, results)
    # a detection outside the range still counts when it matches a ground truth inside it
    assert stats["APs"] == -1 and stats["APl"] == pytest.approx(1)
    stray = np.zeros_like(masks)
    stray[:, 0:3, 0:3] = True
    stats = evaluate_results(gt, [_result(1, 1, stray, 0.95), *results])  # unmatched and small
    assert stats["APl"] == pytest.approx(1) and stats["AP"] == pytest.approx(0.5)
    del gt["annotations"][0]["areas"]  # without the field: computed from the masks
    assert evaluate_results(gt, results)["APs"] == pytest.approx(1)


# --------------------------------------------------------------------------- the command
@pytest.fixture
def files(tmp_path):
    gt_json, results, *_ = random_case(7)
    gt_path, results_path = tmp_path / "valid.json", tmp_path / "out" / "results.json"
    results_path.parent.mkdir()
    gt_path.write_text(json.dumps(gt_json))
    results_path.write_text(json.dumps(results))
    return gt_path, results_path, gt_json, results


def test_evaluate_vis_command_end_to_end(files, tmp_path, capsys):
    gt_path, results_path, gt_json, results = files
    expected = evaluate_results(gt_json, results)
    assert 0 < expected["AP"] < 1
    assert main(["evaluate", "vis", "--gt", str(gt_path), "--pred", str(results_path)]) == 0
    out = capsys.readouterr().out
    assert format_table(expected) in out
    written = json.loads((results_path.parent / METRICS_FILE).read_text())
    assert list(written) == list(STAT_KEYS)
    assert written == pytest.approx(expected, abs=1e-12)
    assert main(["evaluate", "vis", "--gt", str(gt_path), "--pred", str(results_path), "--out",
                 str(tmp_path / "o")]) == 0
    assert json.loads((tmp_path / "o" / METRICS_FILE).read_text()) == written


def _error_line(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err
    assert lines[0].startswith("lit-video: error: ")
    return lines[0]


def _unknown_video(results, gt):
    results[0]["video_id"] = 999


def _short_segmentations(results, gt):
    results[0]["segmentations"] = results[0]["segmentations"][:-1]


def _wrong_rle_size(results, gt):
    segmentations = results[0]["segmentations"]
    t = next(i for i, s in enumerate(segmentations) if s)
    height, width = segmentations[t]["size"]
    segmentations[t] = _compressed(np.ones((height + 1, width), bool))


def _unknown_category(results, gt):
    results[0]["category_id"] = 99


def _missing_score(results, gt):
    del results[0]["score"]


def _gt_missing_segmentations(results, gt):
    del gt["annotations"][1]["segmentations"]


def _gt_wrong_size(results, gt):
    annotation = gt["annotations"][1]
    t = next(i for i, s in enumerate(annotation["segmentations"]) if s)
    annotation["segmentations"][t] = _compressed(np.ones((3, 3), bool))


@pytest.mark.parametrize(("corrupt", "bad_file", "words"), [
    (_unknown_video, "results", ["result 0", "video_id", "999"]),
    (_short_segmentations, "results", ["result 0", "segmentations", "frames"]),
    (_wrong_rle_size, "results", ["result 0", "segmentations", "size"]),
    (_unknown_category, "results", ["result 0", "category_id", "99"]),
    (_missing_score, "results", ["result 0", "score"]),
    (_gt_missing_segmentations, "gt", ["annotations[1]", "segmentations"]),
    (_gt_wrong_size, "gt", ["annotations[1]", "segmentations", "size"]),
])
def test_bad_input_is_one_line_naming_the_file_and_key(files, capsys, corrupt, bad_file, words):
    gt_path, results_path, gt_json, results = files
    corrupt(results, gt_json)
    gt_path.write_text(json.dumps(gt_json))
    results_path.write_text(json.dumps(results))
    line = _error_line(capsys, ["evaluate", "vis", "--gt", str(gt_path), "--pred", str(results_path)])
    assert str(results_path if bad_file == "results" else gt_path) in line
    for word in words:
        assert word in line


def test_missing_or_unreadable_files_are_one_line(files, tmp_path, capsys):
    gt_path, results_path, *_ = files
    line = _error_line(capsys, ["evaluate", "vis", "--gt", str(tmp_path / "nope.json"), "--pred", str(results_path)])
    assert str(tmp_path / "nope.json") in line
    results_path.write_text("[{")
    line = _error_line(capsys, ["evaluate", "vis", "--gt", str(gt_path), "--pred", str(results_path)])
    assert str(results_path) in line and "JSON" in line
    results_path.write_text(json.dumps({"video_id": 1}))
    line = _error_line(capsys, ["evaluate", "vis", "--gt", str(gt_path), "--pred", str(results_path)])
    assert str(results_path) in line and "list" in line
