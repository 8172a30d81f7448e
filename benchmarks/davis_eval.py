"""DAVIS J&F: the official per-object per-frame computation vs lit_video.metrics.davis, same data, same run.

Writes (once; reused when --data already holds it) a DAVIS-layout dataset of synthetic sequences at DAVIS'
480p size, and results to score against it: moving, wobbling blobs (a few objects per sequence, 2-15% of the
frame each) and predictions that are the ground truth shifted, eroded or grown, with objects dropped in some
frames and speckle noise. Then times, on the same decoded masks in memory:

  official  davis2017-evaluation's loop as its script runs it: for every object and frame, J (vos-benchmark's
            `get_iou`) and F (`_seg2bmap` + `cv2.dilate` with scikit-image's disk, its `f_measure`), one
            process; then the official statistics;
  ours      `evaluate_sequence` per sequence (all objects, all frames);

and prints seconds, the speed-up, and the largest difference of any per-object J / F mean and of the global
J&F. Reading the PNGs (the same for both, with read_mask) and our whole `evaluate_folder` are timed too, and
end to end as a user runs it: `lit-video evaluate vos` in a fresh process (interpreter start-up, imports,
reading the PNGs, scoring, writing the CSV files) against the official computation plus reading the PNGs
(the official script's own start-up left out, in its favour).
Needs the dev extras (vos-benchmark, opencv-python-headless, scikit-image).

    .venv/bin/python benchmarks/davis_eval.py                      # 30 sequences x 50-80 frames, 480x854
    .venv/bin/python benchmarks/davis_eval.py --sequences 5 --size 240x427
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _blob(height: int, width: int, rng: np.random.Generator, area: float) -> dict:
    """A random smooth shape: an ellipse whose radius wobbles with the angle, moving and turning."""
    radius = np.sqrt(area * height * width / np.pi)
    return {"cy": rng.uniform(0.2, 0.8) * height, "cx": rng.uniform(0.15, 0.85) * width, "r": radius,
            "aspect": rng.uniform(0.6, 1.6), "vy": rng.normal(0, 1.5), "vx": rng.normal(0, 3),
            "spin": rng.normal(0, 0.02), "harmonics": rng.normal(0, 0.12, 4), "phases": rng.uniform(0, 6.3, 4)}


def _draw(shape: dict, t: int, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    dy, dx = yy - (shape["cy"] + shape["vy"] * t), xx - (shape["cx"] + shape["vx"] * t)
    angle = np.arctan2(dy, dx * shape["aspect"]) + shape["spin"] * t
    wobble = 1 + sum(a * np.cos((i + 2) * angle + p) for i, (a, p) in enumerate(zip(shape["harmonics"],
                                                                                   shape["phases"])))
    return dy**2 + (dx * shape["aspect"]) ** 2 < (shape["r"] * wobble) ** 2


def write_dataset(root: Path, sequences: int, height: int, width: int, seed: int = 0) -> None:
    """Annotations/480p/<seq>/%05d.png, ImageSets/2017/val.txt and results/<seq>/%05d.png."""
    from scipy import ndimage

    from lit_video.data.masks import write_mask

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    names = []
    for index in range(sequences):
        name = f"seq{index:02d}"
        names.append(name)
        num_frames, num_objects = int(rng.integers(50, 81)), int(rng.integers(1, 5))
        shapes = [_blob(height, width, rng, rng.uniform(0.02, 0.15)) for _ in range(num_objects)]
        error = {"shift": rng.integers(-4, 5, 2), "grow": int(rng.integers(-3, 4)), "drop": rng.uniform(0, 0.1)}
        for t in range(num_frames):
            gt = np.zeros((height, width), np.uint8)
            pred = np.zeros((height, width), np.uint8)
            for k, shape in enumerate(shapes, start=1):
                mask = _draw(shape, t, yy, xx)
                gt[mask] = k
                if t and rng.random() < error["drop"]:
                    continue  # the tracker lost the object in this frame
                guess = np.roll(mask, tuple(error["shift"] + rng.integers(-1, 2, 2)), axis=(0, 1))
                if error["grow"] > 0:
                    guess = ndimage.binary_dilation(guess, iterations=error["grow"])
                elif error["grow"] < 0:
                    guess = ndimage.binary_erosion(guess, iterations=-error["grow"])
                pred[guess] = k
            pred[rng.random((height, width)) < 0.0005] = 0  # speckle
            write_mask(root / "Annotations" / "480p" / name / f"{t:05d}.png", gt)
            write_mask(root / "results" / name / f"{t:05d}.png", gt if t == 0 else pred)
    (root / "ImageSets" / "2017").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("\n".join(names) + "\n")


def official_frames(pred: np.ndarray, gt: np.ndarray, num_objects: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-object per-frame J, F (K,T) the way davis2017-evaluation computes them: each object and frame
    on its own, with the official functions as vos-benchmark ships them."""
    import cv2
    from skimage.morphology import disk
    from vos_benchmark.evaluator import get_iou
    from vos_benchmark.utils import _seg2bmap

    kernel = disk(np.ceil(0.008 * np.linalg.norm(gt.shape[1:]))).astype(np.uint8)
    j, f = np.zeros((num_objects, len(gt))), np.zeros((num_objects, len(gt)))
    for k in range(1, num_objects + 1):
        for t in range(len(gt)):
            seg, ann = pred[t] == k, gt[t] == k
            j[k - 1, t] = get_iou((seg * ann).sum(), seg.sum() + ann.sum())
            # f_measure of davis2017/metrics.py
            fg_boundary, gt_boundary = _seg2bmap(seg), _seg2bmap(ann)
            fg_dil = cv2.dilate(fg_boundary.astype(np.uint8), kernel)
            gt_dil = cv2.dilate(gt_boundary.astype(np.uint8), kernel)
            n_fg, n_gt = np.sum(fg_boundary), np.sum(gt_boundary)
            if n_fg == 0 and n_gt > 0:
                precision, recall = 1, 0
            elif n_fg > 0 and n_gt == 0:
                precision, recall = 0, 1
            elif n_fg == 0 and n_gt == 0:
                precision, recall = 1, 1
            else:
                precision = np.sum(fg_boundary * gt_dil) / float(n_fg)
                recall = np.sum(gt_boundary * fg_dil) / float(n_gt)
            f[k - 1, t] = 0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return j, f


