"""The data pipeline's share of a fit (`ComputeProfileCallback`): how long the training steps waited for their
batches, measured on real CPU fits of a Linear layer with datasets that sleep in `__getitem__`; the decode path
the DataModule names; and the sweep report's line on data-bound trials."""

from __future__ import annotations

import time
import warnings

import lightning as L
import optuna
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lit_video.run_cost import ComputeProfileCallback
from lit_video.sweep.report import write_report

BATCH = 4
SAMPLES = 20  # 5 steps an epoch
EPOCHS = 2
STEP_SECONDS = 0.03  # each training step of the model
SLOW_SAMPLE_SECONDS = 0.025  # each sample of the slow dataset: 0.1 s a batch
SLOW_TOTAL = EPOCHS * SAMPLES * SLOW_SAMPLE_SECONDS  # 1 s of loading over the fit


class SleepingDataset(Dataset):
    """`length` random (8,) features with a 0/1 target, each taking `seconds` to load."""

    def __init__(self, seconds: float, length: int = SAMPLES):
        self.seconds, self.length = seconds, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        time.sleep(self.seconds)
        return torch.randn(8), torch.tensor(float(index % 2))


class SleepingLinear(L.LightningModule):
    """A Linear layer whose training step takes `STEP_SECONDS`: the model's share of the time is known."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(8, 1)

    def training_step(self, batch, batch_idx):
        features, target = batch
        time.sleep(STEP_SECONDS)
        return nn.functional.binary_cross_entropy_with_logits(self.layer(features).squeeze(1), target)

    def validation_step(self, batch, batch_idx):
        features, target = batch
        self.log("val/loss", nn.functional.binary_cross_entropy_with_logits(self.layer(features).squeeze(1), target))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class SleepingData(L.LightningDataModule):
    """Training and validation sets that take `train_seconds` / `val_seconds` a sample (num_workers=0)."""

    def __init__(self, train_seconds: float, val_seconds: float = 0.0):
        super().__init__()
        self.train_seconds, self.val_seconds = train_seconds, val_seconds

    def train_dataloader(self) -> DataLoader:
        return DataLoader(SleepingDataset(self.train_seconds), batch_size=BATCH, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(SleepingDataset(self.val_seconds, length=2 * BATCH), batch_size=BATCH)


class NamedDecodePathData(SleepingData):
    decode_path = "pyav in the main process"


def fit(datamodule: L.LightningDataModule, tmp_path, **trainer_args) -> ComputeProfileCallback:
    """Fit `SleepingLinear` on `datamodule` on the CPU; returns the fit's compute record."""
    cost = ComputeProfileCallback()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=EPOCHS, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        default_root_dir=tmp_path, callbacks=[cost], **trainer_args)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        trainer.fit(SleepingLinear(), datamodule=datamodule)
    return cost


@pytest.fixture(scope="module")
def slow_and_fast(tmp_path_factory) -> dict[str, ComputeProfileCallback]:
    """The fit on the slow training set (a DataModule without `decode_path`) and on a fast one (with it)."""
    folder = tmp_path_factory.mktemp("data_wait")
    return {"slow": fit(SleepingData(SLOW_SAMPLE_SECONDS), folder / "slow", limit_val_batches=0),
            "fast": fit(NamedDecodePathData(0.0), folder / "fast", limit_val_batches=0)}


def test_a_slow_dataset_makes_the_steps_wait_for_data(slow_and_fast):
    metrics = slow_and_fast["slow"].metrics()
    # every batch's loading, the first of each epoch too, and not the model's steps (0.3 s more)
    assert SLOW_TOTAL <= metrics["compute/data_wait_seconds"] < SLOW_TOTAL + 0.25
    assert metrics["compute/data_wait_fraction"] > 0.6
    assert metrics["compute/data_wait_fraction"] == metrics["compute/data_wait_seconds"] / metrics[
        "compute/train_seconds"]
    assert "waited 1" in slow_and_fast["slow"].summary_line() and "% of training)" in slow_and_fast[
        "slow"].summary_line()


