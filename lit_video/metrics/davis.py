"""DAVIS region similarity J and boundary F-measure, equal to davis2017-evaluation (semi-supervised task).

What the official code computes (read from its source, `davis2017/{metrics,evaluation,davis,results,utils}.py`
and `evaluation_method.py`), and so what this module computes:

- Per object k and frame: J = |S ∩ G| / |S ∪ G| of the predicted and ground-truth masks, 1 when the union is
  empty. F = the boundary F-measure: boundary maps of S and G by `seg2bmap` (a pixel differs from its right,
  lower or lower-right neighbour; on the last row only the right one counts, on the last column only the lower
  one, never the bottom-right corner), each dilated by a disk of radius ceil(0.008 * ||(H, W)||) (scikit-image's
  `disk`: x² + y² <= r²); precision = |B_S ∩ dil(B_G)| / |B_S|, recall = |B_G ∩ dil(B_S)| / |B_G| (no boundary in
  S only: P = 1, R = 0; in G only: P = 0, R = 1; in neither: both 1); F = 2PR / (P + R), or 0.
- The first and the last frame of every sequence are not evaluated.
- The objects are ids 1..K with K the largest id in the sequence's FIRST ground-truth frame; ground-truth ids
  above K are background. A prediction with an id above K (255 included) is an error; a prediction with fewer
  objects gives the missing ones empty masks.
- Void: the official semi-supervised evaluation reads 255 in the ground truth as BACKGROUND. Its `db_eval_iou`
  and `db_eval_boundary` can leave void pixels out, but the semi-supervised path never gives them any (the
  reader sets 255 to 0, and the void mask is either None or tested on masks that are already binary), so
  predicted pixels on void count as false positives. `ignore_void=False` (the default) does exactly that;
  `ignore_void=True` removes the void pixels from both masks first, which is what those functions do when they
  are given void pixels (the "DAVIS 2017 with void" reading some papers use; their numbers are not the
  official ones). The per-frame functions below take an explicit `void` mask with that second meaning.
- Statistics of each object over its frames: Mean (nanmean), Recall (fraction of frames > 0.5) and Decay:
  ids = round(linspace(1, n, 5) + 1e-10) - 1, bins = values[ids[i] : ids[i+1] + 1], Decay = mean(bin 0) -
  mean(bin 3). The official `db_statistics` stores ids as uint8, so for sequences of more than 256 frames the
  indices (and the +1 after them) wrap around modulo 256 and the last bin is wrong or empty (Decay NaN). We use
  the indices the formula means; `official_decay_wrap=True` reproduces the wrapped ones.
- Global figures: J-Mean, J-Recall, ... are plain means over ALL objects of all sequences (not of sequence
  means); J&F-Mean = (J-Mean + F-Mean) / 2 (`JFAccumulator`).

The unsupervised task (`evaluate_unsupervised_sequence`, the official `_evaluate_unsupervised`): the ground
truth is `Annotations_unsupervised`, objects 1..K counted from its first frame as above; the prediction's ids
1..P (P = its largest id, over all frames) are proposals, P > 20 is an error, P < K is padded with empty
proposals. EVERY frame is scored. J and F are computed for every (proposal, object) pair over all frames, and
scipy's `linear_sum_assignment` picks the proposal of each object maximising the mean over frames of (J + F) / 2
summed over objects. The result's rows are the assigned pairs in ascending PROPOSAL order (the official
`j[row_ind, col_ind]`), named "<sequence>_1", ... in that order, so row k need not be object k. Void is read as
background there too: the official code tests `== 255` on masks that are already binary.

Reading a DAVIS root and a results folder, and the official CSV files and tables, are in `davis_folder`.

How it is fast. The official code loops over objects and frames and dilates full frames with OpenCV. Here a
sequence is handled an object at a time in groups of 8 frames: the group is cropped to the object's bounding
box (found for all objects at once from per-row and per-column presence bits), its 8 binary masks are packed
into the bits of one uint8 plane, and boundaries, disk dilations (row runs, then rows) and intersections are
whole-array bitwise operations on that plane, so each operation does 8 frames. Counts are exact integers, so J
and F equal the official float64 values. NumPy rather than torch: on a CPU, torch's uint8 comparisons with a
scalar and its bool reductions were 10-100x slower than NumPy's here; torch tensors (on any device) are accepted
and moved to the CPU, which costs one copy of the uint8 masks.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from lit_video.data.masks import VOID
from lit_video.errors import LitVideoError

BOUND_TH = 0.008  # boundary tolerance as a fraction of the image diagonal (the official default)
GLOBAL_COLUMNS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")
STAT_KEYS = ("J", "J_recall", "J_decay", "F", "F_recall", "F_decay")  # per-object arrays of evaluate_sequence
_GROUP = 8  # frames packed into the bits of one uint8 plane
_LANES = [np.uint64(0x0101010101010101 << bit) for bit in range(_GROUP)]  # one bit of each byte of a word


# --------------------------------------------------------------------------- per-frame measures
def disk_radius(height: int, width: int, bound_th: float = BOUND_TH) -> int:
    """Radius of the dilation disk, as the official `f_measure`: ceil(bound_th * ||(H, W)||), or bound_th
    itself (pixels) when it is >= 1."""
    if bound_th >= 1:
        if bound_th != int(bound_th):
            raise ValueError(f"bound_th >= 1 is a radius in pixels and must be a whole number, got {bound_th}")
        return int(bound_th)
    return int(np.ceil(bound_th * np.linalg.norm((height, width))))


def _half_widths(radius: int) -> list[int]:
    """Half width of scikit-image's disk(radius) on each row dy = 0..radius (dx² + dy² <= radius²)."""
    return [math.isqrt(radius * radius - dy * dy) for dy in range(radius + 1)]


