"""Frames as data: every frame of a video file extracted once to a folder of JPEGs (the layout DAVIS-style
readers use), read back as a frame folder instead of decoding the video.

Layout, mirroring the videos under the dataset root:

    <root>/frames/frames.json                                short side, JPEG quality (the store's settings)
    <root>/frames/<video path without suffix>/00000.jpg, 00001.jpg, ...
    <root>/frames/<video path without suffix>/video.json     fps, frame count, height, width

Frame i (0-based) is the video's frame i as the decoders return it (`lit_video.video.decode`: upright, in
presentation order), resized so its short side is the store's `short_side` when that is smaller.
`video.json` is written last: a folder that has it is complete and is skipped on a rerun; a folder
without it was interrupted and is extracted again. The frames of a whole dataset are
`lit_video.data.frames.extract_dataset_frames`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

from lit_video.errors import LitVideoError, VideoDecodeError
from lit_video.video.decode import FrameFolderReader
from lit_video.video.flow import mirrored_folder, shrink_frames

FRAMES_DIR = "frames"
STORE_FILE = "frames.json"
VIDEO_FILE = "video.json"
DEFAULT_QUALITY = 90
# Frames decoded at once while extracting: bounds memory on long videos.
CHUNK = 64


# ------------------------------------------------------------------------------------------------ layout
def frames_store(root: str | os.PathLike) -> Path:
    """`<root>/frames`: the frame store of a dataset."""
    return Path(root) / FRAMES_DIR


def frames_folder(root: str | os.PathLike, video_path: str | os.PathLike) -> Path:
    """The folder holding the frames of the video file at `video_path` (under `root`).

    Raises:
        LitVideoError: the video is not under `root`.
    """
    return mirrored_folder(frames_store(root), root, video_path, "frames")


def frame_names(num_frames: int) -> list[str]:
    """The file names of a folder's frames, in order: 00000.jpg, 00001.jpg, ..."""
    return [f"{index:05d}.jpg" for index in range(num_frames)]


def prepare_command(format_name: str, root: str | os.PathLike) -> str:
    """The command that writes the frame store of a dataset."""
    return f"lit-video data prepare --format {format_name} --root {root} --frames"


def inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether `path`, links followed, stays under `root` (links followed too)."""
    real_root, real_path = os.path.realpath(root), os.path.realpath(path)
    return os.path.commonpath([real_root, real_path]) == real_root


# ------------------------------------------------------------------------------------------ store info
def check_quality(quality: object, where: str = "--quality") -> int:
    """`quality` when it is a JPEG quality (an integer 1..100); one line naming `where` otherwise."""
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise LitVideoError(f"{where} must be a JPEG quality, an integer from 1 to 100, got {quality!r}")
    return quality


def write_frames_info(root: str | os.PathLike, short_side: int | None, quality: int, replace: bool = False) -> dict:
    """Write (or check) `<root>/frames/frames.json`: a store holds frames of one short side and JPEG quality.

    Args:
        root: the dataset root.
        short_side, quality: the store's settings.
        replace: a store with other settings is deleted and started again (else it is refused).

    Raises:
        LitVideoError: the store exists with other settings and `replace` is False, or the store leads out of
            the dataset root through a link.
    """
    store = frames_store(root)
    if not inside(store, root):
        raise LitVideoError(f"{store} leads outside the dataset root {root} through a link; frames are written "
                            "under the root only")
    info = {"short_side": short_side, "jpeg_quality": quality, "layout": "%05d.jpg from 0, video.json written last"}
    path = store / STORE_FILE
    if path.exists():
        old = read_frames_info(root)
        changed = [key for key in ("short_side", "jpeg_quality") if old[key] != info[key]]
        if not changed:
            return old
        if not replace:
            key = changed[0]
            option = "--short-side" if key == "short_side" else "--quality"
            raise LitVideoError(f"{path}: the store holds frames extracted with {key} {old[key]!r}, not {info[key]!r}; "
                                f"give {option} {old[key]} to complete it, or replace it (delete {store}, or ask "
                                "to replace the store)")
        shutil.rmtree(store)
    store.mkdir(parents=True, exist_ok=True)
    write_json(path, info)
    return info


def read_frames_info(root: str | os.PathLike) -> dict:
    """The checked contents of `<root>/frames/frames.json`.

    Raises:
        LitVideoError: the file is missing or malformed (one line naming it).
    """
    path = frames_store(root) / STORE_FILE
    if not path.is_file():
        raise LitVideoError(f"no frame store: {path} is missing")
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise LitVideoError(f"{path}: unreadable frame store description ({type(err).__name__}); delete "
                            f"{path.parent} and extract the frames again") from None
    short_side, quality = (info.get("short_side"), info.get("jpeg_quality")) if isinstance(info, dict) else (0, 0)
    if (short_side is not None and (isinstance(short_side, bool) or not isinstance(short_side, int) or short_side < 1)
            or isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100):
        raise LitVideoError(f"{path}: malformed frame store description (short_side must be a positive integer or "
                            f"null, jpeg_quality 1..100); delete {path.parent} and extract the frames again")
    return info


def read_video_info(folder: str | os.PathLike) -> dict | None:
    """A video folder's `video.json` (fps, num_frames, height, width), or None when the folder is missing,
    incomplete (no `video.json`: interrupted) or its `video.json` is malformed."""
    try:
        info = json.loads((Path(folder) / VIDEO_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(info, dict):
        return None
    fps, count = info.get("fps"), info.get("num_frames")
    if (isinstance(fps, bool) or not isinstance(fps, int | float) or not math.isfinite(fps) or fps <= 0
            or isinstance(count, bool) or not isinstance(count, int) or count < 1):
        return None
    return info


def write_json(path: Path, value: dict) -> None:
    """Write `value` to `path` at once (a temporary sibling renamed over it): a reader never sees half a file."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, indent=1) + "\n")
    os.replace(temporary, path)


