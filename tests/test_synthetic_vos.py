"""Synthetic DAVIS 2017 / YouTube-VOS data: exact official layouts, masks consistent with the scene,
occlusions, mid-video entries, void bands, reproducibility."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from lit_video.data.masks import VOID, read_mask, read_palette, voc_palette
from lit_video.data.synthetic.scene import ANNOTATION_STEP, SHAPES, TEXTURES, void_band
from lit_video.data.synthetic.spec import SynthSpec
from lit_video.data.synthetic.vos import (
    FULL_ANNOTATIONS_DIR,
    VosSynthSpec,
    category_name,
    plan_video,
    write_davis,
    write_youtube_vos,
)
from lit_video.errors import LitVideoError
from lit_video.video.decode import FrameFolderReader

CATEGORIES = {category_name(shape, texture) for shape in SHAPES for texture in TEXTURES}

# nine videos cover every per-index case: single-object DAVIS sequences in both splits, void and
# no-void sequences, YouTube-VOS videos with and without skipped ids, late starts and late entries
SPEC = VosSynthSpec(num_videos=9, num_frames=8, size=(48, 64), seed=4, all_frames=True)


@pytest.fixture(scope="module")
def davis(tmp_path_factory):
    root = tmp_path_factory.mktemp("davis")
    return root, write_davis(root, SPEC)


@pytest.fixture(scope="module")
def ytvos(tmp_path_factory):
    root = tmp_path_factory.mktemp("ytvos")
    return root, write_youtube_vos(root, SPEC)


def stems(folder: Path, suffix: str) -> list[str]:
    names = sorted(p.name for p in folder.iterdir())
    assert all(n.endswith(suffix) for n in names), names
    return [n[: -len(suffix)] for n in names]


def ids_in(mask: np.ndarray) -> set[int]:
    return {int(v) for v in np.unique(mask)} - {0, VOID}


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_davis_layout_and_image_sets(davis):
    root, plans = davis
    sequences = sorted(p.name for p in (root / "JPEGImages" / "480p").iterdir())
    assert sequences == sorted(p.name for p in plans) and len(sequences) == SPEC.num_videos
    assert sorted(p.name for p in (root / "Annotations" / "480p").iterdir()) == sequences
    expected = [f"{t:05d}" for t in range(SPEC.num_frames)]
    object_counts = {}
    for seq in sequences:
        assert stems(root / "JPEGImages" / "480p" / seq, ".jpg") == expected
        assert stems(root / "Annotations" / "480p" / seq, ".png") == expected  # every frame annotated
        masks = [read_mask(root / "Annotations" / "480p" / seq / f"{s}.png") for s in expected]
        every = set().union(*(ids_in(m) for m in masks))
        # the official evaluation takes the object ids from frame 0: every object is there
        assert ids_in(masks[0]) == every == set(range(1, len(every) + 1))
        object_counts[seq] = len(every)

    train, val = lines(root / "ImageSets/2017/train.txt"), lines(root / "ImageSets/2017/val.txt")
    assert train and val and sorted(train + val) == sequences
    assert not set(train) & set(val)
    assert {p.name for p in plans if p.split == "val"} == set(val)
    for split, listed in (("train", train), ("val", val)):
        single = lines(root / f"ImageSets/2016/{split}.txt")
        assert single == [s for s in listed if object_counts[s] == 1] and single
    assert max(object_counts.values()) >= 2  # DAVIS 2017 is multi-object


def test_masks_are_voc_palette_pngs(davis, ytvos):
    for root, pattern in ((davis[0], "Annotations/480p/*/*.png"), (ytvos[0], "*/Annotations*/*/*.png")):
        files = sorted(root.glob(pattern))
        assert files
        for path in files[:: max(1, len(files) // 20)]:
            with Image.open(path) as image:
                assert image.mode == "P" and image.size == SPEC.size[::-1]
            assert read_palette(path)[: 3 * 256] == voc_palette()


def test_davis_masks_match_the_scene_and_have_thin_void_bands(davis):
    root, plans = davis
    with_void = []
    for plan in plans:
        rendered = plan.render()
        written = np.stack([read_mask(root / "Annotations/480p" / plan.name / f"{s}.png") for s in plan.frame_names])
        void = written == VOID
        with_void.append(bool(void.any()))
        # outside the band the masks are exactly the visible objects of the scene
        assert np.array_equal(written[~void], rendered.labels[~void])
        if plan.void:
            assert np.array_equal(void, void_band(rendered.labels))
            # a thin band: every void pixel is a step or two from an annotated one (a narrow gap
            # between two objects is void from side to side, as in the real annotations)
            assert max(ndimage.distance_transform_cdt(v, metric="chessboard").max() for v in void) <= 3
    assert any(with_void) and not all(with_void)  # like the 2017 annotations, some sequences have void
    assert with_void == [p.void for p in plans]


def test_objects_occlude_each_other(davis, ytvos):
    overlaps = 0
    for root, plans, folder in ((davis[0], davis[1], "Annotations/480p"), (ytvos[0], ytvos[1], None)):
        for plan in plans:
            rendered = plan.render()
            geometry, ids = rendered.geometry, rendered.object_ids  # (T,N,H,W), back to front
            for back in range(len(ids)):
                for front in range(back + 1, len(ids)):
                    if not ids[back]:
                        continue
                    overlap = geometry[:, back] & geometry[:, front]  # (T,H,W)
                    if not overlap.any():
                        continue
                    overlaps += 1
                    # where both shapes lie, the one behind never shows
                    assert not (rendered.labels[overlap] == ids[back]).any()
                    # and the one in front shows wherever nothing else is further in front
                    clear = overlap & ~geometry[:, front + 1:].any(axis=1)
                    assert (rendered.labels[clear] == ids[front]).all()
            if folder:  # the written masks are those labels
                written = np.stack([read_mask(root / folder / plan.name / f"{s}.png") for s in plan.frame_names])
                keep = written != VOID
                assert np.array_equal(written[keep], rendered.labels[keep])
    assert overlaps >= 3


def test_youtube_vos_train_layout_and_meta(ytvos):
    root, plans = ytvos
    train = root / "train"
    meta = json.loads((train / "meta.json").read_text())["videos"]
    videos = sorted(p.name for p in (train / "JPEGImages").iterdir())
    assert sorted(meta) == videos == sorted(p.name for p in plans if p.split == "train")
    starts, gaps = [], []
    for vid in videos:
        frames = stems(train / "JPEGImages" / vid, ".jpg")
        numbers = [int(s) for s in frames]
        assert all(len(s) == 5 for s in frames) and len(frames) == SPEC.num_frames
        assert np.all(np.diff(numbers) == ANNOTATION_STEP) and numbers[0] % ANNOTATION_STEP == 0
        starts.append(numbers[0])
        assert stems(train / "Annotations" / vid, ".png") == frames  # every (5th) frame annotated
        masks = {s: read_mask(train / "Annotations" / vid / f"{s}.png") for s in frames}
        objects = meta[vid]["objects"]
        assert set(objects) == {str(i) for m in masks.values() for i in ids_in(m)}
        for key, obj in objects.items():
            assert set(obj) == {"category", "frames"} and obj["category"] in CATEGORIES
            assert obj["frames"] == [s for s in frames if int(key) in ids_in(masks[s])]
        ids = sorted(int(k) for k in objects)
        gaps.append(ids != list(range(1, len(ids) + 1)))
    assert 0 in starts and any(s > 0 for s in starts)  # names do not always start at 00000
    assert any(gaps)  # object ids need not be contiguous


def test_youtube_vos_valid_gives_first_appearance_masks_only(ytvos):
    root, plans = ytvos
    valid = root / "valid"
    meta = json.loads((valid / "meta.json").read_text())["videos"]
    assert sorted(meta) == sorted(p.name for p in plans if p.split == "valid") and meta
    late_entries = 0
    for vid, video in meta.items():
        frames = stems(valid / "JPEGImages" / vid, ".jpg")
        assert np.all(np.diff([int(s) for s in frames]) == ANNOTATION_STEP)
        assert stems(valid / FULL_ANNOTATIONS_DIR / vid, ".png") == frames
        full = {s: read_mask(valid / FULL_ANNOTATIONS_DIR / vid / f"{s}.png") for s in frames}
        objects = video["objects"]
        first = {int(k): obj["frames"][0] for k, obj in objects.items()}
        for key, obj in objects.items():
            assert obj["category"] in CATEGORIES
            # the frames to predict: every annotation-rate frame from the first appearance on
            assert obj["frames"] == frames[frames.index(obj["frames"][0]):]
            # the first appearance in the full ground truth is where the given mask is
            assert next(s for s in frames if int(key) in ids_in(full[s])) == obj["frames"][0]
        assert stems(valid / "Annotations" / vid, ".png") == sorted(set(first.values()))
        for stem in set(first.values()):
            given = read_mask(valid / "Annotations" / vid / f"{stem}.png")
            starting = {i for i, s in first.items() if s == stem}
            assert ids_in(given) == starting  # only the objects that first appear there
            assert np.array_equal(given, np.where(np.isin(full[stem], list(starting)), full[stem], 0))
        late_entries += sum(s != frames[0] for s in first.values())
    assert late_entries  # some objects first appear mid-video


def test_mid_video_entries_in_train(ytvos):
    root, plans = ytvos
    meta = json.loads((root / "train/meta.json").read_text())["videos"]
    late = [(vid, key, obj["frames"][0]) for vid, v in meta.items() for key, obj in v["objects"].items()
            if obj["frames"][0] != stems(root / "train/JPEGImages" / vid, ".jpg")[0]]
    assert late
    for vid, key, first in late:
        for stem in stems(root / "train/Annotations" / vid, ".png"):
            if stem < first:
                assert int(key) not in ids_in(read_mask(root / "train/Annotations" / vid / f"{stem}.png"))


def test_all_frames_folders_hold_every_frame(ytvos):
    root, plans = ytvos
    for plan in plans[:3]:
        folder = root / f"{plan.split}_all_frames" / "JPEGImages" / plan.name
        names = stems(folder, ".jpg")
        last = int(plan.frame_names[-1])
        assert names == [f"{n:05d}" for n in range(plan.start, last + 1)]
        # the annotated frames are the same images as in JPEGImages
        for stem in plan.frame_names[:3]:
            sampled = root / plan.split / "JPEGImages" / plan.name / f"{stem}.jpg"
            assert (folder / f"{stem}.jpg").read_bytes() == sampled.read_bytes()


def test_frames_decode_and_match_the_scene(davis, ytvos):
    for root, plan, folder in ((davis[0], davis[1][2], "JPEGImages/480p"),
                               (ytvos[0], ytvos[1][1], f"{ytvos[1][1].split}/JPEGImages")):
        reader = FrameFolderReader(root / folder / plan.name)
        assert reader.num_frames == SPEC.num_frames and reader.size == SPEC.size
        frames = reader.get_frames(range(SPEC.num_frames)).numpy()  # (T,H,W,3)
        assert frames.dtype == np.uint8 and frames.shape == (SPEC.num_frames, *SPEC.size, 3)
        rendered = plan.render().frames.astype(np.float32)
        # JPEG losses, not a different picture: far closer to its own frame than to the next one
        error = np.abs(frames.astype(np.float32) - rendered).mean()
        assert 0 < error < 15
        assert np.abs(frames[1:].astype(np.float32) - rendered[:-1]).mean() > 2 * error


def test_background_pans_and_is_not_separable_by_colour(davis):
    _, plans = davis
    scores = []
    for plan in plans:
        rendered = plan.render()
        frames, fg = rendered.frames.astype(np.float32), rendered.labels > 0  # (T,H,W,3), (T,H,W)
        still_bg = ~rendered.geometry[0].any(axis=0) & ~rendered.geometry[-1].any(axis=0)  # (H,W)
        assert np.abs(frames[-1][still_bg] - frames[0][still_bg]).mean() > 5  # the camera moves
        best = 0.0  # the IoU with the objects of the best threshold on one colour channel
        for channel in range(3):
            for threshold in np.linspace(8, 248, 31):
                above = frames[..., channel] > threshold
                for guess in (above, ~above):
                    best = max(best, (guess & fg).sum() / (guess | fg).sum())
        scores.append(best)
    assert np.median(scores) < 0.5  # in a typical video no colour threshold finds the objects


def test_reproducible_for_a_seed_and_different_for_another(tmp_path):
    small = VosSynthSpec(num_videos=3, num_frames=3, size=(32, 48), seed=1)

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    for writer in (write_davis, write_youtube_vos):
        writer(tmp_path / writer.__name__ / "a", small)
        writer(tmp_path / writer.__name__ / "b", small)
        writer(tmp_path / writer.__name__ / "c", VosSynthSpec(num_videos=3, num_frames=3, size=(32, 48), seed=2))
        first, again = files(tmp_path / writer.__name__ / "a"), files(tmp_path / writer.__name__ / "b")
        other = files(tmp_path / writer.__name__ / "c")
        assert first == again
        images = [k for k in first if k.endswith(".jpg")]
        assert images and not any(other.get(k) == first[k] for k in images)


def test_classification_spec_maps_to_videos_and_progress_counts(tmp_path):
    spec = SynthSpec(num_classes=2, videos_per_class=2, num_frames=3, size=(32, 40), seed=7)
    assert VosSynthSpec.from_synth_spec(spec) == VosSynthSpec(num_videos=4, num_frames=3, size=(32, 40), seed=7)
    calls = []
    plans = write_davis(tmp_path, spec, progress=lambda: calls.append(1))
    assert len(calls) == len(plans) == 4
    assert len(list((tmp_path / "JPEGImages/480p").iterdir())) == 4
    assert plan_video(spec, 3, "davis").frame_names == plans[3].frame_names


@pytest.mark.parametrize("fields", [dict(size=(16, 64)), dict(size=(33, 64)), dict(num_frames=1),
                                    dict(num_videos=0), dict(max_objects=1), dict(valid_every=1),
                                    dict(valid_every=-2)])
def test_bad_specs_are_user_errors(fields):
    with pytest.raises(LitVideoError):
        VosSynthSpec(**fields)


def test_valid_every_sizes_the_held_out_split_from_the_cli(tmp_path, capsys):
    """`--valid-every N` holds out index % N == 1: many training sequences and a few held-out ones, the
    held-out ones drawn as they would be in any dataset of the same seed; 0 holds out none."""
    from lit_video.cli import main

    assert main(["data", "synth", "--format", "davis", "--out", str(tmp_path / "d"), "--size", "32x48",
                 "--num-frames", "3", "--num-classes", "4", "--videos-per-class", "3", "--valid-every", "5"]) == 0
    val = lines(tmp_path / "d" / "ImageSets/2017/val.txt")
    assert val == [f"synth-{i:03d}" for i in (1, 6, 11)] and len(lines(tmp_path / "d" / "ImageSets/2017/train.txt")) == 9
    spec = VosSynthSpec(num_videos=12, num_frames=3, size=(32, 48), valid_every=5)
    assert plan_video(spec, 6, "davis").split == "val" and plan_video(spec, 4, "davis").split == "train"
    assert plan_video(VosSynthSpec(num_videos=12, valid_every=0), 1, "youtube-vos").split == "train"
    assert main(["data", "synth", "--format", "ucf101", "--out", str(tmp_path / "u"), "--valid-every", "5"]) == 2
    assert "--valid-every applies to davis, youtube-vos, youtube-vis, not ucf101" in capsys.readouterr().err
