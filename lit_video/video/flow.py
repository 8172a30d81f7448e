"""Optical flow as data: computed once per dataset, stored as 8-bit JPEGs, read beside the frames.

Layout (the denseflow / mmaction naming), mirroring the RGB data under the dataset root:

    <root>/flow/<method>/flow.json                       method, bound, short side, JPEG quality
    <root>/flow/<method>/<video path without suffix>/flow_x_00001.jpg, flow_y_00001.jpg, ...

Pair i+1 (1-based file number) is the flow FROM frame i TO frame i+1 (0-based frame indices): a video of N
frames has N-1 pairs (a single-frame video has one pair of zero flow, so that every video has flow). A video
stored as a frame folder (DAVIS, YouTube-VOS) uses the folder's path.

Each component is quantised as v = clip(round(255 (f + bound) / (2 bound)), 0, 255), a grey JPEG of quality
95: at 95 the JPEG error on these smooth fields stays near one grey level (0.16 px at bound 20), about
the quantisation step itself, at a third of the bytes of quality 100.

Computing is resumable: each video is written to a hidden sibling folder that is renamed when complete, so a
folder that exists is complete and is skipped on a rerun; a half-written one is redone. The flow of a whole
dataset (every video its format lists, in parallel) is `lit_video.data.flow.compute_dataset_flow`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from lit_video.errors import LitVideoError, VideoDecodeError

METHODS = ("tvl1", "farneback", "raft")
# What a clip's channels hold: RGB (3), optical flow x, y (2), or both (5: R, G, B, flow x, flow y).
MODALITIES = ("rgb", "flow", "rgb+flow")
MODALITY_CHANNELS = {"rgb": 3, "flow": 2, "rgb+flow": 5}
DEFAULT_BOUND = 20.0
JPEG_QUALITY = 95
FLOW_DIR = "flow"
STORE_FILE = "flow.json"
PARTIAL_PREFIX = "."
PARTIAL_SUFFIX = ".partial"
# Frames decoded at once while computing: bounds memory on long videos.
CHUNK = 64
# RAFT's correlation pyramid needs feature maps of 16 (inputs of 128 px) in each direction.
RAFT_MIN_SIDE = 128
# Farneback's averaging window: OpenCV's usual 15 px suits frames of 240 px and more; on smaller frames a 15 px
# window straddles a small object and the background, and the object's flow shrinks towards the background's
# (on 64x80 synthetic frames it underestimates a 2.6 px motion by 0.9 px at 15 px, by 0.5 px at 5 px).
FARNEBACK_WINDOW = 15
FARNEBACK_WINDOW_SIDE = 240


def farneback_window(height: int, width: int) -> int:
    """Farneback's window for frames of this size: 15 px from a short side of 240 px up, shrinking in
    proportion below it, odd and at least 5 px."""
    window = round(FARNEBACK_WINDOW * min(1.0, min(height, width) / FARNEBACK_WINDOW_SIDE))
    return max(5, window | 1)


# ------------------------------------------------------------------------------------------------ layout
def store_folder(root: str | os.PathLike, method: str) -> Path:
    """`<root>/flow/<method>`: the flow store of one method."""
    return Path(root) / FLOW_DIR / method


def mirrored_folder(store: str | os.PathLike, root: str | os.PathLike, video_path: str | os.PathLike,
                    what: str) -> Path:
    """The folder of a per-video store (flow, extracted frames) that mirrors the video at `video_path` (a file
    or a frame folder under `root`): its path relative to `root`, a file's suffix dropped, under `store`.

    Args:
        store: the store's folder (`<root>/flow/<method>`, `<root>/frames`).
        root: the dataset root.
        video_path: the video file or frame folder.
        what: what the store holds, for the message.

    Raises:
        LitVideoError: the video is not under `root`.
    """
    root_abs, video_abs = os.path.abspath(root), os.path.abspath(video_path)
    relative = os.path.relpath(video_abs, root_abs)
    if relative.startswith(os.pardir) or os.path.isabs(relative):
        raise LitVideoError(f"video {video_path} is not under the dataset root {root}: its {what} has no place there")
    relative_path = Path(relative)
    if not os.path.isdir(video_abs):  # a file's suffix is not part of its folder's name
        relative_path = relative_path.with_suffix("")
    return Path(store) / relative_path


def flow_folder(root: str | os.PathLike, video_path: str | os.PathLike, method: str) -> Path:
    """The folder holding the flow of the video at `video_path` (a file or a frame folder under `root`).

    Raises:
        LitVideoError: the video is not under `root`.
    """
    return mirrored_folder(store_folder(root, method), root, video_path, "flow")


def partial_folder(folder: Path) -> Path:
    """The hidden sibling a video's flow is written to before it is complete."""
    return folder.with_name(PARTIAL_PREFIX + folder.name + PARTIAL_SUFFIX)


