"""Predictions drawn over video frames, written as MP4, GIF or a PNG contact sheet.

numpy, OpenCV, PyAV and Pillow only (no torch): `lit-video visualize` starts fast, and a LightningModule
that holds uint8 frames and integer label maps in memory can call the same functions to log media.

Frames are uint8 (T,H,W,3) RGB. A label map is integer (T,H,W): 0 background, k in 1..254 object (or
track) k, 255 void (DAVIS' object borders).

- `overlay_labels`: each object blended in its colour of the PASCAL VOC palette (the palette of the DAVIS
  and YouTube-VOS masks, so an object has the colour its PNG shows), a 1-pixel contour in the full colour and
  its id or name written near it.
- `caption_frames`: lines of text in a band added below the frames (the video pixels are not covered).
- `write_mp4`, `write_gif`, `write_contact_sheet`: the rendered frames as files.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from fractions import Fraction

import numpy as np

from lit_video.data.masks import VOID, voc_palette

WHITE = (255, 255, 255)
GREY = (190, 190, 190)
GREEN = (40, 220, 40)
RED = (235, 40, 40)
BLACK = (0, 0, 0)
# A band line: its text, or (text, RGB colour); plain text is white.
Line = str | tuple[str, tuple[int, int, int]]

_FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX, spelt out so that importing this module does not load OpenCV
_MARGIN = 4  # pixels between the band's edge and its text


def palette_colours() -> np.ndarray:
    """The VOC palette as uint8 (256,3): row k is the RGB colour of id k."""
    return np.asarray(voc_palette(256), np.uint8).reshape(256, 3)


def evenly_spaced(num_frames: int, count: int | None) -> np.ndarray:
    """`count` frame indices spread evenly over `num_frames` (the first and the last included); every frame
    when `count` is None or at least `num_frames`.

    Args:
        num_frames: frames of the video.
        count: how many to keep.
    """
    if count is None or count >= num_frames:
        return np.arange(num_frames)
    if count == 1:
        return np.zeros(1, np.int64)
    return np.unique(np.linspace(0, num_frames - 1, count).round().astype(np.int64))


def _font_scale(height: int) -> float:
    """A text size readable on a frame of `height` pixels (about 1/30 of it, never below 8 pixels)."""
    return min(1.0, max(0.3, height / 600))


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T,H,W,3), got {frames.dtype} {tuple(frames.shape)}")
    return frames


def _put_text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float,
              colour: tuple[int, int, int] = WHITE) -> None:
    """`text` at `origin` (x, baseline y), in `colour` with a 1-pixel black outline, drawn into `image` in place.

    The outline is the text in black shifted by one pixel each way: a thicker stroke would not do, as some
    OpenCV builds widen the glyphs with the thickness."""
    import cv2

    x, y = origin
    for dx, dy in ((-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)):
        cv2.putText(image, text, (x + dx, y + dy), _FONT, scale, BLACK, 1, cv2.LINE_AA)
    cv2.putText(image, text, origin, _FONT, scale, tuple(int(c) for c in colour), 1, cv2.LINE_AA)


def _text_size(text: str, scale: float) -> tuple[int, int, int]:
    """(width, height above the baseline, depth below it) of `text` drawn with its outline."""
    import cv2

    (width, height), baseline = cv2.getTextSize(text, _FONT, scale, 1)
    return width + 2, height + 1, baseline + 1


def _contour(labels: np.ndarray) -> np.ndarray:
    """bool (H,W): pixels of an object (id > 0, not void) with a 4-neighbour of another id, or on the frame's
    edge."""
    padded = np.pad(labels.astype(np.int32), 1, constant_values=-1)
    centre = padded[1:-1, 1:-1]
    differs = ((padded[:-2, 1:-1] != centre) | (padded[2:, 1:-1] != centre)
               | (padded[1:-1, :-2] != centre) | (padded[1:-1, 2:] != centre))
    return differs & (labels > 0) & (labels != VOID)


def overlay_labels(frames: np.ndarray, labels: np.ndarray, alpha: float = 0.5,
                   names: Mapping[int, str] | None = None, *, draw_text: bool = True) -> np.ndarray:
    """Objects of label maps drawn over their frames.

    Each pixel of an object k (1..254) becomes `floor((1 - alpha) * frame + alpha * colour_k + 0.5)` per
    channel (computed in float64: the blend rounded half up), where colour_k is row k of the VOC palette
    (`palette_colours`); then the object's 1-pixel contour (its pixels with a 4-neighbour of another id, or
    on the frame's edge) is set to colour_k itself; then its text (`names[k]`, or the id when `names` is None
    or lacks k) is written in white with a black outline at the top-left corner of its bounding box (above
    the box where there is room). Background (0) and void (255) pixels are left as they are.

    Args:
        frames: uint8 (T,H,W,3) RGB.
        labels: integer (T,H,W), values 0..255.
        alpha: weight of the colour, in [0, 1].
        names: text per id ("person 0.93").
        draw_text: False: colours and contours only.

    Returns:
        uint8 (T,H,W,3), a new array.

    Raises:
        ValueError: shapes that do not match, an id outside 0..255 or alpha outside [0, 1].
    """
    frames = _check_frames(frames)
    labels = np.asarray(labels)
    if labels.shape != frames.shape[:3]:
        raise ValueError(f"labels {tuple(labels.shape)} do not match frames {tuple(frames.shape[:3])}")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError(f"label ids must be 0..255, got {labels.min()}..{labels.max()}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    colours = palette_colours()
    out = frames.copy()
    scale = _font_scale(frames.shape[1])
    for t in range(frames.shape[0]):  # one frame at a time: float64 copies of a whole video would not fit
        frame_labels = labels[t].astype(np.int64)
        objects = (frame_labels > 0) & (frame_labels != VOID)
        if not objects.any():
            continue
        colour = colours[frame_labels].astype(np.float64)  # (H,W,3)
        blended = np.floor((1.0 - alpha) * frames[t] + alpha * colour + 0.5).astype(np.uint8)
        out[t][objects] = blended[objects]
        edge = _contour(frame_labels)
        out[t][edge] = colours[frame_labels[edge]]
        if draw_text:
            for k in np.unique(frame_labels[objects]).tolist():
                ys, xs = np.nonzero(frame_labels == k)
                text = names.get(k, str(k)) if names is not None else str(k)
                _label_box(out[t], text, int(xs.min()), int(ys.min()), scale)
    return out


def _label_box(image: np.ndarray, text: str, left: int, top: int, scale: float) -> None:
    """`text` placed at the top-left corner (left, top) of an object's box: just above it where it fits,
    inside it otherwise, moved left where it would leave the frame."""
    height, width = image.shape[:2]
    text_width, text_height, depth = _text_size(text, scale)
    x = max(0, min(left, width - text_width))
    y = top - depth - 1 if top - depth - 1 - text_height >= 0 else min(top + text_height + 1, height - depth - 1)
    _put_text(image, text, (x, y), scale)


def _wrap(text: str, width: int, scale: float) -> list[str]:
    """`text` cut into lines no wider than `width` pixels: at spaces, and inside a word too long alone."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if _text_size(candidate, scale)[0] <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = ""
        while _text_size(word, scale)[0] > width and len(word) > 1:  # a word wider than the band: cut it
            cut = max(1, next((i for i in range(len(word), 0, -1) if _text_size(word[:i], scale)[0] <= width), 1))
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current or not lines:
        lines.append(current)
    return lines


