"""`SynthSpec`, what `lit-video data synth` asks for, and the motion-class videos it describes.

Every video shows a few random shapes over a random cluttered background; shapes, colours, sizes,
positions and clutter are drawn from the same distributions for every class. Only how the shapes
move (direction, speed, rotation, scale over time) depends on the class, so no single frame tells
the class and only a model that looks across time can solve the task.

The motion x colour variant (`colour_classes`, `data synth --colours N`) crosses each motion with N
colours: every moving shape of a video has its class's colour, everything else is as above. A single
frame then tells the colour but not the motion, optical flow the motion but not the colour.

The other formats read their own spec from a `SynthSpec` (`VosSynthSpec`, `VisSynthSpec`,
`CaptionSynthSpec`, each with `from_synth_spec` and an `as_..._spec` converter): `as_spec`,
`video_fields` and `check_video_fields` are what those share.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from PIL import Image, ImageDraw

from lit_video.errors import LitVideoError


@dataclass(frozen=True)
class Motion:
    """How the foreground moves, per frame, in fractions of the frame size.

    Args:
        name: CamelCase class name (UCF101 style); `label` gives the spaced form (Kinetics style).
        label: the human-readable class label.
        velocity: (dx, dy) per frame, as a fraction of the frame width/height.
        spin: rotation per frame in degrees (positive = clockwise on screen).
        growth: relative scale change over the whole video (1.0 -> ends at twice its start size).
        wobble: amplitude of a horizontal (x) or vertical (y) oscillation, fraction of the frame.
        colour: RGB of every moving shape (the motion x colour classes); None draws each shape's colour
            at random.
    """

    name: str
    label: str
    velocity: tuple[float, float] = (0.0, 0.0)
    spin: float = 0.0
    growth: float = 0.0
    wobble: tuple[float, float] = (0.0, 0.0)
    colour: tuple[int, int, int] | None = None


MOTIONS: tuple[Motion, ...] = (
    Motion("MoveRight", "moving right", velocity=(0.02, 0.0)),
    Motion("MoveLeft", "moving left", velocity=(-0.02, 0.0)),
    Motion("MoveUp", "moving up", velocity=(0.0, -0.02)),
    Motion("MoveDown", "moving down", velocity=(0.0, 0.02)),
    Motion("SpinClockwise", "spinning, clockwise", spin=8.0),
    Motion("SpinCounterclockwise", "spinning, counterclockwise", spin=-8.0),
    Motion("DashRight", "dashing right (fast)", velocity=(0.06, 0.0)),
    Motion("DashLeft", "dashing left (fast)", velocity=(-0.06, 0.0)),
    Motion("Grow", "growing", growth=1.0),
    Motion("Shrink", "shrinking", growth=-0.5),
    Motion("SwayHorizontally", "swaying horizontally", wobble=(0.12, 0.0)),
    Motion("SwayVertically", "swaying vertically", wobble=(0.0, 0.12)),
)


def motions(num_classes: int) -> tuple[Motion, ...]:
    """The first `num_classes` motion classes."""
    if not 2 <= num_classes <= len(MOTIONS):
        raise ValueError(f"num_classes must be between 2 and {len(MOTIONS)}, got {num_classes}")
    return MOTIONS[:num_classes]


# The class colours of the motion x colour variant (in this order): far apart in hue, all of the same
# brightness (luma 157-161), so that optical flow, computed on grey frames, sees every colour's shapes equally
# well and cannot tell the colours apart.
COLOURS: dict[str, tuple[int, int, int]] = {
    "orange": (255, 125, 0), "green": (0, 255, 0), "blue": (50, 175, 255),
    "yellow": (175, 175, 0), "magenta": (255, 70, 255), "cyan": (0, 215, 215),
}


def check_colours(colours: object) -> int:
    """`colours` as the number of class colours (2..len(COLOURS)).

    Raises:
        SynthSpecError: not an integer in range (field "colours").
    """
    if not _is_integer(colours) or not 2 <= colours <= len(COLOURS):
        raise SynthSpecError("colours", f"must be an integer between 2 and {len(COLOURS)}, got {colours!r}")
    return int(colours)


def colour_classes(base: tuple[Motion, ...], colours: int) -> tuple[Motion, ...]:
    """Each motion of `base` crossed with the first `colours` class colours, motion by motion: e.g.
    MoveRightRed, MoveRightGreen, MoveLeftRed, ... ("moving right, red", ...).

    Raises:
        SynthSpecError: `colours` out of range.
    """
    chosen = list(COLOURS.items())[:check_colours(colours)]
    return tuple(dataclasses.replace(m, name=f"{m.name}{name.capitalize()}", label=f"{m.label}, {name}", colour=rgb)
                 for m in base for name, rgb in chosen)


def _polygon(kind: str, center: tuple[float, float], radius: float, angle_deg: float) -> list[tuple[float, float]]:
    corners = {"triangle": 3, "square": 4, "pentagon": 5, "bar": 4}[kind]
    cx, cy = center
    points = []
    for k in range(corners):
        theta = math.radians(angle_deg + 360.0 * k / corners)
        # A bar is a stretched square: its long axis makes rotation visible even between 90° turns.
        stretch = 1.8 if kind == "bar" and k % 2 == 0 else 1.0
        points.append((cx + radius * stretch * math.cos(theta), cy + radius * stretch * math.sin(theta)))
    return points


def render_video(motion: Motion, num_frames: int, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Render one video of `motion`.

    Args:
        motion: the class's motion.
        num_frames: frames to render.
        size: (height, width); both should be even for 4:2:0 encoding.
        rng: the source of every appearance choice (shapes, colours, clutter, start positions).

    Returns:
        uint8 (T,H,W,3) RGB frames.
    """
    height, width = size
    background = Image.fromarray(rng.integers(40, 110, (height, width, 3), dtype=np.uint8))
    draw = ImageDraw.Draw(background)
    for _ in range(int(rng.integers(8, 16))):  # static clutter, same distribution for every class
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        w, h = rng.uniform(0.05, 0.25) * width, rng.uniform(0.05, 0.25) * height
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x0 + w, y0 + h], fill=colour)

    num_shapes = int(rng.integers(2, 4))
    kinds = rng.choice(["triangle", "square", "pentagon", "bar"], size=num_shapes)
    colours = [tuple(int(c) for c in rng.integers(150, 256, 3)) for _ in range(num_shapes)]
    if motion.colour is not None:  # drawn all the same above, so every other choice matches the plain variant
        colours = [motion.colour] * num_shapes
    starts = rng.uniform(0, 1, size=(num_shapes, 2)) * (width, height)
    radii = rng.uniform(0.07, 0.13, size=num_shapes) * min(height, width)
    angles = rng.uniform(0, 360, size=num_shapes)
    phases = rng.uniform(0, 2 * math.pi, size=num_shapes)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        image = background.copy()
        draw = ImageDraw.Draw(image)
        progress = t / max(num_frames - 1, 1)
        scale = 1.0 + motion.growth * progress
        for s in range(num_shapes):
            # Every motion is zero at t = 0: the first frame of a video never depends on its class.
            sway = math.sin(0.35 * t + phases[s]) - math.sin(phases[s])
            x = starts[s, 0] + motion.velocity[0] * width * t + motion.wobble[0] * width * sway
            y = starts[s, 1] + motion.velocity[1] * height * t + motion.wobble[1] * height * sway
            # Shapes wrap around the frame edges, so they stay visible however long the video is.
            centre = (x % width, y % height)
            draw.polygon(_polygon(str(kinds[s]), centre, radii[s] * scale, angles[s] + motion.spin * t), fill=colours[s])
        frames[t] = np.asarray(image)
    return frames