def _as_array(values) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor, on any device; torch itself is not imported here
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _as_ids(values, what: str) -> np.ndarray:
    """Object ids (T,H,W) of any integer type -> uint8 (T,H,W)."""
    ids = _as_array(values)
    if ids.ndim != 3:
        raise ValueError(f"{what}: expected object ids of shape (T, H, W), got {ids.shape}")
    if ids.dtype != np.uint8:
        if ids.size and (ids.min() < 0 or ids.max() > 255):
            raise ValueError(f"{what}: object ids must be 0..255")
        ids = ids.astype(np.uint8)
    return ids


def _pack(masks: np.ndarray, out: np.ndarray) -> None:
    """Bit t of out (h,w) uint8 = masks[t] (n,h,w) bool, n <= 8."""
    np.copyto(out, masks[0])
    shifted = np.empty_like(out)
    for bit in range(1, len(masks)):
        np.left_shift(masks[bit].view(np.uint8), bit, out=shifted)
        np.bitwise_or(out, shifted, out=out)


def _boundary(seg: np.ndarray, out: np.ndarray) -> None:
    """The official seg2bmap, bitwise on a plane of packed frames (h,w): a pixel is on the boundary when it
    differs from its right, lower or lower-right neighbour; the last row compares with the right one only,
    the last column with the lower one only, and the bottom-right corner is never a boundary."""
    np.bitwise_xor(seg[:, :-1], seg[:, 1:], out=out[:, :-1])
    out[:, -1] = 0
    below = seg[:-1] ^ seg[1:]  # (h-1,w)
    np.bitwise_or(out[:-1], below, out=out[:-1])
    np.bitwise_xor(seg[:-1, :-1], seg[1:, 1:], out=below[:, :-1])
    np.bitwise_or(out[:-1, :-1], below[:, :-1], out=out[:-1, :-1])


