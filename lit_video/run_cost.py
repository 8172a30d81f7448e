"""What a fit really cost, measured while it runs, and training-compute budgets.

`ComputeProfileCallback` (the `compute_profile` section of every `lit-video` command) records, as
`compute/*` metrics logged at the end of `fit` and copied into every sweep trial:

- the model: `params`, `trainable_params`, forward `gflops` / `gmacs` per clip (a count on the meta
  device, see `lit_video.compute`);
- training, counted on the run's own first training step: `train_gflops_per_clip`, the forward AND
  backward FLOPs of that step (at the run's micro-batch, precision and device) per clip, and
  `train_dtype`, the dtype most of those FLOPs ran in (bfloat16 under `precision: bf16-mixed`, which
  shows the step ran under autocast); then `train_clips_seen` (every rank's clips), `train_pflops_total`
  (FLOPs per clip x clips seen), `train_seconds` (wall time of the training epochs, validation left out),
  `train_device_hours`, `train_clips_per_s` and `train_steps` (optimizer steps);
- the data pipeline's share of training: `data_wait_seconds`, the time the training steps waited for their
  batches (see `ComputeProfileCallback`), `data_wait_fraction` (of `train_seconds`), and `decode_path`, how
  the DataModule decodes its videos (its `decode_path`, where it has one);
- memory of the real fit, not of a probe: `peak_memory_mb`, CUDA's `max_memory_allocated` on a GPU, else
  the growth of the process's peak resident memory over training (data-loader workers are other
  processes, not counted); `memory_source` says which;
- evaluation, counted on the task's real validation path (every view and crop of a classification video,
  a VOS video's memory as `mem_every` grows it, a VIS video's windows, a captioner's beam search):
  `eval_gflops_per_video` over the first validation run (the sanity check when there is one), and, timed
  on the later runs, `eval_seconds_per_video` and, for tasks that evaluate frame by frame (VOS, VIS),
  `eval_seconds_per_frame`.

FLOPs follow PyTorch's FlopCounterMode (a multiply-add is 2 FLOPs; convolutions, matrix products and
attention are counted, element-wise operations and the optimizer's update are not).

A budget makes runs of different clip length, resolution or model train with the same compute:
`train_pflops: 2.0` sets `max_steps` after the first step to the steps whose clips cost 2 PFLOPs, and
`train_device_hours: 1` after `measure_steps` timed steps to the steps that fill one device-hour (over
all devices). The epoch limit is lifted, the learning-rate schedule follows the new length, and the fit
validates when it reaches the last step (also in the middle of an epoch). The budget and the steps derived
for it are logged as `budget/*`.
"""

from __future__ import annotations

import ctypes
import gc
import math
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.flop_counter import FlopCounterMode

from lit_video.compute import ComputeProfile, profile_model, profiled_network
from lit_video.data import keys
from lit_video.errors import LitVideoError

# `max_steps` while a budget's steps are being measured: long enough never to end the fit first, and
# finite, so that the epoch limit can be lifted and the schedule has a length.
PROVISIONAL_MAX_STEPS = 10**9


class _CountingMode(FlopCounterMode):
    """FlopCounterMode that also adds up the FLOPs by the dtype of each counted operation's output."""

    def __init__(self):
        super().__init__(display=False)
        self.flops_by_dtype: Counter[str] = Counter()

    # FlopCounterMode calls this for every operation it sees; the counted ones are those in its registry.
    def _count_flops(self, func_packet, out, args, kwargs):
        before = self.get_total_flops()
        result = super()._count_flops(func_packet, out, args, kwargs)
        counted = self.get_total_flops() - before
        if counted and isinstance(out, torch.Tensor):
            self.flops_by_dtype[str(out.dtype).removeprefix("torch.")] += counted
        return result

    def dominant_dtype(self) -> str | None:
        return self.flops_by_dtype.most_common(1)[0][0] if self.flops_by_dtype else None


