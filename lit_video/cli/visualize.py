"""`lit-video visualize vos|vis|captioning|classification`: predictions drawn over their videos, as files.

One MP4 per video in --out (with --gif a GIF, with --sheet a PNG contact sheet), read from the prediction
files that `evaluate` scores, for people who do not log to W&B:

- vos: a DAVIS results folder; every object in its palette colour with its id (`--with-gt`: the ground
  truth on the left, the prediction on the right).
- vis: a YouTube-VIS results.json; every result scored at least --score-threshold is a track in its own
  palette colour, written "category score".
- captioning: a captions JSON; the predicted caption and the first references in a band below the video.
- classification: a predictions.jsonl of `predict`; the top-k classes with their probabilities and the
  true class in a band below the video, the first prediction green when right and red when wrong.

vos and vis import neither torch nor Lightning (their frames are image files); captioning decodes videos
with the project's decoders (torch), classification finds the videos through the dataset's DataModule.
Output files are named after the video ids, made safe: an id from a user's file never writes outside --out.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import posixpath
import re
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lit_video.cli.arguments import DECODERS, format_names, positive_float, positive_int
from lit_video.errors import LitVideoError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")  # the frame files of DAVIS and YouTube-VIS folders
MAX_IDS = 254  # palette ids 1..254: 0 is background, 255 void
DECODED_FRAMES = 64  # default --max-frames of the commands that decode video files
MIN_BAND_WIDTH = 320  # captioning / classification: small videos are enlarged to this width for the text
# folders of the MSR-VTT release that hold its annotation files, the videos being beside them
CAPTION_ANNOTATION_FOLDERS = ("annotations", "train_val_annotation", "test_videodata")


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register `visualize` and its subcommands on the top-level parser's `commands`."""
    visualize = commands.add_parser("visualize", help="draw predictions over their videos (MP4, GIF, contact "
                                    "sheets)")
    visualize_commands = visualize.add_subparsers(dest="visualize_command", required=True)

    vos = visualize_commands.add_parser("vos", help="a DAVIS results folder: masks in the palette over the frames")
    vos.add_argument("--gt", required=True, metavar="DAVIS_ROOT", help="holds JPEGImages/, ImageSets/ (and "
                     "Annotations/ for --with-gt)")
    vos.add_argument("--pred", required=True, metavar="RESULTS_DIR", help="<sequence>/<frame>.png indexed PNGs")
    vos.add_argument("--set", default="val", help="the ImageSets list whose sequences are drawn (default val)")
    vos.add_argument("--year", type=int, default=2017, choices=[2016, 2017], help="the ImageSets/<year> folder")
    vos.add_argument("--task", default="semi-supervised", choices=["semi-supervised", "unsupervised"],
                     help="--with-gt: unsupervised reads Annotations_unsupervised/")
    vos.add_argument("--resolution", default="480p", help="the JPEGImages (and Annotations) subfolder")
    vos.add_argument("--with-gt", action="store_true", help="the ground truth on the left, the prediction on "
                     "the right")
    _add_common(vos, fps=24.0, max_frames=None, overlay=True)
    vos.set_defaults(run=visualize_vos)

    vis = visualize_commands.add_parser("vis", help="a YouTube-VIS results.json: tracks with category and score")
    vis.add_argument("--gt", required=True, metavar="ANN.json", help="YouTube-VIS annotations (videos with "
                     "file_names, categories with names)")
    vis.add_argument("--pred", required=True, metavar="RESULTS.json", help="list of {video_id, category_id, "
                     "segmentations, score}")
    vis.add_argument("--frames", default=None, metavar="DIR", help="the JPEGImages folder of the split (default: "
                     "JPEGImages beside ANN.json, or in <split>/ for valid.json)")
    vis.add_argument("--score-threshold", type=float, default=0.3, help="draw results scored at least this "
                     "(default 0.3)")
    vis.add_argument("--with-gt", action="store_true", help="the annotations on the left, the results on the right")
    _add_common(vis, fps=6.0, max_frames=None, overlay=True)
    vis.set_defaults(run=visualize_vis)

    captioning = visualize_commands.add_parser("captioning", help="a captions JSON: the video, its predicted "
                                               "caption and references")
    captioning.add_argument("--gt", required=True, metavar="ANN.json", help="MSR-VTT *_videodatainfo.json or "
                            "COCO caption annotations")
    captioning.add_argument("--pred", required=True, metavar="RESULTS.json", help="list of {image_id (or "
                            "video_id), caption}")
    captioning.add_argument("--split", default=None, help="MSR-VTT: references of this split only")
    captioning.add_argument("--video-dir", default=None, metavar="DIR", help="where the <video id>.mp4 (.avi, "
                            ".webm, .mkv) files are, at any depth (default: the folder of ANN.json, and the one "
                            "above it when that is annotations/)")
    captioning.add_argument("--references", type=int, default=2, help="references shown (default 2)")
    captioning.add_argument("--decoder", default="auto", choices=DECODERS)
    _add_common(captioning, fps=None, max_frames=DECODED_FRAMES, overlay=False)
    captioning.set_defaults(run=visualize_captioning)

    classification = visualize_commands.add_parser("classification", help="a predictions.jsonl: the video, its "
                                                   "top classes and the true one")
    classification.add_argument("--pred", required=True, metavar="predictions.jsonl", help="what `predict` "
                                "wrote: one {video_id, label, predicted, scores} a line")
    classification.add_argument("--format", required=True, choices=format_names(), help="the dataset format, "
                                "for the class names and the video files")
    classification.add_argument("--root", required=True, help="the dataset root")
    classification.add_argument("--split", default=None, help="dataset-specific split (UCF101: 1-3)")
    classification.add_argument("--top-k", type=positive_int, default=3, help="classes shown (default 3)")
    classification.add_argument("--decoder", default="auto", choices=DECODERS)
    _add_common(classification, fps=None, max_frames=DECODED_FRAMES, overlay=False)
    classification.set_defaults(run=visualize_classification)