def _dilate(plane: np.ndarray, half_widths: list[int]) -> np.ndarray:
    """Binary dilation of every bit of plane (h,w) by the disk whose row dy spans [-half_widths[dy],
    half_widths[dy]], with zeros outside (as cv2.dilate's default border). The disk is the union of its rows:
    first the row-wise dilations for each distinct half width (each grown from the last by shifted ORs), then
    an OR of those, shifted by every dy. About 2r + 3 log2(r) array ORs instead of a (2r+1)² kernel."""
    by_width = {0: plane}
    current, reach = plane, 0
    for width in sorted(set(half_widths)):
        while reach < width:
            # step <= reach + 1: [-reach, reach] shifted by ±step leaves no gap, and whatever the frame's
            # edge cut off a row run lands, once shifted back in, where the uncut part already covers
            step = min(width - reach, reach + 1)
            grown = current.copy()
            np.bitwise_or(grown[:, step:], current[:, :-step], out=grown[:, step:])
            np.bitwise_or(grown[:, :-step], current[:, step:], out=grown[:, :-step])
            current, reach = grown, reach + step
        by_width[width] = current
    out = by_width[half_widths[0]].copy()
    for dy in range(1, len(half_widths)):
        rows = by_width[half_widths[dy]]
        np.bitwise_or(out[dy:], rows[:-dy], out=out[dy:])
        np.bitwise_or(out[:-dy], rows[dy:], out=out[:-dy])
    return out


def _lane_counts_popcount(words: np.ndarray, lane: np.uint64) -> np.ndarray:
    """Set bits of `words & lane` per row: (N, M) uint64 -> (N,)."""
    return np.bitwise_count(words & lane).sum(axis=1)


def _lane_counts_bytes(words: np.ndarray, lane: np.uint64) -> np.ndarray:
    """The same without np.bitwise_count (NumPy < 2): each byte of words & lane is 0 or its one lane bit."""
    return np.count_nonzero((words & lane).view(np.uint8), axis=1)


_lane_counts = _lane_counts_popcount if hasattr(np, "bitwise_count") else _lane_counts_bytes


