"""`lit-video fit|validate|test|predict`: LightningCLI over the tasks and DataModules.

A config names the task (`model.class_path`) and the DataModule (`data.class_path`); the number of
classes, clip length and resolution flow from the DataModule to the task by links, never by hand.
"""

from __future__ import annotations

import sys

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI

from lit_video.sweep.profile import ComputeProfileCallback

SUBCOMMANDS = ("fit", "validate", "test", "predict")


class VideoCLI(LightningCLI):
    """LightningCLI with the links every lit-video task relies on and the compute profile callback."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(ComputeProfileCallback, "compute_profile")
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.init_args.clip_len", "model.init_args.clip_len")
        parser.link_arguments("data.init_args.resolution", "model.init_args.resolution")


def run_cli(args: list[str]) -> VideoCLI:
    """Run a LightningCLI subcommand; `args` starts with it (e.g. ["fit", "--config", "x.yaml"])."""
    # LightningCLI warns when both `args` and sys.argv hold arguments; `args` is the whole story here.
    saved, sys.argv = sys.argv, sys.argv[:1]
    try:
        return _cli(args)
    finally:
        sys.argv = saved


def _cli(args: list[str]) -> VideoCLI:
    return VideoCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"exit_on_error": False},
    )
