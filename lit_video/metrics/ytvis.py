"""YouTube-VIS video instance segmentation AP / AR, equal to the YouTube-VIS cocoapi (`ytvos.py`, `ytvoseval.py`).

Usage::

    lit-video evaluate vis --gt valid.json --pred results.json [--out DIR]

prints the 12 standard numbers and writes them to DIR/ytvis_metrics.json (DIR defaults to the folder of
results.json); from Python, `evaluate_results(gt, results)` returns them as a dict (`gt` the annotation JSON as
a path or a dict, `results` the submission list or its path), and `format_table(stats)` lays them out.

What the official code computes (read from its source), and so what this module computes:

- Videos play the role of COCO's images: detections are matched to ground truth per (video, category), greedily
  by descending score (a stable sort, so ties keep the results' order), at IoU thresholds 0.50:0.05:0.95; AP is
  the mean over 101 recall points of the interpolated precision, per category, then averaged over categories
  (a category or area range without ground truth is left out; with none at all the figure is -1).
- The IoU of a detected and a ground-truth instance is the sequence IoU: the sum over frames of the
  intersections over the sum over frames of the unions. A frame where only one of the two has a segmentation
  adds its area to the union, a frame where neither has one adds nothing, and a union of 0 gives IoU 0. A
  segmentation is "absent" when it is null or any other empty value (the official `if seg:`).
- At most maxDets = 1 / 10 / 100 detections per video (per category), the highest scored; the IoUs are
  computed for the 100 best only.
- Area of an instance = the mean of its non-null, non-zero frame areas (0 when there are none). Ground truth
  takes them from the annotation's `areas` list (as officially; here computed from the masks when an
  annotation has no `areas`), detections from their masks. Ranges, both ends inclusive as in COCO: all
  [0, 1e10], small [0, 128²], medium [128², 256²], large [256², 1e10]; an area of exactly 128² is small and
  medium. A ground truth outside the range is ignored; so is an unmatched detection outside it.
- `iscrowd` ground truth is ignored (a detection matched to it counts neither way) and may be matched by
  several detections; its IoU is the plain sequence IoU (unlike COCO images, where a crowd region's IoU is the
  intersection over the detection's area). A missing `iscrowd` is 0.
- The 12 numbers: AP (IoU .50:.95, all areas, 100 dets), AP50, AP75, APs, APm, APl (100 dets), AR1, AR10,
  AR100 (all areas), ARs, ARm, ARl (100 dets); an AR is the final recall with that many detections per
  video, averaged over the IoU thresholds and categories.
- Ground-truth polygons and uncompressed RLE are converted as the official `annToRLE` does (pycocotools
  `frPyObjects`, polygon parts merged; `lit_video.data.rle`). The results may use them too (officially only
  compressed RLE).

Where this module differs from the official code, always on input the official code mishandles: a result for
a video that is not in the ground truth (officially an assertion), a segmentation list whose length differs
from the video's, an RLE of another size than the video (officially IoU -1 or a crash) or whose run lengths do
not add up to the frame (officially a mask of whatever memory holds), a category id not in the ground-truth
categories (officially silently dropped) or a missing key are one-line `LitVideoError`s naming the file and
the key. Results for a video of the ground truth that has no annotations are scored, as
officially, as false positives. An empty results list scores 0 (-1 where no ground truth is in the range; officially a crash). Annotation ids are not
used: the ground truth is numbered 1..N in file order (a 0 or a repeated id breaks the official matching).

How. Two pycocotools `COCO` indexes whose "images" are the videos and whose annotations hold tubes are
handed to pycocotools' own `COCOeval`, which does the matching, accumulation and summary; only the IoU
(`computeIoU`) and the area range bounds are replaced. The sequence IoU needs per-frame intersections, which
pycocotools gives only as ratios: with every ground truth flagged as a crowd region, `mask.iou` returns
|d ∩ g| / |d| for all (d, g) of a frame in one C call (skipping pairs whose boxes are disjoint), and times |d|
that is the integer intersection (rounded, exact: the ratio is one correctly rounded division). That is one
call per frame and (video, category) instead of one `merge` per frame and pair, or a decode of every mask.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from lit_video.data.rle import segmentation_to_rle
from lit_video.errors import LitVideoError

METRICS_FILE = "ytvis_metrics.json"
# (lower, upper) of the average frame area, both inclusive; the official values
AREA_RANGES = {"all": (0.0, 1e5**2), "small": (0.0, 128.0**2), "medium": (128.0**2, 256.0**2),
               "large": (256.0**2, 1e5**2)}
# key -> (AP or AR, IoU threshold or None for .50:.95, area range, maxDets): the official summary, in order
SUMMARY = {
    "AP": ("AP", None, "all", 100), "AP50": ("AP", 0.5, "all", 100), "AP75": ("AP", 0.75, "all", 100),
    "APs": ("AP", None, "small", 100), "APm": ("AP", None, "medium", 100), "APl": ("AP", None, "large", 100),
    "AR1": ("AR", None, "all", 1), "AR10": ("AR", None, "all", 10), "AR100": ("AR", None, "all", 100),
    "ARs": ("AR", None, "small", 100), "ARm": ("AR", None, "medium", 100), "ARl": ("AR", None, "large", 100),
}
STAT_KEYS = tuple(SUMMARY)

Tube = list  # per-frame compressed RLE dict, or None where the instance has no segmentation


# --------------------------------------------------------------------------- masks
def _frame_areas(tube: Tube) -> np.ndarray:
    """Pixels per frame (T,) int64, 0 where there is no segmentation."""
    areas = np.zeros(len(tube), np.int64)
    present = [t for t, rle in enumerate(tube) if rle is not None]
    if present:
        areas[present] = mask_utils.area([tube[t] for t in present])
    return areas


def _average_area(areas: Sequence) -> float:
    """The official `avg_area`: the mean of the non-null, non-zero frame areas, 0 without any."""
    kept = [a for a in areas if a]
    return float(np.array(kept).mean()) if kept else 0.0


def _tube_iou(dt_tubes: Sequence[Tube], gt_tubes: Sequence[Tube], dt_areas: np.ndarray,
              gt_areas: np.ndarray) -> np.ndarray:
    """Sequence IoU (D,G) of tubes of one length T, given their frame areas (D,T) and (G,T)."""
    num_dt, num_gt = len(dt_tubes), len(gt_tubes)
    if num_dt == 0 or num_gt == 0:
        return np.zeros((num_dt, num_gt))
    inter = np.zeros((num_dt, num_gt), np.int64)
    for t in range(dt_areas.shape[1]):
        d_idx = [i for i in range(num_dt) if dt_tubes[i][t] is not None]
        g_idx = [j for j in range(num_gt) if gt_tubes[j][t] is not None]
        if not d_idx or not g_idx:
            continue
        # every ground truth flagged as crowd: ratio = |d ∩ g| / |d| (0 when d is empty); see the module docstring
        ratio = np.asarray(mask_utils.iou([dt_tubes[i][t] for i in d_idx], [gt_tubes[j][t] for j in g_idx],
                                          [1] * len(g_idx)))  # (d,g)
        inter[np.ix_(d_idx, g_idx)] += np.rint(ratio * dt_areas[d_idx, t][:, None]).astype(np.int64)
    # frames where only one has a segmentation add its area; where neither has one, nothing
    union = dt_areas.sum(axis=1)[:, None] + gt_areas.sum(axis=1)[None, :] - inter  # (D,G)
    return np.divide(inter, union, out=np.zeros((num_dt, num_gt)), where=union > 0)


def sequence_iou(dt_tubes: Sequence[Sequence], gt_tubes: Sequence[Sequence], height: int, width: int) -> np.ndarray:
    """Sequence IoU of every detected and ground-truth instance of one video.

    Args:
        dt_tubes, gt_tubes: per instance, its `segmentations` (one entry per frame, any form, null allowed).
        height, width: the video's frame size.

    Returns:
        float64 (D, G): sum over frames of the intersections / sum over frames of the unions (0 if empty).
    """
    dts = [[segmentation_to_rle(s, height, width) for s in tube] for tube in dt_tubes]
    gts = [[segmentation_to_rle(s, height, width) for s in tube] for tube in gt_tubes]
    lengths = {len(tube) for tube in dts + gts}
    if len(lengths) > 1:
        raise ValueError(f"tubes of different lengths {sorted(lengths)}")
    length = lengths.pop() if lengths else 0
    dt_areas = np.array([_frame_areas(tube) for tube in dts], np.int64).reshape(len(dts), length)
    gt_areas = np.array([_frame_areas(tube) for tube in gts], np.int64).reshape(len(gts), length)
    return _tube_iou(dts, gts, dt_areas, gt_areas)


# --------------------------------------------------------------------------- reading the files
def _read_json(source: Any, what: str) -> tuple[Any, str]:
    """A path (read as JSON) or an already loaded object -> (object, the name errors use)."""
    if isinstance(source, str | os.PathLike):
        from lit_video.data.records import read_json_file

        return read_json_file(source, f"no such {what} file"), str(source)
    return source, f"the {what}"


def _get(obj: Any, key: str, where: str) -> Any:
    if not isinstance(obj, dict):
        raise LitVideoError(f"{where}: expected an object with '{key}', got {type(obj).__name__}")
    if key not in obj:
        raise LitVideoError(f"{where}: missing key '{key}'")
    return obj[key]


def _list(obj: Any, key: str, where: str) -> list:
    value = _get(obj, key, where)
    if not isinstance(value, list):
        raise LitVideoError(f"{where}: '{key}' must be a list, got {type(value).__name__}")
    return value


def _tube(segmentations: Any, video: dict, where: str) -> Tube:
    """Validated `segmentations` of one instance of `video` -> per-frame compressed RLE or None."""
    if not isinstance(segmentations, list):
        raise LitVideoError(f"{where}: 'segmentations' must be a list (one entry per frame)")
    if len(segmentations) != video["length"]:
        raise LitVideoError(f"{where}: 'segmentations' has {len(segmentations)} entries but video "
                            f"{video['id']!r} has {video['length']} frames")
    tube = []
    for t, segmentation in enumerate(segmentations):
        try:
            tube.append(segmentation_to_rle(segmentation, video["height"], video["width"]))
        except ValueError as err:
            raise LitVideoError(f"{where}: 'segmentations'[{t}]: {err}") from None
    return tube


def _ground_truth(gt: Any) -> tuple[dict, dict, str]:
    """The annotation file -> (videos {id: {id, height, width, length}}, COCO-style dataset, name)."""
    data, name = _read_json(gt, "ground-truth")
    if not isinstance(data, dict):
        raise LitVideoError(f"{name}: not a YouTube-VIS annotation file (expected an object with 'videos', "
                            f"'annotations' and 'categories')")
    videos: dict[Any, dict] = {}
    for i, video in enumerate(_list(data, "videos", name)):
        where = f"{name}: videos[{i}]"
        vid = _get(video, "id", where)
        if vid in videos:
            raise LitVideoError(f"{where}: 'id' {vid!r} repeats an earlier video's")
        length = video["length"] if "length" in video else len(_list(video, "file_names", where + " (no 'length')"))
        videos[vid] = {"id": vid, "height": int(_get(video, "height", where)),
                       "width": int(_get(video, "width", where)), "length": int(length)}
    categories = []
    for i, category in enumerate(_list(data, "categories", name)):
        categories.append({"id": _get(category, "id", f"{name}: categories[{i}]")})
    category_ids = {c["id"] for c in categories}
    annotations = []
    for i, ann in enumerate(_list(data, "annotations", name)):
        where = f"{name}: annotations[{i}]"
        vid = _get(ann, "video_id", where)
        if vid not in videos:
            raise LitVideoError(f"{where}: 'video_id' {vid!r} is not among the file's videos")
        category = _get(ann, "category_id", where)
        if category not in category_ids:
            raise LitVideoError(f"{where}: 'category_id' {category!r} is not among the file's categories")
        tube = _tube(_get(ann, "segmentations", where), videos[vid], where)
        areas = ann.get("areas")
        area = _average_area(areas if isinstance(areas, list) else _frame_areas(tube))
        annotations.append({"id": len(annotations) + 1, "image_id": vid, "category_id": category,
                            "segmentation": tube, "frame_areas": _frame_areas(tube), "area": area,
                            "iscrowd": int(bool(ann.get("iscrowd", 0)))})
    images = [{"id": v["id"], "height": v["height"], "width": v["width"]} for v in videos.values()]
    return videos, {"images": images, "annotations": annotations, "categories": categories}, name


def _detections(results: Any, videos: dict, category_ids: set, gt_name: str) -> list[dict]:
    """The results list -> COCO-style detections numbered 1..N in file order (as the official loadRes)."""
    data, name = _read_json(results, "results")
    if not isinstance(data, list):
        raise LitVideoError(f"{name}: the results must be a list of {{video_id, category_id, segmentations, "
                            f"score}}, got {type(data).__name__}")
    detections = []
    for i, result in enumerate(data):
        where = f"{name}: result {i}"
        vid = _get(result, "video_id", where)
        if vid not in videos:
            raise LitVideoError(f"{where}: 'video_id' {vid!r} is not a video of {gt_name}")
        where = f"{where} (video_id {vid!r})"
        category = _get(result, "category_id", where)
        if category not in category_ids:
            raise LitVideoError(f"{where}: 'category_id' {category!r} is not a category of {gt_name}")
        score = _get(result, "score", where)
        if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
            raise LitVideoError(f"{where}: 'score' must be a finite number, got {score!r}")
        tube = _tube(_get(result, "segmentations", where), videos[vid], where)
        areas = _frame_areas(tube)
        detections.append({"id": i + 1, "image_id": vid, "category_id": category, "score": float(score),
                           "segmentation": tube, "frame_areas": areas, "area": _average_area(areas.tolist()),
                           "iscrowd": 0})
    return detections


# --------------------------------------------------------------------------- evaluation
class _VideoIndex(COCO):
    """A pycocotools index whose images are videos and whose annotations' `segmentation` is a tube."""

    def __init__(self, dataset: dict) -> None:
        super().__init__()
        self.dataset = dataset
        with contextlib.redirect_stdout(io.StringIO()):
            self.createIndex()

    def annToRLE(self, ann: dict) -> Tube:  # noqa: N802 (pycocotools' name)
        return ann["segmentation"]  # already per-frame compressed RLE