# ---------------------------------------------------------------------------------------------- reading
def open_frames(folder: str | os.PathLike) -> FrameFolderReader:
    """A reader of a complete video folder of the store, at the video's own frame rate.

    Raises:
        VideoDecodeError: the folder is missing or incomplete (the dataset skips the video).
    """
    info = read_video_info(folder)
    if info is None:
        raise VideoDecodeError(str(folder), f"no complete frame folder ({VIDEO_FILE} is missing or malformed)")
    return FrameFolderReader(folder, fps=info["fps"], frame_names=frame_names(info["num_frames"]))


# ------------------------------------------------------------------------------------------- extracting
def extract_video_frames(video_path: str, folder: str, short_side: int | None = None, quality: int = DEFAULT_QUALITY,
                         decoder: str = "auto", root: str | None = None) -> str:
    """Extract every frame of one video to `folder` (resumable: `video.json` is written last).

    Args:
        video_path: the video file.
        folder: its frame folder (`frames_folder`).
        short_side: frames resized (area) to this short side when larger; None keeps their size.
        quality: JPEG quality.
        decoder: video backend.
        root: the dataset root: a folder that leads out of it through a link is refused, never written.

    Returns:
        "computed", or "skipped" when `folder` is complete already.

    Raises:
        VideoDecodeError: the video cannot be decoded, or its folder leads out of the root.
    """
    import cv2

    from lit_video.video.decode import open_video

    target = Path(folder)
    if root is not None and (target.is_symlink() or not inside(target, root)):
        raise VideoDecodeError(video_path, f"its frame folder {target} is a link (or under one) leading outside "
                                           f"{root}; not written")
    if read_video_info(target) is not None:
        return "skipped"
    if target.exists():
        shutil.rmtree(target)  # left by an interrupted run: redone from the start
    target.mkdir(parents=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    try:
        with open_video(video_path, decoder) as reader:
            num_frames, fps = reader.num_frames, reader.fps
            if num_frames < 1:
                raise VideoDecodeError(video_path, "no frames")
            names = frame_names(num_frames)
            size = None
            for start in range(0, num_frames, CHUNK):
                indices = np.arange(start, min(start + CHUNK, num_frames))
                frames = shrink_frames(np.asarray(reader.get_frames(indices)), short_side)  # (t,h,w,3) RGB
                size = frames.shape[1:3]
                for index, frame in zip(indices.tolist(), frames, strict=True):
                    path = target / names[index]
                    if not cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), params):
                        raise OSError(f"cannot write {path}")
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    write_json(target / VIDEO_FILE, {"fps": float(fps), "num_frames": num_frames, "height": int(size[0]),
                                     "width": int(size[1]), "source": os.path.basename(video_path)})
    return "computed"
