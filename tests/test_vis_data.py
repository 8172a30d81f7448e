"""YouTube-VIS DataModule: the 2019 / 2021 layouts, training clips whose instance masks and categories
stay those of the JSON through crops and flips, whole-video evaluation samples at full resolution,
the ground truth of exactly the evaluated videos, every segmentation form, one-line errors, corrupt
frames skipped and counted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from lit_video.cli import main
from lit_video.data import keys
from lit_video.data.base import datamodule_class
from lit_video.data.check import check_datamodule
from lit_video.data.formats.youtube_vis import YouTubeVISDataModule
from lit_video.data.rle import uncompressed_rle
from lit_video.data.synthetic.vis import VisSynthSpec, write_youtube_vis
from lit_video.errors import LitVideoError
from lit_video.video.transforms import KINETICS_MEAN, KINETICS_STD

HEIGHT, WIDTH, FRAMES = 64, 96, 10  # tests/conftest.py YTVIS_SPEC
TRAIN_JSON, GT_JSON = "train/instances.json", "valid/instances_gt.json"


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def save(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def decode(segmentation) -> np.ndarray:
    """pycocotools' reading of any segmentation form -> bool (H,W); all False for null."""
    if segmentation is None:
        return np.zeros((HEIGHT, WIDTH), bool)
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, HEIGHT, WIDTH))
    elif isinstance(segmentation["counts"], list):
        rle = mask_utils.frPyObjects(segmentation, HEIGHT, WIDTH)
    else:
        rle = segmentation
    return mask_utils.decode(rle).astype(bool)


def unnormalize(video: torch.Tensor) -> torch.Tensor:
    """Normalized float (C,T,H,W) -> [0, 255] float."""
    mean = torch.tensor(KINETICS_MEAN).view(3, 1, 1, 1) * 255
    std = torch.tensor(KINETICS_STD).view(3, 1, 1, 1) * 255
    return video * std + mean


def module(root: Path, **options) -> YouTubeVISDataModule:
    return YouTubeVISDataModule(str(root), num_workers=0, **options)


@pytest.fixture
def copy(ytvis_root, tmp_path) -> Path:
    """A private copy of the session's synthetic dataset, to change."""
    return Path(shutil.copytree(ytvis_root, tmp_path / "ytvis"))


# ----------------------------------------------------------------------------------------------- training


def test_training_clips_keep_instances_and_categories_with_their_frames_through_flips(ytvis_root):
    torch.manual_seed(0)
    # the crop is the whole frame, so a clip's masks are the JSON's, flipped or not
    dm = module(ytvis_root, clip_len=4, stride=2, resolution=[HEIGHT, WIDTH], short_side=HEIGHT,
                max_instances=5)
    data = load(ytvis_root / TRAIN_JSON)
    annotations = {a["id"]: a for a in data["annotations"]}
    videos = {v["id"]: v for v in data["videos"]}
    dataset = dm.make_dataset("train")
    flips = set()
    for index in range(24):
        sample = dataset[index]
        video, masks = sample[keys.VIDEO], sample[keys.MASKS]  # (C,T,h,w), (T,h,w)
        count = int(sample[keys.NUM_OBJECTS])
        ids, categories = sample[keys.OBJECT_IDS].tolist(), sample[keys.CATEGORIES].tolist()
        frame_indices = sample[keys.FRAME_INDICES].tolist()
        assert video.shape == (3, 4, HEIGHT, WIDTH) and masks.shape == (4, HEIGHT, WIDTH)
        assert masks.dtype == torch.int64
        assert ids[count:] == [0] * (5 - count) and categories[count:] == [-1] * (5 - count)
        assert set(masks.unique().tolist()) == set(range(count + 1)) - ({0} if (masks != 0).all() else set())
        assert np.all(np.diff(frame_indices) == 2)
        record = videos[int(sample[keys.ANNOTATION_VIDEO_ID])]
        assert record["file_names"][0].startswith(sample[keys.VIDEO_ID] + "/")
        # exactly the video's instances that show in some clip frame
        shown = {a["id"] for a in data["annotations"] if a["video_id"] == record["id"]
                 and any(a["segmentations"][f] is not None for f in frame_indices)}
        assert set(ids[:count]) == shown
        states = set()
        for k in range(count):
            ann = annotations[ids[k]]
            assert ann["video_id"] == record["id"] and dm.category_ids[categories[k]] == ann["category_id"]
            for t, f in enumerate(frame_indices):
                truth, got = torch.from_numpy(decode(ann["segmentations"][f])), masks[t] == k + 1
                if truth.any():
                    assert torch.equal(got, truth) or torch.equal(got, truth.flip(-1))
                    states.add(not torch.equal(got, truth))
        assert len(states) <= 1  # one flip for the whole clip
        if states:
            # the frames went the same way as the masks
            frame = unnormalize(video)[:, 0].permute(1, 2, 0)  # (h,w,C)
            name = record["file_names"][frame_indices[0]]
            jpeg = np.asarray(Image.open(ytvis_root / "train/JPEGImages" / name), np.float32)
            jpeg = torch.from_numpy(jpeg)  # (H,W,C)
            flipped = bool((frame - jpeg.flip(1)).abs().mean() < (frame - jpeg).abs().mean())
            assert flipped == states.pop()
            flips.add(flipped)
    assert flips == {True, False}


