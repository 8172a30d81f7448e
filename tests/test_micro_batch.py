"""`FitMicroBatch`: a batch that runs out of memory trains as the largest micro-batch that fits with
gradients accumulated to the same effective batch; the probe leaves the run untouched; a model that
fits no clip fails as infeasible."""

from __future__ import annotations

import random

import numpy as np
import optuna
import pytest
import torch
from conftest import TINY_BUDGET, TINY_EXPERIMENT, write_spec
from lightning.pytorch.callbacks import Callback
from torch import nn

from lit_video.micro_batch import FitMicroBatch, divisors_descending
from lit_video.models.registry import register_model
from lit_video.sweep.spec import SweepSpec
from lit_video.sweep.study import run_sweep
from lit_video.sweep.trial import failure_reason
from lit_video.training import run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MOST_CLIPS = 2  # what "fits" on the pretend device


@register_model("micro_batch_test_two_clips")
class TwoClipsFit(nn.Module):
    """A tiny classifier whose training step runs out of memory above `most_clips` clips (after its
    BatchNorm has seen the batch, as a real OOM in a later layer would). It draws random numbers from torch,
    numpy and Python as augmentations and dropout do."""

    def __init__(self, num_classes: int, most_clips: int = MOST_CLIPS, **unused):
        super().__init__()
        self.most_clips = most_clips
        self.stem = nn.Conv3d(3, 4, kernel_size=1)
        self.norm = nn.BatchNorm3d(4)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.norm(self.stem(x)).mean(dim=(2, 3, 4))
        if self.training:
            if x.shape[0] > self.most_clips:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
            features = features * (1 + 0.01 * (np.random.random() + random.random()))  # noqa: NPY002
        return self.head(self.drop(features))