def _group_counts(pred: np.ndarray, gt: np.ndarray, half_widths: list[int]) -> np.ndarray:
    """Exact pixel counts for n <= 8 frames of binary masks (n,h,w) -> int64 (7,n): |S∩G|, |S|, |G|, |B_S|,
    |B_G|, |B_S ∩ dil(B_G)|, |B_G ∩ dil(B_S)|."""
    n, height, width = pred.shape
    counts = np.empty((7, n), np.int64)
    for t in range(n):  # region counts straight from the masks: counting non-zero bytes is the fastest count
        counts[0, t] = np.count_nonzero(pred[t] & gt[t])
        counts[1, t], counts[2, t] = np.count_nonzero(pred[t]), np.count_nonzero(gt[t])
    seg_pred, seg_gt = np.empty((height, width), np.uint8), np.empty((height, width), np.uint8)
    _pack(pred, seg_pred)
    _pack(gt, seg_gt)
    # four boundary planes in one buffer whose rows are whole uint64 words: a count then reads one bit of 8
    # pixels per operation
    size = height * width
    buffer = np.zeros((4, -(-size // 8) * 8), np.uint8)
    bound_pred, bound_gt, match_pred, match_gt = (buffer[i, :size].reshape(height, width) for i in range(4))
    _boundary(seg_pred, bound_pred)
    _boundary(seg_gt, bound_gt)
    np.bitwise_and(bound_pred, _dilate(bound_gt, half_widths), out=match_pred)
    np.bitwise_and(bound_gt, _dilate(bound_pred, half_widths), out=match_gt)
    words = buffer.view(np.uint64)  # (4, size/8)
    for bit in range(n):
        counts[3:, bit] = _lane_counts(words, _LANES[bit])
    return counts


def _jaccard_from_counts(inter: np.ndarray, n_pred: np.ndarray, n_gt: np.ndarray) -> np.ndarray:
    union = n_pred + n_gt - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union == 0, 1.0, inter / union)


def _scores_from_counts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(7,n) counts of `_group_counts` -> J (n,), F (n,) with the official edge cases."""
    inter, n_pred, n_gt, b_pred, b_gt, m_pred, m_gt = counts
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(b_pred == 0, 1.0, np.where(b_gt == 0, 0.0, m_pred / b_pred))
        recall = np.where(b_gt == 0, 1.0, np.where(b_pred == 0, 0.0, m_gt / b_gt))
        total = precision + recall
        f = np.where(total == 0, 0.0, 2 * precision * recall / total)
    return _jaccard_from_counts(inter, n_pred, n_gt), f


def _box(rows: np.ndarray, cols: np.ndarray) -> tuple[slice, slice] | None:
    """The bounding box of an object (rows (H,), cols (W,) bool: where it is in either mask), grown by one
    pixel on every side and clipped to the frame; None when it is nowhere.

    Cropping to it changes no count: outside it both masks are background, so seg2bmap marks nothing there
    except the row above / column left of the object, which the growth includes; the grown last row and
    column are background, so the crop's last-row/column rule gives them the 0 they have in the full frame;
    and every boundary pixel, the only places where a dilation is read, is inside the crop."""
    ys = np.flatnonzero(rows)
    if not len(ys):
        return None
    xs = np.flatnonzero(cols)
    return slice(max(ys[0] - 1, 0), ys[-1] + 2), slice(max(xs[0] - 1, 0), xs[-1] + 2)


def frame_scores(pred_masks, gt_masks, void=None, bound_th: float = BOUND_TH) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame J and F of binary masks, as the official `db_eval_iou` / `db_eval_boundary`.

    Args:
        pred_masks: predicted binary masks (..., H, W) (NumPy array or torch tensor; non-zero = object).
        gt_masks: ground-truth binary masks, same shape.
        void: optional (..., H, W) mask of pixels left out of both masks (the official `void_pixels`).
        bound_th: boundary tolerance, a fraction of the image diagonal (or pixels when >= 1).

    Returns:
        J and F, float64 arrays of shape (...).
    """
    pred = _as_array(pred_masks).astype(bool)
    gt = _as_array(gt_masks).astype(bool)
    if pred.shape != gt.shape or pred.ndim < 2:
        raise ValueError(f"masks must be (..., H, W) of one shape, got {pred.shape} and {gt.shape}")
    if void is not None:
        keep = ~_as_array(void).astype(bool)
        pred &= keep
        gt &= keep
    lead, (height, width) = pred.shape[:-2], pred.shape[-2:]
    pred, gt = pred.reshape(-1, height, width), gt.reshape(-1, height, width)
    half_widths = _half_widths(disk_radius(height, width, bound_th))
    j, f = np.ones(len(pred)), np.ones(len(pred))
    for start in range(0, len(pred), _GROUP):
        group = slice(start, start + _GROUP)
        anywhere = pred[group] | gt[group]  # (n,H,W)
        box = _box(anywhere.any(axis=(0, 2)), anywhere.any(axis=(0, 1)))
        if box is not None:  # else both masks are empty in every frame: J = F = 1
            counts = _group_counts(pred[group][:, box[0], box[1]], gt[group][:, box[0], box[1]], half_widths)
            j[group], f[group] = _scores_from_counts(counts)
    return j.reshape(lead), f.reshape(lead)


def jaccard(pred_masks, gt_masks, void=None) -> np.ndarray:
    """Per-frame region similarity J of binary masks (..., H, W) -> float64 (...); see `frame_scores`."""
    pred = _as_array(pred_masks).astype(bool)
    gt = _as_array(gt_masks).astype(bool)
    if void is not None:
        keep = ~_as_array(void).astype(bool)
        pred &= keep
        gt &= keep
    axes = (-2, -1)
    return _jaccard_from_counts(np.count_nonzero(pred & gt, axis=axes), np.count_nonzero(pred, axis=axes),
                                np.count_nonzero(gt, axis=axes))


def boundary_f(pred_masks, gt_masks, void=None, bound_th: float = BOUND_TH) -> np.ndarray:
    """Per-frame boundary F-measure of binary masks (..., H, W) -> float64 (...); see `frame_scores`."""
    return frame_scores(pred_masks, gt_masks, void, bound_th)[1]


# --------------------------------------------------------------------------- sequences
def decay_bins(num_frames: int, official_decay_wrap: bool = False) -> list[slice]:
    """The four Decay bins over `num_frames` per-frame values (see the module docstring)."""
    ids = (np.round(np.linspace(1, num_frames, 5) + 1e-10) - 1).astype(np.int64)
    if official_decay_wrap:
        # davis2017-evaluation keeps ids as uint8: both the ids and ids + 1 wrap around at 256
        ids %= 256
        return [slice(int(ids[i]), int((ids[i + 1] + 1) % 256)) for i in range(4)]
    return [slice(int(ids[i]), int(ids[i + 1] + 1)) for i in range(4)]


def statistics(values, official_decay_wrap: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, Recall and Decay of per-frame values, as the official `db_statistics`.

    Args:
        values: (K, T) per-object per-frame J or F (or (T,) for one object).
        official_decay_wrap: reproduce the official uint8 wrap of the Decay bins (sequences > 256 frames).

    Returns:
        mean, recall, decay: float64 arrays (K,), or float64 scalars for (T,) input.
    """
    values = np.asarray(values, dtype=np.float64)
    one = values.ndim == 1
    values = np.atleast_2d(values)
    num_objects, num_frames = values.shape
    if num_frames == 0:
        nan = np.full(num_objects, np.nan)
        result = nan, nan.copy(), nan.copy()
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an empty (wrapped) bin is NaN, as officially
            bins = decay_bins(num_frames, official_decay_wrap)
            result = (np.nanmean(values, axis=1), np.mean(values > 0.5, axis=1),
                      np.nanmean(values[:, bins[0]], axis=1) - np.nanmean(values[:, bins[3]], axis=1))
    return tuple(r[0] for r in result) if one else result  # type: ignore[return-value]


def _sequence_frames(pred: np.ndarray, gt: np.ndarray, num_objects: int, ignore_void: bool,
                     bound_th: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-object per-frame J, F (K,T) of evaluated frames: uint8 ids pred, gt (T,H,W), pred ids <= K."""
    num_frames, height, width = gt.shape
    j, f = np.ones((num_objects, num_frames)), np.ones((num_objects, num_frames))
    if num_objects == 0 or num_frames == 0:
        return j, f
    half_widths = _half_widths(disk_radius(height, width, bound_th))
    one = np.uint8(1)
    # a group of frames at a time keeps the full-frame temporaries in the cache
    for start in range(0, num_frames, _GROUP):
        group = slice(start, start + _GROUP)
        p, g = pred[group], gt[group]
        if ignore_void:
            p = p * (g != VOID)
        if g.max(initial=0) > num_objects:
            g = g * (g <= num_objects)  # void (unless left out above) and objects absent from frame 0: background
        if num_objects < 8:
            # where each object is in either map, all objects at once: bit k set in a row / column holding id k
            bits = np.left_shift(one, p)
            bits |= np.left_shift(one, g)
            row_bits, col_bits = np.bitwise_or.reduce(bits, axis=(0, 2)), np.bitwise_or.reduce(bits, axis=(0, 1))
        for k in range(1, num_objects + 1):
            if num_objects < 8:
                rows, cols = ((row_bits >> k) & 1) > 0, ((col_bits >> k) & 1) > 0
            else:
                anywhere = (p == k) | (g == k)
                rows, cols = anywhere.any(axis=(0, 2)), anywhere.any(axis=(0, 1))
            box = _box(rows, cols)
            if box is None:  # absent from both: J = F = 1 (the official edge cases)
                continue
            counts = _group_counts(p[:, box[0], box[1]] == k, g[:, box[0], box[1]] == k, half_widths)
            j[k - 1, group], f[k - 1, group] = _scores_from_counts(counts)
    return j, f


def _sequence_ids(pred, gt, num_objects: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """pred and gt as uint8 ids of one shape, and K: `num_objects`, or officially the largest id of gt's first
    frame."""
    pred, gt = _as_ids(pred, "prediction"), _as_ids(gt, "ground truth")
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    if num_objects is None:
        first = gt[0] if len(gt) else np.zeros((0,), np.uint8)
        num_objects = int(first[first != VOID].max(initial=0))
    return pred, gt, num_objects


def evaluate_sequence(pred, gt, num_objects: int | None = None, *, skip_first_last: bool = True,
                      ignore_void: bool = False, official_decay_wrap: bool = False, bound_th: float = BOUND_TH,
                      name: str | None = None) -> dict[str, np.ndarray]:
    """J and F of one sequence, semi-supervised DAVIS semantics.

    Args:
        pred: predicted object ids (T, H, W), any integer type, NumPy or torch (any device); 0 = background.
        gt: ground-truth object ids (T, H, W); 255 = void.
        num_objects: K, the objects 1..K to score; default: the largest id of gt's first frame (officially).
        skip_first_last: leave out the first and the last frame (the official semi-supervised protocol).
        ignore_void: remove void pixels from both masks instead of reading them as background (not official).
        official_decay_wrap: reproduce the official uint8 wrap of Decay for sequences over 256 frames.
        bound_th: boundary tolerance (fraction of the image diagonal).
        name: the sequence, named in errors.

    Returns:
        {"J_frames", "F_frames": float64 (K, T') per evaluated frame; "J", "J_recall", "J_decay", "F",
        "F_recall", "F_decay": float64 (K,) per object}.

    Raises:
        LitVideoError: the prediction has an object id above K.
    """
    pred, gt, num_objects = _sequence_ids(pred, gt, num_objects)
    if skip_first_last:
        pred, gt = pred[1:-1], gt[1:-1]
    largest = int(pred.max(initial=0))
    if largest > num_objects:
        where = f"sequence {name}" if name else "the prediction"
        raise LitVideoError(f"{where}: predicted object id {largest} but the ground truth has {num_objects} "
                            f"object(s) (ids 1..{num_objects} of its first frame)")
    j, f = _sequence_frames(pred, gt, num_objects, ignore_void, bound_th)
    return scores_from_frames(j, f, official_decay_wrap)


def scores_from_frames(j_frames, f_frames, official_decay_wrap: bool = False) -> dict[str, np.ndarray]:
    """Per-object statistics of per-frame J, F (K, T) -> the dict `evaluate_sequence` returns."""
    j_frames, f_frames = np.asarray(j_frames, np.float64), np.asarray(f_frames, np.float64)
    scores = {"J_frames": j_frames, "F_frames": f_frames}
    for letter, values in (("J", j_frames), ("F", f_frames)):
        mean, recall, decay = statistics(values, official_decay_wrap)
        scores.update({letter: mean, f"{letter}_recall": recall, f"{letter}_decay": decay})
    return scores


# --------------------------------------------------------------------------- the unsupervised task
def _boundary_counts(masks: np.ndarray) -> np.ndarray:
    """|seg2bmap(mask)| of each of n <= 8 binary masks (n,h,w) -> int64 (n,)."""
    n, height, width = masks.shape
    seg = np.empty((height, width), np.uint8)
    _pack(masks, seg)
    size = height * width
    buffer = np.zeros((1, -(-size // 8) * 8), np.uint8)  # rows of whole uint64 words, as in `_group_counts`
    _boundary(seg, buffer[0, :size].reshape(height, width))
    words = buffer.view(np.uint64)
    return np.array([_lane_counts(words, _LANES[bit])[0] for bit in range(n)], np.int64)


def _near(a: tuple[slice, slice], b: tuple[slice, slice], margin: int) -> bool:
    """Whether box `a` meets box `b` grown by `margin` pixels on every side."""
    return all(x.start < y.stop + margin and y.start - margin < x.stop for x, y in zip(a, b))


def _mask_summaries(ids: np.ndarray, count: int) -> list[tuple]:
    """(rows (H,), cols (W,), box, area (n,), boundary length (n,)) of the masks of ids 1..count in a group of
    n <= 8 frames of ids (n,H,W); box None for an id that is nowhere."""
    out = []
    for i in range(1, count + 1):
        mask = ids == i
        rows, cols = mask.any(axis=(0, 2)), mask.any(axis=(0, 1))
        box = _box(rows, cols)
        area, bound = np.zeros(len(ids), np.int64), np.zeros(len(ids), np.int64)
        if box is not None:
            crop = mask[:, box[0], box[1]]
            area, bound = np.count_nonzero(crop, axis=(1, 2)), _boundary_counts(crop)
        out.append((rows, cols, box, area, bound))
    return out


def _pair_frames(pred: np.ndarray, gt: np.ndarray, num_proposals: int, num_objects: int, ignore_void: bool,
                 bound_th: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame J, F (P,K,T) of every (proposal p+1, object k+1) pair: uint8 ids pred, gt (T,H,W).

    Each mask's own counts (area, boundary length) are taken once per group of frames; a pair adds only what
    the two share (intersection, matched boundary pixels), which is zero unless one mask's box comes within the
    dilation radius of the other's, so pairs far apart cost nothing."""
    num_frames, height, width = gt.shape
    j, f = np.ones((num_proposals, num_objects, num_frames)), np.ones((num_proposals, num_objects, num_frames))
    if not (num_proposals and num_objects and num_frames):
        return j, f
    radius = disk_radius(height, width, bound_th)
    half_widths = _half_widths(radius)
    for start in range(0, num_frames, _GROUP):
        group = slice(start, start + _GROUP)
        p, g = pred[group], gt[group]
        n = len(g)
        if ignore_void:
            p = p * (g != VOID)
        if g.max(initial=0) > num_objects:
            g = g * (g <= num_objects)  # void (unless left out above) and objects absent from frame 0: background
        proposals, objects = _mask_summaries(p, num_proposals), _mask_summaries(g, num_objects)
        zero = np.zeros(n, np.int64)
        for a, (p_rows, p_cols, p_box, p_area, p_bound) in enumerate(proposals):
            for k, (g_rows, g_cols, g_box, g_area, g_bound) in enumerate(objects):
                if p_box is not None and g_box is not None and _near(p_box, g_box, radius):
                    box = _box(p_rows | g_rows, p_cols | g_cols)
                    counts = _group_counts(p[:, box[0], box[1]] == a + 1, g[:, box[0], box[1]] == k + 1, half_widths)
                else:  # nothing shared: neither pixels nor boundary pixels within the other's dilation
                    counts = np.stack([zero, p_area, g_area, p_bound, g_bound, zero, zero])
                j[a, k, group], f[a, k, group] = _scores_from_counts(counts)
    return j, f


def evaluate_unsupervised_sequence(pred, gt, *, num_objects: int | None = None, max_proposals: int = 20,
                                   ignore_void: bool = False, official_decay_wrap: bool = False,
                                   bound_th: float = BOUND_TH, name: str | None = None) -> dict[str, np.ndarray]:
    """J and F of one sequence, unsupervised DAVIS semantics (davis2017-evaluation's `_evaluate_unsupervised`).

    Args:
        pred: predicted proposal ids (T, H, W) of every frame, any integer type, NumPy or torch; 0 = background,
            proposals are the ids 1..max(pred).
        gt: ground-truth object ids (T, H, W) of every frame (Annotations_unsupervised); 255 = void.
        num_objects: K, the objects 1..K to score; default: the largest id of gt's first frame (officially).
        max_proposals: most proposals a prediction may have (the official 20).
        ignore_void: remove void pixels from both masks instead of reading them as background (not official).
        official_decay_wrap: reproduce the official uint8 wrap of Decay for sequences over 256 frames.
        bound_th: boundary tolerance (fraction of the image diagonal).
        name: the sequence, named in errors.

    Returns:
        the keys of `evaluate_sequence` (per row: "J_frames", "F_frames" (K, T), "J", "J_recall", "J_decay",
        "F", "F_recall", "F_decay" (K,)), plus "objects" and "proposals": int64 (K,) the ground-truth id each
        row scores and the proposal assigned to it (an id above max(pred) is an empty padding proposal), and
        "pair_scores": (P', K) the mean over frames of (J + F) / 2 of every pair, P' = max(P, K). Rows are in
        the official order: ascending proposal id.

    Raises:
        LitVideoError: the prediction has more than `max_proposals` proposals.
    """
    if isinstance(max_proposals, bool) or not isinstance(max_proposals, int) or max_proposals < 1:
        raise ValueError(f"max_proposals must be a positive integer, got {max_proposals!r}")
    pred, gt, num_objects = _sequence_ids(pred, gt, num_objects)
    num_proposals = int(pred.max(initial=0))
    if num_proposals > max_proposals:
        where = f"sequence {name}" if name else "the prediction"
        raise LitVideoError(f"{where}: proposal id {num_proposals} is above the {max_proposals} proposals allowed "
                            f"(an unsupervised prediction's ids 1..{max_proposals} are its proposals, 0 background)")
    # fewer proposals than objects: the missing ones are empty, as the official zero padding
    j, f = _pair_frames(pred, gt, max(num_proposals, num_objects), num_objects, ignore_void, bound_th)
    from scipy.optimize import linear_sum_assignment

    if gt.shape[0]:
        pair_scores = (np.mean(j, axis=2) + np.mean(f, axis=2)) / 2  # the official expression, operand for operand
    else:
        pair_scores = np.zeros(j.shape[:2])
    rows, cols = linear_sum_assignment(-pair_scores)  # rows ascending: the official row order
    scores = scores_from_frames(j[rows, cols], f[rows, cols], official_decay_wrap)
    scores.update(objects=cols.astype(np.int64) + 1, proposals=rows.astype(np.int64) + 1, pair_scores=pair_scores)
    return scores


# --------------------------------------------------------------------------- the global figures
class JFAccumulator:
    """Per-object statistics gathered sequence by sequence, and the global figures davis2017-evaluation
    reports from them: plain means over all objects of all sequences."""

    def __init__(self) -> None:
        self.names: list[str] = []  # "<sequence>_<k>", the official per-sequence row names
        self._rows: list[list[float]] = []  # J, J_recall, J_decay, F, F_recall, F_decay per object

    def add(self, sequence: str, scores: dict[str, np.ndarray]) -> None:
        """Add the objects of one sequence (the dict of `evaluate_sequence`)."""
        for k in range(len(scores["J"])):
            self.names.append(f"{sequence}_{k + 1}")
            self._rows.append([float(scores[key][k]) for key in STAT_KEYS])

    def __len__(self) -> int:
        return len(self.names)

    def per_object(self) -> list[tuple[str, float, float]]:
        """(Sequence, J-Mean, F-Mean) per object, in the order they were added."""
        return [(name, row[0], row[3]) for name, row in zip(self.names, self._rows)]

    def global_scores(self) -> dict[str, float]:
        """J&F-Mean, J-Mean, J-Recall, J-Decay, F-Mean, F-Recall, F-Decay (NaN when there are no objects)."""
        rows = np.asarray(self._rows, np.float64).reshape(-1, len(STAT_KEYS))
        means = rows.mean(axis=0) if len(rows) else np.full(len(STAT_KEYS), np.nan)  # np.mean, as officially
        j, j_recall, j_decay, f, f_recall, f_decay = (float(v) for v in means)
        return dict(zip(GLOBAL_COLUMNS, ((j + f) / 2, j, j_recall, j_decay, f, f_recall, f_decay)))