def caption_frames(frames: np.ndarray, lines: Sequence[Line], *, min_width: int = 0) -> np.ndarray:
    """Frames with lines of text in a black band BELOW them: the video pixels are kept, the output is taller.

    Frames narrower than `min_width` are first enlarged by the smallest whole factor that reaches it (each
    pixel repeated, no interpolation), so the text stays readable on small videos. Each line is wrapped to
    the width; plain text is white, a (text, colour) pair is drawn in that RGB colour.

    Args:
        frames: uint8 (T,H,W,3) RGB.
        lines: the text, one entry per line.
        min_width: the narrowest output; 0 keeps the frames' size.

    Returns:
        uint8 (T, f*H + band, f*W, 3), f the enlargement factor (1 when the frames are wide enough).
    """
    frames = _check_frames(frames)
    factor = max(1, math.ceil(min_width / frames.shape[2])) if min_width else 1
    if factor > 1:
        frames = frames.repeat(factor, axis=1).repeat(factor, axis=2)
    width = frames.shape[2]
    scale = _font_scale(max(frames.shape[1], 240))
    wrapped: list[tuple[str, tuple[int, int, int]]] = []
    for line in lines:
        text, colour = (line, WHITE) if isinstance(line, str) else line
        wrapped += [(part, colour) for part in _wrap(text, width - 2 * _MARGIN, scale)]
    _, text_height, depth = _text_size("Ag", scale)
    step = text_height + depth + 3
    band_height = len(wrapped) * step + 2 * _MARGIN
    band_height += (frames.shape[1] + band_height) % 2  # an even total height: 4:2:0 video needs no padding
    band = np.zeros((band_height, width, 3), np.uint8)
    for index, (text, colour) in enumerate(wrapped):
        _put_text(band, text, (_MARGIN, _MARGIN + index * step + text_height + 1), scale, colour)
    return np.concatenate([frames, np.broadcast_to(band, (frames.shape[0], *band.shape))], axis=1)


