"""Synthetic video instance segmentation data in the YouTube-VIS 2019 / 2021 layouts.

The scenes are those of the synthetic VOS data (`scene.py`): textured shapes moving over a
panning, cluttered background and occluding each other. Here every shape is an annotated instance
whose category is its shape (the first `num_categories` of SHAPES, ids 1..n), so a model can learn the
category from appearance; textures and colours are drawn independently of it, unless
`category_colours` gives each category its own hue as well. In VIS every instance
of a known category is annotated, so the only unannotated shapes are the background's static clutter,
and it uses only shapes outside the categories (none when all six shapes are categories).

Which video gets which property is fixed by its index, so small datasets still cover every case:
- split: index % valid_every == 1 -> "valid", otherwise "train" (valid_every 0: everything in train);
- one instance when index % 5 == 0, otherwise 2..max_instances;
- an instance enters mid-video (sliding in from an edge) when index % 3 != 0 and there are two or
  more, and one leaves mid-video (sliding out) when index % 2 == 1 and the video is long enough;
  segmentations are null on the frames where an instance is not visible (not there yet, gone, or
  wholly hidden);
- two instances share a category when index % 4 == 2.

The JPEG frames are named as the release's every-5th frames (00000.jpg, 00005.jpg, ...). train's JSON
has uncompressed RLE segmentations with areas and boxes, as released; valid's has only its videos and
categories, as released, and, as a synthetic-only extra, its ground truth goes to
`<valid file stem>_gt.json` (`valid/instances_gt.json` for 2021, `valid_gt.json` for 2019), which the
DataModule reads so that held-out predictions can be scored locally.
"""

from __future__ import annotations

import colorsys
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from lit_video.data.formats.youtube_vis import VERSIONS, annotation_path, ground_truth_path
from lit_video.data.rle import encode_tube, uncompressed_rle
from lit_video.data.synthetic.scene import (
    ANNOTATION_STEP,
    ENTRY_STEPS,
    MAX_PLACEMENT_TRIES,
    SHAPES,
    TEXTURES,
    Rendered,
    SynthScene,
    VideoPlan,
    random_object,
    save_frames,
    slide_in_from_edge,
    slide_out_of_frame,
)
from lit_video.data.synthetic.spec import SynthSpec, as_spec, check_video_fields, video_fields
from lit_video.errors import LitVideoError

_STREAM = 2021  # keeps these videos' random draws apart from the DAVIS / YouTube-VOS ones of the same seed


@dataclass(frozen=True)
class VisSynthSpec:
    """What `write_youtube_vis` writes.

    Args:
        num_videos: videos over both splits.
        num_frames: frames per video (the listed every-5th frames).
        size: (height, width) of the frames, both even, each at least 32.
        seed: makes the whole dataset reproducible, file for file.
        jpeg_quality: quality of the JPEG frames (PIL's scale, 1..95).
        max_instances: most instances in a video (1..8).
        num_categories: categories, the first ones of SHAPES (1..6).
        valid_every: video index % valid_every == 1 goes to valid; 0 puts every video in train.
        category_colours: each category also has its own hue (its texture's two colours are a light and a
            dark shade of it), as real categories have a typical appearance besides their outline; False
            (the default) draws colours independently of the category, leaving the outline as the only
            cue: a hard case for CNNs, which lean on texture and colour far more than on shape.
    """

    num_videos: int = 12
    num_frames: int = 12
    size: tuple[int, int] = (64, 96)
    seed: int = 0
    jpeg_quality: int = 90
    max_instances: int = 3
    num_categories: int = len(SHAPES)
    valid_every: int = 3
    category_colours: bool = False

    def __post_init__(self):
        check_video_fields(self, "VIS")
        if not 1 <= self.max_instances <= 8:
            raise LitVideoError(f"max_instances must be between 1 and 8, got {self.max_instances}")
        if not 1 <= self.num_categories <= len(SHAPES):
            raise LitVideoError(f"num_categories must be between 1 and {len(SHAPES)}, "
                                f"got {self.num_categories}")
        if self.valid_every < 0 or self.valid_every == 1:
            raise LitVideoError(f"valid_every must be 0 (no valid split) or at least 2, "
                                f"got {self.valid_every}")
        if not 1 <= self.jpeg_quality <= 95:
            raise LitVideoError(f"jpeg_quality must be between 1 and 95, got {self.jpeg_quality}")

    @classmethod
    def from_synth_spec(cls, spec: SynthSpec, **overrides) -> VisSynthSpec:
        """The VIS reading of `lit-video data synth` flags: num_classes x videos_per_class videos of
        num_frames frames; size and seed as given (fps has no meaning for frame folders)."""
        return cls(**{**video_fields(spec), **overrides})

    @property
    def categories(self) -> list[dict]:
        """The JSON categories: id k+1 is SHAPES[k]."""
        return [{"supercategory": "shape", "id": k + 1, "name": SHAPES[k]}
                for k in range(self.num_categories)]


