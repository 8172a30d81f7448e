"""Checkpoints that survive being killed: atomic writes, and a checkpoint on preemption.

Lightning's TorchCheckpointIO writes through an fsspec transaction whose temporary file is made by
`tempfile.mkstemp()`, i.e. in /tmp. On a cluster /tmp is node-local and checkpoints go to a shared
filesystem, so the final move is a copy into the target path: a job killed during that copy leaves
a truncated file where the previous good checkpoint was. `AtomicCheckpointIO` writes beside the
target and renames, which is atomic on POSIX filesystems (NFS and Lustre included).

Checkpoints are read with `torch.load(weights_only=True)` unless the caller asks otherwise: a
checkpoint holds tensors, numbers, strings and containers of them, and nothing in it needs to run
code to load.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException


def _on_cpu(storage, location):
    """torch.load's map_location that keeps every tensor where it was read, on the CPU (Lightning's default)."""
    return storage


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO for local and shared filesystems: a half-written file never replaces a good one."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if "://" in str(path):  # object stores (s3://, gs://) commit whole objects: Lightning's path is right
            return super().save_checkpoint(checkpoint, path, storage_options)
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options")
        write_atomically(path, checkpoint)

    def load_checkpoint(self, path, map_location: Any = _on_cpu, weights_only: bool | None = None) -> dict[str, Any]:
        """Lightning's loading, with `weights_only=True` when the caller leaves it unset (Lightning
        would load a checkpoint given by URL with `weights_only=False`)."""
        return super().load_checkpoint(path, map_location, weights_only=True if weights_only is None else weights_only)


def write_atomically(path: str | os.PathLike, checkpoint: Any) -> None:
    """torch.save `checkpoint` to `path` through a temporary file in the same folder, fsync and rename.

    Args:
        path: the checkpoint file; its folder is created when missing.
        checkpoint: anything torch.save accepts.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)  # serialise first: an error here leaves no file at all
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(buffer.getbuffer())
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class ResumeCheckpoint(Callback):
    """Keeps one checkpoint to resume from, `<dirpath>/last.ckpt`: after every training epoch, every
    `every_n_steps` optimizer steps when given, and when training stops on SIGTERM (Lightning raises
    SIGTERMException at the end of the current step). Not on other exceptions: the state after an
    error is not one to resume from.

    It keeps no state of its own, so it sits beside any ModelCheckpoint the experiment configures.

    Args:
        dirpath: the folder of last.ckpt.
        every_n_steps: also save every this many optimizer steps (None: at epoch ends only).
    """

    def __init__(self, dirpath: str | Path, every_n_steps: int | None = None):
        self.path = Path(dirpath) / "last.ckpt"
        self.every_n_steps = every_n_steps
        self.saved_step: int | None = None

    def _save(self, trainer) -> None:
        if self.saved_step != trainer.global_step:
            # The whole training state (optimizers, schedulers, loops, callbacks), said explicitly:
            # left unset, Lightning logs that it defaults to it at every save.
            trainer.save_checkpoint(self.path, weights_only=False)
            self.saved_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self._save(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._save(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            self._save(trainer)