def test_cropped_clips_drop_absent_instances_and_keep_at_most_max_instances(ytvis_root):
    torch.manual_seed(1)
    dm = module(ytvis_root, clip_len=3, stride=1, stride_jitter=1, resolution=32, short_side=40,
                max_instances=1, samples_per_epoch=40)
    dataset = dm.make_dataset("train")
    assert len(dataset) == 40
    chosen: dict[str, set[int]] = {}
    strides = set()
    for index in range(40):
        sample = dataset[index]
        masks, count = sample[keys.MASKS], int(sample[keys.NUM_OBJECTS])
        assert masks.shape == (3, 32, 32) and sample[keys.OBJECT_IDS].shape == (1,)
        assert count <= 1 and set(masks.unique().tolist()) <= {0, 1}
        if count:  # a kept instance shows in the crop
            assert (masks == 1).any()
            chosen.setdefault(sample[keys.VIDEO_ID], set()).add(int(sample[keys.OBJECT_IDS][0]))
        strides |= set(np.diff(sample[keys.FRAME_INDICES].numpy()).tolist())
    assert max(len(ids) for ids in chosen.values()) > 1  # a random instance of a multi-instance video
    assert strides <= {1, 2} and len(strides) == 2  # stride 1 jittered by 1 (never 0)


def test_loaders_batch_clips_and_whole_videos(ytvis_root):
    assert datamodule_class("youtube-vis") is YouTubeVISDataModule
    dm = module(ytvis_root, clip_len=2, resolution=32, batch_size=2)
    assert dm.num_classes == 6 and dm.category_ids == [1, 2, 3, 4, 5, 6] and dm.classes[0] == "ellipse"
    batch = next(iter(dm.train_dataloader()))
    assert batch[keys.VIDEO].shape == (2, 3, 2, 32, 32) and batch[keys.CATEGORIES].shape == (2, 10)
    batch = next(iter(dm.val_dataloader()))
    assert batch[keys.VIDEO].shape == (1, 3, FRAMES, HEIGHT, WIDTH)
    assert batch[keys.MASKS].shape == (1, FRAMES, HEIGHT, WIDTH)


# ----------------------------------------------------------------------------------------------- evaluation


def test_evaluation_samples_are_whole_videos_at_full_resolution(ytvis_root):
    dm = module(ytvis_root, val_subset="valid", eval_resolution=32)
    gt = load(ytvis_root / GT_JSON)
    dataset = dm.make_dataset("val")
    assert len(dataset) == len(gt["videos"]) == 3
    for sample, video in zip(dataset, gt["videos"], strict=True):
        assert sample[keys.VIDEO].shape == (3, FRAMES, 32, 48)  # frames resized, masks not
        assert sample[keys.MASKS].shape == (FRAMES, HEIGHT, WIDTH)
        assert sample[keys.ORIGINAL_SIZE].tolist() == [HEIGHT, WIDTH]
        assert int(sample[keys.ANNOTATION_VIDEO_ID]) == video["id"]
        assert sample[keys.FRAME_NAMES] == [n.split("/")[1][:-4] for n in video["file_names"]]
        assert sample[keys.VIDEO_ID] == video["file_names"][0].split("/")[0]
        annotations = [a for a in gt["annotations"] if a["video_id"] == video["id"]]
        assert sample[keys.OBJECT_IDS].tolist() == [a["id"] for a in annotations]
        categories = [dm.category_ids[c] for c in sample[keys.CATEGORIES].tolist()]
        assert categories == [a["category_id"] for a in annotations]
        assert int(sample[keys.NUM_OBJECTS]) == len(annotations)
        for k, ann in enumerate(annotations, start=1):
            for t, segmentation in enumerate(ann["segmentations"]):
                assert np.array_equal(sample[keys.MASKS][t].numpy() == k, decode(segmentation))
    full = module(ytvis_root, val_subset="valid").make_dataset("val")[0]
    assert full[keys.VIDEO].shape == (3, FRAMES, HEIGHT, WIDTH) and full[keys.VIDEO].dtype == torch.float32