def side_by_side(*videos: np.ndarray) -> np.ndarray:
    """Videos of the same length and height next to each other, the first on the left -> (T,H,sum W,3)."""
    return np.concatenate([_check_frames(video) for video in videos], axis=2)


def _even(frames: np.ndarray) -> np.ndarray:
    """Frames padded with black at the bottom / right to even sizes (4:2:0 chroma needs them)."""
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if not (pad_h or pad_w):
        return frames
    return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))


def write_mp4(path: str | os.PathLike, frames: np.ndarray, fps: float) -> None:
    """Encode frames as H.264 (libx264, CRF 18, yuv420p; MPEG-4 part 2 where the FFmpeg build lacks libx264)
    in an MP4 that browsers and players open. An odd height or width is padded with one black row / column.

    Args:
        path: the .mp4 file.
        frames: uint8 (T,H,W,3) RGB, T >= 1.
        fps: frames per second.
    """
    import av

    frames = _even(_check_frames(frames))
    if not len(frames):
        raise ValueError(f"{path}: no frames to write")
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(os.fspath(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "18", "preset": "veryfast"}
        else:
            stream.bit_rate = int(frames.shape[1] * frames.shape[2] * fps)
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
        container.mux(stream.encode(None))


def write_gif(path: str | os.PathLike, frames: np.ndarray, fps: float) -> None:
    """Write frames as a looping GIF (Pillow; each frame quantized to its own 256 colours).

    Args:
        path: the .gif file.
        frames: uint8 (T,H,W,3) RGB, T >= 1.
        fps: frames per second (GIF delays are whole hundredths of a second).
    """
    from PIL import Image

    frames = _check_frames(frames)
    if not len(frames):
        raise ValueError(f"{path}: no frames to write")
    images = [Image.fromarray(image) for image in frames]
    images[0].save(os.fspath(path), format="GIF", save_all=True, append_images=images[1:],
                   duration=max(20, round(1000 / fps)), loop=0)


def write_contact_sheet(path: str | os.PathLike, frames: np.ndarray, columns: int = 4, count: int = 8,
                        max_tile_width: int = 320) -> np.ndarray:
    """Write `count` evenly spaced frames as one PNG grid, row by row, without gaps; cells past the last
    frame are black. Tiles are the frames at full size; frames wider than `max_tile_width` are shrunk to it
    (area interpolation, aspect kept).

    Args:
        path: the .png file.
        frames: uint8 (T,H,W,3) RGB, T >= 1.
        columns: tiles per row (fewer when there are fewer frames).
        count: frames shown (all when the video is shorter).
        max_tile_width: widest tile in pixels.

    Returns:
        The frame indices shown, in order.
    """
    from PIL import Image

    frames = _check_frames(frames)
    if not len(frames):
        raise ValueError(f"{path}: no frames to write")
    indices = evenly_spaced(len(frames), count)
    tiles = frames[indices]
    if tiles.shape[2] > max_tile_width:
        import cv2

        size = (max_tile_width, max(1, round(tiles.shape[1] * max_tile_width / tiles.shape[2])))
        tiles = np.stack([cv2.resize(tile, size, interpolation=cv2.INTER_AREA) for tile in tiles])
    columns = max(1, min(columns, len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    height, width = tiles.shape[1:3]
    sheet = np.zeros((rows * height, columns * width, 3), np.uint8)
    for n, tile in enumerate(tiles):
        row, column = divmod(n, columns)
        sheet[row * height:(row + 1) * height, column * width:(column + 1) * width] = tile
    Image.fromarray(sheet).save(os.fspath(path), format="PNG")
    return indices
