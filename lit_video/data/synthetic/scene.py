"""The scenes of the synthetic VOS and VIS data: textured shapes moving over a panning background.

Every shape (an ellipse or polygon) carries its own stripes / checker / rings / noise texture and moves
on a smooth trajectory, turning and growing; the background is a smooth colour field with a faint
pattern, grain and static textured clutter of the same shape families, larger than a frame so the
camera can pan over it. Shapes are drawn back to front and occlude each other; an object may slide in
from a frame edge mid-video and slide out again. `vos.py` and `vis.py` draw their videos from these
parts and write them in their formats' layouts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from lit_video.data.masks import VOID

SHAPES = ("ellipse", "triangle", "square", "pentagon", "hexagon", "star")  # also YouTube-VOS categories
TEXTURES = ("stripes", "checker", "rings", "noise")
ANNOTATION_STEP = 5  # YouTube-VOS / -VIS: JPEGImages / Annotations hold every 5th frame of the video
ENTRY_STEPS = 3.0  # steps an object takes to slide in from the frame edge
VOID_RADIUS = 1  # a pixel is void when its 3x3 neighbourhood holds two labels: a 2-px band
MAX_PLACEMENT_TRIES = 50
_NOISE_SIZE = 32


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

    def draw_backdrop(self, rng: np.random.Generator, duration: float, clutter_shapes: Sequence[str] = SHAPES) -> None:
        """Draw the background (with a margin of 15% of each side around the view) and a slow camera pan
        that stays within the margin over the whole video.

        Args:
            rng: the video's generator.
            duration: steps of the whole video.
            clutter_shapes: shapes of the static clutter (see `scene_background`).
        """
        height, width = self.size
        margin = (max(2, int(0.15 * height)), max(2, int(0.15 * width)))
        self.background = scene_background(rng, self.size, margin, clutter_shapes)
        self.pan_start = np.array([margin[1], margin[0]], dtype=np.float64)
        self.pan_velocity = rng.uniform(-1, 1, 2) * np.array([margin[1], margin[0]]) / duration

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


def random_object(rng: np.random.Generator, size: tuple[int, int], duration: float, category: str,
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


def slide_in_from_edge(obj: SynthObject, size: tuple[int, int]) -> None:
    """Set `obj.entry_offset` so that at `obj.enter` its centre sits on the nearest frame edge."""
    height, width = size
    x, y = obj.base_position(obj.enter)
    moves = [np.array([-x, 0.0]), np.array([width - x, 0.0]), np.array([0.0, -y]), np.array([0.0, height - y])]
    obj.entry_offset = min(moves, key=lambda m: float(np.abs(m).sum()))


def slide_out_of_frame(obj: SynthObject, size: tuple[int, int]) -> None:
    """Set `obj.exit_offset` so that at `obj.leave` the whole shape is just past the nearest frame edge."""
    height, width = size
    x, y = obj.base_position(obj.leave)
    reach = float(np.linalg.norm(obj.outline, axis=1).max()) * obj.pose(obj.leave)[2] + 1.0
    moves = [np.array([-x - reach, 0.0]), np.array([width - x + reach, 0.0]),
             np.array([0.0, -y - reach]), np.array([0.0, height - y + reach])]
    obj.exit_offset = min(moves, key=lambda m: float(np.abs(m).sum()))


def scene_background(rng: np.random.Generator, size: tuple[int, int], margin: tuple[int, int],
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
        clutter = random_object(rng, size, 1.0, str(rng.choice(clutter_shapes)), str(rng.choice(TEXTURES)), 0)
        clutter.centre = rng.uniform(0, 1, 2) * (width, height)
        clutter.amplitude[:] = 0.0  # static: it moves only with the camera
        mask = clutter.geometry(0.0, (height, width))
        ys, xs = np.nonzero(mask)
        canvas[ys, xs] = 0.6 * clutter.paint(xs + 0.5, ys + 0.5, 0.0) + 0.4 * canvas[ys, xs]
    canvas += rng.normal(0, 3, canvas.shape)  # sensor-like grain
    return np.clip(canvas, 0, 255).astype(np.uint8)


@dataclass
class VideoPlan:
    """One synthetic video: where it goes and everything needed to render it.

    Args:
        name: the sequence name (DAVIS) or video id (YouTube-VOS, YouTube-VIS).
        split: "train" or "val" (DAVIS), "train" or "valid" (YouTube-VOS, YouTube-VIS).
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

    def avoid_name_clash(self, plans: Sequence[VideoPlan], index: int) -> None:
        """Rename the plan if an earlier one of `plans` has its name (random 40-bit names: rare, but
        possible): its last three hex digits become `index`'s."""
        if any(self.name == p.name for p in plans):
            self.name = f"{self.name[:-3]}{index % 4096:03x}"

    def masks(self, rendered: Rendered) -> np.ndarray:
        """uint8 (T,H,W) annotation of every frame: the visible ids, with the void band if any."""
        labels = rendered.labels.copy()
        if self.void:
            labels[void_band(labels)] = VOID
        return labels


def save_frames(folder: Path, frames: np.ndarray, stems: Sequence[str], quality: int) -> None:
    """uint8 (T,H,W,3) frames as `folder/<stem>.jpg`, one stem a frame, at JPEG `quality` (PIL's scale)."""
    folder.mkdir(parents=True, exist_ok=True)
    for frame, stem in zip(frames, stems, strict=True):
        Image.fromarray(frame).save(folder / f"{stem}.jpg", quality=quality)