def test_ground_truth_is_that_of_exactly_the_held_out_videos(ytvis_root, tmp_path):
    train = load(ytvis_root / TRAIN_JSON)
    dm = module(ytvis_root, val_fraction=0.34)
    held = dm.records("val")
    trained = dm.records("train")
    assert len(held) == 2 and len(trained) == 4  # of 6 train videos
    assert {r.video_id for r in held}.isdisjoint(r.video_id for r in trained)
    gt = dm.ground_truth("val")
    ids = {r.annotation_video_id for r in held}
    assert [v["id"] for v in gt["videos"]] == sorted(ids)
    assert gt["videos"] == [v for v in train["videos"] if v["id"] in ids]
    assert gt["annotations"] == [a for a in train["annotations"] if a["video_id"] in ids]
    assert gt["categories"] == train["categories"]
    assert set(gt) == {"info", "licenses", "videos", "annotations", "categories"}
    # the evaluation samples are those videos, with those instances
    samples = list(dm.make_dataset("val"))
    assert [int(s[keys.ANNOTATION_VIDEO_ID]) for s in samples] == [v["id"] for v in gt["videos"]]
    instances = sorted(i for s in samples for i in s[keys.OBJECT_IDS].tolist())
    assert instances == [a["id"] for a in gt["annotations"]]
    assert module(ytvis_root, val_fraction=0.34, split_seed=0).heldout == dm.heldout  # deterministic

    listed = tmp_path / "val.txt"
    listed.write_text(f"{trained[0].video_id}\n")
    chosen = module(ytvis_root, val_list=str(listed)).records("val")
    assert {r.video_id for r in chosen} == {trained[0].video_id}
    assert module(ytvis_root, val_subset="valid").ground_truth("val") == load(ytvis_root / GT_JSON)


def test_valid_without_ground_truth_is_predict_only(copy):
    (copy / GT_JSON).unlink()  # as released
    dm = module(copy, val_subset="valid")
    assert dm.ground_truth("val") is None and dm.ground_truth("test") is None
    sample = dm.make_dataset("test")[0]
    assert int(sample[keys.NUM_OBJECTS]) == 0 and not sample[keys.MASKS].any()
    assert sample[keys.VIDEO].shape == (3, FRAMES, HEIGHT, WIDTH)
    assert dm.ground_truth("train") is not None


def test_2019_layout(tmp_path):
    write_youtube_vis(tmp_path, VisSynthSpec(num_videos=4, num_frames=3, size=(32, 48), seed=3), version=2019)
    dm = module(tmp_path, version=2019, val_subset="valid")
    assert len(dm.records("train")) + len(dm.records("val")) == 4
    assert dm.ground_truth("val")["videos"] == load(tmp_path / "valid_gt.json")["videos"]
    with pytest.raises(LitVideoError, match=r"instances\.json: missing .*set version: 2019"):
        module(tmp_path).records("train")


# ----------------------------------------------------------------------------------------------- formats


def test_compressed_rle_and_polygon_segmentations_read_like_uncompressed(copy):
    gt = load(copy / GT_JSON)
    expected = module(copy, val_subset="valid").make_dataset("val")[0][keys.MASKS]
    first = [a for a in gt["annotations"] if a["video_id"] == gt["videos"][0]["id"]]
    for ann in first:  # every frame as compressed RLE, as results.json has it
        for t, segmentation in enumerate(ann["segmentations"]):
            if segmentation is not None:
                rle = mask_utils.frPyObjects(segmentation, HEIGHT, WIDTH)
                ann["segmentations"][t] = {"counts": rle["counts"].decode(), "size": rle["size"]}
    # and a small polygon (smaller than any instance, so it wins any overlap) in the last frame
    polygon = [[20.0, 10.0, 26.0, 10.0, 26.0, 15.0, 20.0, 15.0]]
    first[0]["segmentations"][-1] = polygon
    save(copy / GT_JSON, gt)
    masks = module(copy, val_subset="valid").make_dataset("val")[0][keys.MASKS]
    assert torch.equal(masks[:-1], expected[:-1])
    assert 20 <= decode(polygon).sum() < 60 and np.array_equal(masks[-1].numpy() == 1, decode(polygon))
    others = expected[-1].clone()
    others[(others == 1) | torch.from_numpy(decode(polygon))] = 0
    assert torch.equal(torch.where(masks[-1] == 1, 0, masks[-1]), others)