def pair_files(folder: Path, pair: int) -> tuple[Path, Path]:
    """The x and y JPEGs of 0-based pair `pair` (file number pair + 1)."""
    return folder / f"flow_x_{pair + 1:05d}.jpg", folder / f"flow_y_{pair + 1:05d}.jpg"


# ---------------------------------------------------------------------------------------- quantisation
def quantize(flow: np.ndarray, bound: float) -> np.ndarray:
    """float (..., 2) pixels -> uint8 (..., 2): v = clip(round(255 (f + bound) / (2 bound)), 0, 255)."""
    return np.clip(np.rint(255.0 * (flow + bound) / (2.0 * bound)), 0, 255).astype(np.uint8)


def dequantize(values: np.ndarray, bound: float) -> np.ndarray:
    """uint8 -> float32 pixels, the inverse of `quantize` up to its step (2 bound / 255)."""
    return (values.astype(np.float32) * np.float32(2.0 * bound / 255.0) - np.float32(bound)).astype(np.float32)


# ------------------------------------------------------------------------------------------ store info
def check_method(method: object, where: str = "--method") -> str:
    """`method` when it is a known flow method; one line naming `where` otherwise."""
    if method not in METHODS:
        raise LitVideoError(f"{where} must be one of {', '.join(METHODS)}, got {method!r}")
    return method


def check_modality(modality: object, where: str = "modality") -> str:
    """`modality` when it is rgb, flow or rgb+flow; one line naming `where` otherwise."""
    if modality not in MODALITIES:
        raise LitVideoError(f"{where} must be one of {', '.join(MODALITIES)}, got {modality!r}")
    return modality


def mirror_frames(frames, modality: str):
    """Frames (..., C, H, W) mirrored left-right as a horizontal flip of the video would give them: the flow's x
    component (the channel after the colours) changes sign, the rest is only flipped.

    Args:
        frames: a tensor whose dim -3 holds the modality's channels (`MODALITY_CHANNELS`).
        modality: rgb, flow or rgb+flow.
    """
    mirrored = frames.flip(-1)
    if modality != "rgb":
        flow_x = MODALITY_CHANNELS[modality] - 2
        mirrored[..., flow_x, :, :] = -mirrored[..., flow_x, :, :]
    return mirrored


def check_bound(bound: object, where: str = "--bound") -> float:
    """`bound` as a float when it is a positive finite number (pixels); one line otherwise."""
    if isinstance(bound, bool) or not isinstance(bound, int | float) or not math.isfinite(bound) or bound <= 0:
        raise LitVideoError(f"{where} must be a positive number of pixels (the flow magnitude stored without "
                            f"clipping, e.g. 20), got {bound!r}")
    return float(bound)


def write_store_info(root: str | os.PathLike, method: str, bound: float, short_side: int | None) -> dict:
    """Write (or check) `flow.json` of a store: a store holds flow of one method, bound and short side.

    Raises:
        LitVideoError: the store exists with other settings (mixing them would corrupt it).
    """
    folder = store_folder(root, method)
    info = {"method": method, "bound": float(bound), "short_side": short_side, "jpeg_quality": JPEG_QUALITY,
            "layout": "flow_x_%05d.jpg / flow_y_%05d.jpg, pair i+1 = frame i -> i+1"}
    path = folder / STORE_FILE
    if path.exists():
        old = read_store_info(root, method)
        for key in ("bound", "short_side"):
            if old[key] != info[key]:
                raise LitVideoError(f"{path}: the store holds flow computed with {key} {old[key]!r}, not {info[key]!r}; "
                                    f"give --{key.replace('_', '-')} {old[key]} to complete it, or delete {folder} "
                                    "to recompute it")
        return old
    folder.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(STORE_FILE + ".tmp")
    temporary.write_text(json.dumps(info, indent=1) + "\n")
    os.replace(temporary, path)
    return info


def read_store_info(root: str | os.PathLike, method: str) -> dict:
    """The checked contents of `<root>/flow/<method>/flow.json`.

    Raises:
        LitVideoError: the file is missing or malformed (one line naming it and saying how to make it).
    """
    return _read_store_file(store_folder(root, method) / STORE_FILE, method)