def _add_common(parser: argparse.ArgumentParser, fps: float | None, max_frames: int | None, overlay: bool) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the files (made when missing)")
    parser.add_argument("--videos", nargs="+", default=None, metavar="NAME", help="draw these videos only")
    parser.add_argument("--max-videos", type=positive_int, default=None, help="draw at most this many (default all)")
    all_frames = "every frame" if max_frames is None else f"{max_frames}"
    parser.add_argument("--max-frames", type=positive_int, default=max_frames,
                        help=f"frames drawn per video, evenly spaced (default {all_frames})")
    fps_default = f"{fps:g}" if fps else "the video's, slowed down to keep its duration"
    parser.add_argument("--fps", type=positive_float, default=fps, help=f"frame rate of the files (default "
                        f"{fps_default})")
    parser.add_argument("--gif", action="store_true", help="also write <video>.gif")
    parser.add_argument("--sheet", action="store_true", help="also write <video>_sheet.png, 8 evenly spaced frames")
    if overlay:
        parser.add_argument("--alpha", type=float, default=0.5, help="weight of the mask colour (default 0.5)")


# --------------------------------------------------------------------------------------------- output


def output_names(video_ids: Iterable[str]) -> dict[str, str]:
    """A file name stem for each video id, safe to join to the output folder: characters other than
    letters, digits, `.`, `_` and `-` become `_`, leading dots are dropped (no `..`, no hidden file), at most
    100 characters, and ids that end up alike are told apart by `-2`, `-3`...

    Args:
        video_ids: the ids, from files a user gave.
    """
    names: dict[str, str] = {}
    taken: set[str] = set()
    for video_id in video_ids:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", str(video_id)).lstrip(".")[:100] or "video"
        name, n = base, 1
        while name.lower() in taken:  # lower: a case-insensitive file system would merge them
            n += 1
            name = f"{base}-{n}"
        taken.add(name.lower())
        names[video_id] = name
    return names


@dataclass
class _Writer:
    """Writes each rendered video as the files asked for and says what it wrote."""

    out: Path
    fps: float | None
    gif: bool
    sheet: bool
    count: int = 0

    def write(self, name: str, frames: np.ndarray, fps: float) -> None:
        from lit_video.video.overlay import write_contact_sheet, write_gif, write_mp4

        fps = self.fps or fps
        written = [self.out / f"{name}.mp4"]
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            write_mp4(written[0], frames, fps)
            if self.gif:
                written.append(self.out / f"{name}.gif")
                write_gif(written[-1], frames, fps)
            if self.sheet:
                written.append(self.out / f"{name}_sheet.png")
                write_contact_sheet(written[-1], frames)
        except OSError as err:
            raise LitVideoError(f"--out {self.out}: cannot write {written[-1].name}: {err.strerror or err}") from None
        self.count += 1
        height, width = frames.shape[1:3]
        print(f"wrote {', '.join(p.name for p in written)} ({len(frames)} frames, {height}x{width}, {fps:g} fps)")


