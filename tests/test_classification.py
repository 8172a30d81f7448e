"""The classification task: video-level vs clip-level accuracy, predictions file, LR schedule."""

from __future__ import annotations

import json
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from lit_video.models import tiny_kwargs
from lit_video.tasks.classification import VideoClassifier
from lit_video.tasks.optim import OptimizerConfig, lr_factor
from lit_video.tasks.vis import VideoInstanceSegmentation
from lit_video.tasks.vos import VideoObjectSegmentation


class LogitsInPixels(nn.Module):
    """Returns the logits written into the clip's first pixels: lets a test choose every view's logits."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.unused = nn.Linear(1, 1)  # gives the optimizer something to hold

    def forward(self, video: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W) -> (B, K)
        return video[:, 0, 0, 0, : self.num_classes]


def _sample(view_logits: list[list[float]], label: int, video_id: str) -> dict:
    video = torch.zeros(len(view_logits), 3, 1, 1, 4)  # (V, C, T, H, W)
    video[:, 0, 0, 0, :2] = torch.tensor(view_logits)
    return {"video": video, "label": torch.tensor(label), "video_id": video_id}


# Video "a" (label 0): 2 of 3 views right, average right. Video "b" (label 1): 1 of 3 views right, but
# that view is confident enough to win the softmax average. Clip accuracy 3/6, video accuracy 2/2.
SAMPLES = [_sample([[2, 0], [2, 0], [-1, 0.5]], 0, "a"), _sample([[0, 5], [1, 0], [1, 0]], 1, "b")]


def _trainer(tmp_path) -> L.Trainer:
    return L.Trainer(default_root_dir=tmp_path, logger=False, enable_progress_bar=False,
                     enable_model_summary=False, accelerator="cpu")


def test_video_accuracy_averages_softmax_over_views(tmp_path):
    task = VideoClassifier(model=LogitsInPixels, num_classes=2, clip_len=1, resolution=[1, 4])
    loader = DataLoader(SAMPLES, batch_size=2)
    (result,) = _trainer(tmp_path).validate(task, dataloaders=loader, verbose=False)
    assert result["val/acc_clip"] == pytest.approx(0.5)
    assert result["val/acc_video"] == pytest.approx(1.0)
    (result,) = _trainer(tmp_path).test(task, dataloaders=loader, verbose=False)
    assert result["test/acc_clip"] == pytest.approx(0.5) and result["test/acc_video"] == pytest.approx(1.0)


def test_predict_writes_per_video_scores(tmp_path):
    path = tmp_path / "out" / "predictions.jsonl"
    task = VideoClassifier(model=LogitsInPixels, num_classes=2, clip_len=1, resolution=[1, 4], predictions_path=str(path))
    _trainer(tmp_path).predict(task, dataloaders=DataLoader(SAMPLES, batch_size=1))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["video_id"] for r in rows] == ["a", "b"]
    assert [r["predicted"] for r in rows] == [0, 1]
    assert sum(rows[1]["scores"]) == pytest.approx(1.0) and rows[1]["scores"][1] == pytest.approx(0.5099, abs=1e-3)


def test_warmup_then_cosine_schedule():
    factors = [lr_factor(step, warmup_steps=10, total_steps=40) for step in range(41)]
    assert factors[0] == pytest.approx(0.01) and factors[10] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(factors[:10], factors[1:11]))  # rising warm-up
    assert factors[25] == pytest.approx(0.5) and factors[40] == pytest.approx(0.0, abs=1e-9)
    assert lr_factor(30, 10, 40, "constant") == 1.0


def test_optimizer_groups(tmp_path):
    task = VideoClassifier(model=lambda n: nn.Linear(4, n), num_classes=2, optimizer=OptimizerConfig(name="sgd", lr=0.1))
    data = DataLoader([{"video": torch.zeros(4), "label": torch.tensor(0), "video_id": "x"}] * 4, batch_size=2)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_checkpointing=False,
                        default_root_dir=tmp_path, enable_model_summary=False)
    task.example_input_array = None
    trainer.fit(task, train_dataloaders=data)
    optimizer = trainer.optimizers[0]
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["nesterov"]
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.05, 0.0]  # biases are not decayed
    assert len(optimizer.param_groups[1]["params"]) == 1


@pytest.mark.parametrize("build", [
    lambda config: VideoObjectSegmentation(model="stm", model_kwargs=tiny_kwargs("stm"), optimizer=config),
    lambda config: VideoInstanceSegmentation(model="query_vis", model_kwargs=tiny_kwargs("query_vis"),
                                             num_classes=2, optimizer=config),
], ids=["vos", "vis"])
def test_segmentation_tasks_decay_weights_but_not_biases_and_norms(build):
    task = build(OptimizerConfig(weight_decay=0.05))
    task.trainer = SimpleNamespace(estimated_stepping_batches=10, max_epochs=1)
    decayed, kept = task.configure_optimizers()["optimizer"].param_groups
    assert decayed["weight_decay"] == 0.05 and kept["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decayed["params"]) and all(p.ndim <= 1 for p in kept["params"])
    assert len(decayed["params"]) + len(kept["params"]) == len(list(task.parameters())) and kept["params"]