def as_vis_spec(spec: VisSynthSpec | SynthSpec, **overrides) -> VisSynthSpec:
    """`spec` as a VisSynthSpec (see `spec.as_spec`)."""
    return as_spec(VisSynthSpec, spec, **overrides)


def _category_colours(rng: np.random.Generator, category: int, num_categories: int) -> np.ndarray:
    """(2,3) float32 RGB: a light and a dark shade of category `category`'s hue (hues evenly spaced over
    the categories, jittered by a quarter of the gap), so the texture still shows."""
    hue = (category + rng.uniform(-0.25, 0.25)) / num_categories % 1.0
    light = colorsys.hsv_to_rgb(hue, rng.uniform(0.6, 1.0), rng.uniform(0.85, 1.0))
    dark = colorsys.hsv_to_rgb(hue, rng.uniform(0.6, 1.0), rng.uniform(0.25, 0.45))
    return 255 * np.array([light, dark], dtype=np.float32)


def category_id(plan: VideoPlan, instance: int) -> int:
    """The JSON category id of instance `instance` (1..N) of a plan: its shape's position in SHAPES + 1."""
    return SHAPES.index(plan.categories[instance]) + 1


def plan_vis_video(spec: VisSynthSpec | SynthSpec, index: int) -> VideoPlan:
    """Draw video `index`; the same (spec, index) always gives the same video.

    The plan's object ids 1..N are the instances in order of first appearance (the annotation order);
    its categories map them to shape names.

    Raises:
        LitVideoError: when the frames are too small to show every instance.
    """
    spec = as_vis_spec(spec)
    rng = np.random.default_rng([spec.seed, _STREAM, index])
    colour_rng = np.random.default_rng([spec.seed, _STREAM, index, 1])  # leaves `rng`'s draws as they were
    size, steps = spec.size, spec.num_frames
    height, width = size
    duration = float(max(steps - 1, 1))
    count = 1 if index % 5 == 0 or spec.max_instances == 1 else int(rng.integers(2, spec.max_instances + 1))
    name = rng.bytes(5).hex()  # ten hex digits, like the released video folders
    min_area = max(20.0, 0.01 * height * width)
    latest_entry = max(1, steps // 2)
    for _ in range(MAX_PLACEMENT_TRIES):
        shapes = rng.integers(0, spec.num_categories, count)  # with repeats: several instances of a category
        if index % 4 == 2 and count > 1:
            shapes[1] = shapes[0]
        textures = rng.choice(len(TEXTURES), count)
        objects = [random_object(rng, size, duration, SHAPES[shapes[k]], TEXTURES[textures[k]], k + 1)
                   for k in range(count)]
        # arrivals: the first instance is there from the start, the others may come later
        entries = [0] + [int(rng.integers(1, latest_entry + 1)) if rng.random() < 0.3 else 0
                         for _ in range(count - 1)]
        if index % 3 != 0 and count > 1 and max(entries) == 0:
            entries[int(rng.integers(1, count))] = int(rng.integers(1, latest_entry + 1))
        # a departure, seen in full between its arrival and its slide out, and absent from the last frame
        leaves = [math.inf] * count
        if index % 2 == 1:
            can_leave = [k for k in range(count) if entries[k] + 2 * ENTRY_STEPS + 1 <= steps - 1]
            if can_leave:
                k = can_leave[int(rng.integers(len(can_leave)))]
                leaves[k] = float(rng.integers(entries[k] + 2 * ENTRY_STEPS + 1, steps))
        for obj, enter, leave in zip(objects, entries, leaves, strict=True):
            obj.enter, obj.leave = float(enter), leave
            if enter > 0:
                slide_in_from_edge(obj, size)
            if math.isfinite(leave):
                slide_out_of_frame(obj, size)
        if spec.category_colours:
            for obj, shape in zip(objects, shapes, strict=True):
                obj.colours = _category_colours(colour_rng, int(shape), spec.num_categories)
        for rank, k in enumerate(sorted(range(count), key=lambda k: (entries[k], k)), start=1):
            objects[k].object_id = rank  # numbered in order of appearance, as annotators do
        scene = SynthScene(size, np.zeros((1, 1, 3), np.uint8), np.zeros(2), np.zeros(2),
                           [objects[k] for k in rng.permutation(count)])  # back to front
        labels = scene.render(np.arange(steps, dtype=np.float64), with_frames=False).labels  # (T,H,W)
        # every instance clearly visible somewhere, so every annotation has something to learn from
        if all((labels == obj.object_id).sum(axis=(1, 2)).max() >= min_area for obj in objects):
            break
    else:
        raise LitVideoError(f"size: cannot place {count} visible instances in {height}x{width} frames; "
                            "use larger frames")

    scene.draw_backdrop(rng, duration, clutter_shapes=SHAPES[spec.num_categories:])

    frame_names = tuple(f"{ANNOTATION_STEP * t:05d}" for t in range(steps))
    visible = [(labels == k).any(axis=(1, 2)) for k in range(1, count + 1)]  # (T,) per instance
    by_id = sorted(objects, key=lambda o: o.object_id)
    return VideoPlan(
        name=name,
        split="valid" if spec.valid_every and index % spec.valid_every == 1 else "train",
        frame_names=frame_names,
        object_ids=tuple(obj.object_id for obj in by_id),
        categories={obj.object_id: obj.category for obj in by_id},
        first_frames={k: frame_names[int(np.argmax(visible[k - 1]))] for k in range(1, count + 1)},
        void=False,
        scene=scene,
    )


def instance_annotation(masks: np.ndarray) -> dict:
    """bool (T,H,W) visible pixels of one instance -> the per-frame fields of a YouTube-VIS annotation:
    segmentations (uncompressed RLE, null where not visible), areas and bboxes ([x, y, w, h])."""
    segmentations, areas, bboxes = [], [], []
    for mask, rle in zip(masks, encode_tube(masks, null_empty=True), strict=True):
        segmentations.append(None if rle is None else uncompressed_rle(mask))
        areas.append(None if rle is None else float(mask_utils.area(rle)))
        bboxes.append(None if rle is None else [float(v) for v in mask_utils.toBbox(rle)])
    return {"segmentations": segmentations, "areas": areas, "bboxes": bboxes}


def _header(version: int) -> dict:
    return {
        "info": {"description": f"lit-video synthetic YouTube-VIS {version}", "url": "", "version": "1.0",
                 "year": version, "contributor": "lit-video", "date_created": f"{version}-01-01 00:00:00"},
        "licenses": [{"url": "", "id": 1, "name": "synthetic"}],
    }


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as file:
        json.dump(data, file)


def write_youtube_vis(out: str | os.PathLike, spec: VisSynthSpec | SynthSpec, version: int = 2021,
                      progress: Callable[[], None] = lambda: None) -> list[VideoPlan]:
    """Write a YouTube-VIS dataset under `out`.

    Layout: `{train,valid}/JPEGImages/<video>/<5 digits>.jpg` (names step by 5); the annotation JSONs
    `{train,valid}.json` at the root (2019) or `{train,valid}/instances.json` (2021). train's lists
    videos, annotations and categories; valid's videos and categories only, its annotations going to
    the synthetic-only `valid_gt.json` / `valid/instances_gt.json`. Video and annotation ids count
    from 1 within each split.

    Args:
        out: the dataset root.
        spec: what to write (a classification SynthSpec is read with `VisSynthSpec.from_synth_spec`).
        version: 2019 or 2021: the annotation file names.
        progress: called once per video written.

    Returns:
        The plan of every video, in index order (`category_id` gives an instance's JSON category).
    """
    spec, root = as_vis_spec(spec), Path(out)
    if version not in VERSIONS:
        raise LitVideoError(f"version: YouTube-VIS version must be 2019 or 2021, got {version!r}")
    plans: list[VideoPlan] = []
    splits: dict[str, dict[str, list]] = {split: {"videos": [], "annotations": []}
                                          for split in ("train", "valid")}
    for index in range(spec.num_videos):
        plan = plan_vis_video(spec, index)
        plan.avoid_name_clash(plans, index)
        rendered: Rendered = plan.render()
        save_frames(root / plan.split / "JPEGImages" / plan.name, rendered.frames, plan.frame_names,
                    spec.jpeg_quality)
        listing = splits[plan.split]
        video_id = len(listing["videos"]) + 1
        height, width = spec.size
        listing["videos"].append({
            "license": 1, "coco_url": "", "height": height, "width": width, "length": len(plan.frame_names),
            "date_captured": "", "file_names": [f"{plan.name}/{stem}.jpg" for stem in plan.frame_names],
            "flickr_url": "", "id": video_id,
        })
        for instance in plan.object_ids:
            listing["annotations"].append({
                "id": len(listing["annotations"]) + 1, "video_id": video_id,
                "category_id": category_id(plan, instance),
                **instance_annotation(rendered.labels == instance),  # (T,H,W) visible pixels
                "iscrowd": 0, "length": 1, "height": height, "width": width,
            })
        plans.append(plan)
        progress()
    for split, listing in splits.items():
        (root / split / "JPEGImages").mkdir(parents=True, exist_ok=True)
        videos = {**_header(version), "videos": listing["videos"], "categories": spec.categories}
        annotated = {**_header(version), "videos": listing["videos"], "annotations": listing["annotations"],
                     "categories": spec.categories}
        if split == "train":
            _write_json(annotation_path(root, split, version), annotated)
        else:  # as released: no annotations; the ground truth beside it, for local scoring
            _write_json(annotation_path(root, split, version), videos)
            _write_json(ground_truth_path(root, split, version), annotated)
    return plans
