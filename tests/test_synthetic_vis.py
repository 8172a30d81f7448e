"""Synthetic YouTube-VIS: the released 2019 / 2021 layouts and JSON keys, segmentations that decode with
pycocotools to the rendered instances, null frames for instances entering and leaving, occlusions,
categories that are the shapes, reproducibility."""

from __future__ import annotations

import colorsys
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from lit_video.cli import main
from lit_video.data.rle import decode_segmentation
from lit_video.data.synthetic.scene import ANNOTATION_STEP, SHAPES
from lit_video.data.synthetic.spec import SynthSpec
from lit_video.data.synthetic.vis import VisSynthSpec, category_id, plan_vis_video, write_youtube_vis
from lit_video.errors import LitVideoError
from lit_video.video.decode import FrameFolderReader

# Twelve videos cover every per-index case: single-instance videos (0, 5, 10), mid-video entries
# (index % 3 != 0), exits (odd), a repeated category (2, 6, 10) and a valid split (1, 4, 7, 10).
SPEC = VisSynthSpec(num_videos=12, num_frames=12, size=(48, 64), seed=5)

# Keys of the released files (YouTube-VIS 2019 train.json / 2021 instances.json).
TOP_KEYS = {"info", "licenses", "videos", "annotations", "categories"}
VIDEO_KEYS = {"license", "coco_url", "height", "width", "length", "date_captured", "file_names", "flickr_url",
              "id"}
ANNOTATION_KEYS = {"id", "video_id", "category_id", "segmentations", "areas", "bboxes", "iscrowd", "length",
                   "height", "width"}


@pytest.fixture(scope="module")
def ytvis(tmp_path_factory):
    root = tmp_path_factory.mktemp("ytvis")
    return root, write_youtube_vis(root, SPEC)


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def rle_to_mask(segmentation: dict) -> np.ndarray:
    """pycocotools' own reading of an uncompressed RLE -> bool (H,W)."""
    return mask_utils.decode(mask_utils.frPyObjects(segmentation, *segmentation["size"])).astype(bool)


