"""YouTube-VOS seen / unseen scores: J and F averaged separately over the objects whose category the training
videos hold ("seen") and over the others ("unseen"), and "Overall", the mean of the four, as the YouTube-VOS
leaderboard reports them.

Each group's figure is a plain mean over its objects of their per-object J (or F) means, as J-Mean is over all
objects; an empty group is NaN and Overall is the mean of the groups that have objects.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

import numpy as np

SEEN_UNSEEN_KEYS = ("J_seen", "J_unseen", "F_seen", "F_unseen", "overall")


def seen_unseen_scores(per_object_scores: Mapping[str, Sequence[float]], categories: Sequence[str | None],
                       seen_categories: Collection[str]) -> dict[str, float]:
    """J and F of the seen and the unseen objects, and Overall.

    Args:
        per_object_scores: {"J": (N,), "F": (N,)} per-object means (e.g. the "J" and "F" of
            `davis.evaluate_sequence`, concatenated over videos).
        categories: the N objects' category names, in the same order; None (or "") for an object without one,
            which counts in neither group.
        seen_categories: the categories of the training objects (`VOSDataModule.seen_categories`).

    Returns:
        {"J_seen", "J_unseen", "F_seen", "F_unseen": means over each group's objects (NaN for an empty group),
        "overall": the mean of those four that are not NaN (NaN when all are)}.

    Raises:
        ValueError: the scores and the categories differ in length.
    """
    j = np.asarray(per_object_scores["J"], np.float64).reshape(-1)
    f = np.asarray(per_object_scores["F"], np.float64).reshape(-1)
    if not len(j) == len(f) == len(categories):
        raise ValueError(f"per-object J ({len(j)}), F ({len(f)}) and categories ({len(categories)}) differ in length")
    seen_set = set(seen_categories)
    known = np.array([bool(c) for c in categories], bool)
    seen = np.array([bool(c) and c in seen_set for c in categories], bool)
    groups = {"seen": seen, "unseen": known & ~seen}
    scores = {}
    for letter, values in (("J", j), ("F", f)):
        for group, members in groups.items():
            scores[f"{letter}_{group}"] = float(values[members].mean()) if members.any() else math.nan
    present = [v for v in scores.values() if not math.isnan(v)]
    scores["overall"] = float(np.mean(present)) if present else math.nan
    return {key: scores[key] for key in SEEN_UNSEEN_KEYS}