class YTVISEval(COCOeval):
    """pycocotools' COCOeval with the YouTube-VIS sequence IoU and area ranges.

    Args:
        gt_index, dt_index: indexes of the ground truth and the detections (built by `evaluate`).
    """

    def __init__(self, gt_index: COCO, dt_index: COCO) -> None:
        super().__init__(gt_index, dt_index, iouType="segm")
        self.params.areaRng = [list(bounds) for bounds in AREA_RANGES.values()]
        self.params.areaRngLbl = list(AREA_RANGES)

    def computeIoU(self, imgId, catId) -> np.ndarray | list:  # noqa: N802, N803 (pycocotools' names)
        """Sequence IoU (D,G) of the 100 best detections and the ground truth of one video and category."""
        p = self.params
        cat_ids = [catId] if p.useCats else p.catIds
        gts = [g for c in cat_ids for g in self._gts[imgId, c]]
        dts = [d for c in cat_ids for d in self._dts[imgId, c]]
        if not gts and not dts:
            return []
        order = np.argsort([-d["score"] for d in dts], kind="mergesort")[: p.maxDets[-1]]  # as COCOeval
        dts = [dts[i] for i in order]
        length = len((gts or dts)[0]["segmentation"])
        return _tube_iou([d["segmentation"] for d in dts], [g["segmentation"] for g in gts],
                         np.array([d["frame_areas"] for d in dts], np.int64).reshape(len(dts), length),
                         np.array([g["frame_areas"] for g in gts], np.int64).reshape(len(gts), length))

    def run(self) -> dict[str, float]:
        """evaluate, accumulate, summarize (their printing silenced) -> the 12 numbers by `STAT_KEYS`."""
        with contextlib.redirect_stdout(io.StringIO()):
            self.evaluate()
            self.accumulate()
            self.summarize()
        return {key: float(value) for key, value in zip(STAT_KEYS, self.stats)}