def _read_store_file(path: Path, method: str | None = None) -> dict:
    if not path.is_file():
        raise LitVideoError(f"no flow store: {path} is missing; compute the flow with `lit-video data flow --format "
                            f"FORMAT --root ROOT --method {method or 'METHOD'}`")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise LitVideoError(f"{path}: malformed flow store description ({' '.join(str(err).split())}); "
                            "delete the flow folder and compute it again with `lit-video data flow`") from None
    problem = None
    if not isinstance(info, dict):
        problem = "expected a JSON object"
    elif info.get("method") not in METHODS or (method is not None and info["method"] != method):
        problem = f"method is {info.get('method')!r}, expected {method or 'one of ' + ', '.join(METHODS)!r}"
    else:
        bound, short_side = info.get("bound"), info.get("short_side")
        if isinstance(bound, bool) or not isinstance(bound, int | float) or not math.isfinite(bound) or bound <= 0:
            problem = f"bound must be a positive number, got {bound!r}"
        elif short_side is not None and (isinstance(short_side, bool) or not isinstance(short_side, int)
                                         or short_side < 1):
            problem = f"short_side must be a positive integer or null, got {short_side!r}"
    if problem:
        raise LitVideoError(f"{path}: malformed flow store description: {problem}; delete the flow folder and "
                            "compute it again with `lit-video data flow`")
    info["bound"] = float(info["bound"])
    return info


@lru_cache(maxsize=64)
def _bound_above(folder: str) -> float:
    """The bound of the store that holds `folder` (the nearest flow.json above it)."""
    for parent in Path(folder).parents:
        if (parent / STORE_FILE).is_file():
            return _read_store_file(parent / STORE_FILE)["bound"]
    raise LitVideoError(f"{folder}: no {STORE_FILE} in any folder above it; it is not in a flow store written by "
                        "`lit-video data flow`")


# ---------------------------------------------------------------------------------------------- reading
def count_pairs(folder: str | os.PathLike) -> int:
    """The number of complete (x and y) pairs in a video's flow folder (0 when it does not exist)."""
    try:
        names = set(os.listdir(folder))
    except OSError:
        return 0
    count = 0
    while f"flow_x_{count + 1:05d}.jpg" in names and f"flow_y_{count + 1:05d}.jpg" in names:
        count += 1
    return count


@lru_cache(maxsize=4096)
def stored_pair_count(folder: str) -> int:
    """`count_pairs` of a video folder of a finished store, listed once per process: a store folder only
    appears complete (it is renamed into place), so the datasets need not list it again for every clip."""
    return count_pairs(folder)


def read_flow(folder: str | os.PathLike, pair_indices: Sequence[int] | np.ndarray, bound: float | None = None,
              num_pairs: int | None = None) -> np.ndarray:
    """The stored flow of 0-based pairs `pair_indices` -> float32 (T,H,W,2), x then y, in pixels of the
    stored grid. Pair i is the flow from frame i to frame i+1; an index past the last pair reads the last
    pair (the last frame of a video has the flow that led to it).

    Args:
        folder: the video's flow folder (`flow_folder`).
        pair_indices: 0-based pair (= source frame) indices, any order, repeats allowed.
        bound: the store's bound; None reads it from the flow.json above `folder`.
        num_pairs: the folder's pair count when the caller knows it (saves a listing).

    Raises:
        VideoDecodeError: the folder holds no pair, or a JPEG is missing or unreadable.
    """
    import cv2

    folder = Path(folder)
    bound = _bound_above(str(folder.resolve())) if bound is None else bound
    num_pairs = count_pairs(folder) if num_pairs is None else num_pairs
    if num_pairs < 1:
        raise VideoDecodeError(str(folder), "no stored flow pairs (flow_x_00001.jpg, flow_y_00001.jpg)")
    indices = np.clip(np.asarray(pair_indices, dtype=np.int64).reshape(-1), 0, num_pairs - 1)
    decoded: dict[int, np.ndarray] = {}
    for pair in dict.fromkeys(indices.tolist()):  # each pair read once, repeats copied
        planes = []
        for path in pair_files(folder, pair):
            plane = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if plane is None:
                raise VideoDecodeError(str(path), "missing or unreadable flow JPEG")
            planes.append(plane)
        if planes[0].shape != planes[1].shape:
            raise VideoDecodeError(str(folder), f"flow_x and flow_y of pair {pair + 1} differ in size")
        decoded[pair] = dequantize(np.stack(planes, axis=-1), bound)  # (H,W,2)
    shapes = {v.shape for v in decoded.values()}
    if len(shapes) > 1:
        raise VideoDecodeError(str(folder), f"flow pairs of different sizes: {sorted(shapes)}")
    return np.stack([decoded[i] for i in indices.tolist()])


