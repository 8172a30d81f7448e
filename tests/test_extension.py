"""lit-video's extension points, used as a researcher outside the project would: a fifth task and a new
dataset format, one class each, written into a module of their own (no project file edited), then
`fit`, `validate`, `predict` and `profile` through the `lit-video` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from lit_video.video.encode import write_video

PLUGIN = '''
"""A clip-brightness task and a folder-per-class dataset format, outside the lit_video package."""
import json
from functools import cached_property
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lit_video.data import keys
from lit_video.data.base import VideoDataModule, register_datamodule
from lit_video.data.records import VideoRecord
from lit_video.models.registry import register_model
from lit_video.tasks.base import VideoTask


@register_datamodule("toy-folders")
class ToyFolders(VideoDataModule):
    """videos/<class>/<name>.mp4, with lists/<subset>.txt naming <class>/<name>.mp4 one a line."""

    @cached_property
    def classes(self):
        return sorted(p.name for p in (self.root / "videos").iterdir() if p.is_dir())

    def list_records(self, subset):
        lines = (self.root / "lists" / f"{subset}.txt").read_text().split()
        return [VideoRecord(path=str(self.root / "videos" / line), label=self.classes.index(line.split("/")[0]),
                            video_id=Path(line).stem) for line in lines]


@register_model("toy_pool", tiny={}, task="brightness")  # a model family of the new task's own
class PoolLinear(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.head = nn.Linear(3, num_classes)

    def forward(self, video):  # (B, C, T, H, W) -> (B, K)
        return self.head(video.mean(dim=(2, 3, 4)))


class BrightnessTask(VideoTask, monitor="acc", predictions="toy_predictions.jsonl"):
    """Tells bright videos from dark ones."""

    def __init__(self, model: str = "toy_pool", num_classes: int = 2, clip_len: int = 4,
                 resolution: int = 32, predictions_path: str | None = None):
        super().__init__(model, clip_len, resolution, None, predictions_path)
        from lit_video.models.registry import build_task_model
        self.model = build_task_model(model, "brightness", None, num_classes=num_classes,
                                      clip_len=clip_len, resolution=resolution)
        self.correct = self.seen = 0

    def forward(self, video):
        return self.model(video)

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch[keys.VIDEO]), batch[keys.LABEL])
        return self.log_training_loss(loss, len(batch[keys.LABEL]))

    def evaluation_step(self, batch, stage):
        video = batch[keys.VIDEO].flatten(0, 1)  # (B*V, C, T, H, W)
        predicted = self(video).argmax(-1)
        self.correct += int((predicted == batch[keys.LABEL].repeat_interleave(batch[keys.VIDEO].shape[1])).sum())
        self.seen += len(predicted)

    def evaluation_epoch_end(self, stage):
        values = {"acc": torch.tensor(self.correct / max(self.seen, 1))}
        self.correct = self.seen = 0
        self.log(f"{stage}/acc", values["acc"])
        return values

    def predict_step(self, batch, batch_idx):
        video = batch[keys.VIDEO]
        video = video.flatten(0, 1) if video.dim() == 6 else video
        for video_id, logits in zip(batch[keys.VIDEO_ID], self(video)):
            self.video_outputs[video_id] = int(logits.argmax())

    def on_predict_epoch_end(self):
        with open(self.predictions_file(), "w") as file:
            for video_id, label in self.video_outputs.items():
                file.write(json.dumps({"video_id": video_id, "predicted": label}) + "\\n")
'''


@pytest.fixture(scope="module")
def toy_project(tmp_path_factory):
    """The plugin module, a dataset in its format (real H.264 files) and a config naming both."""
    root = tmp_path_factory.mktemp("toy")
    (root / "toy_plugin.py").write_text(textwrap.dedent(PLUGIN))
    data = root / "data"
    rng = np.random.default_rng(0)
    lists: dict[str, list[str]] = {"train": [], "val": []}
    for label, brightness in (("dark", 40), ("bright", 210)):
        (data / "videos" / label).mkdir(parents=True)
        for index in range(4):
            frames = np.clip(rng.normal(brightness, 10, (8, 36, 36, 3)), 0, 255).astype(np.uint8)
            write_video(data / "videos" / label / f"{label}{index}.mp4", frames, fps=8)
            lists["train" if index < 3 else "val"].append(f"{label}/{label}{index}.mp4")
    lists["test"] = lists["val"]
    (data / "lists").mkdir()
    for subset, lines in lists.items():
        (data / "lists" / f"{subset}.txt").write_text("\n".join(lines) + "\n")
    config = {
        "seed_everything": 0,
        "model": {"class_path": "toy_plugin.BrightnessTask"},
        "data": {"class_path": "toy_plugin.ToyFolders",
                 "init_args": {"root": str(data), "clip_len": 4, "stride": 1, "resolution": 32, "batch_size": 2,
                               "num_workers": 0, "pin_memory": False}},
        "trainer": {"max_epochs": 2, "accelerator": "cpu", "devices": 1, "logger": False,
                    "enable_progress_bar": False, "default_root_dir": str(root / "run")},
    }
    (root / "toy.yaml").write_text(yaml.safe_dump(config))
    return root


def lit_video(project: Path, *args: str) -> subprocess.CompletedProcess:
    """Runs the `lit-video` entry point with the plugin module importable, as an installed plugin would be."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project), os.environ.get("PYTHONPATH", "")])}
    command = Path(sys.executable).with_name("lit-video")
    return subprocess.run([str(command), *args], cwd=project, env=env, capture_output=True, text=True,
                          timeout=600)


