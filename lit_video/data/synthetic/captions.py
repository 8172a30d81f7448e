"""Synthetic captioning videos: captions say which shape moves how, written in the MSR-VTT / MSVD layouts.

Every video shows ONE foreground shape over a mildly textured grey background (with two small static
grey blobs). Four attributes are drawn per video from a seeded generator: size {small, large}
(radius 0.12 vs 0.24 of the short side), colour {red, green, blue, yellow} (saturated), shape
{circle, square, triangle} and motion {left, right, up, down} (a steady move across half the frame,
visible all along). Each caption paraphrases the four attributes with one of five templates and
synonyms, so a model must look at appearance AND motion to caption a video right, and no single
wording is the only correct one. Everything is reproducible from (seed, video index).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lit_video.data.formats.msrvtt import MSRVTT_TEST, MSRVTT_TRAIN_VAL
from lit_video.data.formats.msvd import MSVD_COLUMNS, MSVD_CSV, MSVD_MAPPING
from lit_video.data.synthetic.spec import (
    SynthSpec,
    as_spec,
    check_video_fields,
    random_youtube_id,
    video_fields,
)
from lit_video.errors import LitVideoError
from lit_video.video.encode import write_video

SIZES = ("small", "large")
COLOURS = {"red": (220, 30, 30), "green": (30, 190, 40), "blue": (30, 60, 230), "yellow": (240, 220, 30)}
SHAPES = ("circle", "square", "triangle")
MOTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}  # screen (x, y)
RADIUS = {"small": 0.12, "large": 0.24}  # of the short side: clearly apart after any resize
TRAVEL = 0.5  # of the frame side along the motion, over the whole video

SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big", "huge")}
# the motion phrases by grammatical slot; every one names the direction
MOVES = {  # "a small red circle ___"
    "left": ("moves to the left", "moves left", "slides to the left", "travels left"),
    "right": ("moves to the right", "moves right", "slides to the right", "travels right"),
    "up": ("moves up", "moves upward", "goes up", "travels up"),
    "down": ("moves down", "moves downward", "goes down", "travels down"),
}
MOVING = {  # "a small red circle is ___"
    "left": ("moving left", "moving to the left", "sliding left", "going left"),
    "right": ("moving right", "moving to the right", "sliding right", "going right"),
    "up": ("moving up", "moving upward", "going up", "rising up"),
    "down": ("moving down", "moving downward", "going down", "falling down"),
}
TEMPLATES = (
    "a {size} {colour} {shape} {moves}",
    "a {size} {colour} {shape} is {moving}",
    "there is a {size} {colour} {shape} {moving}",
    "the {colour} {shape} , which is {size} , {moves}",
    "a {colour} {shape} that is {size} is {moving}",
)
_STREAM = 2016  # keeps these draws apart from the other synthetic datasets of the same seed

# a few non-English descriptions per video, as the corpus has; the DataModule must leave them out
FOREIGN = (("German", "eine {colour} Form, die sich bewegt"), ("Spanish", "una forma, que se mueve"),
           ("French", "une forme qui bouge, lentement"))


@dataclass(frozen=True)
class CaptionVideo:
    """The drawn attributes of one video (the truth its captions state)."""

    size: str
    colour: str
    shape: str
    motion: str


@dataclass(frozen=True)
class CaptionSynthSpec:
    """What `write_msrvtt` / `write_msvd` write.

    Args:
        num_videos: videos over all splits (at least 3: one per split).
        num_frames: frames per video.
        size: (height, width), both even and at least 32.
        fps: frame rate of the encoded files.
        seed: makes the whole dataset reproducible.
        captions_per_video: captions of each video (MSR-VTT has 20, MSVD about 40 in English).
        train_fraction: the first videos (id order) in train.
        val_fraction: the next ones in validation; the rest is test.
    """

    num_videos: int = 30
    num_frames: int = 16
    size: tuple[int, int] = (64, 64)
    fps: float = 25.0
    seed: int = 0
    captions_per_video: int = 10
    train_fraction: float = 0.6
    val_fraction: float = 0.2

    def __post_init__(self):
        check_video_fields(self, "captioning", min_videos=3)
        if not self.fps > 0:  # write_video would fall back to its default rate, not the one asked for
            raise LitVideoError(f"fps must be a positive number, got {self.fps!r}")
        if self.captions_per_video < 1:
            raise LitVideoError(f"captions_per_video must be at least 1, got {self.captions_per_video}")
        if not (0 < self.train_fraction and 0 < self.val_fraction and self.train_fraction + self.val_fraction < 1):
            raise LitVideoError(f"train_fraction {self.train_fraction} and val_fraction {self.val_fraction} "
                                "must be positive and leave some test videos")

    @classmethod
    def from_synth_spec(cls, spec: SynthSpec, **overrides) -> CaptionSynthSpec:
        """The captioning reading of `lit-video data synth` flags: num_classes x videos_per_class videos;
        num_frames, size, fps and seed as given."""
        return cls(**{**video_fields(spec), "fps": spec.fps, **overrides})

    def split_ends(self) -> tuple[int, int]:
        """(train_end, val_end): videos [0, train_end) train, [train_end, val_end) val, the rest test."""
        train_end = max(1, round(self.train_fraction * self.num_videos))
        val_end = min(max(train_end + 1, round((self.train_fraction + self.val_fraction) * self.num_videos)),
                      self.num_videos - 1)
        return train_end, val_end

    def split(self, index: int) -> str:
        """"train", "validate" or "test" (MSR-VTT's names) of video `index`."""
        train_end, val_end = self.split_ends()
        return "train" if index < train_end else "validate" if index < val_end else "test"

    def video(self, index: int) -> CaptionVideo:
        rng = np.random.default_rng([self.seed, _STREAM, index])
        return CaptionVideo(SIZES[rng.integers(len(SIZES))], list(COLOURS)[rng.integers(len(COLOURS))],
                            SHAPES[rng.integers(len(SHAPES))], list(MOTIONS)[rng.integers(len(MOTIONS))])

    def captions(self, index: int) -> list[str]:
        """The `captions_per_video` paraphrases of video `index`, cycling over the templates."""
        video = self.video(index)
        rng = np.random.default_rng([self.seed, _STREAM, index, 1])
        captions = []
        for k in range(self.captions_per_video):
            words = dict(size=rng.choice(SIZE_WORDS[video.size]), colour=video.colour, shape=video.shape,
                         moves=rng.choice(MOVES[video.motion]), moving=rng.choice(MOVING[video.motion]))
            captions.append(TEMPLATES[k % len(TEMPLATES)].format(**words))
        return captions

    def render(self, index: int) -> np.ndarray:
        """Frames of video `index` -> uint8 (T,H,W,3)."""
        return render_caption_video(self.video(index), self.num_frames, self.size,
                                    np.random.default_rng([self.seed, _STREAM, index, 2]))


def as_caption_spec(spec: CaptionSynthSpec | SynthSpec, **overrides) -> CaptionSynthSpec:
    """`spec` as a CaptionSynthSpec (see `spec.as_spec`)."""
    return as_spec(CaptionSynthSpec, spec, **overrides)


def _shape_points(shape: str, centre: tuple[float, float], radius: float) -> list[tuple[float, float]]:
    cx, cy = centre
    if shape == "square":
        r = radius / math.sqrt(2) * 1.25  # about the circle's area
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    # triangle pointing up, whatever the motion: the shape word must not depend on the direction
    return [(cx + radius * math.cos(math.radians(a)), cy + radius * math.sin(math.radians(a)))
            for a in (-90, 30, 150)]


def render_caption_video(video: CaptionVideo, num_frames: int, size: tuple[int, int],
                         rng: np.random.Generator) -> np.ndarray:
    """Render one shape moving steadily over a textured background.

    Args:
        video: its attributes.
        num_frames: frames to render.
        size: (height, width).
        rng: background texture, distractors and the path's placement.

    Returns:
        uint8 (T,H,W,3) RGB frames.
    """
    height, width = size
    # mild texture: smooth low-contrast grey noise (upsampled), so codecs keep it and it says nothing
    coarse = rng.uniform(95, 145, (height // 8 + 1, width // 8 + 1)).astype(np.uint8)
    grey = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR))
    background = Image.fromarray(np.repeat(grey[..., None], 3, axis=2))
    draw = ImageDraw.Draw(background)
    short = min(height, width)
    for _ in range(2):  # small static grey distractors
        x, y, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.04, 0.07) * short
        level = int(rng.integers(60, 190))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(level, level, level))

    radius = RADIUS[video.size] * short
    dx, dy = MOTIONS[video.motion]
    # the path is centred near the frame centre, so the shape stays in view from start to end
    jitter = rng.uniform(-0.05, 0.05, 2)
    across = rng.uniform(0.35, 0.65)
    if dx:
        start = np.array([(0.5 - dx * TRAVEL / 2 + jitter[0]) * width, across * height])
    else:
        start = np.array([across * width, (0.5 - dy * TRAVEL / 2 + jitter[1]) * height])
    step = np.array([dx * width, dy * height]) * TRAVEL / max(num_frames - 1, 1)
    colour = COLOURS[video.colour]
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        image = background.copy()
        draw = ImageDraw.Draw(image)
        cx, cy = start + step * t
        if video.shape == "circle":
            draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=colour)
        else:
            draw.polygon(_shape_points(video.shape, (cx, cy), radius), fill=colour)
        frames[t] = np.asarray(image)
    return frames