def test_overlapping_instances_go_to_the_smaller_one(copy):
    gt = load(copy / GT_JSON)
    video = gt["videos"][0]
    box = np.zeros((HEIGHT, WIDTH), bool)
    box[:, : WIDTH // 2 + 10] = True  # a large instance over the left part of frame 0
    gt["annotations"].append({"id": 1000, "video_id": video["id"], "category_id": 2, "iscrowd": 0,
                              "segmentations": [uncompressed_rle(box)] + [None] * (FRAMES - 1)})
    save(copy / GT_JSON, gt)
    before = [decode(a["segmentations"][0]) for a in gt["annotations"][:-1] if a["video_id"] == video["id"]]
    sample = module(copy, val_subset="valid").make_dataset("val")[0]
    big = int(sample[keys.NUM_OBJECTS])
    assert sample[keys.OBJECT_IDS].tolist()[-1] == 1000
    frame = sample[keys.MASKS][0].numpy()
    assert any((mask & box).any() for mask in before)  # the box covers some instance
    for k, mask in enumerate(before, start=1):  # every smaller instance keeps its pixels, overlap included
        assert (frame[mask] == k).all()
    assert np.array_equal(frame == big, box & ~np.logical_or.reduce(before))


# ----------------------------------------------------------------------------------------------- errors


def _drop_videos(d):
    del d["videos"]


def _short_segmentations(d):
    d["annotations"][0]["segmentations"].pop()


def _unknown_category(d):
    d["annotations"][0]["category_id"] = 99


def _unknown_video(d):
    d["annotations"][1]["video_id"] = 99


def _wrong_length(d):
    d["videos"][0]["length"] = 3


def _no_file_names(d):
    del d["videos"][1]["file_names"]


def _wrong_size(d):
    segmentation = next(s for s in d["annotations"][2]["segmentations"] if s is not None)
    segmentation["size"] = [1, 1]


def _no_annotations(d):
    del d["annotations"]


@pytest.mark.parametrize("change, key", [
    (_drop_videos, '"videos"'),
    (_short_segmentations, 'annotations[0]["segmentations"]'),
    (_unknown_category, 'annotations[0]["category_id"]: 99 is not in categories'),
    (_unknown_video, 'annotations[1]["video_id"]: 99 is not in videos'),
    (_wrong_length, 'videos[0]["length"]'),
    (_no_file_names, 'videos[1]["file_names"]'),
    (_wrong_size, '"size" [1, 1]'),
    (_no_annotations, '"annotations": missing'),
])
def test_malformed_annotation_files_are_one_line_errors_naming_file_and_key(ytvis_root, tmp_path, change,
                                                                            key):
    data = load(ytvis_root / TRAIN_JSON)
    change(data)
    save(tmp_path / TRAIN_JSON, data)
    with pytest.raises(LitVideoError) as caught:
        module(tmp_path).records("train")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / TRAIN_JSON}: ") and key in message and "\n" not in message


def test_bad_json_and_options_are_one_line_errors(ytvis_root, tmp_path, capsys):
    (tmp_path / "train").mkdir()
    (tmp_path / TRAIN_JSON).write_text("{not json")
    assert main(["data", "check", "--format", "youtube-vis", "--root", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"{tmp_path / TRAIN_JSON}: not valid JSON" in error
    for options in (dict(version=2020), dict(train_subset="valid"), dict(val_fraction=1.0),
                    dict(max_instances=0), dict(val_subset="val"), dict(max_instances=True), dict(clip_len=True)):
        with pytest.raises(LitVideoError):
            module(ytvis_root, **options)


# ------------------------------------------------------------------------------------------ corrupt files


def test_corrupt_frames_are_skipped_and_counted(copy, capsys):
    dm = module(copy, clip_len=FRAMES, resolution=32)  # every clip holds every frame
    broken = dm.records("train")[0]
    (Path(broken.path) / broken.frame_files[0]).write_bytes(b"not a jpeg")
    dataset = dm.make_dataset("train")
    seen = {dataset[i][keys.VIDEO_ID] for i in range(len(dataset))}
    assert broken.video_id not in seen and len(seen) == len(dataset) - 1  # replaced by the next video
    assert dm.decode_failures.value == 1  # counted once: the worker remembers it

    listed = copy / "val.txt"
    listed.write_text(broken.video_id + "\n")
    evaluating = module(copy, val_list=str(listed))
    sample = evaluating.make_dataset("val")[0]  # the frame is replaced by its neighbour
    assert sample[keys.VIDEO_ID] == broken.video_id
    assert torch.equal(sample[keys.VIDEO][:, 0], sample[keys.VIDEO][:, 1])
    assert evaluating.decode_failures.value == 1

    missing = dm.records("train")[1]
    (Path(missing.path) / missing.frame_files[-1]).unlink()
    reports = check_datamodule(module(copy), show_progress=False)
    unreadable = {path: why for r in reports.values() for path, why in r.unreadable.items()}
    assert set(unreadable) == {broken.path, missing.path}
    assert "listed frames missing" in unreadable[missing.path]
    assert main(["data", "check", "--format", "youtube-vis", "--root", str(copy)]) == 0
    assert "unreadable" in capsys.readouterr().out
