"""`FitMicroBatch`: the largest micro-batch that fits the device, with gradients accumulated to the
requested batch.

A configuration whose batch runs out of memory often fits with a smaller micro-batch and gradient
accumulation, which trains on the same effective batch. At the start of `fit` the callback runs real
training steps (forward and backward, no optimizer update) on real clips, first at the whole batch, then at
smaller divisors of it, keeps the largest that fits, and sets the DataModule's `batch_size` and the trainer's
`accumulate_grad_batches` so that micro-batch x accumulation equals the requested batch. Usable from a
fit config:

    trainer:
      callbacks: [{class_path: lit_video.micro_batch.FitMicroBatch}]
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from contextlib import contextmanager

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, GradientAccumulationScheduler
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader
from torchmetrics import Metric

PROBE_TOO_SMALL = "one clip does not fit"


def is_out_of_memory(err: BaseException) -> bool:
    """True for CUDA's OutOfMemoryError and the RuntimeErrors other allocators (CPU, MPS) raise when memory
    runs out."""
    return isinstance(err, torch.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and "out of memory" in str(err).lower())


def divisors_descending(number: int) -> list[int]:
    """The divisors of `number` (>= 1), largest first: the micro-batch sizes that split it evenly."""
    return [d for d in range(number, 0, -1) if number % d == 0]


class FitMicroBatch(Callback):
    """The largest micro-batch that fits, with gradients accumulated to the requested batch.

    The requested (per-device) batch is the DataModule's `batch_size` times the trainer's
    `accumulate_grad_batches`. The micro-batch is the largest divisor of `batch_size` for which one real
    training step fits on every rank; `accumulate_grad_batches` grows by the same factor that the
    batch shrinks. An integer `limit_train_batches` or `val_check_interval` (counted in batches) grows by
    that factor too, so that an epoch still sees the same clips. Evaluation loaders use the micro-batch
    as well (the DataModule has one batch size).

    After `fit` has started, `record` holds `batch/requested`, `batch/micro`,
    `batch/accumulate_grad_batches`, `batch/effective` (per device: micro x accumulation),
    `batch/world_size` and `batch/tried` (e.g. "8:oom 2:fits 4:oom", in the order tried; under DDP "oom" when
    any rank ran out of memory).

    Args:
        enabled: False leaves the batch as configured.

    Raises:
        torch.OutOfMemoryError: from `fit`, when not even one clip fits ("one clip does not fit: ...").
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.record: dict[str, int | str] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.record = {}
        datamodule = trainer.datamodule
        batch = getattr(datamodule, "batch_size", None)
        if not self.enabled or isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            return
        if not pl_module.automatic_optimization:
            rank_zero_info("micro-batch: left at the configured batch (manual optimization accumulates nothing)")
            return
        if any(isinstance(c, GradientAccumulationScheduler) for c in trainer.callbacks):
            rank_zero_info("micro-batch: left at the configured batch (a GradientAccumulationScheduler sets the "
                           "accumulation)")
            return
        accumulate = int(trainer.accumulate_grad_batches)
        loader = datamodule.train_dataloader()  # only the object: no worker starts before it is iterated
        micro, tried, last_oom = self._search(trainer, pl_module, loader.dataset, loader.collate_fn, batch)
        if micro == 0:
            raise torch.OutOfMemoryError(f"{PROBE_TOO_SMALL}: a training step of one clip ran out of memory "
                                         f"(tried {_tried_text(tried)}): {last_oom}")
        factor = batch // micro
        if factor > 1:
            datamodule.batch_size = micro
            trainer.accumulate_grad_batches = accumulate * factor
            _scale_batch_counts(trainer, factor)
            _drop_built_train_loader(trainer)
        self.record = {
            "batch/requested": batch * accumulate,
            "batch/micro": micro,
            "batch/accumulate_grad_batches": accumulate * factor,
            "batch/effective": micro * accumulate * factor,
            "batch/world_size": trainer.world_size,
            "batch/tried": _tried_text(tried),
        }
        ran_out = [str(size) for size, fits in sorted(tried, reverse=True) if not fits]
        why = f"{_and_join(ran_out)} ran out of memory" if ran_out else "the whole batch fits"
        rank_zero_info(f"micro-batch: {micro} clips x {accumulate * factor} accumulated = "
                       f"{micro * accumulate * factor} ({why})")

    def _search(self, trainer: L.Trainer, pl_module: L.LightningModule, dataset, collate_fn,
                batch: int) -> tuple[int, list[tuple[int, bool]], str]:
        """(largest fitting micro-batch or 0, [(size, fits)] in the order tried, the last OOM message).

        The full batch is tried first (the usual case: it fits, one probe). After it runs out of memory the
        remaining divisors are binary-searched: memory grows with the batch, so "fits" is monotone in the
        size, and O(log n) probes replace one per divisor; each probe is a full training step of a video
        model, seconds long. Every rank takes the same decision after each probe (the minimum over ranks),
        so all ranks probe the same sizes in the same order and end on the same micro-batch."""
        sizes = divisors_descending(batch)
        tried: list[tuple[int, bool]] = []
        last_oom = ""

        def fits(size: int) -> bool:
            nonlocal last_oom
            error = self._probe(trainer, pl_module, dataset, collate_fn, size)
            if error:
                last_oom = error
            ok = _all_ranks(trainer, pl_module, not error)
            tried.append((size, ok))
            return ok

        if fits(sizes[0]):
            return sizes[0], tried, last_oom
        low, high = 1, len(sizes)  # answer: the first index that fits; len(sizes) = none fits
        while low < high:
            middle = (low + high) // 2
            if fits(sizes[middle]):
                high = middle
            else:
                low = middle + 1
        return (sizes[low] if low < len(sizes) else 0), tried, last_oom

    def _probe(self, trainer: L.Trainer, pl_module: L.LightningModule, dataset, collate_fn, size: int) -> str:
        """One training step (forward and backward, no optimizer update) on `size` real training clips;
        "" when it fits, else the out-of-memory message. The run is left as it was: weights, gradients,
        buffers, metric states, module modes and random states."""
        device = pl_module.device
        error = ""
        with _run_untouched(pl_module):
            reserve = clips = output = loss = None
            try:
                if device.type == "cuda":
                    # AdamW's two moments per trainable weight, allocated at the first real optimizer step.
                    trainable = sum(p.numel() * p.element_size() for p in pl_module.parameters() if p.requires_grad)
                    reserve = torch.empty(2 * trainable, dtype=torch.uint8, device=device)
                loader = DataLoader(dataset, batch_size=size, num_workers=0, collate_fn=collate_fn)
                clips = next(iter(loader), None)
                if clips is not None:  # no training data: the fit loop reports that, not the probe
                    clips = pl_module._apply_batch_transfer_handler(clips)
                    with torch.enable_grad(), trainer.precision_plugin.train_step_context():
                        output = pl_module.training_step(clips, 0)
                    loss = output["loss"] if isinstance(output, dict) else output
                    if isinstance(loss, torch.Tensor) and loss.requires_grad:
                        loss.backward()
            except (torch.OutOfMemoryError, RuntimeError) as err:
                if not is_out_of_memory(err):
                    raise
                error = " ".join(str(err).split())
            # Freed outside the except clause: its traceback holds the frames that reference the tensors.
            del reserve, clips, output, loss
        if device.type == "cuda":
            torch.cuda.empty_cache()  # an OOM leaves the cache fragmented; the next probe needs it whole
        return error


