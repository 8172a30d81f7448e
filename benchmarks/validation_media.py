"""What logging validation media to W&B (`lit_video.validation_media`) adds to a tiny recipe's fit.

Fits each task's tiny recipe (experiments/synthetic/*_tiny.yaml, its own epochs and validation schedule) on
the synthetic data of the test suite, with an offline W&B run each time: with media (`--wandb.media_videos 4`,
the default) and without (`--wandb.media_videos 0`), alternating which goes first, `--repeats` times each.
Prints per recipe the median wall and CPU times of the fits without and with media and their ratios, and the
time the fits with media spent in the code that exists for them (choosing and keeping the videos' frames,
the per-video results, VIS's per-video AP, rendering, encoding and logging), as a share of the fit. The
target is under 5%. The wall-time ratio includes W&B's own work on the media (in its service process) but
also whatever else the machine runs; the share of the media code does not depend on the machine's load.
The data are smaller than the recipes' own (a few held-out videos rather than dozens), so each validation
weighs more against training than in the recipes: the ratios are upper bounds.

    .venv/bin/python benchmarks/validation_media.py                          # the four recipes, about 10 minutes
    .venv/bin/python benchmarks/validation_media.py --recipes r2plus1d_tiny --repeats 3
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RECIPES = ("r2plus1d_tiny", "vos_stm_tiny", "vis_offline_tiny", "caption_tiny")


def write_data(recipe: str, folder: Path) -> Path:
    """The recipe's dataset, as tests/conftest.py writes it, under `folder` (once)."""
    root = folder / recipe
    if root.exists():
        return root
    if recipe == "vos_stm_tiny":
        from lit_video.data.synthetic.vos import VosSynthSpec, write_davis

        write_davis(root, VosSynthSpec(num_videos=24, num_frames=40, size=(96, 128), seed=0))
    elif recipe == "vis_offline_tiny":
        from lit_video.data.synthetic.vis import VisSynthSpec, write_youtube_vis

        write_youtube_vis(root, VisSynthSpec(num_videos=9, num_frames=10, size=(64, 96), seed=1))
    elif recipe == "caption_tiny":
        from lit_video.data.synthetic.captions import CaptionSynthSpec, write_msrvtt

        write_msrvtt(root, CaptionSynthSpec(num_videos=30, num_frames=16, size=(64, 64), seed=0, captions_per_video=10))
    else:
        from lit_video.data.synthetic import synthesize
        from lit_video.data.synthetic.spec import SynthSpec

        synthesize("ucf101", root, SynthSpec(num_classes=4, videos_per_class=10, num_frames=24, size=(64, 80), seed=3))
    return root


class MediaClock:
    """Wall time spent in the functions that exist for validation media, added up."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def measure(self, owner: object, name: str) -> None:
        """Time every call of `owner.name` from now on (a class's method or a module's function)."""
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        setattr(owner, name, timed)


def fit(recipe: str, data: Path, out: Path, media_videos: int, clock: MediaClock,
        *extra: str) -> tuple[float, float, float]:
    """(wall s, CPU s of this process, s in the media code) of one `lit-video fit` of the recipe, its W&B run
    started and finished included; `extra` arguments replace the recipe's."""
    from lit_video.training import run_cli

    wall, cpu, media = time.perf_counter(), time.process_time(), clock.seconds
    run_cli(["fit", "--config", str(ROOT / "experiments" / "synthetic" / f"{recipe}.yaml"),
             "--data.init_args.root", str(data), "--data.init_args.num_workers", "0",
             "--trainer.default_root_dir", str(out), "--trainer.enable_progress_bar", "false",
             "--trainer.enable_model_summary", "false", "--wandb.media_videos", str(media_videos), *extra])
    return time.perf_counter() - wall, time.process_time() - cpu, clock.seconds - media


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=RECIPES)
    parser.add_argument("--repeats", type=int, default=2, help="fits per recipe with media and without")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the tiny models gain "
                        "nothing from more, and one thread keeps the timings steadier on a busy machine)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from lit_video.metrics import ytvis
    from lit_video.tasks.base import VideoTask
    from lit_video.validation_media import ValidationMedia

    clock = MediaClock()  # none of these calls another
    for owner, name in ((VideoTask, "keep_media"), (VideoTask, "report_videos"), (ytvis, "evaluate_per_video"),
                        (ValidationMedia, "_log")):
        clock.measure(owner, name)
    with tempfile.TemporaryDirectory(prefix="validation-media-") as scratch:
        scratch = Path(scratch)
        os.environ["WANDB_MODE"], os.environ["WANDB_SILENT"] = "offline", "true"
        for variable in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):  # staged media and artifacts
            os.environ[variable] = str(scratch / "wandb" / variable.lower())
        rows = []
        for recipe in args.recipes:
            data = write_data(recipe, scratch / "data")
            # imports and the first listing of the data, on a short fit
            fit(recipe, data, scratch / "warmup", 4, clock, "--trainer.max_epochs", "1", "--trainer.limit_train_batches",
                "2", "--trainer.limit_val_batches", "2", "--trainer.check_val_every_n_epoch", "1")
            runs: dict[int, list[tuple[float, float, float]]] = {4: [], 0: []}
            for repeat in range(args.repeats):
                for media_videos in ((4, 0) if repeat % 2 == 0 else (0, 4)):
                    runs[media_videos].append(fit(recipe, data, scratch / f"{recipe}_{media_videos}_{repeat}",
                                                  media_videos, clock))
                    wall, cpu, media = runs[media_videos][-1]
                    print(f"{recipe:<18} media_videos {media_videos}: wall {wall:6.1f} s, CPU {cpu:6.1f} s, "
                          f"media code {media:5.2f} s", flush=True)
            on, off = ([statistics.median(values) for values in zip(*runs[n], strict=True)] for n in (4, 0))
            share = statistics.median(media / wall for wall, _, media in runs[4])
            rows.append((recipe, off, on, share))
    print(f"\n{'recipe':<18} {'wall off s':>10} {'wall on s':>9} {'on/off':>7} {'CPU off s':>9} {'CPU on s':>8} "
          f"{'on/off':>7} {'media code':>10}")
    for recipe, off, on, share in rows:
        print(f"{recipe:<18} {off[0]:>10.1f} {on[0]:>9.1f} {on[0] / off[0]:>7.3f} {off[1]:>9.1f} {on[1]:>8.1f} "
              f"{on[1] / off[1]:>7.3f} {share:>10.1%}")


if __name__ == "__main__":
    main()
