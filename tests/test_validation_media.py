"""What the model did, logged to W&B at validation (`lit_video.validation_media`), on real offline runs of each
task's tiny recipe read back with the wandb CLI (`wandb leet inspect`, through `read_offline_records`): VOS and
VIS overlays whose pixels inside a known mask carry that object's palette colour (decoded from the logged MP4
with PyAV), per-video scores that add up to the logged ones, the captioning table's predicted captions, the
classification confusion matrix over every validation video; `--wandb.media_videos 0` logs none of them.

The test session runs with WANDB_MODE=disabled (tests/conftest.py); each test here turns offline runs on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from media_files import read_image, read_video
from PIL import Image
from scipy.ndimage import binary_erosion

from lit_video.data import keys
from lit_video.data.rle import decode_tube
from lit_video.errors import LitVideoError
from lit_video.metrics.captions import evaluate_corpus
from lit_video.metrics.ytvis import evaluate_per_video, evaluate_results
from lit_video.tasks.base import media_rank
from lit_video.training import run_cli
from lit_video.video.overlay import palette_colours
from lit_video.wandb_runs import offline_runs, read_offline_records, read_offline_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RECIPES = REPO / "experiments" / "synthetic"
# No compute profile (its measured passes would double these runs); a limit of 1 would read as 1.0: every batch.
QUICK = ["--data.init_args.num_workers", "0", "--trainer.enable_progress_bar", "false", "--compute_profile.enabled",
         "false"]
PALETTE = palette_colours()


def run(subcommand: str, recipe: str, root: Path, out: Path, *extra: str):
    """`lit-video SUBCOMMAND` of a tiny recipe on `root`, logged to an offline W&B run under `out`."""
    return run_cli([subcommand, "--config", str(RECIPES / f"{recipe}.yaml"), "--data.init_args.root", str(root),
                    "--trainer.default_root_dir", str(out), *QUICK, *extra])


def logged_tables(run_dir: Path, key: str) -> list[tuple[dict, dict[str, Path]]]:
    """Each version of the table an offline run logged as `key` (e.g. "val/videos"), in the order logged: its
    JSON and the files logged with it (its videos), by their path in the table. W&B keeps a table with its
    media as a `run_table` artifact, staged for `wandb sync`."""
    tables = []
    for record in read_offline_records(run_dir):
        if record["type"] == "artifact" and record["artifact"]["type"] == "run_table":
            files = {entry["path"]: Path(entry["local_path"]) for entry in record["artifact"]["manifest"]["contents"]}
            if f"{key}.table.json" in files:
                tables.append((json.loads(files[f"{key}.table.json"].read_text()), files))
    return tables


def table_rows(table: dict) -> list[dict]:
    return [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]






def assert_drawn_in(drawn: np.ndarray, frame: np.ndarray, mask: np.ndarray, object_id: int, others: set[int]) -> None:
    """The pixels of `drawn` well inside `mask` (its 1-pixel contour and the encoder's blur at the edges left
    out) are `frame` blended half and half with the palette colour of `object_id` (overlay_labels' alpha 0.5),
    and not with the colour of any of `others`. The median over them: an object's text may cover a few."""
    inside = binary_erosion(mask, iterations=2)
    assert inside.sum() >= 12, "the object is too small to check"

    def error(colour_id: int) -> float:  # per pixel the worst channel, then the median over the pixels
        expected = 0.5 * frame[inside].astype(np.float64) + 0.5 * PALETTE[colour_id]
        return float(np.median(np.abs(drawn[inside] - expected).max(axis=1)))

    # 4:2:0 chroma blurs the striped textures (up to ~20 off here); another palette colour is ~64 off
    assert error(object_id) < 25, f"object {object_id} is not drawn in its palette colour"
    for other in others - {object_id}:
        assert error(other) > 45, f"object {object_id} is drawn in the colour of {other}"


def test_vos_validation_logs_overlays_in_the_palette_and_each_sequences_j_and_f(offline, davis_root):
    # two held-out sequences evaluated at the annotations' size; the media of one, chosen by the seeded hash
    run("validate", "vos_stm_tiny", davis_root, offline, "--trainer.limit_val_batches", "2",
        "--data.init_args.eval_resolution", "null", "--wandb.media_videos", "1")
    (run_dir,) = offline_runs(offline)
    (table, files), = logged_tables(run_dir, "val/videos")
    rows = table_rows(table)
    assert table["columns"] == ["video", "media", "J&F", "J", "F", "objects"]
    evaluated = [row["video"] for row in rows]
    assert sorted(evaluated) == ["synth-001", "synth-004"]  # the first two of ImageSets/2017/val.txt
    chosen = min(evaluated, key=lambda video: media_rank(video, 0))
    assert rows[0]["video"] == chosen and rows[1]["media"] is None  # the chosen video first, the other without
    # each sequence's J and F, weighted by its objects, give the logged means over every object
    summary = read_offline_run(run_dir)["summary"]
    objects = sum(row["objects"] for row in rows)
    for name in ("J", "F"):
        assert sum(row[name] * row["objects"] for row in rows) / objects == pytest.approx(summary[f"val/{name}"])
    assert all(row["J&F"] == pytest.approx((row["J"] + row["F"]) / 2) for row in rows)

    video = read_video(files[rows[0]["media"]["path"]])  # the ground truth on the left, the prediction on the right
    frames_dir = davis_root / "JPEGImages" / "480p" / chosen
    annotations = sorted((davis_root / "Annotations" / "480p" / chosen).glob("*.png"))
    height, width = read_image(frames_dir / "00000.jpg").shape[:2]
    assert video.shape == (len(annotations), height, 2 * width, 3)
    for t, side in ((0, "prediction"), (0, "truth"), (len(annotations) - 1, "truth")):
        # frame 0's prediction is the given first mask; the truth is every annotated frame's
        labels = np.asarray(Image.open(annotations[t]))  # palette PNG: the object ids
        frame = read_image(frames_dir / f"{annotations[t].stem}.jpg")
        drawn = video[t, :, width:] if side == "prediction" else video[t, :, :width]
        ids = {int(i) for i in np.unique(labels)} - {0, 255}
        assert ids
        for object_id in ids:
            assert_drawn_in(drawn, frame, labels == object_id, object_id, ids)


def test_vis_validation_logs_overlays_of_the_annotated_instances_and_each_videos_ap(offline, ytvis_root):
    run("validate", "vis_offline_tiny", ytvis_root, offline, "--trainer.limit_val_batches", "3",
        "--wandb.media_videos", "2")
    (run_dir,) = offline_runs(offline)
    (table, files), = logged_tables(run_dir, "val/videos")
    rows = table_rows(table)
    assert table["columns"] == ["video", "media", "AP", "AP50", "tracks"]
    ground_truth = json.loads((ytvis_root / "valid" / "instances_gt.json").read_text())
    assert sorted(row["video"] for row in rows) == sorted(str(v["id"]) for v in ground_truth["videos"])
    assert [row["media"] is not None for row in rows] == [True, True, False]
    checked = 0
    for row in rows[:2]:
        video_info = next(v for v in ground_truth["videos"] if str(v["id"]) == row["video"])
        video = read_video(files[row["media"]["path"]])
        height, width = video_info["height"], video_info["width"]
        assert video.shape == (video_info["length"], height, 2 * width, 3)
        # instance k of the video (annotation order) is drawn in palette colour k on the left
        tubes = np.stack([decode_tube(a["segmentations"], height, width).astype(bool)  # (K,T,H,W)
                          for a in ground_truth["annotations"] if a["video_id"] == video_info["id"]])
        ids = set(range(1, len(tubes) + 1))
        for k, tube in enumerate(tubes, start=1):
            t = int(tube.sum(axis=(1, 2)).argmax())  # the frame where it is largest, without the parts others cover
            visible = tube[t] & ~np.delete(tubes[:, t], k - 1, axis=0).any(axis=0)
            if binary_erosion(visible, iterations=2).sum() < 12:
                continue  # mostly hidden: too few pixels to tell its colour
            frame = read_image(ytvis_root / "valid" / "JPEGImages" / video_info["file_names"][t])
            assert_drawn_in(video[t, :, :width], frame, visible, k, ids)
            checked += 1
    assert checked >= 2


def test_per_video_ap_is_the_ap_of_each_video_alone(ytvis_root):
    ground_truth = json.loads((ytvis_root / "valid" / "instances_gt.json").read_text())
    # the annotations as results, scored, one of them in a wrong category: each video scores differently
    results = [{"video_id": a["video_id"], "category_id": a["category_id"] if n else a["category_id"] % 4 + 1,
                "score": 0.9 - 0.05 * n, "segmentations": a["segmentations"]}
               for n, a in enumerate(ground_truth["annotations"])]
    per_video = evaluate_per_video(ground_truth, results)
    assert set(per_video) == {v["id"] for v in ground_truth["videos"]}
    for video in ground_truth["videos"]:
        alone = {**ground_truth, "videos": [video],
                 "annotations": [a for a in ground_truth["annotations"] if a["video_id"] == video["id"]]}
        expected = evaluate_results(alone, [r for r in results if r["video_id"] == video["id"]])
        assert per_video[video["id"]] == pytest.approx(expected)
    assert len({scores["AP"] for scores in per_video.values()}) > 1


def test_captioning_validation_logs_each_videos_caption_references_and_cider(offline, msrvtt_root):
    # untrained weights: beam search still writes a caption of words (after a few training steps, an empty one)
    cli = run("validate", "caption_tiny", msrvtt_root, offline, "--data.init_args.batch_size", "6",
              "--wandb.media_videos", "2")
    (run_dir,) = offline_runs(offline)
    (table, files), = logged_tables(run_dir, "val/videos")
    rows = table_rows(table)
    assert table["columns"] == ["video", "media", "predicted", "references", "CIDEr"]
    # the captions of the validated model, decoded again, and the references of the dataset
    captions, references = {}, {}
    cli.model.eval()  # the trainer leaves it in training mode (dropout)
    for batch in cli.datamodule.val_dataloader():
        batch = cli.datamodule.on_after_batch_transfer(batch, 0)
        for video_id, caption, refs in zip(batch[keys.VIDEO_ID], cli.model.caption(batch[keys.VIDEO]),
                                           batch[keys.REFERENCES], strict=True):
            captions[video_id], references[video_id] = caption, "\n".join(refs)
    assert len(rows) == len(captions) == 6
    assert {row["video"]: row["predicted"] for row in rows} == captions
    assert all(captions.values())
    assert {row["video"]: row["references"] for row in rows} == references
    # each video's CIDEr-D (with the corpus' idf) as pycocoevalcap gives it; the corpus' is their mean
    scored = evaluate_corpus({video: refs.split("\n") for video, refs in references.items()}, captions, meteor=False)
    assert {row["video"]: row["CIDEr"] for row in rows} == pytest.approx(scored.video_cider)
    assert len(set(scored.video_cider.values())) > 1
    summary = read_offline_run(run_dir)["summary"]
    assert np.mean([row["CIDEr"] for row in rows]) == pytest.approx(summary["val/CIDEr"])
    clip_len = cli.model.hparams.clip_len
    media = [row["media"] for row in rows if row["media"] is not None]
    assert len(media) == 2
    for cell in media:  # the clip the model captioned
        assert read_video(files[cell["path"]]).shape[:3] == (clip_len, 64, 64)


def test_each_videos_cider_is_its_own():
    references = {"right": ["a red circle moves left", "a small red circle goes left"],
                  "wrong": ["a big blue square falls down", "a blue square is falling"],
                  "close": ["a green triangle rises up", "the green triangle goes up"]}
    predictions = {"right": "a red circle moves left", "wrong": "green green green", "close": "a green triangle"}
    scored = evaluate_corpus(references, predictions, meteor=False)
    cider = scored.video_cider
    assert cider["right"] > cider["close"] > cider["wrong"] == 0
    assert np.mean(list(cider.values())) == pytest.approx(scored.scores["CIDEr"])


def test_classification_fit_logs_the_confusion_matrix_of_every_validation_video(offline, ucf101_root):
    cli = run("fit", "r2plus1d_tiny", ucf101_root, offline, "--trainer.max_epochs", "1",
              "--trainer.limit_train_batches", "2", "--trainer.num_sanity_val_steps", "0")
    (run_dir,) = offline_runs(offline)
    num_videos = len(cli.datamodule.val_dataloader().dataset)
    classes = cli.datamodule.classes
    (confusion, _), = logged_tables(run_dir, "val/confusion_matrix_table")
    cells = table_rows(confusion)
    assert {(cell["Actual"], cell["Predicted"]) for cell in cells} == {(a, p) for a in classes for p in classes}
    assert sum(cell["nPredictions"] for cell in cells) == num_videos
    summary = read_offline_run(run_dir)["summary"]
    correct = sum(cell["nPredictions"] for cell in cells if cell["Actual"] == cell["Predicted"])
    assert correct / num_videos == pytest.approx(summary["val/acc_video"])
    (per_class, _), = logged_tables(run_dir, "val/per_class")
    assert {row["class"]: (row["videos"], row["correct"]) for row in table_rows(per_class)} == {
        name: (sum(c["nPredictions"] for c in cells if c["Actual"] == name),
               sum(c["nPredictions"] for c in cells if c["Actual"] == name == c["Predicted"])) for name in classes}
    (top, _), = logged_tables(run_dir, "val/top_confused")
    mistakes = sorted(((c["nPredictions"], c["Actual"], c["Predicted"]) for c in cells
                       if c["Actual"] != c["Predicted"] and c["nPredictions"]), key=lambda m: -m[0])
    assert [row["videos"] for row in table_rows(top)] == [count for count, _, _ in mistakes][:10]
    (videos, _), = logged_tables(run_dir, "val/videos")
    assert len(videos["data"]) == num_videos and "media" not in videos["columns"]


def test_media_videos_0_logs_no_media_and_keeps_none(offline, ucf101_root):
    cli = run("validate", "r2plus1d_tiny", ucf101_root, offline, "--trainer.limit_val_batches", "2",
              "--wandb.media_videos", "0")
    (run_dir,) = offline_runs(offline)
    assert "val/acc_video" in read_offline_run(run_dir)["summary"]  # the run logged its metrics
    assert not [r for r in read_offline_records(run_dir) if r["type"] == "artifact"]
    assert not list(run_dir.rglob("*.table.json"))
    assert cli.model.media_videos == 0 and cli.model.evaluated_videos is None


def test_a_negative_media_videos_is_one_line_naming_the_option(offline, ucf101_root):
    with pytest.raises(LitVideoError) as error:
        run("validate", "r2plus1d_tiny", ucf101_root, offline, "--wandb.media_videos", "-1")
    assert "wandb.media_videos" in str(error.value) and "\n" not in str(error.value)