def write_msrvtt(out: str | os.PathLike, spec: CaptionSynthSpec | SynthSpec,
                 progress: Callable[[], None] = lambda: None) -> None:
    """Write an MSR-VTT copy: `videos/video<N>.mp4`, `train_val_videodatainfo.json` (train + validate
    videos and their sentences) and `test_videodatainfo.json`, splits in id order as released.

    Args:
        out: the dataset root.
        spec: what to write (a classification SynthSpec is read with `CaptionSynthSpec.from_synth_spec`).
        progress: called once per video written.
    """
    spec, root = as_caption_spec(spec), Path(out)
    (root / "videos").mkdir(parents=True, exist_ok=True)
    files = {MSRVTT_TRAIN_VAL: {"videos": [], "sentences": []}, MSRVTT_TEST: {"videos": [], "sentences": []}}
    sen_id = 0
    for index in range(spec.num_videos):
        rng = np.random.default_rng([spec.seed, _STREAM, index, 3])
        split = spec.split(index)
        data = files[MSRVTT_TEST if split == "test" else MSRVTT_TRAIN_VAL]
        start = round(float(rng.uniform(0, 300)), 2)
        data["videos"].append({
            "category": int(rng.integers(0, 20)), "url": f"https://www.youtube.com/watch?v={random_youtube_id(rng)}",
            "video_id": f"video{index}", "start time": start, "end time": round(start + spec.num_frames / spec.fps, 2),
            "split": split, "id": index,
        })
        for caption in spec.captions(index):
            data["sentences"].append({"caption": caption, "video_id": f"video{index}", "sen_id": sen_id})
            sen_id += 1
        write_video(root / "videos" / f"video{index}.mp4", spec.render(index), fps=spec.fps, quality="normal")
        progress()
    for name, data in files.items():
        info = {"contributor": "lit-video", "data_created": "2016-04-01 00:00:00", "version": "1.0",
                "description": "lit-video synthetic MSR-VTT", "year": "2016"}
        (root / name).write_text(json.dumps({"info": info, **data}))


