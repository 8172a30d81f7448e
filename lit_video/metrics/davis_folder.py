"""A DAVIS results folder scored as davis2017-evaluation's semi-supervised or unsupervised task, and its CSV files.

- The sequences are those of `ImageSets/<year>/<set>.txt`; the ground truth is
  `Annotations/<resolution>/<sequence>/<frame>.png` and the results `<sequence>/<frame>.png`, named as the
  annotations; the first and the last frame of every sequence are not evaluated (the measures themselves,
  and what they reproduce of the official code, are in `davis`).
- The CSV files are `global_results-<set>.csv` and `per-sequence_results-<set>.csv` ("<sequence>_<k>" rows),
  numbers written with "%.3f".
- DAVIS 2016 (`year=2016`): ImageSets/2016, and every non-zero pixel (255 included) is the one object, in the
  ground truth and in the results.
- The unsupervised task (`task="unsupervised"`, DAVIS 2017 only): the ground truth is
  `Annotations_unsupervised/<resolution>/`, EVERY frame is scored (results for the first and the last frame
  too), the results' ids are proposals matched to the objects as `davis.evaluate_unsupervised_sequence`
  describes, and the image sets of test-dev and test-challenge are read from ImageSets/2019 (the official
  reader's choice); the CSV files and tables are the same.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from lit_video.data.masks import VOID, read_mask
from lit_video.data.records import read_text_file
from lit_video.errors import LitVideoError
from lit_video.metrics.davis import (
    GLOBAL_COLUMNS,
    JFAccumulator,
    evaluate_sequence,
    evaluate_unsupervised_sequence,
)

SEQUENCE_COLUMNS = ("Sequence", "J-Mean", "F-Mean")
TASKS = ("semi-supervised", "unsupervised")
ANNOTATION_FOLDERS = {"semi-supervised": "Annotations", "unsupervised": "Annotations_unsupervised"}


def _read_subset(root: Path, subset: str, year: int | str) -> list[str]:
    path = root / "ImageSets" / str(year) / f"{subset}.txt"
    if not path.is_file():
        raise LitVideoError(f"{path}: no such file (a DAVIS root has ImageSets/{year}/{subset}.txt listing the "
                            f"sequences of the '{subset}' set)")
    return [line.strip() for line in read_text_file(path).splitlines() if line.strip()]


def _read_masks(paths: Iterable[Path], shape: tuple[int, int] | None, which: str = "but the first and the last"
                ) -> np.ndarray:
    masks = []
    for path in paths:
        if not path.is_file():
            raise LitVideoError(f"{path}: no such mask (the results need an indexed PNG for every annotated frame "
                                f"{which}, named as the annotations)")
        mask = read_mask(path)
        if shape is not None and mask.shape != shape:
            raise LitVideoError(f"{path}: mask is {mask.shape[0]}x{mask.shape[1]}, the annotations are "
                                f"{shape[0]}x{shape[1]}")
        shape = mask.shape
        masks.append(mask)
    return np.stack(masks) if masks else np.zeros((0, *(shape or (0, 0))), np.uint8)


def evaluate_folder(gt_root: str | os.PathLike, pred_root: str | os.PathLike, subset: str = "val",
                    year: int = 2017, resolution: str = "480p", *, task: str = "semi-supervised",
                    max_proposals: int = 20, ignore_void: bool = False, official_decay_wrap: bool = False,
                    progress: bool = False) -> JFAccumulator:
    """Evaluate a results folder against a DAVIS root, as davis2017-evaluation's semi-supervised or unsupervised
    task.

    Args:
        gt_root: DAVIS root with Annotations/<resolution>/<seq>/<frame>.png (Annotations_unsupervised/ for the
            unsupervised task) and ImageSets/<year>/<subset>.txt.
        pred_root: results: <seq>/<frame>.png indexed PNGs, named as the annotations.
        subset: the ImageSets list (val, train, test-dev, ...).
        year: 2017 (multi-object) or 2016 (every non-zero pixel is the one object; semi-supervised only).
        resolution: the Annotations subfolder.
        task: "semi-supervised" (objects given in the first frame; first and last frames not scored) or
            "unsupervised" (proposals matched to objects; every frame scored).
        max_proposals: unsupervised: most proposals (ids) a sequence's results may hold (the official 20).
        ignore_void: remove void pixels from both masks (not official; see `davis`).
        official_decay_wrap: reproduce the official uint8 wrap of Decay for sequences over 256 frames.
        progress: show a progress bar over sequences.

    Raises:
        LitVideoError: a missing list, annotation folder or result mask (named), a mask of the wrong size, a
            prediction with more objects than its ground truth (semi-supervised) or more than `max_proposals`
            proposals (unsupervised).
    """
    if year not in (2016, 2017):
        raise LitVideoError(f"year must be 2016 or 2017, got {year}")
    if task not in TASKS:
        raise LitVideoError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    unsupervised = task == "unsupervised"
    if unsupervised and year != 2017:
        raise LitVideoError(f"the unsupervised task is DAVIS 2017's (Annotations_unsupervised), got year {year}; "
                            "DAVIS 2016 is scored with the semi-supervised task's single-object reading")
    gt_root, pred_root = Path(gt_root), Path(pred_root)
    if not pred_root.is_dir():
        raise LitVideoError(f"{pred_root}: no such results folder")
    annotations = gt_root / ANNOTATION_FOLDERS[task] / resolution
    if unsupervised and not annotations.is_dir():
        raise LitVideoError(f"{annotations}: no such folder (the unsupervised task reads the DAVIS 2017 "
                            f"unsupervised annotations, Annotations_unsupervised/{resolution}/<sequence>/*.png)")
    # the official reader takes the unsupervised test-dev / test-challenge lists from ImageSets/2019
    list_year = 2019 if unsupervised and subset in ("test-dev", "test-challenge") else year
    sequences = _read_subset(gt_root, subset, list_year)
    if progress:
        from tqdm import tqdm

        sequences = tqdm(sequences, desc=f"DAVIS {year} {subset}", unit="sequence")
    results = JFAccumulator()
    for sequence in sequences:
        folder = annotations / sequence
        frames = sorted(folder.glob("*.png"))
        if not frames:
            raise LitVideoError(f"{folder}: no annotation PNGs for sequence {sequence}")
        first = read_mask(frames[0])
        if unsupervised:
            gt = _read_masks(frames, first.shape)
            pred = _read_masks((pred_root / sequence / path.name for path in frames), first.shape, "(every frame)")
            num_objects = int(first[first != VOID].max(initial=0))
            scores = evaluate_unsupervised_sequence(pred, gt, num_objects=num_objects, max_proposals=max_proposals,
                                                    ignore_void=ignore_void, official_decay_wrap=official_decay_wrap,
                                                    name=sequence)
            results.add(sequence, scores)
            continue
        evaluated = frames[1:-1]  # the semi-supervised protocol scores neither the first nor the last frame
        gt = _read_masks(evaluated, first.shape)
        pred = _read_masks((pred_root / sequence / path.name for path in evaluated), first.shape)
        if year == 2016:
            num_objects = 1
            gt, pred = (gt != 0).astype(np.uint8), (pred != 0).astype(np.uint8)
        else:
            num_objects = int(first[first != VOID].max(initial=0))
        scores = evaluate_sequence(pred, gt, num_objects, skip_first_last=False, ignore_void=ignore_void,
                                   official_decay_wrap=official_decay_wrap, name=sequence)
        results.add(sequence, scores)
    return results


def _csv_number(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.3f}"  # pandas' to_csv(float_format="%.3f"), NaN empty


def write_csvs(results: JFAccumulator, out_dir: str | os.PathLike, subset: str = "val") -> tuple[Path, Path]:
    """Write `global_results-<subset>.csv` and `per-sequence_results-<subset>.csv` as the official script
    does -> their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    global_path = out_dir / f"global_results-{subset}.csv"
    sequence_path = out_dir / f"per-sequence_results-{subset}.csv"
    with open(global_path, "w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(GLOBAL_COLUMNS)
        writer.writerow([_csv_number(v) for v in results.global_scores().values()])
    with open(sequence_path, "w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(SEQUENCE_COLUMNS)
        writer.writerows([name, _csv_number(j), _csv_number(f)] for name, j, f in results.per_object())
    return global_path, sequence_path


def _table(header: Iterable[str], rows: list[list[str]]) -> str:
    header = list(header)
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(header)]
    lines = [header, *rows]
    return "\n".join(" ".join(cell.rjust(width) for cell, width in zip(line, widths)) for line in lines)


def format_tables(results: JFAccumulator, subset: str = "val") -> str:
    """The global and per-sequence tables, laid out as the official script prints them."""
    scores = results.global_scores()
    global_table = _table(GLOBAL_COLUMNS, [[f"{v:.6f}" for v in scores.values()]])
    sequence_table = _table(SEQUENCE_COLUMNS, [[name, f"{j:.6f}", f"{f:.6f}"] for name, j, f in results.per_object()])
    return (f"--------------------------- Global results for {subset} ---------------------------\n"
            f"{global_table}\n\n"
            f"---------- Per sequence results for {subset} ----------\n"
            f"{sequence_table}")
