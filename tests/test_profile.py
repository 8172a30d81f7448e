"""`lit-video profile`: operation counts equal torchvision's published figures; the table and CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models import video as tv_video

from lit_video.cli import main
from lit_video.compute import count_flops, profile_model

SYNTHETIC = Path(__file__).resolve().parents[1] / "experiments" / "synthetic"

# torchvision publishes GMACs (under the name GFLOPS) in each weight's meta["_ops"].
PUBLISHED = [
    ("r3d_18", tv_video.R3D_18_Weights.KINETICS400_V1, 16, 112),
    ("mc3_18", tv_video.MC3_18_Weights.KINETICS400_V1, 16, 112),
    ("r2plus1d_18", tv_video.R2Plus1D_18_Weights.KINETICS400_V1, 16, 112),
    ("mvit_v2_s", tv_video.MViT_V2_S_Weights.KINETICS400_V1, 16, 224),
]


@pytest.mark.parametrize("name, weights, clip_len, resolution", PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_profile_command_matches_torchvision_macs(tmp_path, capsys, name, weights, clip_len, resolution):
    config = tmp_path / f"{name}.yaml"
    config.write_text(
        "model:\n  class_path: lit_video.tasks.classification.VideoClassifier\n"
        f"  init_args:\n    model: {name}\n    model_kwargs: {{pretrained: true}}\n"  # weights are not needed
    )
    out = tmp_path / "profile.csv"
    assert main(["profile", "--config", str(config), "--clip-lens", str(clip_len), "--resolutions", str(resolution),
                 "--steps", "0", "--device", "cpu", "--out", str(out)]) == 0
    (row,) = list(csv.DictReader(out.open()))
    assert float(row["gmacs"]) == pytest.approx(weights.meta["_ops"], rel=0.01)
    assert float(row["gflops"]) == pytest.approx(2 * float(row["gmacs"]))
    assert int(row["params"]) == pytest.approx(weights.meta["num_params"], rel=0.01)  # head: 400 classes
    assert "GMACs" in capsys.readouterr().out


def test_flops_of_a_known_convolution():
    conv = nn.Sequential(nn.Conv3d(3, 8, kernel_size=3, padding=1, bias=False), nn.Flatten(), nn.LazyLinear(4))
    clip = torch.zeros(1, 3, 4, 8, 8)
    conv(clip)  # materialise the lazy layer
    macs = 8 * 4 * 8 * 8 * (3 * 27) + 8 * 4 * 8 * 8 * 4
    assert count_flops(conv, clip) == 2 * macs


def test_profile_measures_throughput_and_memory():
    model = nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(4, 3))
    small = profile_model(model, clip_len=4, resolution=16, batch_size=2, steps=2)
    large = profile_model(model, clip_len=8, resolution=32, batch_size=2, steps=2)
    assert small.params == large.params == 3 * 4 * 27 + 4 + 4 * 3 + 3
    assert large.gflops == pytest.approx(8 * small.gflops, rel=0.05)  # 8x the voxels
    assert small.train_clips_per_s > 0 and small.infer_clips_per_s > 0
    assert large.peak_memory_mb > small.peak_memory_mb and small.memory_source == "estimate"


def profile_rows(tmp_path: Path, config: Path, *flags: str) -> list[dict]:
    out = tmp_path / f"{config.stem}{len(list(tmp_path.iterdir()))}.csv"
    assert main(["profile", "--config", str(config), "--device", "cpu", "--out", str(out), *flags]) == 0
    return list(csv.DictReader(out.open()))


@pytest.mark.parametrize("experiment", ["vos_stm_tiny", "vos_masktrack_tiny", "vis_offline_tiny", "vis_online_tiny",
                                        "caption_tiny"])
def test_profile_command_profiles_the_other_tasks_without_their_data(tmp_path, experiment):
    """VOS, VIS and captioning configs take their classes / vocabulary from a DataModule; profile stands in
    for it and measures the network the fit-time compute profile measures."""
    short, long = profile_rows(tmp_path, SYNTHETIC / f"{experiment}.yaml", "--clip-lens", "2,4", "--resolutions", "32",
                               "--steps", "1", "--num-classes", "5", "--vocab-size", "50")
    assert int(short["params"]) == int(long["params"]) > 0
    assert float(long["gflops"]) > 1.4 * float(short["gflops"]) > 0  # more frames, more compute
    assert float(short["train_clips_per_s"]) > 0 and float(short["infer_clips_per_s"]) > 0


def test_profile_command_sizes_the_heads_from_num_classes_and_vocab_size(tmp_path):
    def params(experiment: str, *flags: str) -> int:
        (row,) = profile_rows(tmp_path, SYNTHETIC / f"{experiment}.yaml", "--steps", "0", *flags)
        return int(row["params"])

    # vis_online_tiny's hidden_dim: the class head and the dense semantic head have hidden + 1 weights per class
    hidden = 64
    grown = params("vis_online_tiny", "--num-classes", "9") - params("vis_online_tiny", "--num-classes", "5")
    assert grown == 4 * 2 * (hidden + 1)
    assert params("caption_tiny", "--vocab-size", "80") > params("caption_tiny", "--vocab-size", "50")


def test_profile_command_names_a_class_path_it_cannot_import(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("model:\n  class_path: lit_video.tasks.nowhere.Task\n  init_args: {model: stm}\n")
    assert main(["profile", "--config", str(config), "--steps", "0"]) != 0
    (error,) = capsys.readouterr().err.strip().splitlines()  # one line, naming the file and the class
    assert "bad.yaml" in error and "lit_video.tasks.nowhere.Task cannot be imported" in error