def evaluate(gt: dict | str | os.PathLike, results: list[dict] | str | os.PathLike) -> YTVISEval:
    """Run the YouTube-VIS evaluation -> the evaluator (`.stats`, and `.eval["precision"]` (T,R,K,A,M) for
    per-category figures).

    Args:
        gt: the annotation JSON (path or loaded dict).
        results: the results list (path or loaded list).

    Raises:
        LitVideoError: a missing file, bad JSON or invalid content, naming the file and the key.
    """
    evaluator = _evaluator(gt, results)
    evaluator.run()
    return evaluator


def _evaluator(gt: dict | str | os.PathLike, results: list[dict] | str | os.PathLike) -> YTVISEval:
    """The evaluator of `results` against `gt`, their files checked and indexed, not run yet."""
    videos, dataset, gt_name = _ground_truth(gt)
    detections = _detections(results, videos, {c["id"] for c in dataset["categories"]}, gt_name)
    dt_dataset = {"images": dataset["images"], "categories": dataset["categories"], "annotations": detections}
    return YTVISEval(_VideoIndex(dataset), _VideoIndex(dt_dataset))


def evaluate_results(gt: dict | str | os.PathLike, results: list[dict] | str | os.PathLike) -> dict[str, float]:
    """The 12 YouTube-VIS numbers {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs",
    "ARm", "ARl"} in [0, 1], or -1 where no ground truth falls in the area range.

    Args:
        gt: the annotation JSON (path or loaded dict).
        results: the results list (path or loaded list); [] scores 0.
    """
    return {key: float(value) for key, value in zip(STAT_KEYS, evaluate(gt, results).stats)}


