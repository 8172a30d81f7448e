"""Unsupervised VOS as a mode of the VOS task: Hungarian matching of zero-shot slots to a clip's objects,
refusals of what cannot run without given masks, evaluation with DAVIS's unsupervised protocol and palette
PNG proposals that `lit-video evaluate vos --task unsupervised` reads back with the same J&F, and YouTube-VOS
seen / unseen scores."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from cli_errors import assert_one_line_error, run_lit_video

from lit_video.cli import main
from lit_video.data import keys
from lit_video.data.formats.davis import DAVISDataModule
from lit_video.data.formats.youtube_vos import YouTubeVOSDataModule
from lit_video.data.masks import VOID, read_mask
from lit_video.data.synthetic.vos import VosSynthSpec, write_davis
from lit_video.errors import LitVideoError
from lit_video.models import tiny_kwargs
from lit_video.tasks.vos import VideoObjectSegmentation, match_slots, unsupervised_loss

STM_EXPERIMENT = "experiments/synthetic/vos_stm_tiny.yaml"


def clip_objects(seed: int = 0) -> torch.Tensor:
    """(1,T,H,W) ids of three squares that move, one of them half on void, in 3 frames of 24x24."""
    masks = torch.zeros(1, 3, 24, 24, dtype=torch.int64)
    for t in range(3):
        masks[0, t, 2 + t:8 + t, 2:8] = 1
        masks[0, t, 12:18, 4 + 2 * t:10 + 2 * t] = 2
        masks[0, t, 3:9, 14:20] = 3
    masks[0, :, 8:10, :] = VOID
    return masks


def slots_from(masks: torch.Tensor, order: list[int], num_slots: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Confident slot logits (1,S,T,H,W) and scores (1,S,T): slot order[k] holds object k+1, the rest empty."""
    logits = torch.full((1, num_slots, *masks.shape[1:]), -12.0)
    scores = torch.full((1, num_slots, masks.shape[1]), -12.0)
    for k, slot in enumerate(order):
        logits[0, slot] = torch.where(masks[0] == k + 1, 12.0, -12.0)
        scores[0, slot] = 12.0
    return logits, scores


def test_a_permutation_of_the_truth_costs_nothing_and_other_masks_do():
    masks = clip_objects()
    num_objects = torch.tensor([3])
    logits, scores = slots_from(masks, [4, 0, 2], num_slots=5)
    slots, objects = match_slots(logits[0], scores[0], masks[0], 3)
    assert dict(zip(objects.tolist(), slots.tolist(), strict=True)) == {0: 4, 1: 0, 2: 2}
    permuted = unsupervised_loss(logits, scores, masks, num_objects)
    assert permuted < 0.01
    identity = unsupervised_loss(*slots_from(masks, [0, 1, 2], num_slots=5), masks, num_objects)
    assert abs(float(identity - permuted)) < 1e-4  # the order of the slots does not matter
    # what does matter: a slot that misses its object, a right mask with a low score, an extra slot that says
    # it is an object
    shifted = logits.clone()
    shifted[0, 4] = shifted[0, 4].roll(6, dims=-1)
    doubted = scores.clone()
    doubted[0, 0] = -12.0
    extra = logits.clone()
    extra[0, 1] = torch.where(masks[0] == 0, 12.0, -12.0)
    claimed = scores.clone()
    claimed[0, 1] = 12.0
    for wrong_logits, wrong_scores in ((shifted, scores), (logits, doubted), (extra, claimed)):
        assert unsupervised_loss(wrong_logits, wrong_scores, masks, num_objects) > 0.5
    # what does not: the mask of an unmatched slot whose score says it is none (the protocol never scores it)
    assert abs(float(unsupervised_loss(extra, scores, masks, num_objects) - permuted)) < 1e-4


def test_void_is_left_out_of_the_matching_and_the_loss():
    masks = clip_objects()
    logits, scores = slots_from(masks, [1, 2, 0], num_slots=4)
    on_void = logits.clone()
    on_void[0, 3][masks[0] == VOID] = 12.0  # the empty slot "finds" something only on void pixels
    on_void[0, 1][masks[0] == VOID] = 12.0
    before = unsupervised_loss(logits, scores, masks, torch.tensor([3]))
    assert torch.isclose(unsupervised_loss(on_void, scores, masks, torch.tensor([3])), before, atol=1e-5)


def test_a_clip_without_objects_pushes_every_slot_to_empty():
    masks = torch.zeros(1, 2, 16, 16, dtype=torch.int64)
    empty = torch.full((1, 3, 2, 16, 16), -12.0), torch.full((1, 3, 2), -12.0)
    assert unsupervised_loss(*empty, masks, torch.tensor([0])) < 0.01
    assert unsupervised_loss(-empty[0], -empty[1], masks, torch.tensor([0])) > 1


def test_the_task_refuses_what_cannot_run_without_given_masks():
    with pytest.raises(LitVideoError, match="model 'stm' cannot segment without given masks.*zero-shot models: rvos"):
        VideoObjectSegmentation(model="stm", task="unsupervised", model_kwargs=tiny_kwargs("stm"))
    with pytest.raises(LitVideoError, match="model 'rvos' cannot segment without given masks"):
        VideoObjectSegmentation(model="rvos", task="unsupervised", model_kwargs={**tiny_kwargs("rvos"), "zero_shot": False})
    for kwargs, match in [(dict(task="zero-shot"), "task must be one of semi-supervised, unsupervised"),
                          (dict(task="unsupervised", online_steps=3), "online_steps"),
                          (dict(task="unsupervised", bootstrap=0.15), "bootstrap"),
                          (dict(task="unsupervised", flip_tta=True), "flip_tta")]:
        with pytest.raises(LitVideoError, match=match) as error:
            VideoObjectSegmentation(model="rvos", model_kwargs=tiny_kwargs("rvos"), **kwargs)
        assert "\n" not in str(error.value)
    task = VideoObjectSegmentation(model="rvos", task="unsupervised", model_kwargs=tiny_kwargs("rvos"))
    assert task.model.zero_shot and task.hparams.model_kwargs == tiny_kwargs("rvos")  # built for it, as given


