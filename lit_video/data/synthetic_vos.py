"""Synthetic semi-supervised VOS data in the DAVIS 2017 and YouTube-VOS 2018/2019 layouts.

Every video shows textured shapes (ellipses and polygons, each with its own stripes / checker / rings /
noise texture) moving on smooth trajectories over a cluttered, textured background that pans slowly,
so no colour threshold separates objects from background. Shapes have a fixed z-order and occlude
each other, may leave the frame partially, and (YouTube-VOS) slide in from a frame edge mid-video.
Unannotated distractor shapes move too. Frames are JPEGs, masks palette PNGs (`masks.write_mask`).

Which video gets which property is fixed by its index, so small datasets still cover every case:
- split: index % valid_every == 1 (every third by default) -> DAVIS "val" / YouTube-VOS "valid", otherwise
  "train";
- DAVIS: one annotated object when index % 6 is 0 or 1 (listed in ImageSets/2016), 2..max_objects
  otherwise; a 2-px void band (255) along object borders when index % 3 != 2; every object is
  visible in frame 00000 (the official evaluation takes the object ids from the first frame);
- YouTube-VOS: 2..max_objects objects; at least one enters mid-video when index % 3 != 0; object ids
  skip one number (e.g. 1, 3) when index is odd; frame names start at a random multiple of 5
  (e.g. 00015) when index is odd, else at 00000.

YouTube-VOS `JPEGImages` hold every 5th frame of the 30 fps video (names step by 5), as released;
`all_frames=True` also writes `{train,valid}_all_frames/JPEGImages` with every frame. As a
synthetic-only extra, `valid/Annotations_full/<vid>/` holds the ground truth of every valid frame
(the release has none) so that predictions on valid can be scored locally.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from lit_video.data.masks import VOID, write_mask
from lit_video.data.synthetic import SynthSpec
from lit_video.errors import LitVideoError

SHAPES = ("ellipse", "triangle", "square", "pentagon", "hexagon", "star")  # also YouTube-VOS categories
TEXTURES = ("stripes", "checker", "rings", "noise")
ANNOTATION_STEP = 5  # YouTube-VOS: JPEGImages / Annotations hold every 5th frame of the video
FULL_ANNOTATIONS_DIR = "Annotations_full"  # synthetic-only: valid ground truth on every frame
ENTRY_STEPS = 3.0  # steps an object takes to slide in from the frame edge
VOID_RADIUS = 1  # a pixel is void when its 3x3 neighbourhood holds two labels: a 2-px band
MAX_PLACEMENT_TRIES = 50
_NOISE_SIZE = 32


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
        height, width = self.size
        if self.num_videos < 1:
            raise LitVideoError(f"num_videos: need at least one video, got {self.num_videos}")
        if self.num_frames < 2:
            raise LitVideoError(f"num_frames: a VOS video needs at least 2 frames, got {self.num_frames}")
        if height < 32 or width < 32 or height % 2 or width % 2:
            raise LitVideoError(f"size: VOS frames need even sides of at least 32 pixels, got {height}x{width}")
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
        fields = dict(num_videos=spec.num_classes * spec.videos_per_class, num_frames=spec.num_frames,
                      size=tuple(spec.size), seed=spec.seed)
        fields.update(overrides)
        return cls(**fields)


def as_vos_spec(spec: VosSynthSpec | SynthSpec, **overrides) -> VosSynthSpec:
    """`spec` as a VosSynthSpec (a classification SynthSpec read with `from_synth_spec`), fields replaced by
    the `overrides` that are not None (unset command-line options)."""
    spec = spec if isinstance(spec, VosSynthSpec) else VosSynthSpec.from_synth_spec(spec)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(spec, **overrides) if overrides else spec


# ----------------------------------------------------------------------------------------------- scene


@dataclass
class SynthObject:
    """One moving shape. Positions are in pixels, time `t` in steps (annotated frames).

    Args:
        object_id: the id in the masks; 0 for an unannotated distractor.
        category: the shape's name.
        outline: (P,2) polygon in the object's own frame (x, y pixels, before rotation and scale).
        texture: one of TEXTURES, painted in the object's own frame so it moves and turns with it.
        colours: (2,3) the texture's two RGB colours.
        period: texture period in pixels.
        texture_angle: direction of the stripes, radians.
        noise: (N,N) smooth noise in [0,1] for the "noise" texture.
        centre, amplitude, frequency, phase: (2,) x/y of the trajectory
            centre + amplitude * sin(frequency * t + phase).
        angle, spin: rotation at t = 0 and per step, radians.
        growth: relative scale change over the whole video.
        duration: steps of the whole video (scales `growth`).
        enter: the step where the object appears; nothing of it is drawn before.
        entry_offset: (2,) displacement at `enter` that puts its centre on a frame edge; it fades to 0
            over ENTRY_STEPS, so the object slides into view.
        leave: the step from which the object is gone; nothing of it is drawn from then on.
        exit_offset: (2,) displacement reached at `leave` that carries it past a frame edge; it grows
            from 0 over the ENTRY_STEPS before `leave`, so the object slides out of view.
    """

    object_id: int
    category: str
    outline: np.ndarray
    texture: str
    colours: np.ndarray
    period: float
    texture_angle: float
    noise: np.ndarray
    centre: np.ndarray
    amplitude: np.ndarray
    frequency: np.ndarray
    phase: np.ndarray
    angle: float
    spin: float
    growth: float
    duration: float
    enter: float = 0.0
    entry_offset: np.ndarray | None = None
    leave: float = math.inf
    exit_offset: np.ndarray | None = None

    def visible_at(self, t: float) -> bool:
        return self.enter - 1e-9 <= t < self.leave - 1e-9

    def base_position(self, t: float) -> np.ndarray:
        return self.centre + self.amplitude * np.sin(self.frequency * t + self.phase)

    def pose(self, t: float) -> tuple[np.ndarray, float, float]:
        """(centre (2,), rotation, scale) at time t."""
        position = self.base_position(t)
        if self.entry_offset is not None:
            # cosine ease: the slide-in starts at the edge and merges smoothly into the trajectory
            progress = min(max((t - self.enter) / ENTRY_STEPS, 0.0), 1.0)
            position = position + self.entry_offset * 0.5 * (1.0 + math.cos(math.pi * progress))
        if self.exit_offset is not None:  # the same ease, reversed
            progress = min(max((t - self.leave + ENTRY_STEPS) / ENTRY_STEPS, 0.0), 1.0)
            position = position + self.exit_offset * 0.5 * (1.0 - math.cos(math.pi * progress))
        scale = 1.0 + self.growth * t / self.duration
        return position, self.angle + self.spin * t, scale

    def geometry(self, t: float, size: tuple[int, int]) -> np.ndarray:
        """bool (H,W): the pixels the shape covers at time t, whatever is in front of it."""
        position, rotation, scale = self.pose(t)
        cos, sin = math.cos(rotation), math.sin(rotation)
        rotate = np.array([[cos, -sin], [sin, cos]]) * scale
        points = self.outline @ rotate.T + position  # (P,2)
        height, width = size
        # PIL's scan conversion: exact, fast, and the same on every platform
        canvas = Image.new("L", (width, height), 0)
        ImageDraw.Draw(canvas).polygon([tuple(p) for p in points.tolist()], fill=1)
        return np.asarray(canvas, dtype=bool)

    def paint(self, xs: np.ndarray, ys: np.ndarray, t: float) -> np.ndarray:
        """RGB float (N,3) of the object's texture at image points (xs, ys) at time t."""
        position, rotation, scale = self.pose(t)
        dx, dy = xs - position[0], ys - position[1]
        cos, sin = math.cos(rotation), math.sin(rotation)
        u = (cos * dx + sin * dy) / scale  # (N,) in the object's own frame
        v = (-sin * dx + cos * dy) / scale
        if self.texture == "stripes":
            along = u * math.cos(self.texture_angle) + v * math.sin(self.texture_angle)
            weight = _square_wave(along / self.period)
        elif self.texture == "checker":
            weight = ((np.floor(u / self.period) + np.floor(v / self.period)) % 2).astype(np.float32)
        elif self.texture == "rings":
            weight = _square_wave(np.hypot(u, v) / self.period)
        else:
            rows = np.round(v).astype(np.int64) % self.noise.shape[0]
            cols = np.round(u).astype(np.int64) % self.noise.shape[1]
            weight = self.noise[rows, cols]
        return self.colours[0] + weight[:, None] * (self.colours[1] - self.colours[0])


