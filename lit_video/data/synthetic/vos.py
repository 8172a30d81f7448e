"""Synthetic semi-supervised VOS data in the DAVIS 2017 and YouTube-VOS 2018/2019 layouts.

Every video is a `scene.SynthScene`: textured shapes moving on smooth trajectories over a cluttered,
textured background that pans slowly, so no colour threshold separates objects from background. Shapes
have a fixed z-order and occlude each other, may leave the frame partially, and (YouTube-VOS) slide in
from a frame edge mid-video. Unannotated distractor shapes move too. Frames are JPEGs, masks palette
PNGs (`masks.write_mask`).

Which video gets which property is fixed by its index, so small datasets still cover every case:
- split: index % valid_every == 1 (every third by default) -> DAVIS "val" / YouTube-VOS "valid", otherwise
  "train";
- DAVIS: one annotated object when index % 6 is 0 or 1 (listed in ImageSets/2016), 2..max_objects
  otherwise; a 2-px void band (255) along object borders when index % 3 != 2; every object is
  visible in frame 00000 (the official evaluation takes the object ids from the first frame);
- YouTube-VOS: 2..max_objects objects; at least one enters mid-video when index % 3 != 0; object ids
  skip one number (e.g. 1, 3) when index is odd; frame names start at a random multiple of 5
  (e.g. 00015) when index is odd, else at 00000.

DAVIS also gets the unsupervised release's `Annotations_unsupervised/480p/<seq>/` (see `write_davis`).

YouTube-VOS objects have a category in meta.json, as released: "<shape>_<texture>" (e.g. "star_checker"), 24
categories that a model can tell by appearance, few enough to recur across videos and many enough that a
held-out part of train usually holds categories its training part lacks ("unseen", as YouTube-VOS reports).

YouTube-VOS `JPEGImages` hold every 5th frame of the 30 fps video (names step by 5), as released;
`all_frames=True` also writes `{train,valid}_all_frames/JPEGImages` with every frame. As a
synthetic-only extra, `valid/Annotations_full/<vid>/` holds the ground truth of every valid frame
(the release has none) so that predictions on valid can be scored locally.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lit_video.data.masks import VOID, write_mask
from lit_video.data.synthetic.scene import (
    ANNOTATION_STEP,
    MAX_PLACEMENT_TRIES,
    SHAPES,
    TEXTURES,
    Rendered,
    SynthScene,
    VideoPlan,
    random_object,
    save_frames,
    slide_in_from_edge,
    void_band,
)
from lit_video.data.synthetic.spec import SynthSpec, as_spec, check_video_fields, video_fields
from lit_video.errors import LitVideoError

FULL_ANNOTATIONS_DIR = "Annotations_full"  # synthetic-only: valid ground truth on every frame
UNSUPERVISED_DIR = "Annotations_unsupervised"  # DAVIS 2017's unsupervised release


def category_name(shape: str, texture: str) -> str:
    """The YouTube-VOS category of a synthetic object: its shape and its texture, e.g. "star_checker"."""
    return f"{shape}_{texture}"


@dataclass(frozen=True)
class VosSynthSpec:
    """What `write_davis` and `write_youtube_vos` write.

    Args:
        num_videos: videos (sequences) over all splits.
        num_frames: frames per video; YouTube-VOS: frames of `JPEGImages` (every 5th frame of the video).
        size: (height, width) of the frames, both even, each at least 32.
        seed: makes the whole dataset reproducible, file for file.
        jpeg_quality: quality of the JPEG frames (PIL's scale, 1..95).
        max_objects: most annotated objects in a multi-object video (2..8).
        all_frames: YouTube-VOS only: also write `{train,valid}_all_frames/JPEGImages` (every frame).
        valid_every: video index % valid_every == 1 is held out (DAVIS val, YouTube-VOS valid); 0 holds
            none out. Larger values give many training videos and few held-out ones.
    """

    num_videos: int = 20
    num_frames: int = 30
    size: tuple[int, int] = (96, 128)
    seed: int = 0
    jpeg_quality: int = 90
    max_objects: int = 4
    all_frames: bool = False
    valid_every: int = 3

    def __post_init__(self):
        check_video_fields(self, "VOS")
        if not 2 <= self.max_objects <= 8:
            raise LitVideoError(f"max_objects must be between 2 and 8, got {self.max_objects}")
        if not 1 <= self.jpeg_quality <= 95:
            raise LitVideoError(f"jpeg_quality must be between 1 and 95, got {self.jpeg_quality}")
        if self.valid_every < 0 or self.valid_every == 1:
            raise LitVideoError(f"valid_every must be 0 (nothing held out) or at least 2, got {self.valid_every}")

    @classmethod
    def from_synth_spec(cls, spec: SynthSpec, **overrides) -> VosSynthSpec:
        """The VOS reading of `lit-video data synth` flags: num_classes x videos_per_class videos of
        num_frames frames; size and seed as given (fps has no meaning for frame folders)."""
        return cls(**{**video_fields(spec), **overrides})


def as_vos_spec(spec: VosSynthSpec | SynthSpec, **overrides) -> VosSynthSpec:
    """`spec` as a VosSynthSpec (see `spec.as_spec`)."""
    return as_spec(VosSynthSpec, spec, **overrides)


def _video_rng(spec: VosSynthSpec, layout: str, index: int) -> np.random.Generator:
    return np.random.default_rng([spec.seed, {"davis": 2017, "youtube-vos": 2018}[layout], index])


def plan_video(spec: VosSynthSpec | SynthSpec, index: int, layout: str) -> VideoPlan:
    """Draw video `index` of a dataset; the same (spec, index, layout) always gives the same video.

    Args:
        spec: the dataset's spec.
        index: 0..num_videos-1.
        layout: "davis" or "youtube-vos".

    Raises:
        LitVideoError: when the frames are too small to place every object visibly.
    """
    spec = as_vos_spec(spec)
    if layout not in ("davis", "youtube-vos"):
        raise ValueError(f"unknown layout {layout!r}; expected 'davis' or 'youtube-vos'")
    rng = _video_rng(spec, layout, index)
    davis = layout == "davis"
    size, steps = spec.size, spec.num_frames
    duration = float(max(steps - 1, 1))
    height, width = size

    if davis:
        single = index % 6 in (0, 1)
        num_objects = 1 if single else int(rng.integers(2, spec.max_objects + 1))
        # a single-object sequence keeps moving distractors so it is not a one-shape scene
        num_distractors = int(rng.integers(1, 3)) if single else int(rng.integers(0, 2))
        object_ids = list(range(1, num_objects + 1))
        name = f"synth-{index:03d}"
        start = 0
    else:
        num_objects = int(rng.integers(2, spec.max_objects + 1))
        num_distractors = int(rng.integers(0, 2))
        object_ids = list(range(1, num_objects + 2))
        if index % 2 == 1:  # skip one id, as released videos whose deleted objects left holes
            object_ids.remove(int(rng.integers(1, num_objects + 1)))
        else:
            object_ids = object_ids[:num_objects]
        name = rng.bytes(5).hex()  # ten hex digits, like the released video ids
        start = ANNOTATION_STEP * int(rng.integers(1, 8)) if index % 2 == 1 else 0

    min_area = max(20.0, 0.01 * height * width)
    for _ in range(MAX_PLACEMENT_TRIES):
        shapes = rng.permutation(SHAPES)
        textures = rng.permutation(TEXTURES)
        count = num_objects + num_distractors
        ids = object_ids + [0] * num_distractors
        objects = [random_object(rng, size, duration, str(shapes[k % len(SHAPES)]),
                                  str(textures[k % len(TEXTURES)]), ids[k]) for k in range(count)]
        if not davis:
            # enter times: the first object is there from the start; the others may arrive later
            entries = [0] + [int(rng.integers(1, max(2, steps // 2 + 1))) if rng.random() < 0.35 else 0
                             for _ in range(num_objects - 1)]
            if index % 3 != 0 and num_objects > 1 and max(entries) == 0:
                entries[int(rng.integers(1, num_objects))] = int(rng.integers(1, max(2, steps // 2 + 1)))
            # ids are given in order of appearance, as the annotators numbered new objects
            order = sorted(range(num_objects), key=lambda k: (entries[k], k))
            for rank, k in enumerate(order):
                objects[k].object_id = object_ids[rank]
                objects[k].enter = float(entries[k])
                if entries[k] > 0:
                    slide_in_from_edge(objects[k], size)
        layering = rng.permutation(count)
        scene_objects = [objects[k] for k in layering]  # back to front
        scene = SynthScene(size, np.zeros((1, 1, 3), np.uint8), np.zeros(2), np.zeros(2), scene_objects)
        # every annotated object must be clearly visible where its first mask is given, void band aside
        enters = sorted({obj.enter for obj in objects if obj.object_id})
        labels = scene.render(enters, with_frames=False).labels  # (E,H,W)
        if davis and index % 3 != 2:
            labels[void_band(labels)] = VOID
        if all((labels[enters.index(obj.enter)] == obj.object_id).sum() >= min_area
               for obj in objects if obj.object_id):
            break
    else:
        raise LitVideoError(f"size: cannot place {num_objects} visible objects in {height}x{width} frames; "
                            "use larger frames")

    scene.draw_backdrop(rng, duration)

    frame_names = tuple(f"{start + (1 if davis else ANNOTATION_STEP) * t:05d}" for t in range(steps))
    annotated = sorted((obj for obj in objects if obj.object_id), key=lambda o: o.object_id)
    return VideoPlan(
        name=name,
        split=("val" if davis else "valid") if spec.valid_every and index % spec.valid_every == 1 else "train",
        frame_names=frame_names,
        object_ids=tuple(obj.object_id for obj in annotated),
        categories={obj.object_id: category_name(obj.category, obj.texture) for obj in annotated},
        first_frames={obj.object_id: frame_names[int(obj.enter)] for obj in annotated},
        void=davis and index % 3 != 2,  # keep in step with the placement check above
        scene=scene,
    )


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


def write_davis(out: str | os.PathLike, spec: VosSynthSpec | SynthSpec,
                progress: Callable[[], None] = lambda: None) -> list[VideoPlan]:
    """Write a DAVIS 2017 dataset (with the DAVIS 2016 image sets) under `out`.

    Layout: `JPEGImages/480p/<seq>/00000.jpg`, `Annotations/480p/<seq>/00000.png` for every frame,
    `ImageSets/2017/{train,val}.txt` (all sequences) and `ImageSets/2016/{train,val}.txt` (the
    single-object ones), one name a line. "480p" is the folder name only; frames are `spec.size`.

    `Annotations_unsupervised/480p/<seq>/00000.png` for every frame, as the DAVIS 2017 unsupervised release
    (its re-annotation of train and val: the salient objects, ids 1..N, every one in the first frame's mask
    since the official evaluation counts them there; see `salient_masks`). Here they are every moving shape:
    the objects of `Annotations` with their ids, then the distractors that the semi-supervised annotation
    leaves out, as the release annotates every salient moving thing. What differs from the release: its
    objects can also be grouped or re-split (a rider and a horse as one), where each synthetic shape moves
    as a whole with nothing carried or attached.

    Args:
        out: the dataset root.
        spec: what to write (a classification SynthSpec is read with `VosSynthSpec.from_synth_spec`).
        progress: called once per sequence written.

    Returns:
        The plan of every sequence, in index order.
    """
    spec, root = as_vos_spec(spec), Path(out)
    plans = []
    for index in range(spec.num_videos):
        plans.append(write_davis_sequence(root, spec, index))
        progress()
    write_davis_image_sets(root, plans)
    return plans


def write_davis_sequence(root: Path, spec: VosSynthSpec, index: int) -> VideoPlan:
    """Write sequence `index` of a synthetic DAVIS dataset (its frames and masks, no image sets) under
    `root`; sequences are independent, so large datasets can be written by many processes at once."""
    plan = plan_video(spec, index, "davis")
    rendered = plan.render()
    masks = plan.masks(rendered)  # (T,H,W)
    salient = salient_masks(plan, rendered, spec)  # (T,H,W)
    save_frames(root / "JPEGImages" / "480p" / plan.name, rendered.frames, plan.frame_names, spec.jpeg_quality)
    for t, stem in enumerate(plan.frame_names):
        write_mask(root / "Annotations" / "480p" / plan.name / f"{stem}.png", masks[t])
        write_mask(root / UNSUPERVISED_DIR / "480p" / plan.name / f"{stem}.png", salient[t])
    return plan


def salient_masks(plan: VideoPlan, rendered: Rendered, spec: VosSynthSpec) -> np.ndarray:
    """uint8 (T,H,W) the unsupervised annotation of a DAVIS sequence: every moving shape clearly visible in
    the first frame (the official evaluation takes the objects from it). The annotated objects keep their ids
    1..N; the distractors follow as N+1.., back to front; a distractor hidden at first stays unannotated.
    The void band, if any, runs along every border."""
    height, width = spec.size
    min_area = max(20.0, 0.01 * height * width)

    def paint(ids: list[int]) -> np.ndarray:
        labels = np.zeros(rendered.labels.shape, dtype=np.uint8)
        for k, object_id in enumerate(ids):  # back to front: later shapes cover earlier ones
            if object_id:
                labels[rendered.geometry[:, k]] = object_id
        return labels

    # every distractor numbered on trial, then only those clearly visible in the first frame
    first_id = len(plan.object_ids) + 1
    distractors = np.cumsum(rendered.object_ids == 0) + len(plan.object_ids)
    trial = [int(i) if i else int(d) for i, d in zip(rendered.object_ids, distractors, strict=True)]
    first_frame = paint(trial)[0]
    ids, next_id = [], first_id
    for object_id, trial_id in zip(rendered.object_ids, trial, strict=True):
        if object_id or (first_frame == trial_id).sum() < min_area:
            ids.append(int(object_id))  # an annotated object, or a distractor left out (0)
        else:
            ids.append(next_id)
            next_id += 1
    labels = paint(ids)
    if plan.void:
        labels[void_band(labels)] = VOID
    return labels


def write_davis_image_sets(root: Path, plans: Sequence[VideoPlan]) -> None:
    """`ImageSets/2017/{train,val}.txt` (every sequence) and `ImageSets/2016/...` (single-object ones)."""
    for split in ("train", "val"):
        _write_lines(root / "ImageSets" / "2017" / f"{split}.txt", [p.name for p in plans if p.split == split])
        _write_lines(root / "ImageSets" / "2016" / f"{split}.txt",
                     [p.name for p in plans if p.split == split and len(p.object_ids) == 1])


def write_youtube_vos(out: str | os.PathLike, spec: VosSynthSpec | SynthSpec,
                      progress: Callable[[], None] = lambda: None) -> list[VideoPlan]:
    """Write a YouTube-VOS 2018/2019 dataset under `out`.

    Layout, per split in (train, valid): `<split>/JPEGImages/<vid>/<5 digits>.jpg` (names step by 5),
    `<split>/meta.json` = {"videos": {vid: {"objects": {"<id>": {"category", "frames"}}}}}, the category
    "<shape>_<texture>" (`category_name`).
    train: `Annotations/<vid>/` for every frame; an object's "frames" are those it is visible in.
    valid: `Annotations/<vid>/` only at each object's first-appearance frame, holding only the
    objects that appear first there; an object's "frames" run from that frame to the last (the
    frames to predict). Synthetic-only extra: `valid/Annotations_full/<vid>/` on every frame.
    With `spec.all_frames`, `<split>_all_frames/JPEGImages/<vid>/` has every frame of the video.

    Args:
        out: the dataset root.
        spec: what to write (a classification SynthSpec is read with `VosSynthSpec.from_synth_spec`).
        progress: called once per video written.

    Returns:
        The plan of every video, in index order.
    """
    spec, root = as_vos_spec(spec), Path(out)
    plans: list[VideoPlan] = []
    meta: dict[str, dict] = {"train": {}, "valid": {}}
    for index in range(spec.num_videos):
        plan = plan_video(spec, index, "youtube-vos")
        plan.avoid_name_clash(plans, index)
        rendered = plan.render()
        split = root / plan.split
        save_frames(split / "JPEGImages" / plan.name, rendered.frames, plan.frame_names, spec.jpeg_quality)
        labels = rendered.labels  # (T,H,W)
        objects = {}
        if plan.split == "train":
            for t, stem in enumerate(plan.frame_names):
                write_mask(split / "Annotations" / plan.name / f"{stem}.png", labels[t])
            for object_id in plan.object_ids:
                present = (labels == object_id).any(axis=(1, 2))  # (T,)
                objects[str(object_id)] = {"category": plan.categories[object_id],
                                           "frames": [s for s, p in zip(plan.frame_names, present, strict=True) if p]}
        else:
            for t, stem in enumerate(plan.frame_names):
                write_mask(split / FULL_ANNOTATIONS_DIR / plan.name / f"{stem}.png", labels[t])
                starting = [i for i in plan.object_ids if plan.first_frames[i] == stem]
                if starting:  # the given masks: only the objects that first appear in this frame
                    write_mask(split / "Annotations" / plan.name / f"{stem}.png",
                               np.where(np.isin(labels[t], starting), labels[t], 0).astype(np.uint8))
            for object_id in plan.object_ids:
                first = plan.frame_names.index(plan.first_frames[object_id])
                objects[str(object_id)] = {"category": plan.categories[object_id],
                                           "frames": list(plan.frame_names[first:])}
        meta[plan.split][plan.name] = {"objects": objects}
        if spec.all_frames:
            _write_all_frames(root / f"{plan.split}_all_frames" / "JPEGImages" / plan.name, plan, spec.jpeg_quality)
        plans.append(plan)
        progress()
    for split, videos in meta.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        with open(root / split / "meta.json", "w") as file:
            json.dump({"videos": dict(sorted(videos.items()))}, file, indent=4)
    return plans


def _write_all_frames(folder: Path, plan: VideoPlan, quality: int) -> None:
    """Every frame of the video, named by its own number: the annotated ones are every 5th."""
    count = ANNOTATION_STEP * (len(plan.frame_names) - 1) + 1
    # one step is ANNOTATION_STEP frames, so frame j is at time j / ANNOTATION_STEP
    frames = plan.scene.render(np.arange(count) / ANNOTATION_STEP).frames  # (count,H,W,3)
    save_frames(folder, frames, [f"{plan.start + j:05d}" for j in range(count)], quality)