def _time_command(root: Path) -> float:
    """Seconds of `lit-video evaluate vos` on the results, as a new process (start-up included)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "lit_video.cli", "evaluate", "vos", "--gt", str(root), "--pred",
                   str(root / "results"), "--out", out]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT / "outputs" / "bench" / "davis_eval"),
                        help="dataset folder (written when it has no ImageSets/2017/val.txt)")
    parser.add_argument("--sequences", type=int, default=30)
    parser.add_argument("--size", default="480x854", help="HEIGHTxWIDTH")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))

    from lit_video.data.masks import read_mask
    from lit_video.metrics.davis import JFAccumulator, evaluate_sequence, scores_from_frames
    from lit_video.metrics.davis_folder import evaluate_folder

    root = Path(args.data)
    if not (root / "ImageSets" / "2017" / "val.txt").is_file():
        start = time.perf_counter()
        write_dataset(root, args.sequences, height, width, args.seed)
        print(f"wrote {root} in {time.perf_counter() - start:.0f} s")
    names = (root / "ImageSets" / "2017" / "val.txt").read_text().split()

    start = time.perf_counter()
    folder = evaluate_folder(root, root / "results", "val")  # first: it also brings the files into the page cache
    folder_seconds = time.perf_counter() - start

    start = time.perf_counter()
    data = []
    for name in names:
        frames = sorted((root / "Annotations" / "480p" / name).glob("*.png"))
        gt = np.stack([read_mask(p) for p in frames])
        pred = np.stack([read_mask(root / "results" / name / p.name) for p in frames[1:-1]])
        data.append((name, gt, pred, int(gt[0].max())))
    read_seconds = time.perf_counter() - start
    frames = sum(len(gt) - 2 for _, gt, _, _ in data)
    objects = sum(k for *_, k in data)
    object_frames = sum((len(gt) - 2) * k for _, gt, _, k in data)
    print(f"{len(data)} sequences, {objects} objects, {frames} evaluated frames ({object_frames} object-frames) "
          f"at {data[0][1].shape[1]}x{data[0][1].shape[2]}")

    official, ours = JFAccumulator(), JFAccumulator()
    start = time.perf_counter()
    for name, gt, pred, k in data:
        official.add(name, scores_from_frames(*official_frames(pred, gt[1:-1], k)))
    official_seconds = time.perf_counter() - start

    start = time.perf_counter()
    for name, gt, pred, k in data:
        ours.add(name, evaluate_sequence(pred, gt[1:-1], k, skip_first_last=False, name=name))
    ours_seconds = time.perf_counter() - start

    diff_objects = max(abs(a[i] - b[i]) for a, b in zip(official.per_object(), ours.per_object()) for i in (1, 2))
    g_official, g_ours = official.global_scores(), ours.global_scores()
    diff_global = abs(g_official["J&F-Mean"] - g_ours["J&F-Mean"])
    diff_folder = abs(folder.global_scores()["J&F-Mean"] - g_ours["J&F-Mean"])
    print()
    print(f"{'computation (masks in memory)':<34} {'seconds':>8} {'ms/object-frame':>16} {'speed-up':>9}")
    for label, seconds in (("official (per object, per frame)", official_seconds), ("lit_video", ours_seconds)):
        print(f"{label:<34} {seconds:>8.2f} {seconds / object_frames * 1e3:>16.3f} "
              f"{official_seconds / seconds:>8.1f}x")
    print(f"{'reading the PNGs (both)':<34} {read_seconds:>8.2f}")
    print(f"{'lit_video evaluate_folder (all)':<34} {folder_seconds:>8.2f}")
    command_seconds = _time_command(root)
    print()
    print(f"{'end to end (reading the PNGs too)':<34} {'seconds':>8} {'speed-up':>26}")
    print(f"{'official computation + reading':<34} {official_seconds + read_seconds:>8.2f}")
    print(f"{'lit-video evaluate vos (a process)':<34} {command_seconds:>8.2f} "
          f"{(official_seconds + read_seconds) / command_seconds:>25.1f}x")
    print()
    print(f"J&F-Mean official {g_official['J&F-Mean']:.6f}, lit_video {g_ours['J&F-Mean']:.6f}; max |difference|: "
          f"global J&F {diff_global:.2e}, per-object J/F means {diff_objects:.2e}, evaluate_folder {diff_folder:.2e}")


if __name__ == "__main__":
    main()
