"""Training-loader throughput from video files (`storage: video`) and from their frame store (`storage: frames`).

A synthetic UCF101 copy (MPEG-4 part 2 .avi as UCF101 ships, --size, --frames per video) is written to a
temporary folder, its frames extracted once with `extract_dataset_frames` (JPEG quality 90, full size), and
the same `UCF101DataModule(...).train_dataloader()` is timed over both: one warm-up epoch starts the
persistent workers, then whole epochs until at least --clips clips. Prints clips/s of each, the ratio, and the
disk each storage takes.

    .venv/bin/python benchmarks/frame_storage.py [--size 240x320] [--frames 96] [--workers 2]
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def clips_per_second(root: Path, storage: str, args: argparse.Namespace) -> float:
    """Clips per second of the train loader over `root` read from `storage`, after one warm-up epoch."""
    from lit_video.data.formats.ucf101 import UCF101DataModule

    datamodule = UCF101DataModule(str(root), storage=storage, clip_len=args.clip_len, stride=2, resolution=112,
                                  batch_size=8, num_workers=args.workers, pin_memory=False)
    loader = datamodule.train_dataloader()
    for _ in loader:  # warm-up: starts the workers
        pass
    clips, start = 0, time.perf_counter()
    while clips < args.clips:
        for batch in loader:
            clips += batch["video"].shape[0]
    seconds = time.perf_counter() - start
    del loader, batch  # the persistent workers stop here, not at interpreter exit
    gc.collect()
    return clips / seconds


def main() -> None:
    from lit_video.cli.arguments import size
    from lit_video.data.frames import extract_dataset_frames
    from lit_video.data.synthetic import synthesize
    from lit_video.data.synthetic.spec import SynthSpec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=size, default=(240, 320), help="HEIGHTxWIDTH of the videos")
    parser.add_argument("--frames", type=int, default=96, help="frames per video")
    parser.add_argument("--clip-len", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--clips", type=int, default=240, help="clips timed per storage, at least")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "ucf101"
        synthesize("ucf101", root, SynthSpec(num_classes=4, videos_per_class=10, num_frames=args.frames,
                                             size=tuple(args.size), seed=0))
        start = time.perf_counter()
        summary = extract_dataset_frames("ucf101", root, workers=args.workers)
        extract_seconds = time.perf_counter() - start
        video_bytes, frame_bytes = folder_bytes(root / "UCF-101"), folder_bytes(summary.store)
        from_videos = clips_per_second(root, "video", args)
        from_frames = clips_per_second(root, "frames", args)
    height, width = args.size
    print(f"{summary.computed} videos of {args.frames} frames, {height}x{width}; clip_len {args.clip_len}, stride 2, "
          f"crop 112, batch 8, {args.workers} workers")
    print(f"extraction: {extract_seconds:.1f} s; disk: videos {video_bytes / 2**20:.1f} MiB, "
          f"frames {frame_bytes / 2**20:.1f} MiB ({frame_bytes / video_bytes:.1f}x)")
    print(f"storage video:  {from_videos:.1f} clips/s")
    print(f"storage frames: {from_frames:.1f} clips/s")
    print(f"frames / video: {from_frames / from_videos:.2f}x")


if __name__ == "__main__":
    main()
