"""Synthetic classification datasets in the UCF101 and Kinetics layouts: the motion-class videos of
`spec.SynthSpec` (or its motion x colour classes), encoded and listed as each release does."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lit_video.data.formats.kinetics import CSV_NAMES, clip_stem
from lit_video.data.formats.ucf101 import LISTS_DIR, NUM_GROUPS, TEST_GROUPS, VIDEOS_DIRS
from lit_video.data.synthetic.spec import SynthSpec, random_youtube_id
from lit_video.video.encode import write_video


def write_ucf101(out: str | os.PathLike, spec: SynthSpec, progress: Callable[[], None] = lambda: None,
                 colours: int | None = None) -> None:
    """Write a UCF101 copy: `UCF-101/<Class>/v_<Class>_gXX_cYY.avi` and `ucfTrainTestlist/` (classInd and
    the three official train/test lists, with `\\r\\n` line endings as released).

    Args:
        out: the dataset root.
        spec: what to write; the classes are `spec.classes(colours)`.
        progress: called once per video written.
        colours: cross every motion with this many class colours (see `spec.colour_classes`); None: the
            motion classes alone.
    """
    out = Path(out)
    classes = spec.classes(colours)  # checks colours before anything is written
    lists = out / LISTS_DIR
    lists.mkdir(parents=True, exist_ok=True)
    names = [m.name for m in classes]
    entries: list[tuple[str, int, int]] = []  # (relative path, 0-based label, group)
    for label, name in enumerate(names):
        (out / VIDEOS_DIRS[0] / name).mkdir(parents=True, exist_ok=True)
        clips_in_group: dict[int, int] = {}
        for i in range(spec.videos_per_class):
            # Spread videos over the 25 groups so every official split has train and test videos.
            group = 1 + (i * NUM_GROUPS) // spec.videos_per_class if spec.videos_per_class <= NUM_GROUPS else 1 + i % NUM_GROUPS
            clip = clips_in_group[group] = clips_in_group.get(group, 0) + 1
            relative = f"{name}/v_{name}_g{group:02d}_c{clip:02d}.avi"
            write_video(out / VIDEOS_DIRS[0] / relative, spec.render(label, i, colours), fps=spec.fps,
                        quality="normal")
            entries.append((relative, label, group))
            progress()
    crlf = "\r\n"  # as the official list files
    (lists / "classInd.txt").write_text(crlf.join(f"{i + 1} {n}" for i, n in enumerate(names)) + crlf, newline="")
    for split, test_groups in TEST_GROUPS.items():
        train = [f"{p} {label + 1}" for p, label, g in entries if g not in test_groups]
        test = [p for p, _, g in entries if g in test_groups]
        (lists / f"trainlist{split:02d}.txt").write_text(crlf.join(train) + crlf, newline="")
        (lists / f"testlist{split:02d}.txt").write_text(crlf.join(test) + crlf, newline="")


def write_kinetics(out: str | os.PathLike, spec: SynthSpec, progress: Callable[[], None] = lambda: None,
                   colours: int | None = None) -> None:
    """Write a Kinetics copy: CSVs and clips, `train/<label with _>/` folders, flat `val/` and `test/` (both
    layouts occur in real copies), and about 8% of listed clips left out, as in any downloaded copy.

    Args:
        out: the dataset root.
        spec: what to write; the classes are `spec.classes(colours)` (their spaced labels).
        progress: called once per listed clip.
        colours: cross every motion with this many class colours; None: the motion classes alone.
    """
    out = Path(out)
    rng = np.random.default_rng([spec.seed, 7])
    rows: dict[str, list[tuple[str, str, int, int]]] = {s: [] for s in CSV_NAMES}
    for label_index, motion in enumerate(spec.classes(colours)):
        for i in range(spec.videos_per_class):
            fraction = i / spec.videos_per_class
            subset = "train" if fraction < 0.6 else "val" if fraction < 0.8 else "test"
            youtube_id = random_youtube_id(rng)
            start = int(rng.integers(0, 300))
            rows[subset].append((motion.label, youtube_id, start, start + 10))
            progress()
            if rng.random() < 0.08 and i > 0:
                continue  # listed, never downloaded
            folder = out / subset / motion.label.replace(" ", "_") if subset == "train" else out / subset
            folder.mkdir(parents=True, exist_ok=True)
            write_video(folder / f"{clip_stem(youtube_id, start, start + 10)}.mp4", spec.render(label_index, i, colours),
                        fps=spec.fps, gop_size=250, max_b_frames=2, quality="normal")
    csv_names = {"train": "train.csv", "val": "validate.csv", "test": "test.csv"}
    for subset, subset_rows in rows.items():
        lines = ["label,youtube_id,time_start,time_end,split,is_cc"]
        for label, youtube_id, start, end in subset_rows:
            quoted = f'"{label}"' if (" " in label or "," in label) else label
            lines.append(f"{quoted},{youtube_id},{start},{end},{subset},0")
        (out / csv_names[subset]).write_text("\n".join(lines) + "\n")
