"""MinVIS-style association of per-step query embeddings into tracks (Hungarian matching on their cosine
similarity, optionally with the overlap of their masks)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment


def associate(embeddings: torch.Tensor, first_masks: torch.Tensor | None = None,
              last_masks: torch.Tensor | None = None, overlap_weight: float = 0.0,
              momentum: float = 0.0) -> np.ndarray:
    """MinVIS association: query q of step t continues the track whose query at step t-1 is most similar.

    Each step's queries are matched one-to-one to the tracks by Hungarian matching (scipy's
    `linear_sum_assignment`) on the cosine similarity of the query embeddings to each track's embedding:
    its previous step's (`momentum` 0, MinVIS) or a running mean (track embedding <- momentum * itself +
    (1 - momentum) * its new query's, renormalized), which rides out a frame where an occlusion blurs the
    query. With `overlap_weight`, the soft IoU of each track's mask in the last frame of step t-1 and each
    query's mask in the first frame of step t is added, weighted: objects move little between adjacent
    frames, and duplicate queries of one object, alike in embedding, differ in where their masks lie.

    Args:
        embeddings: (T,Q,D) query embeddings of T frames (or windows).
        first_masks, last_masks: (T,Q,h,w) mask logits of each step's first and last frame (the same
            tensor online); needed when overlap_weight > 0.
        overlap_weight: weight of the mask IoU term (0 = embeddings only).
        momentum: weight of a track's past in its embedding (0 = the previous step's query alone).

    Returns:
        int64 (T,Q): row t lists, for each track, the index of its query in step t (row 0 = identity), so
        `embeddings[t, order[t]]` is step t in track order.
    """
    # in NumPy: a torch product here would run in bfloat16 under autocast (bf16-mixed evaluation), which
    # scipy cannot take and which blurs the similarities that tell neighbouring queries apart
    normed = F.normalize(embeddings.detach().float(), dim=-1).cpu().numpy()  # (T,Q,D)
    steps, queries = normed.shape[:2]
    use_overlap = overlap_weight > 0
    if use_overlap:
        if first_masks is None or last_masks is None:
            raise ValueError("associate: overlap_weight needs first_masks and last_masks")
        first = first_masks.detach().float().sigmoid().flatten(2).cpu().numpy()  # (T,Q,N)
        last = last_masks.detach().float().sigmoid().flatten(2).cpu().numpy()  # (T,Q,N)
    order = np.empty((steps, queries), dtype=np.int64)
    order[0] = np.arange(queries)
    tracks_embedding = normed[0]  # (Q,D), track order
    for t in range(1, steps):
        similarity = tracks_embedding @ normed[t].T  # (Q tracks, Q queries of step t)
        if use_overlap:
            previous = last[t - 1, order[t - 1]]  # (Q tracks, N)
            inter = previous @ first[t].T  # (Q,Q)
            union = previous.sum(1)[:, None] + first[t].sum(1)[None] - inter
            similarity = similarity + overlap_weight * inter / np.maximum(union, 1e-6)
        tracks, picked = linear_sum_assignment(similarity, maximize=True)
        order[t, tracks] = picked
        tracks_embedding = momentum * tracks_embedding + (1 - momentum) * normed[t, order[t]]
        tracks_embedding = tracks_embedding / np.maximum(np.linalg.norm(tracks_embedding, axis=1, keepdims=True),
                                                         1e-12)
    return order