def resize_flow(flow, size: Sequence[int]):
    """Bilinear resize of torch float flow (..., 2, H, W) to `size` (h, w), the vectors scaled with the grid
    so they stay in pixels of the new grid."""
    from torchvision.transforms.v2 import functional as F

    height, width = flow.shape[-2:]
    if (height, width) == tuple(size):
        return flow
    leading = flow.shape[:-3]
    resized = F.resize(flow.reshape(-1, 2, height, width), list(size), antialias=True)
    resized[:, 0] *= size[1] / width
    resized[:, 1] *= size[0] / height
    return resized.reshape(*leading, 2, *size)


# -------------------------------------------------------------------------------------------- computing
class FlowComputer:
    """Flow between consecutive frames by one method (made once per worker process).

    Args:
        method: tvl1 (OpenCV contrib DualTVL1), farneback (OpenCV) or raft (torchvision).
        weights: raft only: a local checkpoint; None reads torchvision's file from the torch hub cache.
        device: raft only: where it runs (default cuda when available).
    """

    def __init__(self, method: str, weights: str | None = None, device: str | None = None):
        import cv2

        self.method = check_method(method)
        self._tvl1 = cv2.optflow.DualTVL1OpticalFlow_create() if method == "tvl1" else None
        self._raft = load_raft(weights) if method == "raft" else None
        if self._raft is not None:
            import torch

            self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
            self._raft.to(self.device)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """uint8 (N,H,W,3) RGB frames -> float32 (N-1,H,W,2) flow of each consecutive pair, in pixels."""
        if self._raft is not None:
            return self._raft_pairs(frames)
        import cv2

        grey = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames]
        out = np.empty((len(frames) - 1, *grey[0].shape, 2), dtype=np.float32)
        window = farneback_window(*grey[0].shape)
        for i in range(len(frames) - 1):
            if self._tvl1 is not None:
                out[i] = self._tvl1.calc(grey[i], grey[i + 1], None)
            else:
                out[i] = cv2.calcOpticalFlowFarneback(grey[i], grey[i + 1], None, pyr_scale=0.5, levels=3,
                                                      winsize=window, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)
        return out

    def _raft_pairs(self, frames: np.ndarray, batch: int = 8) -> np.ndarray:
        import torch

        video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # (N,3,H,W) uint8
        parts = []
        for start in range(0, len(frames) - 1, batch):
            stop = min(start + batch, len(frames) - 1)
            first = video[start:stop].to(self.device)
            second = video[start + 1: stop + 1].to(self.device)
            parts.append(raft_flow(self._raft, first, second).cpu())
        return torch.cat(parts).permute(0, 2, 3, 1).numpy()  # (N-1,H,W,2)


def raft_weights_path(weights: str | os.PathLike | None) -> list[Path]:
    """The files RAFT weights are read from, in order: `weights` alone when given, else torchvision's
    raft_large then raft_small files in the torch hub cache (whichever exist)."""
    from torchvision.models.optical_flow import Raft_Large_Weights, Raft_Small_Weights

    from lit_video.models.weights import cached_weights_path

    if weights is not None:
        return [Path(weights)]
    return [p for p in (cached_weights_path(Raft_Large_Weights.DEFAULT), cached_weights_path(Raft_Small_Weights.DEFAULT))
            if p.is_file()]


def check_raft_weights(weights: str | os.PathLike | None, where: str = "--weights") -> None:
    """One line unless RAFT weights can be read without a network: `weights` is a file, or torchvision's
    file is in the torch hub cache."""
    from torchvision.models.optical_flow import Raft_Large_Weights

    from lit_video.models.weights import cached_weights_path

    if weights is not None:
        if not Path(weights).is_file():
            raise LitVideoError(f"{where} {weights}: no such checkpoint file")
        return
    if not raft_weights_path(None):
        url, cached = Raft_Large_Weights.DEFAULT.url, cached_weights_path(Raft_Large_Weights.DEFAULT)
        raise LitVideoError(f"raft needs weights: give {where} CHECKPOINT (a torchvision raft_small or raft_large "
                            f"state_dict), or copy {url} to {cached} (nothing is downloaded)")