def _square_wave(phase: np.ndarray) -> np.ndarray:
    """A softened square wave in [0,1] of period 1: crisp stripes that survive JPEG."""
    return np.clip(0.5 + 2.0 * np.sin(2.0 * np.pi * phase), 0.0, 1.0)


@dataclass
class Rendered:
    """Frames of a scene and their ground truth.

    Args:
        frames: uint8 (T,H,W,3) RGB.
        labels: uint8 (T,H,W) visible object ids (0 = background or a distractor; no void).
        geometry: bool (T,N,H,W) each shape's full extent, occluded parts included, in `object_ids` order.
        object_ids: (N,) the id of each shape in `geometry`, back to front; 0 for distractors.
    """

    frames: np.ndarray
    labels: np.ndarray
    geometry: np.ndarray
    object_ids: np.ndarray


@dataclass
class SynthScene:
    """A textured background panning under shapes drawn back to front.

    Args:
        size: (height, width) of the frames.
        background: uint8 (H + 2*my, W + 2*mx, 3), larger than a frame so the view can pan over it.
        pan_start: (2,) x/y offset of the view into `background` at t = 0.
        pan_velocity: (2,) x/y pixels per step.
        objects: shapes in drawing order (the last one is in front).
    """

    size: tuple[int, int]
    background: np.ndarray
    pan_start: np.ndarray
    pan_velocity: np.ndarray
    objects: list[SynthObject]

    def render(self, times: Sequence[float], with_frames: bool = True) -> Rendered:
        """Render the scene at `times` (steps; fractions render the frames between annotated ones)."""
        height, width = self.size
        num_times, num_objects = len(times), len(self.objects)
        frames = np.zeros((num_times, height, width, 3), dtype=np.uint8)
        labels = np.zeros((num_times, height, width), dtype=np.uint8)
        geometry = np.zeros((num_times, num_objects, height, width), dtype=bool)
        limit = np.array(self.background.shape[1::-1]) - (width, height)
        for i, t in enumerate(times):
            if with_frames:
                x0, y0 = np.clip(np.round(self.pan_start + self.pan_velocity * t), 0, limit).astype(int)
                frame = self.background[y0:y0 + height, x0:x0 + width].astype(np.float32)  # (H,W,3)
            for k, obj in enumerate(self.objects):
                if not obj.visible_at(t):
                    continue
                mask = obj.geometry(t, self.size)  # (H,W)
                geometry[i, k] = mask
                labels[i][mask] = obj.object_id  # later shapes overwrite: they are in front
                if with_frames:
                    ys, xs = np.nonzero(mask)
                    frame[ys, xs] = obj.paint(xs + 0.5, ys + 0.5, t)
            if with_frames:
                frames[i] = np.clip(frame, 0, 255).astype(np.uint8)
        ids = np.array([obj.object_id for obj in self.objects], dtype=np.int64)
        return Rendered(frames, labels, geometry, ids)


