"""The two-stream ablation of docs/motion.md: the tiny two-stream network (experiments/synthetic/two_stream_tiny.yaml)
trained on RGB alone, flow alone and both, on the synthetic motion-only and motion x colour datasets, with the
training compute each fit measured.

    python benchmarks/two_stream_ablation.py [--out outputs/two_stream_ablation] [--epochs 8]

Writes both datasets (and their farneback flow) under --out once, then prints one table row per fit: the best
video accuracy on the test list and the training PFLOPs the compute profile counted.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from lit_video.data.flow import compute_dataset_flow
from lit_video.data.synthetic import synthesize
from lit_video.data.synthetic.spec import SynthSpec
from lit_video.run_cost import ComputeProfileCallback
from lit_video.training import run_cli

RECIPE = Path(__file__).resolve().parents[1] / "experiments" / "synthetic" / "two_stream_tiny.yaml"
# The datasets of tests/test_learning_motion.py: 4 motions; 2 motions x 2 colours.
DATASETS = {
    "motion": (SynthSpec(num_classes=4, videos_per_class=32, num_frames=16, size=(48, 64), seed=1), None),
    "motion x colour": (SynthSpec(num_classes=2, videos_per_class=48, num_frames=16, size=(48, 64), seed=1), 2),
}
# (modality, fusion) per row; the average fusion is the paper's, the learned one the recipe's
RUNS = [("rgb", "learned"), ("flow", "learned"), ("rgb+flow", "learned"), ("rgb+flow", "average")]


def dataset(out: Path, name: str) -> Path:
    """The dataset `name` with its farneback flow under `out` (written once)."""
    spec, colours = DATASETS[name]
    root = out / name.replace(" ", "_")
    if not (root / "flow" / "farneback" / "flow.json").is_file():
        synthesize("ucf101", root, spec, colours=colours)
        compute_dataset_flow("ucf101", root, method="farneback")
    return root


def fit(root: Path, modality: str, fusion: str, epochs: int, out: Path) -> tuple[float, float]:
    """(best video accuracy, training PFLOPs) of one fit of the recipe."""
    cli = run_cli(["fit", "--config", str(RECIPE), "--data.init_args.root", str(root),
                   "--data.init_args.modality", modality, "--data.init_args.num_workers", "0",
                   "--model.init_args.model_kwargs.fusion", fusion, "--trainer.max_epochs", str(epochs),
                   "--trainer.default_root_dir", str(out), "--trainer.logger", "false",
                   "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                   "--trainer.enable_checkpointing", "false"])
    profile = next(c for c in cli.trainer.callbacks if isinstance(c, ComputeProfileCallback))
    pflops = float(profile.metrics().get("compute/train_pflops_total", float("nan")))
    return float(cli.trainer.callback_metrics["val/acc_video_best"]), pflops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/two_stream_ablation"))
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    rows = []
    for name in DATASETS:
        root = dataset(args.out, name)
        for modality, fusion in RUNS:
            start = time.perf_counter()
            accuracy, pflops = fit(root, modality, fusion, args.epochs, args.out / "runs")
            rows.append((name, modality, fusion if modality == "rgb+flow" else "-", accuracy, pflops,
                         time.perf_counter() - start))
    print("| data | modality | fusion | val/acc_video_best | train PFLOPs | seconds |")
    print("|---|---|---|---|---|---|")
    for name, modality, fusion, accuracy, pflops, seconds in rows:
        print(f"| {name} | {modality} | {fusion} | {accuracy:.3f} | {pflops:.2e} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
