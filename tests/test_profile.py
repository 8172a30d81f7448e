"""`lit-video profile`: operation counts equal torchvision's published figures; the table and CSV."""

from __future__ import annotations

import csv

import pytest
import torch
from torch import nn
from torchvision.models import video as tv_video

from lit_video.cli import main
from lit_video.sweep.profile import count_flops, profile_model

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
