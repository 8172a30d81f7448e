"""Optical flow carries the motion: on classes that differ only by motion, the two-stream network's temporal
stream (stacked flow) learns them while its spatial stream (RGB frames) stays near chance; on classes that are
a motion AND a colour, each stream alone gets one of the two right (about half the classes) and only the fused
two-stream network gets both. Fits run through `lit-video fit` on tiny synthetic data with farneback flow."""

from __future__ import annotations

from pathlib import Path

import pytest

from lit_video.data.flow import compute_dataset_flow
from lit_video.data.synthetic import synthesize
from lit_video.data.synthetic.spec import SynthSpec
from lit_video.training import run_cli

pytestmark = pytest.mark.usefixtures("two_torch_threads")  # the figures below were measured on two threads

RECIPE = Path(__file__).resolve().parents[1] / "experiments" / "synthetic" / "two_stream_tiny.yaml"


def _dataset(root: Path, spec: SynthSpec, colours: int | None = None) -> Path:
    synthesize("ucf101", root, spec, colours=colours)
    summary = compute_dataset_flow("ucf101", root, method="farneback")
    assert summary.computed == spec.num_classes * (colours or 1) * spec.videos_per_class and not summary.failed
    return root


@pytest.fixture(scope="module")
def motion_dataset(tmp_path_factory) -> Path:
    """Four motions (right, left, up, down), shapes of random colours."""
    spec = SynthSpec(num_classes=4, videos_per_class=32, num_frames=16, size=(48, 64), seed=1)
    return _dataset(tmp_path_factory.mktemp("motion"), spec)


@pytest.fixture(scope="module")
def motion_colour_dataset(tmp_path_factory) -> Path:
    """Two motions (right, left) x two colours (orange, green): four classes."""
    spec = SynthSpec(num_classes=2, videos_per_class=48, num_frames=16, size=(48, 64), seed=1)
    return _dataset(tmp_path_factory.mktemp("motion_colour"), spec, colours=2)


def _fit(root: Path, modality: str, out: Path, epochs: int) -> float:
    cli = run_cli(["fit", "--config", str(RECIPE), "--data.init_args.root", str(root),
                   "--data.init_args.modality", modality, "--data.init_args.num_workers", "0",
                   "--trainer.max_epochs", str(epochs), "--trainer.default_root_dir", str(out),
                   "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                   "--trainer.enable_model_summary", "false", "--trainer.enable_checkpointing", "false",
                   "--compute_profile.enabled", "false"])
    assert cli.model.hparams.modality == modality  # the task followed the data
    return float(cli.trainer.callback_metrics["val/acc_video_best"])


def test_the_flow_stream_learns_motion_and_the_rgb_stream_cannot(motion_dataset, tmp_path):
    flow = _fit(motion_dataset, "flow", tmp_path / "flow", epochs=8)
    rgb = _fit(motion_dataset, "rgb", tmp_path / "rgb", epochs=8)
    chance = 1 / 4
    assert flow >= 0.9, f"the temporal (flow) stream reached only {flow:.2f} video accuracy"
    # best-over-epochs, so this bounds every epoch of the spatial stream, not just the last
    assert abs(rgb - chance) <= 0.15, f"the spatial (RGB) stream reached {rgb:.2f} (chance {chance:.2f})"


def test_only_the_fused_streams_tell_motion_and_colour(motion_colour_dataset, tmp_path):
    # ten epochs: the fused network needs both streams right at once (0.91 after eight, 0.96 after ten)
    fused = _fit(motion_colour_dataset, "rgb+flow", tmp_path / "fused", epochs=10)
    rgb = _fit(motion_colour_dataset, "rgb", tmp_path / "rgb", epochs=10)
    flow = _fit(motion_colour_dataset, "flow", tmp_path / "flow", epochs=10)
    assert fused >= 0.9, f"the two-stream network reached only {fused:.2f} video accuracy"
    # each stream alone tells one factor: about 0.5 of the four classes
    assert rgb <= 0.65, f"the spatial (RGB) stream alone reached {rgb:.2f}: the colour should not tell the motion"
    assert flow <= 0.65, f"the temporal (flow) stream alone reached {flow:.2f}: flow should not tell the colour"