YOUTUBE_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def random_youtube_id(rng: np.random.Generator) -> str:
    """Eleven characters drawn as a YouTube video id (Kinetics clip names, MSR-VTT urls, MSVD keys)."""
    return "".join(rng.choice(list(YOUTUBE_ID_CHARS), 11))


class SynthSpecError(LitVideoError):
    """A `SynthSpec` field out of range.

    Args:
        field: the field, e.g. "num_frames" (the command line spells it `--num-frames`).
        problem: what is wrong, e.g. "must be an integer >= 1, got 0".
    """

    def __init__(self, field: str, problem: str):
        self.field, self.problem = field, problem
        super().__init__(f"{field} {problem}")


def _is_integer(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


MIN_SIDE = 16  # pixels; smaller frames leave the shapes a few pixels wide


@dataclass(frozen=True)
class SynthSpec:
    """What `lit-video data synth` writes.

    Args:
        num_classes: motion classes (2..12).
        videos_per_class: videos of each class (across all splits).
        num_frames: frames per video.
        size: (height, width) of the frames, both even.
        fps: frame rate of the encoded files.
        seed: makes the whole dataset reproducible.
    """

    num_classes: int = 5
    videos_per_class: int = 25
    num_frames: int = 48
    size: tuple[int, int] = (120, 160)
    fps: float = 25.0
    seed: int = 0

    def __post_init__(self):
        for name in ("videos_per_class", "num_frames"):
            value = getattr(self, name)
            if not _is_integer(value) or value < 1:
                raise SynthSpecError(name, f"must be an integer >= 1, got {value!r}")
        sides = tuple(self.size) if isinstance(self.size, list | tuple) else ()
        if len(sides) != 2 or not all(_is_integer(v) and v >= MIN_SIDE and v % 2 == 0 for v in sides):
            shown = "x".join(map(str, sides)) if len(sides) == 2 else repr(self.size)
            raise SynthSpecError("size", f"must be HEIGHTxWIDTH of even numbers >= {MIN_SIDE}, got {shown}")
        if isinstance(self.fps, bool) or not isinstance(self.fps, int | float) or not math.isfinite(self.fps) \
                or self.fps <= 0:
            raise SynthSpecError("fps", f"must be a positive number, got {self.fps!r}")

    @property
    def motions(self) -> tuple[Motion, ...]:
        return motions(self.num_classes)

    def classes(self, colours: int | None = None) -> tuple[Motion, ...]:
        """The classes: `motions`, or each of them crossed with `colours` class colours (`colour_classes`)."""
        return colour_classes(self.motions, colours) if colours else self.motions

    def render(self, class_index: int, video_index: int, colours: int | None = None) -> np.ndarray:
        """Frames of one video of `classes(colours)`, reproducible from (seed, class, video) alone -> uint8
        (T,H,W,3)."""
        rng = np.random.default_rng([self.seed, class_index, video_index])
        return render_video(self.classes(colours)[class_index], self.num_frames, self.size, rng)


SpecT = TypeVar("SpecT")


def video_fields(spec: SynthSpec) -> dict:
    """What every format's own spec reads from `lit-video data synth` flags: num_classes x videos_per_class
    videos (num_videos), num_frames, size and seed (a `from_synth_spec` adds the fields it needs)."""
    return dict(num_videos=spec.num_classes * spec.videos_per_class, num_frames=spec.num_frames,
                size=tuple(spec.size), seed=spec.seed)


def check_video_fields(spec, kind: str, min_videos: int = 1) -> None:
    """The checks every format's own spec shares: enough videos, two frames or more, even frame sides of
    at least 32 pixels.

    Args:
        spec: has num_videos, num_frames and size.
        kind: names the videos in messages ("VOS", "VIS", "captioning").
        min_videos: the fewest videos the format can split.

    Raises:
        LitVideoError: one line naming the field.
    """
    height, width = spec.size
    if spec.num_videos < min_videos:
        raise LitVideoError(f"num_videos: need at least {min_videos} video{'s' if min_videos > 1 else ''}"
                            f"{' (one per split)' if min_videos == 3 else ''}, got {spec.num_videos}")
    if spec.num_frames < 2:
        raise LitVideoError(f"num_frames: a {kind} video needs at least 2 frames, got {spec.num_frames}")
    if height < 32 or width < 32 or height % 2 or width % 2:
        raise LitVideoError(f"size: {kind} frames need even sides of at least 32 pixels, got {height}x{width}")


def as_spec(kind: type[SpecT], spec, **overrides) -> SpecT:
    """`spec` as a `kind` (a format's own spec such as `vos.VosSynthSpec`): a `SynthSpec` is read with
    `kind.from_synth_spec`, then the fields named in `overrides` are replaced, except those given as None
    (unset command-line options).

    Args:
        kind: the spec class wanted; it has a `from_synth_spec(spec)` classmethod.
        spec: a `SynthSpec` or already a `kind`.
        **overrides: fields to replace.
    """
    spec = spec if isinstance(spec, kind) else kind.from_synth_spec(spec)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(spec, **overrides) if overrides else spec