def write_msvd(out: str | os.PathLike, spec: CaptionSynthSpec | SynthSpec,
               progress: Callable[[], None] = lambda: None) -> tuple[int, int, int]:
    """Write an MSVD copy: `YouTubeClips/<key>.avi`, `MSR Video Description Corpus.csv` (with a few
    non-English rows per video and quoted descriptions holding commas) and `youtube_mapping.txt`.

    Video `index` is `vid<index + 1>`. The standard split boundaries (1200 / 1300 / 1970) do not fit a
    small copy: read it with `MSVDDataModule(root, train_end=a, val_end=b, test_end=c)`, (a, b, c) being
    what this returns.

    Args:
        out: the dataset root.
        spec: what to write (a classification SynthSpec is read with `CaptionSynthSpec.from_synth_spec`).
        progress: called once per video written.

    Returns:
        (train_end, val_end, test_end): the last vid number of each split.
    """
    spec, root = as_caption_spec(spec), Path(out)
    (root / "YouTubeClips").mkdir(parents=True, exist_ok=True)
    mapping, rows = [], []
    for index in range(spec.num_videos):
        rng = np.random.default_rng([spec.seed, _STREAM, index, 4])
        start = int(rng.integers(0, 300))
        key = f"{random_youtube_id(rng)}_{start}_{start + max(1, round(spec.num_frames / spec.fps))}"
        youtube_id, start_s, end_s = key.rsplit("_", 2)
        mapping.append(f"{key} vid{index + 1}")
        captions = spec.captions(index)
        foreign = [FOREIGN[k % len(FOREIGN)] for k in range(1 + index % 2)]
        for k, (language, text) in enumerate([("English", c) for c in captions] + foreign):
            worker = int(rng.integers(100000, 999999))
            rows.append([youtube_id, start_s, end_s, str(worker), "clean" if k % 3 else "unverified",
                         str(int(rng.integers(5, 60))), language, text.format(colour=spec.video(index).colour)])
        write_video(root / "YouTubeClips" / f"{key}.avi", spec.render(index), fps=spec.fps, quality="normal")
        progress()
    with open(root / MSVD_CSV, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)  # quotes the descriptions that hold commas, as the release does
        writer.writerow(MSVD_COLUMNS)
        writer.writerows(rows)
    (root / MSVD_MAPPING).write_text("\n".join(mapping) + "\n")
    train_end, val_end = spec.split_ends()
    return train_end, val_end, spec.num_videos