def evaluate_per_video(gt: dict | str | os.PathLike, results: list[dict] | str | os.PathLike,
                       videos: Sequence | set | None = None) -> dict[Any, dict[str, float]]:
    """The 12 numbers of each video alone (as `evaluate_results` on its ground truth and results): its AP
    averages the categories of its ground truth only (-1 for a video without any).

    Args:
        gt: the annotation JSON (path or loaded dict).
        results: the results list (path or loaded list).
        videos: the video ids to score (default: every video of the ground truth).
    """
    evaluator = _evaluator(gt, results)  # the files read and indexed once
    scores = {}
    for video_id in list(evaluator.params.imgIds if videos is None else videos):
        evaluator.params.imgIds = [video_id]  # one video evaluated, accumulated and summarized
        scores[video_id] = evaluator.run()
    return scores


def format_table(stats: dict[str, float]) -> str:
    """The 12 numbers, one line each, in the official summary's layout (key first)."""
    lines = []
    for key, (kind, iou, area, max_dets) in SUMMARY.items():
        title = "Average Precision  (AP)" if kind == "AP" else "Average Recall     (AR)"
        iou_text = "0.50:0.95" if iou is None else f"{iou:0.2f}"
        lines.append(f"{key:<6} {title} @[ IoU={iou_text:<9} | area={area:>6s} | maxDets={max_dets:>3d} ] = "
                     f"{stats[key]:0.3f}")
    return "\n".join(lines)


def write_metrics(stats: dict[str, float], out_dir: str | os.PathLike) -> Path:
    """Write the 12 numbers to `out_dir/ytvis_metrics.json` -> its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / METRICS_FILE
    path.write_text(json.dumps({key: stats[key] for key in STAT_KEYS}, indent=2) + "\n")
    return path
