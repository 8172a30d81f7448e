"""YouTube-VOS seen / unseen: object categories read from meta.json into evaluation samples, the training
categories a DataModule exposes, the synthetic generator's categories, and `seen_unseen_scores`."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from cli_errors import assert_one_line_error, run_lit_video

from lit_video.data import keys
from lit_video.data.formats.davis import DAVISDataModule
from lit_video.data.formats.youtube_vos import YouTubeVOSDataModule
from lit_video.data.synthetic.scene import SHAPES, TEXTURES
from lit_video.data.synthetic.vos import VosSynthSpec, category_name, plan_video
from lit_video.errors import LitVideoError
from lit_video.metrics.davis import evaluate_sequence
from lit_video.metrics.ytvos import seen_unseen_scores


def train_categories(root) -> dict[str, dict[int, str]]:
    """{video: {object id: category}} of train/meta.json, read directly."""
    videos = json.loads((root / "train" / "meta.json").read_text())["videos"]
    return {vid: {int(k): obj["category"] for k, obj in video["objects"].items()} for vid, video in videos.items()}


# --------------------------------------------------------------------------- the scores
def test_seen_and_unseen_scores_of_known_masks():
    # one video, four objects: 1 (person, seen) predicted exactly, 2 (person, seen) missed, 3 (zebra, unseen)
    # exact, 4 (no category) missed
    gt = np.zeros((3, 24, 24), np.uint8)
    gt[:, 2:8, 2:8], gt[:, 2:8, 14:20], gt[:, 14:20, 2:8], gt[:, 14:20, 14:20] = 1, 2, 3, 4
    pred = np.where(np.isin(gt, [1, 3]), gt, 0).astype(np.uint8)
    scores = evaluate_sequence(pred, gt, skip_first_last=False)
    assert scores["J"].tolist() == [1.0, 0.0, 1.0, 0.0] and scores["F"].tolist() == [1.0, 0.0, 1.0, 0.0]
    categories = ["person", "person", "zebra", None]
    result = seen_unseen_scores(scores, categories, {"person", "giraffe"})
    assert result == {"J_seen": 0.5, "J_unseen": 1.0, "F_seen": 0.5, "F_unseen": 1.0, "overall": 0.75}
    assert list(result) == ["J_seen", "J_unseen", "F_seen", "F_unseen", "overall"]

    # every category seen: the unseen group is empty (NaN) and Overall is the mean of the others
    everything = seen_unseen_scores(scores, categories, {"person", "zebra"})
    assert math.isnan(everything["J_unseen"]) and math.isnan(everything["F_unseen"])
    assert everything["J_seen"] == pytest.approx(2 / 3) and everything["overall"] == pytest.approx(2 / 3)
    nothing = seen_unseen_scores({"J": [], "F": []}, [], {"person"})
    assert all(math.isnan(v) for v in nothing.values())
    with pytest.raises(ValueError, match="differ in length"):
        seen_unseen_scores(scores, categories[:3], {"person"})


# --------------------------------------------------------------------------- the synthetic generator
def test_synthetic_youtube_vos_categories_are_shape_and_texture(ytvos_root):
    every = {category_name(shape, texture) for shape in SHAPES for texture in TEXTURES}
    assert len(every) == 24
    written = train_categories(ytvos_root)
    valid = json.loads((ytvos_root / "valid" / "meta.json").read_text())["videos"]
    found = {c for objects in written.values() for c in objects.values()}
    found |= {obj["category"] for video in valid.values() for obj in video["objects"].values()}
    assert found <= every and len(found) > 6  # more kinds than the six shapes
    # the plan's categories are what meta.json holds (the fixture's spec, video by video)
    spec = VosSynthSpec(num_videos=6, num_frames=20, size=(64, 96), seed=3)
    for index in range(spec.num_videos):
        plan = plan_video(spec, index, "youtube-vos")
        if plan.split == "train":
            assert written[plan.name] == plan.categories


# --------------------------------------------------------------------------- the DataModule
def test_seen_categories_are_those_of_the_training_part_after_the_held_out_split(ytvos_root):
    written = train_categories(ytvos_root)
    dm = YouTubeVOSDataModule(str(ytvos_root), val_fraction=0.25, split_seed=1, num_workers=0)
    held = dm.heldout
    assert len(held) == 1 and set(held) < set(written)
    expected = {c for vid, objects in written.items() if vid not in held for c in objects.values()}
    assert dm.seen_categories == frozenset(expected)
    held_categories = {c for vid in held for c in written[vid].values()}
    assert held_categories - expected  # the held-out video has a category the training videos lack
    # nothing held out (validation on valid): every train category is seen
    everything = YouTubeVOSDataModule(str(ytvos_root), val_subset="valid", num_workers=0)
    assert everything.seen_categories == frozenset(c for objects in written.values() for c in objects.values())

    # the evaluation sample names each object's category, in the order of OBJECT_IDS
    (vid,) = held
    sample = dm.make_dataset("val")[0]
    assert sample[keys.VIDEO_ID] == vid
    assert sample[keys.OBJECT_CATEGORIES] == [written[vid][i] for i in sample[keys.OBJECT_IDS].tolist()]
    batch = next(iter(dm.val_dataloader()))
    categories = [c[0] for c in batch[keys.OBJECT_CATEGORIES]]  # batch of one: K one-name tuples
    assert categories == sample[keys.OBJECT_CATEGORIES]

    # scored as the task would: a perfect prediction of the seen objects, nothing for the unseen ones
    masks = sample[keys.MASKS].numpy()
    seen_ids = [k for k, c in enumerate(categories, start=1) if c in dm.seen_categories]
    pred = np.where(np.isin(masks, seen_ids), masks, 0)
    scores = evaluate_sequence(pred, masks, len(categories), skip_first_last=False)
    result = seen_unseen_scores(scores, categories, dm.seen_categories)
    assert result["J_unseen"] == 0.0 and result["F_unseen"] == 0.0
    if seen_ids:
        assert result["J_seen"] == 1.0 and result["overall"] == 0.5
    else:
        assert math.isnan(result["J_seen"]) and result["overall"] == 0.0


def test_formats_without_categories_have_none(davis_root, ytvos_root, tmp_path):
    dm = DAVISDataModule(str(davis_root), num_workers=0)
    assert dm.seen_categories is None and keys.OBJECT_CATEGORIES not in dm.make_dataset("val")[0]
    # a meta.json without categories (allowed: the key is optional) gives none either
    root = tmp_path / "yt"
    shutil.copytree(ytvos_root, root)
    for split in ("train", "valid"):
        path = root / split / "meta.json"
        meta = json.loads(path.read_text())
        for video in meta["videos"].values():
            for obj in video["objects"].values():
                del obj["category"]
        path.write_text(json.dumps(meta))
    plain = YouTubeVOSDataModule(str(root), val_fraction=0.25, num_workers=0)
    assert plain.seen_categories is None
    assert keys.OBJECT_CATEGORIES not in plain.make_dataset("val")[0]


def test_a_category_that_is_not_a_name_is_one_line(ytvos_root, tmp_path):
    root = tmp_path / "yt"
    shutil.copytree(ytvos_root, root)
    path = root / "train" / "meta.json"
    meta = json.loads(path.read_text())
    vid = sorted(meta["videos"])[0]
    key = sorted(meta["videos"][vid]["objects"])[0]
    meta["videos"][vid]["objects"][key]["category"] = 7
    path.write_text(json.dumps(meta))
    result = run_lit_video("data", "check", "--format", "youtube-vos", "--root", root)
    assert_one_line_error(result, str(path), f'videos["{vid}"]["objects"]["{key}"]["category"]',
                          "must be a category name", "got 7")
    with pytest.raises(LitVideoError, match="must be a category name"):
        _ = YouTubeVOSDataModule(str(root), num_workers=0).seen_categories