def test_a_fifth_task_and_a_new_format_run_fit_validate_predict_and_profile(toy_project):
    config = str(toy_project / "toy.yaml")

    fit = lit_video(toy_project, "fit", "--config", config)
    assert fit.returncode == 0, fit.stderr[-2000:]
    assert "best val/acc" in fit.stdout + fit.stderr  # the base's best-metric tracking ran
    checkpoints = sorted((toy_project / "run").rglob("*.ckpt"))
    assert checkpoints, "fit wrote no checkpoint"

    validate = lit_video(toy_project, "validate", "--config", config, "--ckpt_path", str(checkpoints[-1]))
    assert validate.returncode == 0, validate.stderr[-2000:]
    assert "val/acc" in validate.stdout

    predictions = toy_project / "predictions.jsonl"
    predict = lit_video(toy_project, "predict", "--config", config, "--ckpt_path", str(checkpoints[-1]),
                        "--model.init_args.predictions_path", str(predictions))
    assert predict.returncode == 0, predict.stderr[-2000:]
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert {row["video_id"] for row in rows} == {"dark3", "bright3"}
    assert all(row["predicted"] in (0, 1) for row in rows)

    profile_csv = toy_project / "profile.csv"
    profile = lit_video(toy_project, "profile", "--config", config, "--clip-lens", "4,8", "--out", str(profile_csv))
    assert profile.returncode == 0, profile.stderr[-2000:]
    rows = profile_csv.read_text().splitlines()
    assert len(rows) == 3  # a header and one row per clip length


def test_an_installed_plugin_format_is_found_by_name(toy_project):
    """A package that declares its module under the `lit_video.plugins` entry points is imported when a
    format is looked up, so `--format` takes the new name in every `data` command."""
    dist_info = toy_project / "toy_plugin-0.1.dist-info"
    dist_info.mkdir(exist_ok=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[lit_video.plugins]\ntoy = toy_plugin\n")
    try:
        check = lit_video(toy_project, "data", "check", "--format", "toy-folders", "--root", str(toy_project / "data"))
    finally:
        for path in dist_info.iterdir():
            path.unlink()
        dist_info.rmdir()
    assert check.returncode == 0, check.stderr[-2000:]
    assert "train" in check.stdout and "6" in check.stdout, check.stdout
