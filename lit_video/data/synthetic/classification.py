"""Synthetic classification datasets in the UCF101, HMDB51, Kinetics and Something-Something V2 layouts: the
motion-class videos of `spec.SynthSpec` (or its motion x colour classes), encoded and listed as each release
does."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lit_video.data.formats import hmdb51, ssv2
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


def hmdb51_flags(num_movies: int, split: int) -> list[int]:
    """The split-file flag of each source movie of a class (1 train, 2 test, 0 unused), about 70/30 train/test
    of the used movies, every 5th movie unused; each split rotates the movies so each tests different ones."""
    unused = num_movies // 5
    test = max(1, round(0.3 * (num_movies - unused))) if num_movies > 1 else 0
    shift = (split - 1) * -(-num_movies // 3)  # a third of the movies further on per split
    return [2 if (m + shift) % num_movies < test else 0 if (m + shift) % num_movies < test + unused else 1
            for m in range(num_movies)]


def write_hmdb51(out: str | os.PathLike, spec: SynthSpec, progress: Callable[[], None] = lambda: None,
                 colours: int | None = None) -> None:
    """Write an HMDB51 copy: `<class>/<Movie>_<class>_<tags>_<n>.avi` in lower-case class folders with
    underscores (`move_right`) directly under `out`, and `testTrainMulti_7030_splits/<class>_test_split<N>.txt`
    for N = 1-3, each line `<file name> <flag> ` with `\\r\\n` (the released lines end in a space).

    Two clips come from each source movie (one each when a class has under 6 videos), and a split flags
    whole movies, as the released splits keep a movie's clips out of both training and testing.

    Args:
        out: the dataset root.
        spec: what to write; the classes are `spec.classes(colours)`.
        progress: called once per video written.
        colours: cross every motion with this many class colours (see `spec.colour_classes`); None: the
            motion classes alone.
    """
    out = Path(out)
    classes = spec.classes(colours)  # checks colours before anything is written
    splits = out / hmdb51.SPLITS_DIR
    splits.mkdir(parents=True, exist_ok=True)
    clips_per_movie = 2 if spec.videos_per_class >= 6 else 1
    num_movies = -(-spec.videos_per_class // clips_per_movie)
    for label, motion in enumerate(classes):
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", motion.name).lower()  # MoveRight -> move_right
        (out / name).mkdir(parents=True, exist_ok=True)
        files: list[tuple[str, int]] = []  # (file name, source movie)
        for i in range(spec.videos_per_class):
            movie, clip = divmod(i, clips_per_movie)
            # `<movie>_<class>_<body part>_<camera motion>_<people>_<viewpoint>_<quality>_<clip>`, as released
            file_name = f"Synth_Movie_{movie + 1:02d}_{name}_f_nm_np1_fr_med_{clip}.avi"
            write_video(out / name / file_name, spec.render(label, i, colours), fps=spec.fps, quality="normal")
            files.append((file_name, movie))
            progress()
        for split in hmdb51.SPLITS:
            flags = hmdb51_flags(num_movies, split)
            lines = "".join(f"{file_name} {flags[movie]} \r\n" for file_name, movie in files)
            (splits / hmdb51.split_file_name(name, split)).write_text(lines, newline="")


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


# The SSv2-style template of each motion of `spec.MOTIONS` (by name); several are SSv2's own.
SSV2_TEMPLATES = {
    "MoveRight": "Moving [something] from left to right",
    "MoveLeft": "Moving [something] from right to left",
    "MoveUp": "Moving [something] up",
    "MoveDown": "Moving [something] down",
    "SpinClockwise": "Turning [something] clockwise",
    "SpinCounterclockwise": "Turning [something] counterclockwise",
    "DashRight": "Pushing [something] from left to right",
    "DashLeft": "Pushing [something] from right to left",
    "Grow": "Approaching [something] with your camera",
    "Shrink": "Moving away from [something] with your camera",
    "SwayHorizontally": "Shaking [something] from side to side",
    "SwayVertically": "Shaking [something] up and down",
}
# What "[something]" stands for: every video shows two or three shapes of mixed kinds moving alike.
SSV2_PLACEHOLDER = "shapes"


def write_ssv2(out: str | os.PathLike, spec: SynthSpec, progress: Callable[[], None] = lambda: None,
               colours: int | None = None) -> None:
    """Write a Something-Something V2 copy: `20bn-something-something-v2/<id>.webm` (VP9) named by random
    integer ids, and in `labels/` the released `labels.json` (template without brackets -> index as a
    string, templates in alphabetical order) and the train (60%), validation (20%) and unlabelled test
    (20%) lists.

    Args:
        out: the dataset root.
        spec: what to write; each class of `spec.classes(colours)` is the template of its motion
            (`SSV2_TEMPLATES`), with the class colour before "[something]" in the motion x colour variant.
        progress: called once per video written.
        colours: cross every motion with this many class colours; None: the motion classes alone.
    """
    out = Path(out)
    classes = spec.classes(colours)
    templates = []
    for motion in classes:
        if motion.colour is None:
            template = SSV2_TEMPLATES[motion.name]
        else:  # "MoveRightOrange" ("moving right, orange") -> "Moving orange [something] from left to right"
            colour = motion.label.rsplit(", ", 1)[1]
            template = SSV2_TEMPLATES[motion.name.removesuffix(colour.capitalize())]
            template = template.replace("[something]", f"{colour} [something]", 1)
        templates.append(template)
    videos = out / ssv2.VIDEO_DIRS[0]
    videos.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([spec.seed, 174])
    total = len(classes) * spec.videos_per_class
    ids = rng.choice(np.arange(1, 10 * total + 1), size=total, replace=False)  # SSv2 ids are 1..220847, unordered
    lists: dict[str, list[dict]] = {name: [] for name in ssv2.LIST_FILES}
    for label, template in enumerate(templates):
        for i in range(spec.videos_per_class):
            video_id = str(ids[label * spec.videos_per_class + i])
            fraction = i / spec.videos_per_class
            subset = "train" if fraction < 0.6 else "validation" if fraction < 0.8 else "test"
            write_video(videos / f"{video_id}.webm", spec.render(label, i, colours), fps=spec.fps, gop_size=250,
                        quality="normal")
            filled = template.replace("[something]", SSV2_PLACEHOLDER)
            lists[subset].append({"id": video_id, "label": filled[0].lower() + filled[1:], "template": template,
                                  "placeholders": [SSV2_PLACEHOLDER] * template.count("[something]")})
            progress()
    labels = out / ssv2.LABELS_DIR
    labels.mkdir(exist_ok=True)
    names = sorted(ssv2.template_class(t) for t in templates)
    (labels / ssv2.LABELS_FILE).write_text(json.dumps({name: str(i) for i, name in enumerate(names)}, indent=1) + "\n")
    for subset, entries in lists.items():
        order = rng.permutation(len(entries))
        # the test list was released with ids alone
        rows = [{"id": entries[k]["id"]} if subset == "test" else entries[k] for k in order]
        text = "[\n" + ",\n".join(json.dumps(row) for row in rows) + "\n]\n"
        (labels / ssv2.LIST_FILES[subset]).write_text(text)