def _writer(args: argparse.Namespace) -> _Writer:
    """The output folder checked before anything is read, and the common options checked."""
    from lit_video.cli.evaluate import _output_folder

    if args.fps is not None and not math.isfinite(args.fps):
        raise LitVideoError(f"--fps: expected a finite frame rate, got {args.fps}")
    alpha = getattr(args, "alpha", 0.5)
    if not 0.0 <= alpha <= 1.0:
        raise LitVideoError(f"--alpha: expected a weight in [0, 1], got {alpha}")
    return _Writer(_output_folder(args.out), args.fps, args.gif, args.sheet)


def _select(ids: Sequence[str], args: argparse.Namespace, source: str,
            aliases: dict[str, str] | None = None) -> list[str]:
    """The ids to draw: those named by --videos (each must be one of `ids`), at most --max-videos.

    Args:
        ids: every id that can be drawn, in order.
        args: the command's arguments.
        source: what lists the ids, for messages.
        aliases: other names of an id (YouTube-VIS: the numeric id of a video folder).
    """
    chosen = list(ids)
    if args.videos:
        known = set(ids)
        aliases = aliases or {}
        chosen = []
        for name in args.videos:
            video = name if name in known else aliases.get(name)
            if video is None:
                shown = ", ".join(list(ids)[:5]) + (", ..." if len(ids) > 5 else "")
                raise LitVideoError(f"--videos: {name!r} is not a video of {source} (it has: {shown or 'none'})")
            if video not in chosen:
                chosen.append(video)
    if not chosen:
        raise LitVideoError(f"{source}: no video to draw")
    return chosen[: args.max_videos] if args.max_videos else chosen


def _finish(writer: _Writer, start: float) -> int:
    print(f"{writer.count} video{'s' if writer.count != 1 else ''} in {writer.out} "
          f"({time.perf_counter() - start:.1f} s)")
    return 0