def touches_edge(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def test_2021_layout_and_json_keys_as_released(ytvis):
    root, plans = ytvis
    train, valid, gt = (load(root / "train/instances.json"), load(root / "valid/instances.json"),
                        load(root / "valid/instances_gt.json"))
    assert set(train) == TOP_KEYS and set(gt) == TOP_KEYS
    assert set(valid) == TOP_KEYS - {"annotations"}  # valid ships without annotations
    assert valid["videos"] == gt["videos"] and valid["categories"] == gt["categories"] == train["categories"]
    assert train["categories"] == [{"supercategory": "shape", "id": k + 1, "name": s}
                                   for k, s in enumerate(SHAPES)]
    for split, data in (("train", train), ("valid", gt)):
        names = [p.name for p in plans if p.split == split]
        assert [v["id"] for v in data["videos"]] == list(range(1, len(names) + 1))
        assert [a["id"] for a in data["annotations"]] == list(range(1, len(data["annotations"]) + 1))
        for video, name in zip(data["videos"], names, strict=True):
            assert set(video) == VIDEO_KEYS
            assert (video["height"], video["width"], video["length"]) == (48, 64, 12)
            # every 5th frame, as released, and exactly the JPEGs on disk
            assert video["file_names"] == [f"{name}/{ANNOTATION_STEP * t:05d}.jpg" for t in range(12)]
            assert FrameFolderReader(root / split / "JPEGImages" / name).frame_names == [
                f.split("/")[1] for f in video["file_names"]]
        for ann in data["annotations"]:
            assert set(ann) == ANNOTATION_KEYS and ann["iscrowd"] == 0 and ann["length"] == 1
            assert (ann["height"], ann["width"]) == (48, 64)
            assert len(ann["segmentations"]) == len(ann["areas"]) == len(ann["bboxes"]) == 12
            for segmentation in ann["segmentations"]:  # uncompressed RLE, as the released train JSON
                if segmentation is not None:
                    assert set(segmentation) == {"counts", "size"} and segmentation["size"] == [48, 64]
                    assert all(isinstance(c, int) for c in segmentation["counts"])
    assert {p.split for p in plans} == {"train", "valid"}
    assert [i for i, p in enumerate(plans) if p.split == "valid"] == [1, 4, 7, 10]


def test_2019_layout_names_the_files_as_released(tmp_path):
    small = VisSynthSpec(num_videos=3, num_frames=3, size=(32, 48), seed=1)
    write_youtube_vis(tmp_path / "y19", small, version=2019)
    write_youtube_vis(tmp_path / "y21", small, version=2021)
    assert sorted(p.name for p in (tmp_path / "y19").iterdir()) == [
        "train", "train.json", "valid", "valid.json", "valid_gt.json"]
    assert sorted(p.name for p in (tmp_path / "y19/train").iterdir()) == ["JPEGImages"]
    for split, gt in (("train", "train/instances.json"), ("valid", "valid/instances_gt.json")):
        nineteen = load(tmp_path / "y19" / (f"{split}.json" if split == "train" else "valid_gt.json"))
        assert nineteen["info"]["year"] == 2019
        twentyone = load(tmp_path / "y21" / gt)
        del nineteen["info"], twentyone["info"]
        assert nineteen == twentyone
    with pytest.raises(LitVideoError, match="version"):
        write_youtube_vis(tmp_path / "bad", small, version=2020)


def test_segmentations_decode_with_pycocotools_to_the_rendered_instances(ytvis):
    root, plans = ytvis
    for split, file in (("train", "train/instances.json"), ("valid", "valid/instances_gt.json")):
        data = load(root / file)
        split_plans = [p for p in plans if p.split == split]
        for video, plan in zip(data["videos"], split_plans, strict=True):
            labels = plan.render().labels  # (T,H,W) visible instance ids
            annotations = [a for a in data["annotations"] if a["video_id"] == video["id"]]
            assert len(annotations) == len(plan.object_ids)
            for ann, instance in zip(annotations, plan.object_ids, strict=True):
                assert ann["category_id"] == category_id(plan, instance)
                # its shape
                assert data["categories"][ann["category_id"] - 1]["name"] == plan.categories[instance]
                for t, segmentation in enumerate(ann["segmentations"]):
                    visible = labels[t] == instance
                    if segmentation is None:  # null exactly where the instance shows no pixel
                        assert not visible.any() and ann["areas"][t] is None and ann["bboxes"][t] is None
                        continue
                    decoded = rle_to_mask(segmentation)
                    assert np.array_equal(decoded, visible)
                    assert np.array_equal(decode_segmentation(segmentation, 48, 64), visible)
                    assert ann["areas"][t] == visible.sum()
                    ys, xs = np.nonzero(visible)
                    box = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
                    assert ann["bboxes"][t] == box


def test_instances_enter_and_leave_mid_video_with_null_frames(ytvis):
    root, plans = ytvis
    entries = exits = 0
    for index, plan in enumerate(plans):
        present = np.stack([(plan.render().labels == k).any(axis=(1, 2)) for k in plan.object_ids])  # (N,T)
        assert present.any(axis=1).all()  # every instance is seen
        objects = {obj.object_id: obj for obj in plan.scene.objects}
        if index % 3 != 0 and len(plan.object_ids) > 1:
            late = [k for k in plan.object_ids if objects[k].enter > 0]
            assert late  # this index must have a mid-video entry
            for k in late:  # null before it arrives, then there, sliding in across a frame edge
                first = int(objects[k].enter)
                assert not present[k - 1, :first].any() and present[k - 1, first:].any()
                assert touches_edge(objects[k].geometry(first, plan.scene.size))
                entries += 1
        leaving = [k for k in plan.object_ids if np.isfinite(objects[k].leave)]
        assert not leaving or index % 2 == 1
        for k in leaving:  # seen, then null from its exit to the end, sliding out across a frame edge
            gone = int(objects[k].leave)
            assert present[k - 1, :gone].any() and not present[k - 1, gone:].any()
            last = int(np.flatnonzero(present[k - 1])[-1])  # last seen crossing an edge, not vanishing in view
            assert touches_edge(objects[k].geometry(last, plan.scene.size))
            exits += 1
    assert entries >= 3 and exits >= 3
    # the nulls are in the JSON: some train annotation starts null, some ends null
    train = load(root / "train/instances.json")["annotations"]
    assert any(a["segmentations"][0] is None and a["segmentations"][-1] is not None for a in train)
    assert any(a["segmentations"][0] is not None and a["segmentations"][-1] is None for a in train)


def test_instances_occlude_each_other_and_categories_repeat(ytvis):
    _, plans = ytvis
    occluded = 0
    for plan in plans:
        rendered = plan.render()
        for n, object_id in enumerate(rendered.object_ids.tolist()):  # back to front
            visible = (rendered.labels == object_id).sum(axis=(1, 2))  # (T,)
            full = rendered.geometry[:, n].sum(axis=(1, 2))
            occluded += int(((visible < full) & (visible > 0)).sum())  # partly hidden behind another
        assert 1 <= len(plan.object_ids) <= SPEC.max_instances
        assert 0 not in rendered.object_ids  # no unannotated moving shape
    assert occluded > 0
    for index in (2, 6):
        names = [plans[index].categories[k] for k in plans[index].object_ids]
        assert len(names) > len(set(names))  # two instances of one category
    assert [len(plans[i].object_ids) for i in (0, 5, 10)] == [1, 1, 1]


def test_fewer_categories_and_frames_match_the_scene(tmp_path):
    plans = write_youtube_vis(tmp_path, VisSynthSpec(num_videos=4, num_frames=4, size=(48, 64), seed=2,
                                                     num_categories=2))
    data = load(tmp_path / "train/instances.json")
    assert [c["name"] for c in data["categories"]] == list(SHAPES[:2])
    assert {a["category_id"] for a in data["annotations"]} <= {1, 2}
    plan = next(p for p in plans if p.split == "train")
    frames = FrameFolderReader(tmp_path / "train/JPEGImages" / plan.name).get_frames(range(4)).numpy()
    rendered = plan.render().frames.astype(np.float32)  # (T,H,W,3)
    # JPEG losses, not a different picture: far closer to its own frame than to the next one
    error = np.abs(frames.astype(np.float32) - rendered).mean()
    assert 0 < error < 15
    assert np.abs(frames[1:].astype(np.float32) - rendered[:-1]).mean() > 2 * error


def hues(plan) -> dict[str, list[float]]:
    """Category name -> the hue of each of its instances' light colour in `plan`."""
    out: dict[str, list[float]] = {}
    for obj in plan.scene.objects:
        light = obj.colours[np.argmax(obj.colours.sum(1))] / 255
        out.setdefault(obj.category, []).append(colorsys.rgb_to_hsv(*light)[0])
    return out


def test_category_colours_give_each_category_its_own_hue_and_change_nothing_else():
    plain = VisSynthSpec(num_videos=30, num_frames=4, size=(48, 64), seed=3)
    coloured = dataclasses.replace(plain, category_colours=True)
    distances: dict[bool, list[float]] = {False: [], True: []}  # hue - its category's hue, per instance
    gap = 1 / len(SHAPES)
    for index in range(plain.num_videos):
        a, b = plan_vis_video(plain, index), plan_vis_video(coloured, index)
        # the same scene (objects, paths, background), only the instances' colours differ
        assert a.name == b.name and a.categories == b.categories and a.frame_names == b.frame_names
        assert np.array_equal(a.scene.background, b.scene.background)
        assert np.array_equal(a.render().labels, b.render().labels)
        for flag, plan in ((False, a), (True, b)):
            for category, values in hues(plan).items():
                centre = SHAPES.index(category) * gap
                distances[flag] += [abs((v - centre + 0.5) % 1 - 0.5) for v in values]
    # every instance within a quarter of the gap between categories of its category's hue ...
    assert len(distances[True]) > 40 and max(distances[True]) <= 0.25 * gap + 1e-6
    # ... where the default draws colours regardless of the category
    assert np.mean(np.array(distances[False]) > 0.25 * gap) > 0.3


def test_reproducible_for_a_seed_and_different_for_another(tmp_path):
    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    small = VisSynthSpec(num_videos=3, num_frames=3, size=(32, 48), seed=1)
    write_youtube_vis(tmp_path / "a", small)
    write_youtube_vis(tmp_path / "b", small)
    write_youtube_vis(tmp_path / "c", VisSynthSpec(num_videos=3, num_frames=3, size=(32, 48), seed=2))
    first, again, other = files(tmp_path / "a"), files(tmp_path / "b"), files(tmp_path / "c")
    assert first == again
    images = [k for k in first if k.endswith(".jpg")]
    assert images and not any(other.get(k) == first[k] for k in images)
    assert first["train/instances.json"] != other["train/instances.json"]
    assert plan_vis_video(small, 2).frame_names == plan_vis_video(small, 2).frame_names


def test_data_synth_command_writes_youtube_vis(tmp_path, capsys):
    out = tmp_path / "ytvis"
    code = main(["data", "synth", "--format", "youtube-vis", "--out", str(out), "--num-classes", "2",
                 "--videos-per-class", "2", "--num-frames", "3", "--size", "32x48", "--seed", "4"])
    assert code == 0 and "youtube-vis" in capsys.readouterr().out
    spec = SynthSpec(num_classes=2, videos_per_class=2, num_frames=3, size=(32, 48), seed=4)
    expected = VisSynthSpec(num_videos=4, num_frames=3, size=(32, 48), seed=4)
    assert VisSynthSpec.from_synth_spec(spec) == expected
    videos = load(out / "train/instances.json")["videos"] + load(out / "valid/instances.json")["videos"]
    assert len(videos) == 4
    assert videos[0]["file_names"][0].split("/")[0] == plan_vis_video(spec, 0).name


def test_data_synth_category_colours_flag(tmp_path, capsys):
    out = tmp_path / "coloured"
    args = ["data", "synth", "--format", "youtube-vis", "--out", str(out), "--num-classes", "2",
            "--videos-per-class", "3", "--num-frames", "3", "--size", "32x48", "--category-colours"]
    assert main(args) == 0
    spec = VisSynthSpec(num_videos=6, num_frames=3, size=(32, 48), seed=0, category_colours=True)
    frames = FrameFolderReader(out / "train/JPEGImages" / plan_vis_video(spec, 0).name).get_frames([0]).numpy()
    assert np.abs(frames[0].astype(np.float32) - plan_vis_video(spec, 0).render().frames[0]).mean() < 15
    assert main(["data", "synth", "--format", "davis", "--out", str(tmp_path / "d"), "--category-colours"]) == 2
    assert "--category-colours applies to youtube-vis, not davis" in capsys.readouterr().err


@pytest.mark.parametrize("fields", [dict(size=(16, 64)), dict(size=(33, 64)), dict(num_frames=1),
                                    dict(num_videos=0), dict(max_instances=0), dict(num_categories=7),
                                    dict(valid_every=1)])
def test_bad_specs_are_user_errors(fields):
    with pytest.raises(LitVideoError):
        VisSynthSpec(**fields)
