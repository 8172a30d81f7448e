"""`lit-video fit|validate|test|predict`: LightningCLI over the tasks and DataModules.

A config names the task (`model.class_path`) and the DataModule (`data.class_path`); the number of
classes, clip length and resolution flow from the DataModule to the task by links, never by hand.
"""

from __future__ import annotations

import logging
import os
import sys

import torch
from lightning.fabric.plugins.environments import LightningEnvironment, SLURMEnvironment
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lit_video.checkpoint import AtomicCheckpointIO
from lit_video.sweep.profile import ComputeProfileCallback

SUBCOMMANDS = ("fit", "validate", "test", "predict")


def _not_a_product_tip(record: logging.LogRecord) -> bool:
    # Every Trainer prints two "Tip: try installing litlogger / litmodels" lines: once per trial in a sweep.
    return not str(record.msg).startswith("\N{ELECTRIC LIGHT BULB} Tip:")


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_not_a_product_tip)


class VideoCLI(LightningCLI):
    """LightningCLI with the links every lit-video task relies on and the compute profile callback."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(ComputeProfileCallback, "compute_profile")
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.init_args.clip_len", "model.init_args.clip_len")
        parser.link_arguments("data.init_args.resolution", "model.init_args.resolution")
        # captioning: the vocabulary built from (or given to) the DataModule; other tasks have no such key
        parser.link_arguments("data.tokenizer_config", "model.init_args.tokenizer", apply_on="instantiate")

    def instantiate_trainer(self, **kwargs):
        config = self._get(self.config_init, "trainer", default={})
        if not config.get("plugins") and "plugins" not in kwargs and _one_slurm_task_for_many_devices(config):
            # Lightning's SLURM environment expects one SLURM task per device, started by srun; in a job
            # with one task (a sweep worker of a job array, `sbatch` without --ntasks-per-node) it would
            # wait forever for ranks nobody starts. Lightning starts them itself, as on a workstation.
            kwargs["plugins"] = [LightningEnvironment()]
        trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # not one the config chose
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer


def _one_slurm_task_for_many_devices(trainer_config: dict) -> bool:
    """True inside a SLURM job of one task whose trainer asks for more than one device on one node."""
    if not SLURMEnvironment.detect() or int(os.environ.get("SLURM_NTASKS", "1")) != 1:
        return False
    devices, num_nodes = trainer_config.get("devices", "auto"), int(trainer_config.get("num_nodes") or 1)
    if isinstance(devices, list | tuple):
        count = len(devices)
    elif str(devices).strip() in ("auto", "-1"):
        count = torch.cuda.device_count() if trainer_config.get("accelerator") != "cpu" else 1
    else:
        count = len(str(devices).split(",")) if "," in str(devices) else int(devices)
    return count > 1 and num_nodes == 1


class _ParseOnlyCLI(VideoCLI):
    """Parses and validates a config (every key, type and link) without building anything."""

    def instantiate_classes(self) -> None:
        pass


def run_cli(args: list[str], run: bool = True) -> VideoCLI:
    """Run a LightningCLI subcommand; `args` starts with it (e.g. ["fit", "--config", "x.yaml"]).

    With run=False, `args` holds no subcommand: the model, DataModule and Trainer are built and
    returned for the caller to run (the sweep adds its own callbacks and logger first)."""
    return _with_argv(lambda: _cli(VideoCLI, args, run))


def validate_config(args: list[str]) -> None:
    """Raise jsonargparse's ArgumentError (naming the key) if `args` (no subcommand) do not parse."""
    _with_argv(lambda: _cli(_ParseOnlyCLI, args, run=False))


def config_error_reason(err: BaseException) -> tuple[str, str]:
    """(where, reason) of a jsonargparse error, whose message spans many lines: `where` names the
    key and class (e.g. 'Parser key "data" (UCF101DataModule)'), `reason` is the line that says why."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    key = lines[0].rstrip(":") if lines and lines[0].startswith("Parser key") else ""
    marker = "- Problem with given class_path"
    for index, line in enumerate(lines):
        if line.startswith(marker) and index + 1 < len(lines):
            class_path = line[len(marker):].strip().rstrip(":")
            return (f"{key} ({class_path})" if key else class_path), lines[index + 1]
    return key, " ".join(lines[:2])


def _with_argv(build):
    # LightningCLI warns when both `args` and sys.argv hold arguments; `args` is the whole story here.
    saved, sys.argv = sys.argv, sys.argv[:1]
    try:
        return build()
    finally:
        sys.argv = saved


def _cli(cls: type[VideoCLI], args: list[str], run: bool) -> VideoCLI:
    return cls(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        run=run,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"exit_on_error": False},
    )