def load_raft(weights: str | os.PathLike | None = None):
    """torchvision's RAFT (large or small, whichever the weights fit) in eval mode, from a local file or
    the torch hub cache only.

    Raises:
        LitVideoError: no weights, or weights that fit neither architecture.
    """
    from torchvision.models.optical_flow import raft_large, raft_small

    from lit_video.models.weights import load_weights, read_state_dict

    check_raft_weights(weights)
    problems = []
    for path in raft_weights_path(weights):
        state = read_state_dict(path)
        for build in (raft_large, raft_small):
            model = build(weights=None)
            try:
                load_weights(model, state, str(path))
            except LitVideoError as err:
                problems.append(str(err))
                continue
            return model.eval().requires_grad_(False)
    raise LitVideoError(f"RAFT weights fit neither raft_large nor raft_small: {problems[-1]}")


def raft_flow(model, first, second, num_flow_updates: int = 12):
    """RAFT flow from `first` to `second`: (B,3,H,W) RGB in [0, 255] (uint8 or float) -> float32 (B,2,H,W)
    pixels. Small frames are upscaled to RAFT's 128-pixel minimum and the flow scaled back; sides are
    padded to a multiple of 8 by edge replication."""
    import torch
    import torch.nn.functional as TF

    height, width = first.shape[-2:]
    scale = max(1.0, RAFT_MIN_SIDE / min(height, width))
    pair = torch.cat([first, second]).float().div(127.5).sub(1.0)  # RAFT's [-1, 1]
    if scale > 1:
        pair = TF.interpolate(pair, scale_factor=scale, mode="bilinear", align_corners=False)
    big_h, big_w = pair.shape[-2:]
    pad_h, pad_w = (-big_h) % 8, (-big_w) % 8
    if pad_h or pad_w:
        pair = TF.pad(pair, (0, pad_w, 0, pad_h), mode="replicate")
    with torch.no_grad():
        flow = model(pair[: len(first)], pair[len(first):], num_flow_updates=num_flow_updates)[-1]
    flow = flow[..., :big_h, :big_w]
    if scale > 1:
        flow = TF.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
        flow[:, 0] *= width / big_w
        flow[:, 1] *= height / big_h
    return flow.float()


def shrink_frames(frames: np.ndarray, short_side: int | None) -> np.ndarray:
    """Frames resized (area) so their short side is `short_side`; unchanged when None or already smaller."""
    import cv2

    height, width = frames.shape[1:3]
    if short_side is None or min(height, width) <= short_side:
        return frames
    scale = short_side / min(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


_WORKER: dict[str, Any] = {}


def _computer(method: str, weights: str | None) -> FlowComputer:
    """This process's FlowComputer (built once)."""
    key = f"{method}:{weights}"
    if key not in _WORKER:
        import cv2

        cv2.setNumThreads(1)  # the pool's processes are the parallelism
        _WORKER[key] = FlowComputer(method, weights)
    return _WORKER[key]


def compute_video_flow(video_path: str, folder: str, method: str, bound: float, short_side: int | None = None,
                       decoder: str = "auto", weights: str | None = None) -> str:
    """Compute and store the flow of one video (resumable: written beside `folder`, renamed when complete).

    Returns:
        "computed", or "skipped" when `folder` exists already (complete).

    Raises:
        VideoDecodeError: the video cannot be decoded.
    """
    import cv2

    from lit_video.video.decode import open_video

    target = Path(folder)
    if target.is_dir():
        return "skipped"
    partial = partial_folder(target)
    if partial.exists():
        shutil.rmtree(partial)  # left by an interrupted run: redone from the start
    partial.mkdir(parents=True)
    computer = _computer(method, weights)
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    try:
        with open_video(video_path, decoder) as reader:
            num_frames = reader.num_frames
            if num_frames < 1:
                raise VideoDecodeError(video_path, "no frames")
            previous = None  # the last frame of the previous chunk
            pair = 0
            for start in range(0, num_frames, CHUNK):
                frames = shrink_frames(np.asarray(reader.get_frames(np.arange(start, min(start + CHUNK, num_frames)))),
                                 short_side)
                if previous is not None:
                    frames = np.concatenate([previous, frames])
                if num_frames == 1:
                    frames = np.concatenate([frames, frames])  # one pair of zero flow
                if len(frames) < 2:
                    previous = frames[-1:]
                    continue
                for flow in computer(frames):
                    values = quantize(flow, bound)
                    for plane, path in zip((values[..., 0], values[..., 1]), pair_files(partial, pair), strict=True):
                        if not cv2.imwrite(str(path), plane, params):
                            raise OSError(f"cannot write {path}")
                    pair += 1
                previous = frames[-1:]
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    os.replace(partial, target)
    return "computed"