def _read_image(path: Path) -> np.ndarray:
    """An RGB frame file -> uint8 (H,W,3).

    Raises:
        LitVideoError: naming the file, when it cannot be read.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as err:
        raise LitVideoError(f"{path}: cannot read the frame: {err}") from None


def _inside(base: Path, path: Path, where: str, entry: str) -> Path:
    """`path`, checked to lie inside `base` (ids and file names come from the user's files)."""
    from lit_video.data.records import outside_reason

    reason = outside_reason(base, path)
    if reason:
        raise LitVideoError(f"{where}: {entry!r} {reason}; refused")
    return path


def _check_plain(video_id: str, where: str) -> None:
    """A video id that names a video file must be a plain name: one with `/`, `\\` or `..` is refused."""
    from lit_video.data.records import is_plain_name

    if not is_plain_name(video_id):
        raise LitVideoError(f"{where}: video id {video_id!r} is not a plain name (it holds a folder, `..` or is "
                            "empty); refused")


# --------------------------------------------------------------------------------------------- vos


def visualize_vos(args: argparse.Namespace) -> int:
    """`visualize vos`: a DAVIS results folder drawn over the sequences' frames."""
    from lit_video.metrics.davis_folder import ANNOTATION_FOLDERS, _read_subset
    from lit_video.video.overlay import evenly_spaced, overlay_labels, side_by_side

    start = time.perf_counter()
    writer = _writer(args)
    root, results = Path(args.gt), Path(args.pred)
    if not root.is_dir():
        raise LitVideoError(f"--gt {root}: no such DAVIS root (a folder holding JPEGImages/ and ImageSets/)")
    if not results.is_dir():
        raise LitVideoError(f"--pred {results}: no such results folder (<sequence>/<frame>.png)")
    frames_root = root / "JPEGImages" / args.resolution
    if not frames_root.is_dir():
        raise LitVideoError(f"{frames_root}: no such folder (the frames, JPEGImages/{args.resolution}/<sequence>/)")
    annotations = root / ANNOTATION_FOLDERS[args.task] / args.resolution
    if args.with_gt and not annotations.is_dir():
        raise LitVideoError(f"--with-gt: {annotations}: no such folder of annotations")
    image_set = root / "ImageSets" / str(args.year) / f"{args.set}.txt"
    sequences = _read_subset(root, args.set, args.year)
    for sequence in sequences:  # a name from the list becomes part of the paths read
        for base in (frames_root, results, *((annotations,) if args.with_gt else ())):
            _inside(base, base / sequence, str(image_set), sequence)
    predicted = [s for s in sequences if (results / s).is_dir()]
    if args.videos:
        without = [name for name in args.videos if name in sequences and name not in predicted]
        if without:
            raise LitVideoError(f"--videos: sequence {without[0]!r} has no folder in {results}")
    elif len(predicted) < len(sequences):
        missing = [s for s in sequences if s not in predicted]
        warnings.warn(f"{results}: no results for {len(missing)} of the {len(sequences)} sequences of {image_set} "
                      f"(first: {missing[0]!r}); drew the others", stacklevel=1)
    chosen = _select(predicted if not args.videos else sequences, args, f"{image_set} with results in {results}")
    names = output_names(chosen)
    for sequence in chosen:
        files = sorted(p for p in (frames_root / sequence).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS) \
            if (frames_root / sequence).is_dir() else []
        if not files:
            raise LitVideoError(f"{frames_root / sequence}: no frames (.jpg, .png) for sequence {sequence!r}")
        files = [files[i] for i in evenly_spaced(len(files), args.max_frames)]
        frames = [_read_image(path) for path in files]
        for path, frame in zip(files, frames):
            if frame.shape != frames[0].shape:
                raise LitVideoError(f"{path}: the frame is {frame.shape[0]}x{frame.shape[1]}, {files[0].name} "
                                    f"is {frames[0].shape[0]}x{frames[0].shape[1]}")
        frames = np.stack(frames)
        missing: list[Path] = []
        drawn = overlay_labels(frames, _read_masks(results / sequence, files, frames.shape, missing), args.alpha)
        if missing:
            warnings.warn(f"{results / sequence}: no mask for {len(missing)} of {len(files)} frames (first: "
                          f"{missing[0].name}); drew them without", stacklevel=1)
        if args.with_gt:
            truth = _read_masks(annotations / sequence, files, frames.shape, [])
            drawn = side_by_side(overlay_labels(frames, truth, args.alpha), drawn)
        writer.write(names[sequence], drawn, 24.0)
    return _finish(writer, start)


def _read_masks(folder: Path, frame_files: list[Path], shape: tuple[int, ...], missing: list[Path]) -> np.ndarray:
    """The masks `<folder>/<frame stem>.png` of the frames -> uint8 (T,H,W); a frame without one is all
    background and its path is added to `missing`.

    Raises:
        LitVideoError: a mask that cannot be read or is not the frame's size.
    """
    from lit_video.data.masks import read_mask

    out = np.zeros(shape[:3], np.uint8)
    for t, frame in enumerate(frame_files):
        path = folder / f"{frame.stem}.png"
        if not path.is_file():
            missing.append(path)
            continue
        mask = read_mask(path)
        if mask.shape != tuple(shape[1:3]):
            raise LitVideoError(f"{path}: the mask is {mask.shape[0]}x{mask.shape[1]}, the frame {frame.name} is "
                                f"{shape[1]}x{shape[2]}")
        out[t] = mask
    return out


# --------------------------------------------------------------------------------------------- vis


def _vis_frames_dir(gt: Path, given: str | None) -> Path:
    """--frames, or the split's JPEGImages: beside the annotation file (2021: valid/instances.json), or in the
    folder the file is named after (2019: valid.json and valid/JPEGImages; a `_gt` suffix dropped)."""
    if given is not None:
        if not Path(given).is_dir():
            raise LitVideoError(f"--frames {given}: no such folder")
        return Path(given)
    stem = gt.stem.removesuffix("_gt")
    candidates = [gt.parent / "JPEGImages", gt.parent / stem / "JPEGImages"]
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise LitVideoError(f"--gt {gt}: no JPEGImages folder beside it ({' or '.join(map(str, candidates))}); "
                        "give the frames with --frames DIR")


def visualize_vis(args: argparse.Namespace) -> int:
    """`visualize vis`: a YouTube-VIS results file drawn over the videos' frames."""
    from lit_video.data.records import read_json_file
    from lit_video.metrics.ytvis import _detections, _ground_truth
    from lit_video.video.overlay import evenly_spaced, overlay_labels, side_by_side

    start = time.perf_counter()
    writer = _writer(args)
    if not math.isfinite(args.score_threshold):
        raise LitVideoError(f"--score-threshold: expected a number, got {args.score_threshold}")
    gt = Path(args.gt)
    data = read_json_file(gt, "no such ground-truth file")
    # valid and test are released without annotations: their results can be drawn all the same
    annotated = isinstance(data, dict) and data.get("annotations") is not None
    if args.with_gt and not annotated:
        raise LitVideoError(f"--with-gt: {gt} has no 'annotations' (valid and test are released without them)")
    # the evaluation's readers check the files (ids, categories, every segmentation against its video)
    try:
        videos, dataset, _ = _ground_truth(data if annotated or not isinstance(data, dict)
                                           else {**data, "annotations": []})
    except LitVideoError as err:  # it names a loaded object "the ground-truth": name the file
        raise LitVideoError(str(err).replace("the ground-truth", str(gt), 1)) from None
    detections = _detections(args.pred, videos, {c["id"] for c in dataset["categories"]}, str(gt))
    category_names = {c["id"]: str(c.get("name", c["id"])) for c in data["categories"]}
    frames_dir = _vis_frames_dir(gt, args.frames)
    folders: dict[object, tuple[str, list[str]]] = {}  # video id -> (folder, frame files)
    for index, video in enumerate(data["videos"]):
        where = f"{gt}: videos[{index}]"
        files = video.get("file_names")
        if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
            raise LitVideoError(f'{where}["file_names"]: expected a list of "<video>/<frame>.jpg" (the frames '
                                "to draw on)")
        if len(files) != videos[video["id"]]["length"]:
            raise LitVideoError(f'{where}["file_names"]: {len(files)} frames, but "length" is '
                                f'{videos[video["id"]]["length"]}')
        folder = posixpath.dirname(files[0]) or str(video["id"])
        if any(folder == taken for taken, _ in folders.values()):  # two videos in one folder: tell them apart
            folder = f"{folder}#{video['id']}"
        folders[video["id"]] = (folder, files)
    by_video: dict[object, list[dict]] = {}
    for detection in detections:
        by_video.setdefault(detection["image_id"], []).append(detection)
    order = [vid for vid in videos if vid in by_video]  # the videos with results, in the file's order
    folder_ids = {folders[vid][0]: vid for vid in order}
    aliases = {str(vid): folders[vid][0] for vid in order}
    chosen = _select([folders[vid][0] for vid in order], args, f"{args.pred} (videos with results)", aliases)
    names = output_names(chosen)
    for folder in chosen:
        vid = folder_ids[folder]
        info, files = videos[vid], folders[vid][1]
        keep = evenly_spaced(len(files), args.max_frames)
        frames = []
        for t in keep.tolist():
            path = _inside(frames_dir, frames_dir / files[t], f"{gt}: video {vid!r}", files[t])
            frame = _read_image(path)
            if frame.shape[:2] != (info["height"], info["width"]):
                raise LitVideoError(f"{path}: the frame is {frame.shape[0]}x{frame.shape[1]}, {gt} says video "
                                    f"{vid!r} is {info['height']}x{info['width']}")
            frames.append(frame)
        frames = np.stack(frames)
        tracks = sorted((d for d in by_video[vid] if d["score"] >= args.score_threshold), key=lambda d: -d["score"])
        if len(tracks) > MAX_IDS:
            warnings.warn(f"{args.pred}: video {vid!r} has {len(tracks)} results over the threshold; drew the "
                          f"{MAX_IDS} best scored", stacklevel=1)
        labels, texts = _tube_labels([(t["segmentation"], f"{category_names[t['category_id']]} {t['score']:.2f}")
                                      for t in tracks[:MAX_IDS]], keep, info)
        drawn = overlay_labels(frames, labels, args.alpha, texts)
        if args.with_gt:
            annotations = [a for a in dataset["annotations"] if a["image_id"] == vid][:MAX_IDS]
            labels, texts = _tube_labels([(a["segmentation"], category_names[a["category_id"]]) for a in annotations],
                                         keep, info)
            drawn = side_by_side(overlay_labels(frames, labels, args.alpha, texts), drawn)
        writer.write(names[folder], drawn, 6.0)
    return _finish(writer, start)


def _tube_labels(tubes: list[tuple[list, str]], keep: np.ndarray, info: dict) -> tuple[np.ndarray, dict[int, str]]:
    """Instances (per-frame RLE tube, text) -> label map (T,H,W) of the frames `keep`, instance k = id k + 1,
    and the text of each id. The first instance is drawn on top (paint the last first)."""
    from lit_video.data.rle import decode_tube

    labels = np.zeros((len(keep), info["height"], info["width"]), np.uint8)
    for k in range(len(tubes), 0, -1):
        segmentations = [tubes[k - 1][0][t] for t in keep.tolist()]
        labels[decode_tube(segmentations, info["height"], info["width"]).astype(bool)] = k
    return labels, {k + 1: text for k, (_, text) in enumerate(tubes)}


# --------------------------------------------------------------------------------------------- captioning


def _decode(path: str, decoder: str, max_frames: int | None) -> tuple[np.ndarray, float]:
    """Up to `max_frames` evenly spaced frames of a video file -> (uint8 (T,H,W,3), the frame rate that keeps
    the video's duration)."""
    from lit_video.video.decode import open_video
    from lit_video.video.overlay import evenly_spaced

    with open_video(path, backend=decoder) as reader:
        indices = evenly_spaced(reader.num_frames, max_frames)
        frames = reader.get_frames(indices).numpy()
        return frames, reader.fps * len(indices) / reader.num_frames


def _video_index(folders: Sequence[Path]) -> tuple[dict[str, str], Path | None]:
    """(video file stem -> path, the folder searched) of the first folder that holds any video."""
    from lit_video.data.records import index_video_files

    for folder in folders:
        found = index_video_files(folder)
        if found:
            return found, folder
    return {}, None


def visualize_captioning(args: argparse.Namespace) -> int:
    """`visualize captioning`: each predicted caption and its references below the video."""
    from lit_video.metrics.captions import read_ground_truth, read_results
    from lit_video.video.overlay import GREY, caption_frames

    start = time.perf_counter()
    writer = _writer(args)
    if args.references < 0:
        raise LitVideoError(f"--references: expected a count >= 0, got {args.references}")
    gt = Path(args.gt)
    references = read_ground_truth(gt, args.split)
    predictions = read_results(args.pred)
    if args.video_dir is not None:
        if not Path(args.video_dir).is_dir():
            raise LitVideoError(f"--video-dir {args.video_dir}: no such folder")
        searched = [Path(args.video_dir)]
    else:  # MSR-VTT's annotation files are in the root or in a folder of it, its videos in other folders
        searched = [gt.parent, gt.parent.parent] if gt.parent.name in CAPTION_ANNOTATION_FOLDERS else [gt.parent]
    files, folder = _video_index(searched)
    chosen = _select(list(predictions), args, str(args.pred))
    names = output_names(chosen)
    for video_id in chosen:
        _check_plain(video_id, str(args.pred))
        if video_id not in files:
            where = folder or " or ".join(map(str, searched))
            raise LitVideoError(f"{args.pred}: video {video_id!r}: no video file named {video_id}.mp4 (.avi, .webm, "
                                f".mkv) under {where}" + ("" if args.video_dir else "; give the folder with "
                                                          "--video-dir"))
        path = _inside(folder, Path(files[video_id]), str(args.pred), video_id)
        frames, fps = _decode(str(path), args.decoder, args.max_frames)
        refs = references.get(video_id, [])
        lines = [f"pred: {predictions[video_id]}"]
        lines += [(f"ref: {ref}", GREY) for ref in refs[: args.references]]
        if not refs:
            lines.append((f"(no references in {gt.name})", GREY))
        writer.write(names[video_id], caption_frames(frames, lines, min_width=MIN_BAND_WIDTH), fps)
    return _finish(writer, start)


# --------------------------------------------------------------------------------------------- classification


def read_predictions(path: str | os.PathLike) -> list[dict]:
    """The rows of a classification predictions.jsonl (`VideoClassifier.on_predict_epoch_end`): one JSON
    object a line with video_id, label (-1 when unknown) and scores (one probability per class).

    Raises:
        LitVideoError: a missing file, a line that is not such an object (named by number), no rows.
    """
    from lit_video.data.records import read_text_file

    rows, seen = [], set()
    for number, line in enumerate(read_text_file(path, "no such predictions file").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise LitVideoError(f"{where}: not valid JSON ({str(err).splitlines()[0]})") from None
        if not isinstance(row, dict):
            raise LitVideoError(f"{where}: expected an object {{video_id, label, predicted, scores}}")
        video_id, label, scores = row.get("video_id"), row.get("label", -1), row.get("scores")
        if not isinstance(video_id, str | int) or isinstance(video_id, bool):
            raise LitVideoError(f"{where}: 'video_id' must be text, got {video_id!r}")
        if not isinstance(label, int) or isinstance(label, bool):
            raise LitVideoError(f"{where}: 'label' must be an integer class (-1: unknown), got {label!r}")
        if not (isinstance(scores, list) and scores and all(
                isinstance(s, int | float) and not isinstance(s, bool) and math.isfinite(s) for s in scores)):
            raise LitVideoError(f"{where}: 'scores' must be a list of numbers, one per class")
        if str(video_id) in seen:
            raise LitVideoError(f"{where}: video_id {str(video_id)!r} repeats an earlier line's")
        seen.add(str(video_id))
        rows.append({"video_id": str(video_id), "label": label, "scores": scores, "line": number})
    if not rows:
        raise LitVideoError(f"{path}: no predictions (expected one JSON object a line)")
    return rows


def visualize_classification(args: argparse.Namespace) -> int:
    """`visualize classification`: each video with its top-k classes and the true one below it."""
    import inspect

    from lit_video.data.base import datamodule_class
    from lit_video.video.overlay import GREEN, GREY, RED, WHITE, caption_frames

    start = time.perf_counter()
    writer = _writer(args)
    rows = read_predictions(args.pred)
    cls = datamodule_class(args.format)
    options = {}
    if args.split is not None:
        if "split" not in inspect.signature(cls.__init__).parameters:
            raise LitVideoError(f"--split: format {args.format} has no split option")
        options["split"] = args.split
    datamodule = cls(root=args.root, num_workers=0, **options)
    try:
        classes = list(datamodule.classes)
    except (AttributeError, NotImplementedError, TypeError):
        classes = []
    if not classes:
        raise LitVideoError(f"--format {args.format}: not a classification dataset (it has no classes)")
    by_id = {row["video_id"]: row for row in rows}
    chosen = _select(list(by_id), args, str(args.pred))
    paths = _video_paths(datamodule, chosen, args)
    names = output_names(chosen)
    for video_id in chosen:
        row = by_id[video_id]
        where = f"{args.pred}:{row['line']}"
        scores = np.asarray(row["scores"], np.float64)
        if len(scores) != len(classes):
            raise LitVideoError(f"{where}: {len(scores)} scores, but {args.format} at {args.root} has "
                                f"{len(classes)} classes")
        if not -1 <= row["label"] < len(classes):
            raise LitVideoError(f"{where}: 'label' {row['label']} is not a class of {args.format} (0..{len(classes) - 1}"
                                ", or -1)")
        frames, fps = _decode(paths[video_id], args.decoder, args.max_frames)
        label = row["label"]
        top = np.argsort(-scores, kind="stable")[: args.top_k].tolist()
        lines = [f"true: {classes[label]}" if label >= 0 else "true: unknown"]
        for rank, k in enumerate(top, start=1):
            colour = (GREEN if k == label else RED) if rank == 1 and label >= 0 else (
                GREEN if k == label else (WHITE if rank == 1 else GREY))
            lines.append((f"{rank}. {classes[k]} {scores[k]:.2f}", colour))
        writer.write(names[video_id], caption_frames(frames, lines, min_width=MIN_BAND_WIDTH), fps)
    return _finish(writer, start)


def _video_paths(datamodule, video_ids: Sequence[str], args: argparse.Namespace) -> dict[str, str]:
    """The file of each video id, looked up in the dataset's lists (test first, as `predict` reads it, then
    val and train).

    Raises:
        LitVideoError: an id that no list has (the error of a list that could not be read is added).
    """
    paths: dict[str, str] = {}
    failures: list[str] = []
    for subset in ("test", "val", "train"):
        if all(video_id in paths for video_id in video_ids):
            break
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a list's own problems are `data check`'s to report
                records = datamodule.list_records(subset)
        except LitVideoError as err:
            failures.append(str(err))
            continue
        for record in records:
            paths.setdefault(str(record.video_id), record.path)
    for video_id in video_ids:
        if video_id not in paths:
            why = f" (a list could not be read: {failures[0]})" if failures else ""
            raise LitVideoError(f"{args.pred}: video_id {video_id!r} is not a video of the {args.format} lists at "
                                f"{args.root}{why}")
    return paths