@contextmanager
def _run_untouched(pl_module: L.LightningModule) -> Iterator[None]:
    """Runs the body in training mode with logging silenced, then restores what a training step changes:
    gradients, buffers (BatchNorm's running statistics), torchmetrics states, module modes, and the random
    states (torch on the CPU and the module's CUDA device, numpy's and Python's global ones)."""
    device = pl_module.device
    parameters = list(pl_module.parameters())
    grads = [p.grad for p in parameters]
    buffers = [(buffer, buffer.detach().clone()) for buffer in pl_module.buffers()]
    modes = [(module, module.training) for module in pl_module.modules()]
    metrics = [(metric, _metric_state(metric)) for metric in pl_module.modules() if isinstance(metric, Metric)]
    # the legacy global generators: what code that calls np.random.* directly draws from
    states = (random.getstate(), np.random.get_state())  # noqa: NPY002
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        for p in parameters:
            p.grad = None  # backward would add to an existing gradient in place
        # Lightning's log refuses calls outside its loops, and the probe's values are not the run's.
        pl_module.log = pl_module.log_dict = _ignore
        pl_module.train()
        try:
            yield
        finally:
            del pl_module.log, pl_module.log_dict
            for p, grad in zip(parameters, grads, strict=True):
                p.grad = grad
            with torch.no_grad():
                for buffer, saved in buffers:
                    buffer.copy_(saved)
            for module, training in modes:
                module.training = training
            for metric, state in metrics:
                _restore_metric(metric, state)
            random.setstate(states[0])
            np.random.set_state(states[1])  # noqa: NPY002


def _ignore(*args, **kwargs) -> None:
    return None


def _metric_state(metric: Metric) -> tuple[int, object, dict[str, object]]:
    return metric._update_count, metric._computed, copy.deepcopy(metric.metric_state)


def _restore_metric(metric: Metric, state: tuple[int, object, dict[str, object]]) -> None:
    count, computed, values = state
    if metric._update_count == count:
        return  # the probe did not update it
    for name, value in values.items():
        setattr(metric, name, value)
    metric._update_count, metric._computed = count, computed


def _all_ranks(trainer: L.Trainer, pl_module: L.LightningModule, fits: bool) -> bool:
    """True when the probe fitted on every rank (min over ranks; the value itself on one device)."""
    if trainer.world_size <= 1:
        return fits
    flag = torch.tensor(int(fits), device=pl_module.device)
    return bool(trainer.strategy.reduce(flag, reduce_op="min").item())


def _scale_batch_counts(trainer: L.Trainer, factor: int) -> None:
    """Trainer settings counted in training batches: a batch is now `factor` micro-batches. Fractions of an
    epoch and "no limit" stay as they are."""
    limit = trainer.limit_train_batches
    if isinstance(limit, int) and not isinstance(limit, bool):
        trainer.limit_train_batches = limit * factor
    interval = trainer.val_check_interval
    if isinstance(interval, int) and not isinstance(interval, bool):
        trainer.val_check_interval = interval * factor


def _drop_built_train_loader(trainer: L.Trainer) -> None:
    """Discard a training loader the fit loop built before fit started, at the old batch size:
    `trainer.estimated_stepping_batches` (an LR schedule asks for it in `configure_optimizers`) builds and
    keeps one. The loop builds it again, at the micro-batch, when training starts."""
    fit_loop = trainer.fit_loop
    if fit_loop._combined_loader is None:
        return
    if fit_loop._data_fetcher is not None:
        fit_loop._data_fetcher.teardown()  # its iterator may already hold worker processes
        fit_loop._data_fetcher = None
    fit_loop._combined_loader = None


def _tried_text(tried: list[tuple[int, bool]]) -> str:
    return " ".join(f"{size}:{'fits' if fits else 'oom'}" for size, fits in tried)


def _and_join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