def test_a_fast_dataset_leaves_the_model_setting_the_speed(slow_and_fast):
    metrics = slow_and_fast["fast"].metrics()
    assert 0 < metrics["compute/data_wait_fraction"] < 0.2
    assert metrics["compute/train_seconds"] >= EPOCHS * SAMPLES / BATCH * STEP_SECONDS


def test_validation_inside_an_epoch_is_neither_training_time_nor_waiting_for_data(tmp_path):
    # 2 validation batches taking 0.4 s, in the middle of each epoch (after its 3rd step) on top of the slow training
    cost = fit(SleepingData(SLOW_SAMPLE_SECONDS, val_seconds=0.05), tmp_path, val_check_interval=0.6)
    metrics = cost.metrics()
    # the training batches' loading, after the validation too, and not the validation's
    assert SLOW_TOTAL <= metrics["compute/data_wait_seconds"] < SLOW_TOTAL + 0.25
    # training time resumes after the validation: the loading and the 10 steps, without the 0.8 s of validation
    steps_time = EPOCHS * SAMPLES / BATCH * STEP_SECONDS
    assert SLOW_TOTAL + steps_time <= metrics["compute/train_seconds"] < SLOW_TOTAL + steps_time + 0.4


def test_the_decode_path_is_the_datamodules_and_absent_without_one(slow_and_fast):
    fast = slow_and_fast["fast"]
    assert fast.metrics()["compute/decode_path"] == "pyav in the main process"
    assert "decoding: pyav in the main process" in fast.summary_line()
    assert "compute/decode_path" not in slow_and_fast["slow"].metrics()


def test_a_resumed_fit_keeps_its_wait_for_data(slow_and_fast):
    resumed = ComputeProfileCallback()
    resumed.load_state_dict(slow_and_fast["slow"].state_dict())
    assert resumed.data_wait_seconds == slow_and_fast["slow"].data_wait_seconds > 0


def waiting_study(path, fractions: list[float | None]) -> optuna.Study:
    """Complete trials with these `compute/data_wait_fraction` (None: not recorded), and a failed trial that
    waited for data 90% of its time (not counted: it did not complete)."""
    study = optuna.create_study(study_name="waiting", storage=f"sqlite:///{path}", direction="maximize")
    x = optuna.distributions.IntDistribution(0, len(fractions))
    for i, fraction in enumerate(fractions):
        attrs = {"compute/gflops": 1.0, "compute/train_clips_per_s": 10.0}
        if fraction is not None:
            attrs["compute/data_wait_fraction"] = fraction
        study.add_trial(optuna.trial.create_trial(value=0.5 + 0.01 * i, params={"x": i}, distributions={"x": x},
                                                  user_attrs=attrs))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, params={"x": 0},
                                              distributions={"x": x},
                                              user_attrs={"compute/data_wait_fraction": 0.9, "failure": "killed"}))
    return study


def test_the_report_flags_the_trials_that_waited_for_data(tmp_path):
    summary = write_report(waiting_study(tmp_path / "bound.db", [0.05, 0.75, 0.3, None]), tmp_path / "bound").summary
    (line,) = [line for line in summary.splitlines() if "waited for data" in line]
    assert line.startswith("2 of 3 trials (trial 1, 2) waited for data more than 20% of their training time: "
                           "the loader, not the model, set their speed")
    assert "x=1: 0.5100 ± 0.0000 (1 seed); 1 GFLOPs fwd/clip" in summary
    assert "10.0 train clips/s, 75% waiting for data" in summary and "- waiting for data" in summary
    clean = write_report(waiting_study(tmp_path / "clean.db", [0.05, 0.2, None]), tmp_path / "clean").summary
    assert "waited for data" not in clean and "20% waiting for data" in clean
