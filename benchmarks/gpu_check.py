"""GPU checks of every task, run on a CUDA machine: what the CPU test suite cannot show.

  smoke    each task's tiny synthetic recipe trains through the real CLI on one GPU in fp32 ("32-true") and
           bf16 autocast ("bf16-mixed"): the loss must stay finite and validation must report its metric;
           prints training clips/s of both (the same recipe, data and batch in the same run);
  profile  `lit-video profile --device cuda` of the full-size recipes (ResNet-18 / R(2+1)D-18 / MViT
           networks at their configured clip sizes): params, GFLOPs, measured peak CUDA memory, clips/s;
  learn    the VOS and VIS tiny recipes with far more synthetic training videos and steps than a CPU can
           afford (bf16-mixed, all runs at once on the one GPU): held-out J&F and AP, to tell how much of
           the gap to the targets is compute and data.
  decode   the GPU decode path (`decoder: torchcodec-cuda`) against the CPU's: (i) frames of
           TorchCodecReader(device="cuda") against PyAV's at random, repeated and out-of-order indices of an
           H.264 MP4 (B-frames, one keyframe per video) and an MPEG-4 part 2 AVI: each must be nearer PyAV's
           frame at its index than any other frame, within a small mean error (NVDEC's colour conversion
           differs from FFmpeg's by a few levels); `cpu_fallback` where NVDEC lacks the codec; (ii) ClipTransform
           with the same draws (`views`) on the GPU and the CPU, clips and masks; (iii) a Kinetics DataModule's
           batches through `decode_on(batch, "cuda")` against the CPU path's (same seed); (iv) the line
           `decoder: auto` logs (`choose_decoder`) for that copy. Errors are in levels of 255.

Data: the VOS / VIS sets are written here by the project's generator (many processes); the UCF101 and
MSR-VTT sets (encoded videos) are read from --video-data, written beforehand with `lit-video data synth`.

    python benchmarks/gpu_check.py --out results/ --video-data data/gpu
    python benchmarks/gpu_check.py --parts learn --learn-minutes 4 --vos-videos 768 --vis-videos 1200
    python benchmarks/gpu_check.py --parts decode                         # about a minute (estimated)

GPU_CHECK_ACCELERATOR=cpu dry-runs the script without a GPU (the decode part compares on the CPU, small videos).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SYNTHETIC = ROOT / "experiments" / "synthetic"
FULL_RECIPES = ("kinetics400/r2plus1d_18.yaml", "kinetics400/mvit_v2_s.yaml", "ucf101/timesformer.yaml",
                "davis/stm_resnet18.yaml", "youtube_vis/query_vis_resnet18.yaml",
                "msrvtt/caption_transformer_resnet18.yaml")
VOS_SPEC = dict(num_frames=40, size=(96, 128), seed=0)  # the CPU learning test's sequences (tests/test_vos_task)
# and its videos (tests/test_vis_task)
VIS_SPEC = dict(num_frames=12, size=(64, 96), seed=0, category_colours=True)


def log(out: Path, line: str) -> None:
    print(line, flush=True)
    with open(out / "gpu_check.log", "a") as file:
        file.write(line + "\n")


# ------------------------------------------------------------------------------------------------ data
def _write_davis_one(args: tuple[str, int, int]):
    from lit_video.data.synthetic.vos import VosSynthSpec, write_davis_sequence

    root, num_videos, index = args
    return write_davis_sequence(Path(root), VosSynthSpec(num_videos=num_videos, **VOS_SPEC), index)


def write_vos(root: Path, num_videos: int, held_out: int, processes: int) -> None:
    """A DAVIS-layout set of `num_videos` sequences written by `processes` processes, with extra image sets:
    `val<held_out>`, the first held-out sequences (the CPU learning test's 32 when held_out is 32), and
    `train64` / `train128`, the first training ones (the first 64 are the CPU learning test's)."""
    from lit_video.data.synthetic.vos import write_davis_image_sets

    with multiprocessing.Pool(processes) as pool:
        plans = pool.map(_write_davis_one, [(str(root), num_videos, i) for i in range(num_videos)])
    write_davis_image_sets(root, plans)
    held_out_names = [p.name for p in plans if p.split == "val"][:held_out]
    (root / "ImageSets" / "2017" / f"val{held_out}.txt").write_text("".join(f"{n}\n" for n in held_out_names))
    train_names = [p.name for p in plans if p.split == "train"]
    for count in (64, 128):
        (root / "ImageSets" / "2017" / f"train{count}.txt").write_text("".join(f"{n}\n" for n in train_names[:count]))


def write_vis(root: Path, num_videos: int, valid_every: int) -> None:
    from lit_video.data.synthetic.vis import VisSynthSpec, write_youtube_vis

    write_youtube_vis(root, VisSynthSpec(num_videos=num_videos, valid_every=valid_every, **VIS_SPEC))


# ------------------------------------------------------------------------------------------------ fits
ACCELERATOR = os.environ.get("GPU_CHECK_ACCELERATOR", "gpu")  # "cpu" dry-runs the script without a GPU


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def fit_args(config: Path, root: Path, run_dir: Path, precision: str, extra: list[str]) -> list[str]:
    return ["--config", str(config), "--data.init_args.root", str(root), "--trainer.accelerator", ACCELERATOR,
            "--trainer.devices", "1", "--trainer.precision", precision, "--trainer.logger", "false",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--trainer.default_root_dir", str(run_dir), *extra]


def timed_fit(args: list[str], batch_size: int) -> dict:
    """Fit through the CLI; training clips/s over the steps after the first five (CUDA-synchronized)."""
    import lightning as L

    from lit_video.training import run_cli

    class StepTimer(L.Callback):
        def __init__(self):
            self.times, self.losses = [], []

        def on_train_batch_start(self, trainer, *_):
            _sync()
            self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, *_):
            _sync()
            self.times.append(time.perf_counter() - self.start)
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs
            self.losses.append(float(loss))

    timer = StepTimer()
    cli = run_cli(args, run=False)
    cli.trainer.callbacks.append(timer)
    started = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    fit_seconds = time.perf_counter() - started
    (metrics,) = cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)
    steady = timer.times[5:] or timer.times
    return {"steps": len(timer.times), "fit_s": fit_seconds, "clips_per_s": batch_size * len(steady) / sum(steady),
            "first_loss": timer.losses[0], "last_loss": timer.losses[-1],
            "finite": all(math.isfinite(v) for v in timer.losses),
            "val": {k: float(v) for k, v in metrics.items()}}


SMOKE = {  # recipe, data root under the data folder, batch size, the validation metric it must report
    "classification": ("r2plus1d_tiny.yaml", "ucf101", 8, "val/acc_video"),
    "captioning": ("caption_tiny.yaml", "msrvtt", 16, "val/CIDEr-D"),
    "vos": ("vos_stm_tiny.yaml", "davis", 4, "val/JF"),
    "vis-online": ("vis_online_tiny.yaml", "youtube_vis", 4, "val/AP"),
    "vis-offline": ("vis_offline_tiny.yaml", "youtube_vis", 4, "val/AP"),
}


def smoke(out: Path, work: Path, steps: int) -> None:
    log(out, f"\n== smoke: {steps} training steps per run, then validation (first batches)")
    log(out, f"{'task':<13} {'precision':<11} {'clips/s':>8} {'loss first->last':>18} {'finite':>7}  metric")
    for task, (recipe, root, batch, metric) in SMOKE.items():
        for precision in ("32-true", "bf16-mixed"):
            extra = ["--trainer.max_steps", str(steps), "--trainer.limit_val_batches", "4",
                     "--trainer.check_val_every_n_epoch", "1000", "--data.init_args.num_workers", "4"]
            try:
                r = timed_fit(fit_args(SYNTHETIC / recipe, work / "data" / root, work / "runs" / f"{task}-{precision}",
                                       precision, extra), batch)
            except Exception as err:  # one broken task must not hide the others' results
                log(out, f"{task:<13} {precision:<11} FAILED: {type(err).__name__}: {err}".splitlines()[0])
                continue
            value = r["val"].get(metric, float("nan"))
            log(out, f"{task:<13} {precision:<11} {r['clips_per_s']:>8.1f} {r['first_loss']:>8.3f} -> "
                     f"{r['last_loss']:<8.3f} {str(r['finite']):>7}  {metric} {value:.3f}")


def profile(out: Path, work: Path) -> None:
    log(out, "\n== profile: full-size recipes, lit-video profile --device cuda (fp32, batch 2)")
    for recipe in FULL_RECIPES:
        name = recipe.replace("/", "_").removesuffix(".yaml")
        proc = subprocess.run([sys.executable, "-m", "lit_video.cli", "profile", "--config",
                               str(ROOT / "experiments" / recipe), "--device", "cuda", "--steps", "5",
                               "--batch-size", "2", "--out", str(work / f"profile_{name}.csv")],
                              capture_output=True, text=True, cwd=ROOT)
        lines = (proc.stdout + proc.stderr).strip().splitlines()
        log(out, "\n".join(lines[:3]) if proc.returncode == 0 else f"{recipe}: FAILED {lines[-1:]}")


_VOS = ["--data.init_args.val_subset", "val32", "--data.init_args.clips_per_video", "4"]
LEARN = {  # run: recipe, data, metric, CLI overrides; the epochs come from --epochs
    "vos-stm": ("vos_stm_tiny.yaml", "vos", "val/JF", [*_VOS, "--data.init_args.batch_size", "16"]),
    "vis-online": ("vis_online_tiny.yaml", "vis", "val/AP", ["--data.init_args.batch_size", "16"]),
    "vis-offline": ("vis_offline_tiny.yaml", "vis", "val/AP", ["--data.init_args.batch_size", "16"]),
}


def _vos_budget_run(train_subset: str, epochs: int, batch_size: int) -> tuple:
    return ("vos_stm_tiny.yaml", "vos", "val/JF",
            [*_VOS, "--data.init_args.train_subset", train_subset, "--trainer.max_epochs", str(epochs),
             "--data.init_args.batch_size", str(batch_size)])


# Training sequences against training clips for the STM recipe (4 clips per sequence per epoch): is it the
# number of distinct sequences or the number of clips that takes held-out J&F to 0.8? trainN = the first N.
VOS_BUDGET = {
    "vos-64seq-16k-clips": _vos_budget_run("train64", 64, 16),
    "vos-128seq-16k-clips": _vos_budget_run("train128", 32, 16),
    "vos-512seq-8k-clips": _vos_budget_run("train", 4, 16),
    "vos-512seq-16k-clips": _vos_budget_run("train", 8, 16),
    "vos-512seq-8k-clips-batch4": _vos_budget_run("train", 4, 4),
}


def learn(out: Path, work: Path, minutes: float, runs: dict[str, tuple]) -> None:
    """Start every run as its own process on the one GPU, wait, and print held-out metrics."""
    log(out, f"\n== learn: bf16-mixed, all runs at once, stopped after {minutes} min at the latest")
    seconds = int(minutes * 60)
    max_time = f"00:{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"  # DD:HH:MM:SS
    procs = {}
    for run, (recipe, root, _, extra) in runs.items():
        epochs = int(extra[extra.index("--trainer.max_epochs") + 1])
        batch_size = int(extra[extra.index("--data.init_args.batch_size") + 1])
        args = fit_args(SYNTHETIC / recipe, work / "data" / root, work / "runs" / run, "bf16-mixed",
                        [*extra, "--trainer.check_val_every_n_epoch", str(max(1, epochs // 4)),
                         "--trainer.max_time", max_time, "--data.init_args.num_workers", "2"])
        script = ("import json, sys; from benchmarks.gpu_check import timed_fit; "
                  f"print('RESULT', json.dumps(timed_fit({args!r}, {batch_size})))")
        procs[run] = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for run, proc in procs.items():
        output = proc.communicate()[0]
        (work / f"learn_{run}.log").write_text(output)
        results = [line for line in output.splitlines() if line.startswith("RESULT ")]
        if not results:
            log(out, f"{run}: FAILED: {output.strip().splitlines()[-1:]}")
            continue
        r = json.loads(results[-1][len("RESULT "):])
        metric = runs[run][2]
        best = {k: round(v, 3) for k, v in r["val"].items() if k in (metric, f"{metric}_best", "val/AP50")}
        log(out, f"{run}: {r['steps']} steps in {r['fit_s']:.0f} s ({r['clips_per_s']:.0f} clips/s), "
                 f"loss {r['first_loss']:.3f} -> {r['last_loss']:.3f}; held-out {best}")


# ------------------------------------------------------------------------------------------------ decode
DECODE_DEVICE = "cuda" if ACCELERATOR == "gpu" else "cpu"
MAX_MEAN_LEVELS = 3.0  # mean |GPU - CPU| of a decoded frame, in levels of 255 (NVDEC's colour conversion)
MAX_TRANSFORM_LEVELS = 2.0  # the same clip transformed on both devices: resampling differences only
# Frame size and count of the decode part's videos, and of its Kinetics copy (videos per class, frames);
# the dry run's are small.
DECODE_SIZES = dict(frames=((240, 320), 150), kinetics=(6, 100)) if ACCELERATOR == "gpu" else \
    dict(frames=((64, 96), 48), kinetics=(3, 40))


def decode_videos(folder: Path) -> dict[str, Path]:
    """An H.264 MP4 (B-frames, one keyframe for all its frames) and an MPEG-4 part 2 AVI (a keyframe every 12
    frames, as UCF101's) of fast-moving shapes: consecutive frames differ in many pixels."""
    from lit_video.data.synthetic.spec import MOTIONS, SynthSpec
    from lit_video.video.encode import write_video

    size, count = DECODE_SIZES["frames"]
    dash = [m.name for m in MOTIONS].index("DashRight")
    frames = SynthSpec(num_classes=dash + 1, num_frames=count, size=size, seed=1).render(dash, 0)  # (T,H,W,3)
    folder.mkdir(parents=True, exist_ok=True)
    videos = {"mp4 (H.264, B-frames)": folder / "frames.mp4", "avi (MPEG-4 part 2)": folder / "frames.avi"}
    write_video(videos["mp4 (H.264, B-frames)"], frames, fps=25, gop_size=count, max_b_frames=2, quality="normal")
    write_video(videos["avi (MPEG-4 part 2)"], frames, fps=25, gop_size=12, quality="normal")
    return videos


def levels(video, std):
    """Normalized clips (..., C, T, H, W) -> the [0, 255] scale (the normalization undone, up to its mean)."""
    import torch

    return video.float() * torch.tensor(std, device=video.device).view(-1, 1, 1, 1) * 255


def compare_frames(path: Path) -> tuple[str, bool]:
    """TorchCodecReader on DECODE_DEVICE against PyAV at random, repeated and out-of-order indices of the video
    at `path` -> (what was measured, whether it passed)."""
    import numpy as np
    import torch

    from lit_video.video.decode import TorchCodecReader, open_video

    with open_video(path, "pyav") as reader:
        every = reader.get_frames(np.arange(reader.num_frames))  # (N,H,W,C) PyAV's frames, in order
    count = len(every)
    wanted = np.random.default_rng(0).integers(0, count, 12)
    wanted = np.concatenate([wanted, wanted[:4], np.sort(wanted)[::-1][:6], [count - 1, 0]])  # repeats, backwards
    with TorchCodecReader(path, device=DECODE_DEVICE) as reader:
        got = reader.get_frames(wanted)  # (len(wanted),H,W,C) uint8 on DECODE_DEVICE
        fallback = reader.cpu_fallback if DECODE_DEVICE == "cuda" else None
    reference = every.to(got.device).float()
    rows, index = torch.arange(len(wanted), device=got.device), torch.as_tensor(wanted, device=got.device)
    # each decoded frame's mean |difference| to every PyAV frame, in levels: (len(wanted), N)
    distance = torch.stack([(frame.float() - reference).abs().mean(dim=(1, 2, 3)) for frame in got])
    own = distance[rows, index]
    others = distance.clone()
    others[rows, index] = float("inf")
    identified = bool((own < others.min(dim=1).values).all())
    worst = (got.float() - reference[index]).abs().max().item()
    line = (f"{len(wanted)} indices (random, repeated, backwards) of {count} on {DECODE_DEVICE}: "
            f"{'each nearest its own index' if identified else 'SOME NEARER ANOTHER FRAME'}, mean error "
            f"{own.mean().item():.2f} (worst frame {own.max().item():.2f}), max pixel error {worst:.0f}, "
            f"nearest other frame {others.min().item():.2f}; cpu_fallback: {fallback or 'none'}")
    return line, identified and own.max().item() <= MAX_MEAN_LEVELS


def check_frames(out: Path, videos: dict[str, Path]) -> bool:
    """(i) TorchCodecReader on DECODE_DEVICE against PyAV, for each video."""
    ok = True
    for name, path in videos.items():
        try:
            line, passed = compare_frames(path)
        except Exception as err:  # e.g. a torchcodec without this GPU's decoder: the other checks still run
            line, passed = f"{type(err).__name__}: {err}".splitlines()[0][:200], False
        ok &= passed
        log(out, f"frames {name}: {line} -> {'PASS' if passed else 'FAIL'}")
    return ok


def check_transforms(out: Path, videos: dict[str, Path]) -> bool:
    """(ii) ClipTransform with the same draws on DECODE_DEVICE and on the CPU: clips and integer masks."""
    import torch

    from lit_video.video.decode import open_video
    from lit_video.video.transforms import ClipTransform

    with open_video(videos["mp4 (H.264, B-frames)"], "pyav") as reader:
        frames = reader.get_frames(list(range(16)))  # (T,H,W,C) uint8
    masks = (frames.int().sum(dim=-1) // 192).long()  # (T,H,W) integer ids 0..3 from brightness
    ok = True
    transforms = {"train (scale jitter, crop, flip)": ClipTransform(112, train=True, short_side_range=(128, 160)),
                  "eval (3 crops, 2 clips)": ClipTransform(112, train=False, num_crops=3)}
    for name, transform in transforms.items():
        clips = frames if transform.train else torch.stack([frames[:8], frames[8:]])  # (T,..) or (N,T,..)
        clip_masks = masks if transform.train else torch.stack([masks[:8], masks[8:]])
        worst, masks_equal = 0.0, True
        for seed in range(4):
            torch.manual_seed(seed)
            views = transform.draw_views(1 if transform.train else 2, *frames.shape[1:3])
            cpu_video, cpu_masks = transform(clips, masks=clip_masks, views=views)
            video, device_masks = transform(clips.to(DECODE_DEVICE), masks=clip_masks.to(DECODE_DEVICE), views=views)
            worst = max(worst, (levels(video, transform.std).cpu() - levels(cpu_video, transform.std)).abs().max().item())
            masks_equal &= torch.equal(device_masks.cpu(), cpu_masks)
        passed = worst <= MAX_TRANSFORM_LEVELS and masks_equal
        ok &= passed
        log(out, f"transform {name} on {DECODE_DEVICE} vs cpu, 4 draws: max error {worst:.2f} levels, masks "
                 f"{'identical' if masks_equal else 'DIFFER'} -> {'PASS' if passed else 'FAIL'}")
    return ok


def check_datamodule(out: Path, root: Path) -> bool:
    """(iii) a Kinetics DataModule's training and validation batches decoded through `decode_on` on
    DECODE_DEVICE against the CPU path's (same seed); (iv) the line `decoder: auto` logs for this copy."""
    import torch
    from lightning.fabric.utilities.apply_func import move_data_to_device
    from torch.utils.data import default_collate

    from lit_video.data import keys
    from lit_video.data.device_decode import choose_decoder
    from lit_video.data.formats.kinetics import KineticsDataModule

    settings = dict(root=str(root), clip_len=8, stride=2, resolution=112, batch_size=4, num_workers=0, num_clips=2)
    ok = True
    for subset in ("train", "val"):
        batches = {}
        for decoder in ("torchcodec", "torchcodec-cuda"):
            datamodule = KineticsDataModule(decoder=decoder, **settings)
            datamodule.setup("fit")
            torch.manual_seed(0)
            batch = next(iter(getattr(datamodule, f"{subset}_dataloader")()))
            if decoder == "torchcodec-cuda":
                batch = datamodule.decode_on(move_data_to_device(batch, DECODE_DEVICE), DECODE_DEVICE)
            batches[decoder] = batch
        cpu, device = batches["torchcodec"], batches["torchcodec-cuda"]
        same_plan = torch.equal(cpu[keys.FRAME_INDICES], device[keys.FRAME_INDICES].cpu()) and \
            torch.equal(cpu[keys.LABEL], device[keys.LABEL].cpu())
        std = datamodule.clip_transform(subset == "train").std
        error = (levels(device[keys.VIDEO], std).cpu() - levels(cpu[keys.VIDEO], std)).abs()
        passed = same_plan and tuple(device[keys.VIDEO].shape) == tuple(cpu[keys.VIDEO].shape) and \
            error.mean().item() <= MAX_MEAN_LEVELS
        ok &= passed
        log(out, f"datamodule {subset} batch {tuple(cpu[keys.VIDEO].shape)}: decode_on({DECODE_DEVICE!r}) vs the "
                 f"CPU path: frame indices and labels {'identical' if same_plan else 'DIFFER'}, mean error "
                 f"{error.mean().item():.2f}, max {error.max().item():.1f} levels -> {'PASS' if passed else 'FAIL'}")
    datamodule = KineticsDataModule(decoder="torchcodec", **settings)
    datamodule.setup("fit")
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    choice = choose_decoder(datamodule.datasets["train"], datamodule.decoder, torch.device(DECODE_DEVICE), workers,
                            decode=datamodule.decode_on, collate=datamodule.collate_fn() or default_collate,
                            batch_size=datamodule.batch_size)
    log(out, f"choose_decoder ({workers} workers would decode): {choice.reason}")
    return ok


def decode(out: Path, work: Path) -> bool:
    """The decode part: every check runs; False when any failed."""
    from lit_video.data.device_decode import cuda_decode_problem
    from lit_video.data.synthetic import synthesize
    from lit_video.data.synthetic.spec import SynthSpec

    log(out, f"\n== decode: the GPU decode path against the CPU's, on {DECODE_DEVICE} (errors in levels of 255)")
    if DECODE_DEVICE == "cuda":
        problem = cuda_decode_problem()
        log(out, f"torchcodec-cuda: {'decodes on this GPU' if problem is None else problem}")
    videos = decode_videos(work / "decode")
    per_class, frames = DECODE_SIZES["kinetics"]
    root = work / "decode" / "kinetics"
    if not (root / "train.csv").is_file():
        synthesize("kinetics", root, SynthSpec(num_classes=3, videos_per_class=per_class, num_frames=frames,
                                               size=DECODE_SIZES["frames"][0], seed=0))
    ok = True
    for check, argument in ((check_frames, videos), (check_transforms, videos), (check_datamodule, root)):
        try:
            ok &= check(out, argument)
        except Exception as err:  # one broken check must not hide the others' results
            log(out, f"{check.__name__} FAILED: {type(err).__name__}: {err}".splitlines()[0][:240])
            ok = False
    log(out, f"decode: {'PASS' if ok else 'FAIL'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/gpu")
    parser.add_argument("--parts", default="smoke,profile,learn", help="any of smoke, profile, learn, "
                                                                       "vos-budget, decode")
    parser.add_argument("--video-data", default="data/gpu", help="holds ucf101/ and msrvtt/ (lit-video data synth)")
    parser.add_argument("--work", default="/tmp/gpu_check", help="where the VOS / VIS sets and the runs are written")
    parser.add_argument("--smoke-steps", type=int, default=20)
    parser.add_argument("--learn-minutes", type=float, default=4)
    parser.add_argument("--vos-videos", type=int, default=768, help="1 in 3 held out; 32 of them evaluated")
    parser.add_argument("--vis-videos", type=int, default=1200, help="1 in 25 held out")
    parser.add_argument("--epochs", default="vos-stm=12,vis-online=12,vis-offline=12")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available() and ACCELERATOR == "gpu":
        raise SystemExit("gpu_check needs a CUDA device")
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    parts = set(args.parts.split(","))
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    log(out, f"{device}, torch {torch.__version__}, {os.cpu_count()} CPUs")
    data = work / "data"
    started = time.perf_counter()
    writers = []
    if "smoke" in parts:  # small VOS / VIS sets for the smoke runs; the videos come from --video-data
        for name in ("ucf101", "msrvtt"):
            (data / name).parent.mkdir(parents=True, exist_ok=True)
            if not (data / name).exists():
                (data / name).symlink_to(Path(args.video_data).resolve() / name)
        writers.append(multiprocessing.Process(target=write_vos, args=(data / "davis", 24, 8, 4)))
        writers.append(multiprocessing.Process(target=write_vis, args=(data / "youtube_vis", 36, 3)))
    if parts & {"learn", "vos-budget"}:
        writers.append(multiprocessing.Process(target=write_vos, args=(data / "vos", args.vos_videos, 32, 12)))
    if "learn" in parts:
        writers.append(multiprocessing.Process(target=write_vis, args=(data / "vis", args.vis_videos, 25)))
    for writer in writers:
        writer.start()
    for writer in writers[:2] if "smoke" in parts else []:
        writer.join()
    if "smoke" in parts:
        log(out, f"smoke data written in {time.perf_counter() - started:.0f} s")
        smoke(out, work, args.smoke_steps)
    for writer in writers:
        writer.join()
    log(out, f"all data written after {time.perf_counter() - started:.0f} s")
    if "learn" in parts:
        epochs = dict(item.split("=") for item in args.epochs.split(","))
        learn(out, work, args.learn_minutes,
              {run: (*spec[:3], [*spec[3], "--trainer.max_epochs", epochs[run]]) for run, spec in LEARN.items()})
    if "vos-budget" in parts:
        learn(out, work, args.learn_minutes, VOS_BUDGET)
    if "profile" in parts:
        profile(out, work)
    decoded = decode(out, work) if "decode" in parts else True
    log(out, f"done in {time.perf_counter() - started:.0f} s")
    return 0 if decoded else 1


if __name__ == "__main__":
    sys.exit(main())
