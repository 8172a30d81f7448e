"""The VIS LightningModule: training targets from label maps, scored tubes at the annotation size, AP on
held-out synthetic YouTube-VIS videos in both modes, predictions that `lit-video evaluate vis` and
pycocotools read back with the in-loop AP, the CLI links and a sweep that records compute per trial."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from pycocotools import mask as mask_utils

from lit_video.cli import main
from lit_video.data import keys
from lit_video.data.formats.youtube_vis import YouTubeVISDataModule
from lit_video.data.synthetic.vis import VisSynthSpec, write_youtube_vis
from lit_video.errors import LitVideoError
from lit_video.models import tiny_kwargs
from lit_video.models.query_vis import QueryVIS
from lit_video.sweep.spec import SweepSpec
from lit_video.sweep.study import run_sweep
from lit_video.tasks.vis import VideoInstanceSegmentation, clip_targets
from lit_video.training import run_cli

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = {mode: REPO / "experiments" / "synthetic" / f"vis_{mode}_tiny.yaml" for mode in ("offline", "online")}
# 300 videos: 200 train, 100 held-out valid ones with ground truth. Each category also has its own hue
# (`category_colours`): with the outline as the only cue, these budgets stay near AP 0.03 (README).
LEARNING_SPEC = VisSynthSpec(num_videos=300, num_frames=12, size=(64, 96), seed=0, category_colours=True)
# the held-out AP each mode's recipe must reach (measured: see the README)
LEARNING_FLOOR = {"offline": 0.5, "online": 0.5}

def tiny_task(mode: str = "offline", mask_stride: int = 4, **kwargs) -> VideoInstanceSegmentation:
    torch.manual_seed(0)
    model_kwargs = {**tiny_kwargs("query_vis"), "mask_stride": mask_stride}
    return VideoInstanceSegmentation(model="query_vis", model_kwargs=model_kwargs, mode=mode, num_classes=3,
                                     resolution=[32, 48], **kwargs)


def test_training_targets_are_one_mask_tube_and_class_per_instance():
    masks = torch.zeros(2, 3, 4, 5, dtype=torch.int64)  # (B,T,H,W)
    masks[0, 0, :2, :2] = 1
    masks[0, 2, 2:, 3:] = 2
    masks[1, 1, 1, 1] = 1
    batch = {keys.MASKS: masks, keys.CATEGORIES: torch.tensor([[2, 0, -1], [1, -1, -1]]),
             keys.NUM_OBJECTS: torch.tensor([2, 1])}
    first, second = clip_targets(batch)
    assert first["labels"].tolist() == [2, 0] and second["labels"].tolist() == [1]
    assert first["masks"].shape == (2, 3, 4, 5) and second["masks"].shape == (1, 3, 4, 5)
    assert torch.equal(first["masks"][1], masks[0] == 2) and first["masks"][0, 0].sum() == 4
    assert not first["masks"][0, 1:].any()  # absent frames are empty, not dropped


@pytest.mark.parametrize("mode, mask_stride", [("offline", 4), ("online", 4), ("offline", 2)])
def test_detections_are_the_best_scored_tubes_at_the_annotation_size(mode, mask_stride):
    task = tiny_task(mode, max_detections=5, mask_score=False, mask_stride=mask_stride).eval()
    video = torch.randn(3, 6, 32, 48)  # (C,T,h,w): half the annotation size
    detections = task.detect(video, (64, 96))
    assert len(detections) == 5
    scores = [score for _, score, _ in detections]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    for label, _, masks in detections:
        assert 0 <= label < 3 and masks.shape == (6, 64, 96) and masks.dtype == torch.bool
    # the scores are the model's class probabilities of (query, class) pairs, best first
    probs, mask_logits = task.model.segment_video(video[None], **task.association)
    assert mask_logits.shape[-2:] == (32 // mask_stride, 48 // mask_stride)
    assert torch.allclose(torch.tensor(scores), probs.flatten().topk(5).values)
    # and the masks are their tracks' masks, enlarged by the model's own stride (not cropped or shifted)
    query = int(probs.flatten().argmax()) // probs.shape[1]
    enlarged = F.interpolate(mask_logits[query][:, None], size=(64, 96), mode="bilinear")[:, 0] > 0  # (T,H,W)
    assert (detections[0][2] == enlarged).float().mean() > 0.97


def test_mask_score_ranks_tubes_by_class_probability_times_mask_confidence():
    task = tiny_task("offline", max_detections=4).eval()  # mask_score is the default
    video = torch.randn(3, 4, 32, 48)  # (C,T,h,w)
    probs, masks = task.model.segment_video(video[None], **task.association)  # (Q,C), (Q,T,h4,w4)
    confidence = masks.sigmoid().flatten(1)  # (Q,N)
    inside = confidence > 0.5
    quality = (confidence * inside).sum(1) / inside.sum(1).clamp(min=1)  # mean confidence inside each mask
    expected = (probs * quality[:, None]).flatten().topk(4)
    detections = task.detect(video, (32, 48))
    assert torch.allclose(torch.tensor([score for _, score, _ in detections]), expected.values)
    assert [label for label, _, _ in detections] == (expected.indices % probs.shape[1]).tolist()
    plain = tiny_task("offline", max_detections=4, mask_score=False).eval().detect(video, (32, 48))
    assert [score for _, score, _ in plain] != [score for _, score, _ in detections]


def test_a_mode_needs_a_registry_model_and_classes():
    with pytest.raises(LitVideoError, match="num_classes"):
        VideoInstanceSegmentation(num_classes=0)
    for bad, match in [(dict(association_momentum=1.0), "association_momentum"),
                       (dict(absent_threshold=1.5), "absent_threshold.*1.5")]:
        with pytest.raises(LitVideoError, match=match):
            VideoInstanceSegmentation(num_classes=2, **bad)
    with pytest.raises(LitVideoError, match="mode"):
        VideoInstanceSegmentation(model=torch.nn.Linear(1, 1), mode="online", num_classes=2)
    assert tiny_task("online").model.mode == "online"
    with pytest.raises(LitVideoError, match="'stm' is a vos model, not a vis model"):
        VideoInstanceSegmentation(model="stm", num_classes=2)
    with pytest.raises(LitVideoError, match="model_kwargs applies to a registry name"):
        VideoInstanceSegmentation(model=QueryVIS, model_kwargs={"mode": "online"}, num_classes=2)
    built = VideoInstanceSegmentation(model=QueryVIS, num_classes=4).model  # a class_path gets num_classes
    assert isinstance(built, QueryVIS) and built.num_classes == 4


@pytest.fixture(scope="module")
def learning_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ytvis_learning")
    write_youtube_vis(root, LEARNING_SPEC)
    return root


def recipe_args(mode: str, root: Path, out: Path) -> list[str]:
    return ["--config", str(EXPERIMENTS[mode]), "--data.init_args.root", str(root),
            "--data.init_args.num_workers", "0", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--trainer.logger", "false",
            "--trainer.default_root_dir", str(out)]


@pytest.fixture(scope="module")
def trained(learning_root, tmp_path_factory):
    """Both modes' tiny recipes as a user runs them (`lit-video fit`) on one torch thread each, validated
    only at the end here -> per mode (the CLI holding the trained model, its held-out metrics).

    Alone, the two runs go side by side (on 2 cores, 1.4x the throughput of one after the other on two
    threads). Under pytest-xdist the other worker keeps the second core busy, so a third busy process adds
    no throughput: they go one after the other. The results are the same: they depend on the thread
    count, not on what else runs."""
    outs = {mode: tmp_path_factory.mktemp(f"vis_{mode}") for mode in EXPERIMENTS}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    side_by_side = "PYTEST_XDIST_WORKER" not in os.environ
    runs = {}

    def wait(mode: str) -> None:
        assert runs[mode].wait(timeout=2400) == 0, (outs[mode] / "fit.log").read_text()[-3000:]

    for mode, out in outs.items():
        # no validation during fit (the epochs exceed max_epochs): it would only repeat the one below
        command = [sys.executable, "-c", "from lit_video.cli import main; raise SystemExit(main())", "fit",
                   *recipe_args(mode, learning_root, out), "--trainer.check_val_every_n_epoch", "1000"]
        runs[mode] = subprocess.Popen(command, env=env, stdout=(out / "fit.log").open("w"), stderr=subprocess.STDOUT)
        if not side_by_side:
            wait(mode)
    results = {}
    for mode in runs:
        wait(mode)
        cli = run_cli(recipe_args(mode, learning_root, outs[mode]), run=False)
        (checkpoint,) = outs[mode].glob("**/last.ckpt")
        cli.model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"])
        (metrics,) = cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)
        results[mode] = cli, metrics
    return results


def test_held_out_ap_after_a_ci_sized_budget_in_both_modes(trained):
    """Held-out synthetic YouTube-VIS videos after each mode's tiny recipe (2200 steps of four 3-frame clips
    offline, 3600 of four 4-frame clips online): YouTube-VIS AP over IoU 0.50:0.95, offline and online."""
    for mode, (_, metrics) in trained.items():
        print(f"\n{mode}: held-out AP {metrics['val/AP']:.3f}, AP50 {metrics['val/AP50']:.3f}, "
              f"AP75 {metrics['val/AP75']:.3f}, AR10 {metrics['val/AR10']:.3f}")
    for mode, (_, metrics) in trained.items():
        assert metrics["val/AP"] >= LEARNING_FLOOR[mode], (mode, metrics)


def test_predictions_read_back_by_evaluate_vis_and_pycocotools_give_the_in_loop_ap(trained, learning_root, tmp_path,
                                                                                    capsys):
    cli, validated = trained["online"]
    cli.datamodule.test_subset = "valid"
    path = tmp_path / "results.json"
    cli.model.predictions_path = str(path)
    cli.trainer.predict(cli.model, datamodule=cli.datamodule, return_predictions=False)
    results = json.loads(path.read_text())
    gt = json.loads((learning_root / "valid" / "instances_gt.json").read_text())
    videos = {v["id"]: v for v in gt["videos"]}
    assert {r["video_id"] for r in results} == set(videos)
    for result in results:  # compressed RLE per frame, at the video's size, as the server wants
        video = videos[result["video_id"]]
        assert set(result) == {"video_id", "category_id", "segmentations", "score"}
        assert len(result["segmentations"]) == video["length"]
        decoded = mask_utils.decode(result["segmentations"])  # (H,W,T)
        assert decoded.shape == (video["height"], video["width"], video["length"])
    out = tmp_path / "eval"
    assert main(["evaluate", "vis", "--gt", str(learning_root / "valid" / "instances_gt.json"),
                 "--pred", str(path), "--out", str(out)]) == 0
    stats = json.loads((out / "ytvis_metrics.json").read_text())
    assert any(stats[name] > 0 for name in ("AP50", "AR10", "AR100"))  # not a vacuous 0 == 0
    for name, value in stats.items():
        assert value == pytest.approx(validated[f"val/{name}"], abs=1e-6), name
    assert f"{stats['AP']:.3f}" in capsys.readouterr().out


def test_the_youtube_vis_datamodule_and_task_link_through_the_cli(ytvis_root):
    cli = run_cli(["--config", str(EXPERIMENTS["offline"]), "--data.init_args.root", str(ytvis_root),
                   "--data.init_args.clip_len", "3", "--data.init_args.resolution", "[32, 48]",
                   "--model.init_args.mode", "online", "--model.init_args.model_kwargs.num_queries", "7"],
                  run=False)
    assert isinstance(cli.datamodule, YouTubeVISDataModule)
    assert cli.model.example_input_array.shape == (1, 3, 3, 32, 48)  # clip_len and resolution linked
    assert cli.model.model.num_classes == cli.datamodule.num_classes == 6  # linked from the categories
    assert cli.model.model.mode == "online"
    assert cli.model.model.num_queries == 7  # one model_kwargs key on the command line, parsed as a number


def test_a_vis_sweep_records_ap_and_the_compute_of_each_mode_and_clip_length(tmp_path, ytvis_root, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    spec = {"experiment": str(EXPERIMENTS["offline"]), "study_name": "vis", "out_dir": str(tmp_path / "out"),
            "overrides": {"data.init_args.root": str(ytvis_root), "data.init_args.num_workers": 0,
                          "model.init_args.model_kwargs": tiny_kwargs("query_vis")},
            "search_space": {"model.init_args.mode": {"type": "categorical", "choices": ["offline", "online"]},
                             "data.init_args.clip_len": {"type": "categorical", "choices": [2, 4]}},
            "objectives": [{"metric": "val/AP_best", "direction": "maximize"}],
            "sampler": "grid", "pruner": "none",
            "budget": {"max_epochs": 1, "check_val_every_n_epoch": 1, "limit_train_batches": 1,
                       "limit_val_batches": 1, "logger": False, "callbacks": [],
                       "enable_checkpointing": False, "enable_progress_bar": False}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    study = run_sweep(SweepSpec.load(tmp_path / "spec.yaml"))
    trials = {(t.params["model.init_args.mode"], t.params["data.init_args.clip_len"]): t for t in study.trials}
    assert len(trials) == 4
    for trial in trials.values():
        assert trial.state.name == "COMPLETE" and 0 <= trial.value <= 1, trial.user_attrs.get("failure")
        assert trial.user_attrs["compute/params"] > 0 and trial.user_attrs["compute/train_clips_per_s"] > 0
    for mode in ("offline", "online"):  # twice the frames, about twice the compute
        ratio = trials[(mode, 4)].user_attrs["compute/gflops"] / trials[(mode, 2)].user_attrs["compute/gflops"]
        assert 1.6 < ratio < 2.5, (mode, ratio)
    # the same weights in both modes: the mode changes how they are used, not the parameter count
    assert trials[("offline", 2)].user_attrs["compute/params"] == trials[("online", 2)].user_attrs["compute/params"]


def test_evaluation_without_ground_truth_predicts_without_ap(ytvis_root, tmp_path):
    """The released valid split has no annotations: predict works, validation warns instead of failing."""
    datamodule = YouTubeVISDataModule(root=str(ytvis_root), num_workers=0, test_subset="valid")
    (ytvis_root / "valid" / "instances_gt.json").rename(tmp_path / "gt.json")
    try:
        task = VideoInstanceSegmentation(model="query_vis", model_kwargs=tiny_kwargs("query_vis"),
                                         num_classes=datamodule.num_classes, predictions_path=str(tmp_path / "r.json"))
        import lightning as L

        trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, default_root_dir=str(tmp_path))
        trainer.predict(task, datamodule=datamodule, return_predictions=False)
        results = json.loads((tmp_path / "r.json").read_text())
        released = json.loads((ytvis_root / "valid" / "instances.json").read_text())
        assert {r["video_id"] for r in results} == {v["id"] for v in released["videos"]}
        assert {r["category_id"] for r in results} <= {c["id"] for c in released["categories"]}
        assert np.isclose(len(results), 10 * len(released["videos"]))  # max_detections per video
    finally:
        (tmp_path / "gt.json").rename(ytvis_root / "valid" / "instances_gt.json")
