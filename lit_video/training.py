"""`lit-video fit|validate|test|predict`: LightningCLI over the tasks and DataModules.

A config names the task (`model.class_path`) and the DataModule (`data.class_path`); the number of
classes, clip length and resolution flow from the DataModule to the task by links, never by hand.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import torch
from jsonargparse import ArgumentParser, Namespace
from lightning.fabric.plugins.environments import LightningEnvironment, SLURMEnvironment
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lit_video.checkpoint import AtomicCheckpointIO
from lit_video.compute import ComputeProfileCallback
from lit_video.yaml_files import install_config_loader

SUBCOMMANDS = ("fit", "validate", "test", "predict")


def _not_a_product_tip(record: logging.LogRecord) -> bool:
    # Every Trainer prints two "Tip: try installing litlogger / litmodels" lines: once per trial in a sweep.
    return not str(record.msg).startswith("\N{ELECTRIC LIGHT BULB} Tip:")


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_not_a_product_tip)
# configs and command-line values: a key given twice, or a document of nested aliases, is an error
install_config_loader()


class VideoCLI(LightningCLI):
    """LightningCLI with the links every lit-video task relies on and the compute profile callback."""

    # (source, target, apply_on): what flows from the DataModule to the task. A source of another task's
    # DataModule that this one lacks (e.g. captioning's tokenizer_config) is skipped.
    LINKS = (
        ("data.num_classes", "model.init_args.num_classes", "instantiate"),
        ("data.init_args.clip_len", "model.init_args.clip_len", "parse"),
        ("data.init_args.resolution", "model.init_args.resolution", "parse"),
        # captioning: the vocabulary built from (or given to) the DataModule
        ("data.tokenizer_config", "model.init_args.tokenizer", "instantiate"),
    )

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(ComputeProfileCallback, "compute_profile")
        for source, target, apply_on in self.LINKS:
            parser.link_arguments(source, target, apply_on=apply_on)

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

    def _set_seed(self) -> None:
        pass  # nothing runs, so nothing to seed (and no "Seed set to" line per parse)


def run_cli(args: list[str], run: bool = True) -> VideoCLI:
    """Run a LightningCLI subcommand; `args` starts with it (e.g. ["fit", "--config", "x.yaml"]).

    With run=False, `args` holds no subcommand: the model, DataModule and Trainer are built and
    returned for the caller to run (the sweep adds its own callbacks and logger first)."""
    return _with_argv(lambda: _cli(VideoCLI, args, run))


def validate_config(args: list[str]) -> None:
    """Raise jsonargparse's ArgumentError (naming the key) if `args` (no subcommand) do not parse."""
    parse_config(args)


def parse_config(args: list[str], data_required: bool = True) -> tuple[ArgumentParser, Namespace]:
    """Parse `args` (no subcommand) as `fit` does, building nothing.

    Args:
        args: command-line arguments, e.g. ["--config", "experiments/x.yaml"].
        data_required: False accepts a config without a `data` section (profiling needs no data).

    Returns:
        The parser and the parsed config, whose `parser.instantiate_classes(config)` builds the
        classes (links of `VideoCLI.LINKS` with apply_on="instantiate" apply then).

    Raises:
        jsonargparse.ArgumentError: a key, type or class_path the config gets wrong (naming it).
    """
    cli = _with_argv(lambda: _cli(_ParseOnlyCLI, args, run=False, data_required=data_required))
    return cli.parser, cli.config


def config_error_reason(err: BaseException) -> tuple[str, str]:
    """(where, reason) of a jsonargparse error, whose message spans many lines: `where` names the key
    and class (e.g. 'Parser key "data" (lit_video.data.formats.ucf101.UCF101DataModule)'), `reason` is
    the line that says why (for a class_path that does not import: 'X cannot be imported: why')."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    key = lines[0].rstrip(":") if lines and lines[0].startswith("Parser key") else ""
    marker = "- Problem with given class_path"
    for index, line in enumerate(lines):
        if line.startswith(marker) and index + 1 < len(lines):
            class_path = line[len(marker):].strip().rstrip(":").strip("'\"")
            reason = lines[index + 1]
            if not _importable(class_path):
                return key, f"{class_path} cannot be imported: {reason}"
            return (f"{key} ({class_path})" if key else class_path), reason
    return key, " ".join(lines[:2])


def _importable(class_path: str) -> bool:
    module_name, _, name = class_path.rpartition(".")
    try:
        return hasattr(importlib.import_module(module_name), name)
    except Exception:  # noqa: BLE001 - whatever stops the import, the class cannot be used
        return False


def _with_argv(build):
    # LightningCLI warns when both `args` and sys.argv hold arguments; `args` is the whole story here.
    saved, sys.argv = sys.argv, sys.argv[:1]
    try:
        return build()
    finally:
        sys.argv = saved


def _cli(cls: type[VideoCLI], args: list[str], run: bool, data_required: bool = True) -> VideoCLI:
    return cls(
        LightningModule,
        LightningDataModule if data_required else None,  # None: `data` is an optional section
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        run=run,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"exit_on_error": False},
    )