def void_band(labels: np.ndarray, radius: int = VOID_RADIUS) -> np.ndarray:
    """bool (..., H,W): pixels within `radius` of a border between two labels, as the void (255)
    band of the DAVIS 2017 annotations (objects and background both lose a thin rim)."""
    size = (1,) * (labels.ndim - 2) + (2 * radius + 1, 2 * radius + 1)
    return ndimage.maximum_filter(labels, size=size) != ndimage.minimum_filter(labels, size=size)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int],
                  channels: int = 1) -> np.ndarray:
    """Float (H,W) or (H,W,C) in [0,1]: random values on a coarse grid, bicubically upsampled."""
    coarse = rng.uniform(0, 255, (cells[0], cells[1], channels)).astype(np.uint8)
    images = [Image.fromarray(coarse[..., c]).resize(shape[::-1], Image.Resampling.BICUBIC) for c in range(channels)]
    smooth = np.stack([np.asarray(image, dtype=np.float32) / 255.0 for image in images], axis=-1)
    return smooth[..., 0] if channels == 1 else smooth


def _contrasting_colours(rng: np.random.Generator) -> np.ndarray:
    while True:  # reject dull pairs: the texture must show
        colours = rng.uniform(0, 255, (2, 3))
        if np.abs(colours[0] - colours[1]).sum() > 180:
            return colours.astype(np.float32)