def clips_in_batch(batch: Any) -> int:
    """The clips (videos) of a batch: the first dimension of its video tensor."""
    if isinstance(batch, dict) and isinstance(batch.get(keys.VIDEO), torch.Tensor):
        return int(batch[keys.VIDEO].shape[0])
    from lightning.pytorch.utilities.data import extract_batch_size

    return int(extract_batch_size(batch))


def frames_in_batch(batch: Any) -> int:
    """The frames a frame-by-frame evaluation batch holds: videos x T of its (B, C, T, H, W) video."""
    video = batch.get(keys.VIDEO) if isinstance(batch, dict) else None
    if isinstance(video, torch.Tensor) and video.dim() == 5:
        return int(video.shape[0] * video.shape[2])
    return 0


def _proc_status_kb(field: str) -> int | None:
    """A `/proc/self/status` field in kB (VmRSS, VmHWM), None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _release_freed_memory() -> None:
    """Give the memory the C allocator keeps after `free` back to the system (glibc's malloc_trim), so that
    the resident size counts live memory: without it, a process that already ran a larger fit (an earlier
    sweep trial) would start this one with its peak already resident and show no growth."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: the growth is then measured over whatever the allocator kept


def _reset_peak_rss() -> bool:
    """Reset this process's peak resident memory (VmHWM) to its current size; False where Linux does not
    allow it (then the peak is that of the whole process)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def check_budget(train_pflops: float | None, train_device_hours: float | None) -> None:
    """One budget at most, and a positive finite one."""
    for name, value in (("train_pflops", train_pflops), ("train_device_hours", train_device_hours)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not 0 < value < math.inf):
            raise LitVideoError(f"compute_profile.{name}: expected a positive number, got {value!r}")
    if train_pflops is not None and train_device_hours is not None:
        raise LitVideoError("compute_profile: give train_pflops or train_device_hours, not both")


class ComputeProfileCallback(L.Callback):
    """Measures what the fit costs (see the module docstring) and holds it to a compute budget.

    The wait for data of a training step is the time from the end of the previous step
    (`on_train_batch_end`) to the start of this one (`on_train_batch_start`): in Lightning's training loop
    that is fetching the batch from the DataLoader, `on_before_batch_transfer`, the copy to the device and
    `on_after_batch_transfer` (where a GPU decode path decodes). The first batch of an epoch waits from the
    epoch's start, so it counts the loader's start of the epoch: its workers filling their first batches
    (and starting, where they are not persistent; the first epoch's workers are started just before
    training, and only the part of their start-up that training waits for counts). Validation in the
    middle of an epoch is not counted, as in `train_seconds`. Whatever else runs between two steps is
    counted too (logging; a checkpoint written after a validation inside the epoch or every N steps).
    On a CPU the gap is wall time. On a GPU the CPU runs ahead of the device, so the wall-clock gap would
    overstate the stall: there the gap is the GPU's idle time between the two hooks, timed by CUDA events
    and read once the GPU has passed them (no synchronization per step).

    Args:
        enabled: False records nothing and applies no budget.
        train_pflops: training-compute budget in PFLOPs (1e15): `max_steps` is derived from the first step.
        train_device_hours: training budget in device-hours over all devices: `max_steps` is derived from
            the time of `measure_steps` optimizer steps.
        eval_batches: validation batches whose FLOPs are counted (in the first validation run).
        measure_steps: optimizer steps timed, after the first, before a device-hours budget is set.
    """

    def __init__(self, enabled: bool = True, train_pflops: float | None = None,
                 train_device_hours: float | None = None, eval_batches: int = 4, measure_steps: int = 3):
        check_budget(train_pflops, train_device_hours)
        for name, value in (("eval_batches", eval_batches), ("measure_steps", measure_steps)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LitVideoError(f"compute_profile.{name}: expected a positive integer, got {value!r}")
        self.enabled = enabled
        self.train_pflops = train_pflops
        self.train_device_hours = train_device_hours
        self.eval_batches = eval_batches
        self.measure_steps = measure_steps
        self.profile: ComputeProfile | None = None
        self.seconds = 0.0  # the forward count's own time: sweeps report it as overhead
        self._reset_measurements()

    def _reset_measurements(self) -> None:
        self.train_flops_per_clip: float | None = None
        self.train_dtype: str | None = None
        self.clips_seen = 0
        self.train_seconds = 0.0
        self.data_wait_seconds = 0.0
        self.decode_path: str | None = None
        self.budget_max_steps: int | None = None
        self.eval_flops = 0
        self.eval_videos_counted = 0
        self.eval_seconds = 0.0
        self.eval_videos_timed = 0
        self.eval_frames_timed = 0
        self.train_steps: int | None = None
        self.peak_memory_mb: float | None = None
        self.memory_source: str | None = None
        self.world_size = 1
        self._mode: _CountingMode | None = None
        self._eval_counting_run = False  # the validation run whose batches are counted
        self._eval_counted_batches = 0
        self._interval_start: float | None = None  # start of the training time being added up
        self._batch_start: float | None = None
        # Since when the next training batch is waited for: perf_counter seconds on a CPU, a CUDA event on a
        # GPU (each epoch's start, each step's end, each validation's end restart it).
        self._data_wait_from: float | torch.cuda.Event | None = None
        self._gpu_data_waits: deque[tuple[torch.cuda.Event, torch.cuda.Event]] = deque()  # (from, to) unread
        self._measure_from: tuple[int, float] | None = None  # (step, training seconds) after the first step
        self._baseline_rss_kb: int | None = None
        self._rss_reset = False

    def _measuring(self, trainer: L.Trainer) -> bool:
        """Whether this fit is measured: enabled, and not a fast_dev_run (a smoke test of a few batches)."""
        return self.enabled and not trainer.fast_dev_run

    @property
    def budgeted(self) -> bool:
        return self.enabled and (self.train_pflops is not None or self.train_device_hours is not None)

    # ------------------------------------------------------------------ state across a resumed fit
    def state_dict(self) -> dict[str, Any]:
        """Totals so far and the derived steps: a resumed fit adds to them and keeps its budget's length."""
        self._read_gpu_data_waits(wait=True)
        return {"train_flops_per_clip": self.train_flops_per_clip, "train_dtype": self.train_dtype,
                "clips_seen": self.clips_seen, "train_seconds": self.train_seconds,
                "data_wait_seconds": self.data_wait_seconds, "budget_max_steps": self.budget_max_steps}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.train_flops_per_clip = state_dict.get("train_flops_per_clip")
        self.train_dtype = state_dict.get("train_dtype")
        self.clips_seen = int(state_dict.get("clips_seen") or 0)
        self.train_seconds = float(state_dict.get("train_seconds") or 0.0)
        self.data_wait_seconds = float(state_dict.get("data_wait_seconds") or 0.0)
        self.budget_max_steps = state_dict.get("budget_max_steps")

    # ------------------------------------------------------------------------------- fit
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or not self.enabled:
            return
        self._reset_measurements()
        if self.budgeted and self._measuring(trainer):
            # Before the optimizer and its schedule are configured: the steps are set once measured.
            trainer.fit_loop.max_epochs = -1
            trainer.fit_loop.epoch_loop.max_steps = PROVISIONAL_MAX_STEPS

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._measuring(trainer):
            return
        self.world_size = trainer.world_size
        if self.budget_max_steps is not None:  # resumed: the budget's steps were derived before
            trainer.fit_loop.epoch_loop.max_steps = self.budget_max_steps
        example = getattr(pl_module, "example_input_array", None)
        if isinstance(example, torch.Tensor):
            _, channels, clip_len, height, width = example.shape
            start = time.perf_counter()
            network = profiled_network(pl_module)
            modes = {module: module.training for module in network.modules()}
            devices = [pl_module.device] if pl_module.device.type == "cuda" else []
            # profile_model counts in eval mode, on random clips: the run keeps its modules' modes and its
            # random numbers, so that it trains exactly as it would unmeasured
            try:
                with torch.random.fork_rng(devices=devices):
                    self.profile = profile_model(network, clip_len, (height, width), steps=0,
                                                 device=pl_module.device, channels=channels)
            finally:
                for module, training in modes.items():
                    module.training = training
            self.seconds = time.perf_counter() - start

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._measuring(trainer):
            return
        device = pl_module.device
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        else:
            gc.collect()
            _release_freed_memory()
            self._rss_reset = _reset_peak_rss()
            self._baseline_rss_kb = _proc_status_kb("VmRSS")
        self._read_decode_path(trainer)

    def _read_decode_path(self, trainer: L.Trainer) -> None:
        """The DataModule's `decode_path`, where it has one (read again as training ends: a device decode
        path names its device and any fallback to the CPU once it has decoded)."""
        decode_path = getattr(trainer.datamodule, "decode_path", None)
        if decode_path is not None:
            self.decode_path = str(decode_path)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._measuring(trainer):
            self._interval_start = time.perf_counter()
            self._start_data_wait(pl_module)

    # ------------------------------------------------------------------------ waiting for data
    def _start_data_wait(self, pl_module: L.LightningModule) -> None:
        """From now on the next training batch is waited for."""
        if pl_module.device.type == "cuda":
            self._data_wait_from = torch.cuda.Event(enable_timing=True)
            self._data_wait_from.record()  # on the current stream, behind the work queued so far
        else:
            self._data_wait_from = time.perf_counter()

    def _end_data_wait(self) -> None:
        """The training batch is there: add the time it was waited for."""
        start, self._data_wait_from = self._data_wait_from, None
        if isinstance(start, torch.cuda.Event):
            end = torch.cuda.Event(enable_timing=True)
            end.record()  # behind the batch's copy to the device and its decoding there
            self._gpu_data_waits.append((start, end))
            self._read_gpu_data_waits(wait=False)
        elif start is not None:
            self.data_wait_seconds += time.perf_counter() - start

    def _read_gpu_data_waits(self, wait: bool) -> None:
        """Add the GPU's idle gaps the GPU has passed (all of them with `wait`, waiting for their events)."""
        while self._gpu_data_waits and (wait or self._gpu_data_waits[0][1].query()):
            start, end = self._gpu_data_waits.popleft()
            end.synchronize()
            self.data_wait_seconds += start.elapsed_time(end) / 1000  # milliseconds

    def _pause_training_time(self) -> None:
        if self._interval_start is not None:
            self.train_seconds += time.perf_counter() - self._interval_start
            self._interval_start = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pause_training_time()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if not self._measuring(trainer):
            return
        self._end_data_wait()
        if self.train_flops_per_clip is None and self._mode is None:
            self._mode = _CountingMode()
            self._mode.__enter__()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not self._measuring(trainer):
            return
        clips = clips_in_batch(batch)
        mode = self._stop_counting()
        if mode is not None:
            self.train_flops_per_clip = mode.get_total_flops() / max(clips, 1)
            self.train_dtype = mode.dominant_dtype()
        self.clips_seen += clips * self.world_size
        if self.budgeted and self.budget_max_steps is None:
            self._derive_max_steps(trainer, clips)
        if self.budget_max_steps is not None and trainer.global_step >= self.budget_max_steps:
            # The loop would end at max_steps without validating in the middle of an epoch: stopping the way
            # early stopping does validates first, so the objective sees the last step.
            trainer.fit_loop.epoch_loop.max_steps = self.budget_max_steps
            trainer.should_stop = True
        self._start_data_wait(pl_module)  # last: this callback's own work is not waiting for data

    def _derive_max_steps(self, trainer: L.Trainer, clips: int) -> None:
        """Set `max_steps` from the budget once the cost of a step is known."""
        step = trainer.global_step
        if self.train_pflops is not None:
            if not self.train_flops_per_clip:  # not counted yet
                return
            clips_per_step = clips * trainer.accumulate_grad_batches * self.world_size
            steps = self.train_pflops * 1e15 / (self.train_flops_per_clip * clips_per_step)
        else:
            now = self.train_seconds + (time.perf_counter() - self._interval_start if self._interval_start else 0.0)
            if self._measure_from is None:
                if step >= 1:  # the first step (compilation, counting, allocations) is not typical
                    self._measure_from = (step, now)
                return
            first_step, first_seconds = self._measure_from
            if step - first_step < self.measure_steps:
                return
            seconds_per_step = (now - first_seconds) / (step - first_step)
            budget_seconds = self.train_device_hours * 3600 / self.world_size
            steps = step + (budget_seconds - now) / seconds_per_step
        self.budget_max_steps = max(int(round(steps)), max(step, 1))
        trainer.fit_loop.epoch_loop.max_steps = self.budget_max_steps
        budget = (f"{self.train_pflops:g} PFLOPs" if self.train_pflops is not None
                  else f"{self.train_device_hours:g} device-hours")
        rank_zero_info(f"compute budget {budget}: {self.budget_max_steps} optimizer steps")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._measuring(trainer):
            return
        self._pause_training_time()
        self._read_gpu_data_waits(wait=True)
        self._read_decode_path(trainer)
        self.train_steps = trainer.global_step
        device = pl_module.device
        if device.type == "cuda":
            self.peak_memory_mb = torch.cuda.max_memory_allocated(device) / 2**20
            self.memory_source = "cuda max_memory_allocated"
        else:
            peak, base = _proc_status_kb("VmHWM"), self._baseline_rss_kb
            if peak is not None and base is not None:
                self.peak_memory_mb = max(peak - base, 0) / 1024
                self.memory_source = ("process peak RSS growth" if self._rss_reset
                                      else "process peak RSS growth (peak since the process started)")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # a step that raised never reached its batch-end hook: left on, the counter would see every later torch
        # operation of the process (the next trial of a sweep worker), many times slower
        self._stop_counting()

    def _stop_counting(self) -> _CountingMode | None:
        """End the FLOP count of the step being counted, if any; returns its counter."""
        mode, self._mode = self._mode, None
        if mode is not None:
            mode.__exit__(None, None, None)
        return mode

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._measuring(trainer):
            return
        metrics = self.metrics()
        for logger in trainer.loggers:
            logger.log_metrics({k: v for k, v in metrics.items() if isinstance(v, int | float)},
                               step=trainer.global_step)
        rank_zero_info(self.summary_line())

    # ------------------------------------------------------------------------ evaluation
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._measuring(trainer):
            return
        self._pause_training_time()  # validation inside a training epoch is not training time
        self._eval_counting_run = self._eval_counted_batches == 0

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._eval_counting_run = False
        # `trainer.training` is False here (the stage is still validation): the fit's own validations resume it
        if self._measuring(trainer) and trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self._interval_start = time.perf_counter()
            self._start_data_wait(pl_module)  # from here: the validation was not waiting for data

    def on_validation_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                                  batch_idx: int, dataloader_idx: int = 0) -> None:
        if not self._measuring(trainer):
            return
        if self._eval_counting_run and self._eval_counted_batches < self.eval_batches:
            self._mode = _CountingMode()
            self._mode.__enter__()
        else:
            if pl_module.device.type == "cuda":
                torch.cuda.synchronize(pl_module.device)
            self._batch_start = time.perf_counter()

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if not self._measuring(trainer):
            return
        mode = self._stop_counting()
        if mode is not None:
            self.eval_flops += mode.get_total_flops()
            self.eval_videos_counted += clips_in_batch(batch)
            self._eval_counted_batches += 1
        elif self._batch_start is not None:
            if pl_module.device.type == "cuda":
                torch.cuda.synchronize(pl_module.device)
            self.eval_seconds += time.perf_counter() - self._batch_start
            self.eval_videos_timed += clips_in_batch(batch)
            if getattr(pl_module, "frame_level_evaluation", False):
                self.eval_frames_timed += frames_in_batch(batch)
            self._batch_start = None

    # --------------------------------------------------------------------------- results
    def metrics(self) -> dict[str, float | str]:
        """Everything measured so far, as `compute/*` and `budget/*` (what is not known yet is left out)."""
        out: dict[str, float | str] = {}
        if self.profile is not None:
            p = self.profile
            out.update({"compute/params": p.params, "compute/trainable_params": p.trainable_params,
                        "compute/gflops": p.gflops, "compute/gmacs": p.gmacs, "compute/clip_len": p.clip_len,
                        "compute/height": p.height, "compute/width": p.width})
        if self.train_flops_per_clip is not None:
            out["compute/train_gflops_per_clip"] = self.train_flops_per_clip / 1e9
            out["compute/train_pflops_total"] = self.train_flops_per_clip * self.clips_seen / 1e15
            if self.train_dtype:
                out["compute/train_dtype"] = self.train_dtype
        if self.clips_seen:
            out["compute/train_clips_seen"] = self.clips_seen
        if self.train_steps is not None:
            out["compute/train_steps"] = self.train_steps
        if self.train_seconds > 0:
            out["compute/train_seconds"] = self.train_seconds
            out["compute/train_device_hours"] = self.train_seconds * self.world_size / 3600
            if self.clips_seen:
                out["compute/train_clips_per_s"] = self.clips_seen / self.train_seconds
            out["compute/data_wait_seconds"] = self.data_wait_seconds
            out["compute/data_wait_fraction"] = self.data_wait_seconds / self.train_seconds
        if self.decode_path is not None:
            out["compute/decode_path"] = self.decode_path
        if self.peak_memory_mb is not None:
            out["compute/peak_memory_mb"] = self.peak_memory_mb
            out["compute/memory_source"] = self.memory_source or ""
        if self.eval_videos_counted:
            out["compute/eval_gflops_per_video"] = self.eval_flops / self.eval_videos_counted / 1e9
        if self.eval_videos_timed:
            out["compute/eval_seconds_per_video"] = self.eval_seconds / self.eval_videos_timed
        if self.eval_frames_timed:
            out["compute/eval_seconds_per_frame"] = self.eval_seconds / self.eval_frames_timed
        if self.train_pflops is not None:
            out["budget/train_pflops"] = self.train_pflops
        if self.train_device_hours is not None:
            out["budget/train_device_hours"] = self.train_device_hours
        if self.budget_max_steps is not None:
            out["budget/max_steps"] = self.budget_max_steps
        return out

    def summary_line(self) -> str:
        """One line for the log: the model, what training and evaluation cost, the wait for data, peak memory."""
        m = self.metrics()
        parts = []
        if self.profile is not None:
            p = self.profile
            parts.append(f"{p.params / 1e6:.2f} M params, {p.gflops:.3g} GFLOPs forward per "
                         f"{p.clip_len}x{p.height}x{p.width} clip")
        if "compute/train_gflops_per_clip" in m:
            parts.append(f"training {m['compute/train_gflops_per_clip']:.3g} GFLOPs per clip "
                         f"({m.get('compute/train_dtype', '?')}) x {self.clips_seen} clips = "
                         f"{m['compute/train_pflops_total']:.3g} PFLOPs")
        if "compute/train_clips_per_s" in m:
            parts.append(f"{m['compute/train_clips_per_s']:.1f} clips/s, "
                         f"{m['compute/train_device_hours']:.3g} device-hours")
        if "compute/data_wait_seconds" in m:
            parts.append(f"waited {m['compute/data_wait_seconds']:.3g} s for data "
                         f"({m['compute/data_wait_fraction']:.0%} of training)")
        if "compute/decode_path" in m:
            parts.append(f"decoding: {m['compute/decode_path']}")
        if "compute/peak_memory_mb" in m:
            parts.append(f"peak memory {m['compute/peak_memory_mb']:.0f} MB ({m['compute/memory_source']})")
        if "compute/eval_gflops_per_video" in m:
            parts.append(f"evaluation {m['compute/eval_gflops_per_video']:.3g} GFLOPs per video")
        if "compute/eval_seconds_per_video" in m:
            per_frame = m.get("compute/eval_seconds_per_frame")
            parts.append(f"{m['compute/eval_seconds_per_video']:.3g} s per video"
                         + (f" ({per_frame:.3g} s per frame)" if per_frame else ""))
        return "compute: " + "; ".join(parts) if parts else "compute: nothing measured"
