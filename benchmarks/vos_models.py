"""The VOS models side by side on one synthetic DAVIS dataset: held-out J&F, J, F and evaluation seconds per frame.

Trains each model with its tiny recipe (experiments/synthetic/vos_*_tiny.yaml) on the same data and budget, then
evaluates the held-out sequences from their first masks:
  OSVOS-style   the trained MaskTrack with online fine-tuning (`online_steps` on each video's first mask,
                a copy of the weights per video) before propagating
  MaskTrack     the previous mask as a fourth input channel
  flowprop      the previous mask warped along optical flow (rgb+flow), then refined
  RVOS          one-shot: ConvLSTM decoder recurrent over objects and time
  STM           space-time memory
Seconds per frame are the wall time of the evaluation pass over every held-out frame divided by their count (the
same machine, one model after the other).

    .venv/bin/python benchmarks/vos_models.py                                   # the defaults below
    .venv/bin/python benchmarks/vos_models.py --videos 66 --frames 24 --epochs 4 --flow-method farneback
    .venv/bin/python benchmarks/vos_models.py --models flowprop rvos       # some rows only (same data, seed)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RECIPES = ROOT / "experiments" / "synthetic"
# (row name, recipe); the OSVOS-style row reuses MaskTrack's training
MODELS = [
    ("MaskTrack", "vos_masktrack_tiny.yaml"),
    ("flowprop", "vos_flowprop_tiny.yaml"),
    ("RVOS (one-shot)", "vos_rvos_tiny.yaml"),
    ("STM", "vos_stm_tiny.yaml"),
]
MODEL_KEYS = {"masktrack": "MaskTrack", "flowprop": "flowprop", "rvos": "RVOS (one-shot)", "stm": "STM"}


def evaluate(cli, online_steps: int = 0) -> dict[str, float]:
    """Held-out J&F, J, F of a fitted run, and the evaluation's seconds per frame."""
    from lit_video.data import keys

    task = cli.model
    task.online_steps = online_steps
    frames = sum(int(batch[keys.ANNOTATED][0].numel()) for batch in cli.datamodule.val_dataloader())
    start = time.perf_counter()
    (scores,) = cli.trainer.validate(task, datamodule=cli.datamodule, verbose=False)
    seconds = time.perf_counter() - start
    return {"J&F": scores["val/JF"], "J": scores["val/J"], "F": scores["val/F"], "s/frame": seconds / frames}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", help="an existing synthetic DAVIS root (default: written to a temporary folder)")
    parser.add_argument("--videos", type=int, default=136, help="sequences written (every 17th held out)")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--size", default="96x128", help="frame size HxW")
    parser.add_argument("--epochs", type=int, default=8, help="training epochs of every model")
    parser.add_argument("--flow-method", default="tvl1", choices=("tvl1", "farneback"))
    parser.add_argument("--online-steps", type=int, default=20, help="OSVOS-style fine-tuning steps per video")
    parser.add_argument("--online-lr", type=float, default=1e-3)
    parser.add_argument("--workers", type=int, default=2, help="processes computing the flow")
    parser.add_argument("--models", nargs="+", choices=sorted(MODEL_KEYS), default=sorted(MODEL_KEYS),
                        help="the models to train (default all; masktrack also gives the OSVOS-style row)")
    args = parser.parse_args()

    from lit_video.data.flow import compute_dataset_flow
    from lit_video.data.synthetic.vos import VosSynthSpec, write_davis
    from lit_video.training import run_cli

    height, width = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.root) if args.root else Path(scratch) / "davis"
        if not args.root:
            write_davis(root, VosSynthSpec(num_videos=args.videos, num_frames=args.frames, size=(height, width),
                                           seed=0, valid_every=17))
        start = time.perf_counter()
        summary = compute_dataset_flow("davis", root, args.flow_method, workers=args.workers)
        print(f"flow ({args.flow_method}): {summary.computed} videos computed, {summary.skipped} present, "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        rows = []
        chosen = {MODEL_KEYS[key] for key in args.models}
        for name, recipe in MODELS:
            if name not in chosen:
                continue
            start = time.perf_counter()
            cli = run_cli(["--config", str(RECIPES / recipe), "--data.init_args.root", str(root),
                           "--data.init_args.num_workers", "0", "--data.init_args.resolution", str(min(height, width)),
                           "--data.init_args.eval_resolution", str(min(height, width)),
                           "--trainer.max_epochs", str(args.epochs), "--trainer.check_val_every_n_epoch", str(args.epochs + 1),
                           "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
                           "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                           "--compute_profile.enabled", "false", "--trainer.default_root_dir", scratch,
                           *(["--data.init_args.flow_method", args.flow_method] if "flowprop" in recipe else [])],
                          run=False)
            cli.trainer.fit(cli.model, datamodule=cli.datamodule)
            train_seconds = time.perf_counter() - start
            rows.append((name, evaluate(cli), train_seconds))
            print(name, rows[-1], flush=True)
            if name == "MaskTrack":  # OSVOS-style: the same trained weights, fine-tuned on each video's first mask
                cli.model.online_lr = args.online_lr
                rows.append((f"OSVOS-style ({args.online_steps} online steps, MaskTrack base)",
                             evaluate(cli, args.online_steps), train_seconds))
                print(rows[-1][0], rows[-1][1], flush=True)
        print(f"\n{args.videos} sequences of {args.frames} frames, {height}x{width}, every 17th held out; "
              f"{args.epochs} epochs each; flow {args.flow_method}\n")
        print("| model | J&F | J | F | eval s/frame | train s |")
        print("|---|---|---|---|---|---|")
        for name, scores, train_seconds in rows:
            print(f"| {name} | {scores['J&F']:.3f} | {scores['J']:.3f} | {scores['F']:.3f} | {scores['s/frame']:.4f} "
                  f"| {train_seconds:.0f} |")


if __name__ == "__main__":
    main()