@register_model("micro_batch_test_no_clip")
class NoClipFits(TwoClipsFit):
    """Runs out of memory in every training step, one clip included."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")
        return super().forward(x)


class CountSteps(Callback):
    """Counts the training micro-batches (with their sizes) and the optimizer steps."""

    def __init__(self):
        self.batch_sizes: list[int] = []
        self.optimizer_steps = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batch_sizes.append(len(batch["label"]))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.optimizer_steps += 1


def random_states() -> tuple:
    return torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()  # noqa: NPY002


class ProbeWitness(Callback):
    """Around FitMicroBatch's on_fit_start (before it and after it in the callback list): the run's weights,
    buffers, random states, metric states and modes before and after the probe."""

    def __init__(self, after: bool = False, shared: dict | None = None):
        self.after = after
        self.seen = shared if shared is not None else {}

    def on_fit_start(self, trainer, pl_module) -> None:
        self.seen["after" if self.after else "before"] = {
            "state": {k: v.detach().clone() for k, v in pl_module.state_dict().items()},
            "random": random_states(),
            "grads": [p.grad for p in pl_module.parameters()],
            "acc_updates": pl_module.train_acc.update_count,
            "modes": {name: m.training for name, m in pl_module.named_modules()},
        }


def tiny_fit_args(root, tmp_path, model: str, *extra: str) -> list[str]:
    config = tmp_path / "micro_batch.yaml"
    config.write_text("trainer:\n  callbacks:\n    - class_path: lit_video.micro_batch.FitMicroBatch\n")
    return ["--config", str(TINY_EXPERIMENT), "--config", str(config), "--model.init_args.model", model,
            "--data.init_args.root", str(root), "--data.init_args.num_workers", "0",
            "--data.init_args.batch_size", "8", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
            "--trainer.limit_val_batches", "1", "--trainer.logger", "false", "--trainer.enable_checkpointing",
            "false", "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path),
            *extra]


def micro_batch_callback(trainer) -> FitMicroBatch:
    return next(c for c in trainer.callbacks if isinstance(c, FitMicroBatch))


@pytest.mark.parametrize("most_clips, micro, tried", [(2, 2, "8:oom 2:fits 4:oom"), (4, 4, "8:oom 2:fits 4:fits")])
def test_an_oom_batch_trains_as_micro_batches_with_accumulation_and_the_probe_leaves_the_run_untouched(
        ucf101_root, tmp_path, caplog, most_clips, micro, tried):
    cli = run_cli(tiny_fit_args(ucf101_root, tmp_path, "micro_batch_test_two_clips", "--model.init_args.model_kwargs",
                                f"{{most_clips: {most_clips}}}"), run=False)
    cli.model.model.head.eval()  # a module the run keeps in eval mode must stay so
    callback = micro_batch_callback(cli.trainer)
    counter, seen = CountSteps(), {}
    # the witnesses run just before and just after the probe (callbacks run in list order)
    position = cli.trainer.callbacks.index(callback)
    cli.trainer.callbacks[position:position + 1] = [ProbeWitness(shared=seen), callback,
                                                    ProbeWitness(after=True, shared=seen)]
    cli.trainer.callbacks.append(counter)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)

    accumulate = 8 // micro
    assert callback.record == {"batch/requested": 8, "batch/micro": micro, "batch/accumulate_grad_batches": accumulate,
                               "batch/effective": 8, "batch/world_size": 1, "batch/tried": tried}
    assert f"micro-batch: {micro} clips x {accumulate} accumulated = 8 (8 " in caplog.text
    assert cli.datamodule.batch_size == micro and cli.trainer.accumulate_grad_batches == accumulate
    # limit_train_batches 2 (batches of 8) became 2 x `accumulate` micro-batches: the same clips, one
    # optimizer step per `accumulate` micro-batches
    assert counter.batch_sizes == [micro] * (2 * accumulate)
    assert counter.optimizer_steps == 2 and cli.trainer.global_step == 2

    before, after = seen["before"], seen["after"]
    assert before["state"].keys() == after["state"].keys()
    changed = [k for k in before["state"] if not torch.equal(before["state"][k], after["state"][k])]
    assert not changed  # weights and BatchNorm's running statistics
    assert torch.equal(before["random"][0], after["random"][0])
    assert np.array_equal(before["random"][1], after["random"][1]) and before["random"][2] == after["random"][2]
    assert all(g is None for g in after["grads"])
    assert after["acc_updates"] == before["acc_updates"] == 0
    assert after["modes"] == before["modes"] and not after["modes"]["model.head"]


def test_the_line_names_the_sizes_that_ran_out_of_memory(ucf101_root, tmp_path, caplog):
    cli = run_cli(tiny_fit_args(ucf101_root, tmp_path, "micro_batch_test_two_clips", "--trainer.max_epochs", "0"),
                  run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert "micro-batch: 2 clips x 4 accumulated = 8 (8 and 4 ran out of memory)" in caplog.text


def test_a_model_that_fits_no_clip_fails_as_infeasible(ucf101_root, tmp_path):
    cli = run_cli(tiny_fit_args(ucf101_root, tmp_path, "micro_batch_test_no_clip", "--compute_profile.enabled",
                                "false"), run=False)
    counter = CountSteps()
    cli.trainer.callbacks.append(counter)
    with pytest.raises(torch.OutOfMemoryError) as caught:
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    message = str(caught.value)
    assert message.startswith("one clip does not fit")
    assert "8:oom 2:oom 1:oom" in message and "Tried to allocate 80.00 GiB" in message  # the original error
    assert failure_reason(caught.value).startswith("infeasible: out of memory (one clip does not fit")
    assert counter.batch_sizes == [] and counter.optimizer_steps == 0  # failed before training


def test_disabled_leaves_the_batch_alone(ucf101_root, tmp_path):
    cli = run_cli(tiny_fit_args(ucf101_root, tmp_path, "micro_batch_test_no_clip", "--compute_profile.enabled",
                                "false", "--trainer.max_epochs", "0"), run=False)
    callback = micro_batch_callback(cli.trainer)
    callback.enabled = False
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)  # the probe would raise
    assert callback.record == {} and cli.datamodule.batch_size == 8 and cli.trainer.accumulate_grad_batches == 1


class _OneDevice:
    world_size = 1


@pytest.mark.parametrize("batch", [1, 6, 8, 12, 16, 30])
@pytest.mark.parametrize("most", [0, 1, 2, 3, 5, 100])
def test_the_search_finds_the_largest_divisor_that_fits(batch, most):
    callback = FitMicroBatch()
    probed: list[int] = []

    def probe(trainer, pl_module, dataset, collate_fn, size):
        probed.append(size)
        return "" if size <= most else "out of memory"

    callback._probe = probe
    micro, tried, _ = callback._search(_OneDevice(), None, None, None, batch)
    fitting = [d for d in divisors_descending(batch) if d <= most]
    assert micro == (fitting[0] if fitting else 0)
    assert [size for size, _ in tried] == probed and len(set(probed)) == len(probed)  # none probed twice
    assert all(fits == (size <= most) for size, fits in tried)
    assert probed[0] == batch


def test_a_sweep_trial_with_micro_batch_auto_completes_and_records_the_batch(ucf101_root, tmp_path):
    path = write_spec(tmp_path, ucf101_root, micro_batch="auto", search_space={
        "model.init_args.model": {"type": "categorical", "choices": ["micro_batch_test_two_clips"]}},
        overrides={"data.init_args.root": str(ucf101_root), "data.init_args.num_workers": 0,
                   "data.init_args.batch_size": 8},
        budget={**TINY_BUDGET, "limit_train_batches": 1})
    study = run_sweep(SweepSpec.load(path))
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE, trial.user_attrs.get("failure")
    attrs = trial.user_attrs
    assert (attrs["batch/requested"], attrs["batch/micro"], attrs["batch/accumulate_grad_batches"],
            attrs["batch/effective"], attrs["batch/tried"]) == (8, 2, 4, 8, "8:oom 2:fits 4:oom")