def _outline(shape: str, radius: float, aspect: float) -> np.ndarray:
    """(P,2) polygon of `shape` centred at the origin."""
    if shape == "ellipse":
        angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        radii = np.full(48, radius)
    elif shape == "star":
        angles = np.linspace(0, 2 * np.pi, 10, endpoint=False)
        radii = np.where(np.arange(10) % 2 == 0, radius * 1.2, radius * 0.55)
    else:
        corners = {"triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6}[shape]
        angles = np.linspace(0, 2 * np.pi, corners, endpoint=False)
        radii = np.full(corners, radius * 1.1)
    return np.stack([radii * np.cos(angles) * aspect, radii * np.sin(angles)], axis=1)


def _random_object(rng: np.random.Generator, size: tuple[int, int], duration: float, category: str,
                   texture: str, object_id: int) -> SynthObject:
    height, width = size
    extent = np.array([width, height], dtype=np.float64)
    short = min(height, width)
    # Paths swing about the middle of the frame, so shapes cross (and occlude) each other often and
    # the wider swings carry them partly out of the frame.
    return SynthObject(
        object_id=object_id,
        category=category,
        outline=_outline(category, rng.uniform(0.13, 0.22) * short, rng.uniform(0.65, 1.0)),
        texture=texture,
        colours=_contrasting_colours(rng),
        period=float(max(6.0, rng.uniform(0.06, 0.12) * short)),  # finer patterns would not survive JPEG
        texture_angle=float(rng.uniform(0, np.pi)),
        noise=_smooth_noise(rng, (_NOISE_SIZE, _NOISE_SIZE), (5, 5)),
        centre=rng.uniform(0.3, 0.7, 2) * extent,
        amplitude=rng.uniform(0.1, 0.35, 2) * extent,
        frequency=2 * np.pi * rng.uniform(0.3, 1.0, 2) / duration,
        phase=rng.uniform(0, 2 * np.pi, 2),
        angle=float(rng.uniform(0, 2 * np.pi)),
        spin=float(rng.uniform(-np.pi, np.pi) / duration),
        growth=float(rng.uniform(-0.25, 0.25)),
        duration=duration,
    )


def _slide_in_from_edge(obj: SynthObject, size: tuple[int, int]) -> None:
    """Set `obj.entry_offset` so that at `obj.enter` its centre sits on the nearest frame edge."""
    height, width = size
    x, y = obj.base_position(obj.enter)
    moves = [np.array([-x, 0.0]), np.array([width - x, 0.0]), np.array([0.0, -y]), np.array([0.0, height - y])]
    obj.entry_offset = min(moves, key=lambda m: float(np.abs(m).sum()))


def _slide_out_of_frame(obj: SynthObject, size: tuple[int, int]) -> None:
    """Set `obj.exit_offset` so that at `obj.leave` the whole shape is just past the nearest frame edge."""
    height, width = size
    x, y = obj.base_position(obj.leave)
    reach = float(np.linalg.norm(obj.outline, axis=1).max()) * obj.pose(obj.leave)[2] + 1.0
    moves = [np.array([-x - reach, 0.0]), np.array([width - x + reach, 0.0]),
             np.array([0.0, -y - reach]), np.array([0.0, height - y + reach])]
    obj.exit_offset = min(moves, key=lambda m: float(np.abs(m).sum()))


def _background(rng: np.random.Generator, size: tuple[int, int], margin: tuple[int, int],
                clutter_shapes: Sequence[str] = SHAPES) -> np.ndarray:
    """uint8 (H+2my, W+2mx, 3): smooth colour fields, a faint pattern, grain and static textured clutter
    drawn from the same families as the objects (shapes of `clutter_shapes`, none when it is empty),
    so appearance alone does not tell object from scene."""
    height, width = size[0] + 2 * margin[0], size[1] + 2 * margin[1]
    canvas = 30 + 190 * _smooth_noise(rng, (height, width), (5, 7), channels=3)  # (H,W,3)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 14)
    canvas += 20 * np.sin(2 * np.pi * (xx * math.cos(angle) + yy * math.sin(angle)) / period)[..., None]
    for _ in range(int(rng.integers(5, 10)) if len(clutter_shapes) else 0):
        clutter = _random_object(rng, size, 1.0, str(rng.choice(clutter_shapes)), str(rng.choice(TEXTURES)), 0)
        clutter.centre = rng.uniform(0, 1, 2) * (width, height)
        clutter.amplitude[:] = 0.0  # static: it moves only with the camera
        mask = clutter.geometry(0.0, (height, width))
        ys, xs = np.nonzero(mask)
        canvas[ys, xs] = 0.6 * clutter.paint(xs + 0.5, ys + 0.5, 0.0) + 0.4 * canvas[ys, xs]
    canvas += rng.normal(0, 3, canvas.shape)  # sensor-like grain
    return np.clip(canvas, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------- plans


@dataclass
class VideoPlan:
    """One synthetic video: where it goes and everything needed to render it.

    Args:
        name: the sequence name (DAVIS) or video id (YouTube-VOS).
        split: "train" or "val" (DAVIS), "train" or "valid" (YouTube-VOS).
        frame_names: file stems of the frames in JPEGImages, e.g. ("00015", "00020", ...).
        object_ids: the annotated objects' ids, ascending.
        categories: object id -> category (the shape's name).
        first_frames: object id -> stem of the first frame the object is visible in.
        void: whether the masks have a void band (DAVIS).
        scene: the scene; `render()` gives the frames of `frame_names`.
    """

    name: str
    split: str
    frame_names: tuple[str, ...]
    object_ids: tuple[int, ...]
    categories: dict[int, str]
    first_frames: dict[int, str]
    void: bool
    scene: SynthScene

    @property
    def start(self) -> int:
        return int(self.frame_names[0])

    def render(self) -> Rendered:
        """The frames of `frame_names` and their ground truth (before any void band)."""
        return self.scene.render(np.arange(len(self.frame_names), dtype=np.float64))

    def masks(self, rendered: Rendered) -> np.ndarray:
        """uint8 (T,H,W) annotation of every frame: the visible ids, with the void band if any."""
        labels = rendered.labels.copy()
        if self.void:
            labels[void_band(labels)] = VOID
        return labels


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
        objects = [_random_object(rng, size, duration, str(shapes[k % len(SHAPES)]),
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
                    _slide_in_from_edge(objects[k], size)
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

    margin = (max(2, int(0.15 * height)), max(2, int(0.15 * width)))
    scene.background = _background(rng, size, margin)
    scene.pan_start = np.array([margin[1], margin[0]], dtype=np.float64)
    # a slow camera pan that stays within the margin over the whole video
    scene.pan_velocity = rng.uniform(-1, 1, 2) * np.array([margin[1], margin[0]]) / duration

    frame_names = tuple(f"{start + (1 if davis else ANNOTATION_STEP) * t:05d}" for t in range(steps))
    annotated = sorted((obj for obj in objects if obj.object_id), key=lambda o: o.object_id)
    return VideoPlan(
        name=name,
        split=("val" if davis else "valid") if spec.valid_every and index % spec.valid_every == 1 else "train",
        frame_names=frame_names,
        object_ids=tuple(obj.object_id for obj in annotated),
        categories={obj.object_id: obj.category for obj in annotated},
        first_frames={obj.object_id: frame_names[int(obj.enter)] for obj in annotated},
        void=davis and index % 3 != 2,  # keep in step with the placement check above
        scene=scene,
    )


# ----------------------------------------------------------------------------------------------- writers


def _save_jpeg(path: Path, frame: np.ndarray, quality: int) -> None:
    Image.fromarray(frame).save(path, quality=quality)


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


def write_davis(out: str | os.PathLike, spec: VosSynthSpec | SynthSpec,
                progress: Callable[[], None] = lambda: None) -> list[VideoPlan]:
    """Write a DAVIS 2017 dataset (with the DAVIS 2016 image sets) under `out`.

    Layout: `JPEGImages/480p/<seq>/00000.jpg`, `Annotations/480p/<seq>/00000.png` for every frame,
    `ImageSets/2017/{train,val}.txt` (all sequences) and `ImageSets/2016/{train,val}.txt` (the
    single-object ones), one name a line. "480p" is the folder name only; frames are `spec.size`.

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
    frames_dir = root / "JPEGImages" / "480p" / plan.name
    masks_dir = root / "Annotations" / "480p" / plan.name
    frames_dir.mkdir(parents=True, exist_ok=True)
    for t, stem in enumerate(plan.frame_names):
        _save_jpeg(frames_dir / f"{stem}.jpg", rendered.frames[t], spec.jpeg_quality)
        write_mask(masks_dir / f"{stem}.png", masks[t])
    return plan


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
    `<split>/meta.json` = {"videos": {vid: {"objects": {"<id>": {"category", "frames"}}}}}.
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
        if any(plan.name == p.name for p in plans):  # 40-bit ids: a clash is rare but possible
            plan.name = f"{plan.name[:-3]}{index % 4096:03x}"
        rendered = plan.render()
        split = root / plan.split
        frames_dir = split / "JPEGImages" / plan.name
        frames_dir.mkdir(parents=True, exist_ok=True)
        for t, stem in enumerate(plan.frame_names):
            _save_jpeg(frames_dir / f"{stem}.jpg", rendered.frames[t], spec.jpeg_quality)
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
    folder.mkdir(parents=True, exist_ok=True)
    count = ANNOTATION_STEP * (len(plan.frame_names) - 1) + 1
    # one step is ANNOTATION_STEP frames, so frame j is at time j / ANNOTATION_STEP
    frames = plan.scene.render(np.arange(count) / ANNOTATION_STEP).frames  # (count,H,W,3)
    for j in range(count):
        _save_jpeg(folder / f"{plan.start + j:05d}.jpg", frames[j], quality)