def test_the_cli_refuses_an_unsupervised_memory_model_in_one_line(davis_root):
    result = run_lit_video("fit", "--config", STM_EXPERIMENT, "--data.init_args.root", davis_root,
                           "--model.init_args.task", "unsupervised", "--trainer.fast_dev_run", "1")
    assert_one_line_error(result, "model 'stm' cannot segment without given masks", "unsupervised", "rvos")


@pytest.fixture(scope="module")
def small_davis(tmp_path_factory) -> Path:
    """6 sequences (4 train, 2 val) of 10 frames of 48x64: whole-video evaluation in seconds."""
    root = tmp_path_factory.mktemp("small_davis")
    write_davis(root, VosSynthSpec(num_videos=6, num_frames=10, size=(48, 64), seed=1))
    return root


@pytest.fixture(scope="module")
def unsupervised_task():
    torch.manual_seed(0)
    return VideoObjectSegmentation(model="rvos", task="unsupervised", resolution=48,
                                   model_kwargs={**tiny_kwargs("rvos"), "max_objects": 5})


def test_training_steps_on_unsupervised_clips(unsupervised_task, small_davis):
    datamodule = DAVISDataModule(root=str(small_davis), annotations="unsupervised", resolution=48, clip_len=3,
                                 batch_size=2, num_workers=0)
    trainer = L.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, limit_val_batches=0)
    before = {k: v.clone() for k, v in unsupervised_task.state_dict().items()}
    trainer.fit(unsupervised_task, datamodule=datamodule)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert any(not torch.equal(before[k], v) for k, v in unsupervised_task.state_dict().items())


def test_proposals_read_back_by_evaluate_vos_unsupervised_give_the_in_loop_j_and_f(unsupervised_task, small_davis,
                                                                                     tmp_path, capsys):
    davis_root = small_davis
    datamodule = DAVISDataModule(root=str(davis_root), annotations="unsupervised", resolution=48, num_workers=0)
    with torch.no_grad():  # every slot scores as an object: an untrained model then proposes several
        unsupervised_task.model.score.bias.fill_(10.0)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    (validated,) = trainer.validate(unsupervised_task, datamodule=datamodule, verbose=False)
    assert 0 <= validated["val/JF"] <= 1 and not math.isnan(validated["val/JF"])
    unsupervised_task.predictions_path = str(tmp_path / "pred")
    try:
        trainer.predict(unsupervised_task, datamodule=datamodule, return_predictions=False)
    finally:
        unsupervised_task.predictions_path = None
    sequences = (davis_root / "ImageSets" / "2017" / "val.txt").read_text().split()
    for sequence in sequences:  # every frame, proposals 1..N (N <= the model's 5 slots) in the DAVIS layout
        frames = sorted(p.name for p in (davis_root / "Annotations_unsupervised" / "480p" / sequence).iterdir())
        assert sorted(p.name for p in (tmp_path / "pred" / sequence).iterdir()) == frames
        ids = np.unique(np.stack([read_mask(tmp_path / "pred" / sequence / f) for f in frames]))
        assert 2 <= ids.max() <= 5 and set(range(1, int(ids.max()) + 1)) <= set(ids) <= set(range(6))
    capsys.readouterr()
    assert main(["evaluate", "vos", "--task", "unsupervised", "--gt", str(davis_root), "--pred", str(tmp_path / "pred"),
                 "--set", "val", "--out", str(tmp_path / "eval")]) == 0
    with open(next((tmp_path / "eval").glob("global_results-*.csv"))) as file:
        row = next(csv.DictReader(file))
    assert float(row["J&F-Mean"]) == pytest.approx(validated["val/JF"], abs=1e-3)
    assert float(row["J-Mean"]) == pytest.approx(validated["val/J"], abs=1e-3)


def test_youtube_vos_evaluation_logs_seen_and_unseen_scores(ytvos_root):
    datamodule = YouTubeVOSDataModule(str(ytvos_root), resolution=32, num_workers=0, val_fraction=0.5)
    torch.manual_seed(0)
    task = VideoObjectSegmentation(model="stm", model_kwargs=tiny_kwargs("stm"), resolution=32)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    (validated,) = trainer.validate(task, datamodule=datamodule, verbose=False)
    seen = datamodule.seen_categories
    assert seen  # the training part's categories
    groups = [validated[f"val/{name}"] for name in ("J_seen", "J_unseen", "F_seen", "F_unseen")]
    present = [value for value in groups if not math.isnan(value)]
    assert present and validated["val/overall"] == pytest.approx(sum(present) / len(present), abs=1e-6)
    # every object is in exactly one group: the groups' object-weighted means are the overall J and F means
    categories = [c[0] for batch in datamodule.val_dataloader() for c in batch[keys.OBJECT_CATEGORIES]]
    counts = {"seen": sum(c in seen for c in categories), "unseen": sum(c not in seen for c in categories)}
    for letter in ("J", "F"):
        weighted = sum(n * validated[f"val/{letter}_{group}"] for group, n in counts.items() if n) / len(categories)
        assert weighted == pytest.approx(validated[f"val/{letter}"], abs=1e-5)
