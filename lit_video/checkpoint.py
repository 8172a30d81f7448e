"""Checkpoints that survive being killed: atomic writes, and a checkpoint on preemption.

Lightning's TorchCheckpointIO writes through an fsspec transaction whose temporary file is made by
`tempfile.mkstemp()`, i.e. in /tmp. On a cluster /tmp is node-local and checkpoints go to a shared
filesystem, so the final move is a copy into the target path: a job killed during that copy leaves
a truncated file where the previous good checkpoint was. `AtomicCheckpointIO` writes beside the
target and renames, which is atomic on POSIX filesystems (NFS and Lustre included).

Checkpoints are read with `torch.load(weights_only=True)` unless the caller asks otherwise: a
checkpoint holds tensors, numbers, strings and containers of them, and nothing in it needs to run
code to load. `read_checkpoint` is the one reader, for local files and URLs alike; it names the
checkpoint in every error.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lit_video.errors import LitVideoError

DOWNLOAD_TIMEOUT_S = 60  # seconds without progress before a checkpoint download fails


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
        """`read_checkpoint` (data only, one-line errors) unless the caller asks for `weights_only=False`
        (Lightning would load a checkpoint given by URL with `weights_only=False` when left unset)."""
        if weights_only is False:
            return super().load_checkpoint(path, map_location, weights_only=False)
        return read_checkpoint(path, map_location)


def is_url(path: str | os.PathLike) -> bool:
    """True for a checkpoint given by URL (http://, s3://, ...) rather than a local path."""
    return "://" in str(path)


def fetch_checkpoint(url: str, folder: str | os.PathLike) -> Path:
    """Download the checkpoint at `url` into `folder` (read it with `read_checkpoint`).

    Args:
        url: http(s):// or any protocol fsspec knows (s3://, gs:// with their packages installed).
        folder: an existing folder; the file keeps the URL's file name.

    Raises:
        LitVideoError: the download fails (naming the URL and why).
    """
    name = re.sub(r"[^\w.-]", "_", url.split("?")[0].rstrip("/").rpartition("/")[2]) or "checkpoint.ckpt"
    target = Path(folder) / name
    try:
        if url.startswith(("http://", "https://")):
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(target, "wb") as file:
                shutil.copyfileobj(response, file)
        else:
            import fsspec

            with fsspec.open(url, "rb") as source, open(target, "wb") as file:
                shutil.copyfileobj(source, file)
    except urllib.error.HTTPError as err:
        raise LitVideoError(f"cannot download checkpoint {url}: HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        raise LitVideoError(f"cannot download checkpoint {url}: {err.reason}") from None
    except Exception as err:  # noqa: BLE001 - any failure of the transfer is the URL's, reported as such
        raise LitVideoError(f"cannot download checkpoint {url}: {type(err).__name__}: {err}") from None
    return target


def read_checkpoint(path: str | os.PathLike, map_location: Any = _on_cpu, name: str | None = None) -> dict[str, Any]:
    """Load a checkpoint as data: `torch.load(weights_only=True)`, so that nothing pickled in it runs.

    Args:
        path: a local file or a URL (downloaded to memory).
        map_location: as torch.load's; by default every tensor stays on the CPU.
        name: how errors name the checkpoint (e.g. the URL of a downloaded copy); default `path`.

    Returns:
        The checkpoint's dict.

    Raises:
        LitVideoError: the path is missing, a folder or empty; the file is not a checkpoint; or it holds
            objects that only code could rebuild (refused). The message names the path.
    """
    where = f"checkpoint {name or path}"
    if not str(path).strip():
        raise LitVideoError("the checkpoint path is empty")
    if is_url(path):
        with tempfile.TemporaryDirectory(prefix="lit-video-ckpt-") as folder:
            source: Any = io.BytesIO(fetch_checkpoint(str(path), folder).read_bytes())
    else:
        local = Path(path).expanduser()
        if not local.exists():
            raise LitVideoError(f"{where} does not exist")
        if local.is_dir():
            raise LitVideoError(f"{where} is a folder, not a checkpoint file")
        source = local
    size = source.getbuffer().nbytes if isinstance(source, io.BytesIO) else source.stat().st_size
    if not size:
        raise LitVideoError(f"{where} is empty")
    from lit_video.tasks.optim import OptimizerConfig

    try:
        # a task built in Python keeps its OptimizerConfig in the hyperparameters: plain data, no code to run
        with torch.serialization.safe_globals([OptimizerConfig]):
            checkpoint = torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        detail = str(err).partition("WeightsUnpickler error:")[2].strip() or str(err).strip()
        detail = detail.splitlines()[0].split(" Please use")[0].strip() if detail else ""
        if "global" in detail.lower():  # a class or function to import and call: code, not data
            raise LitVideoError(f"{where} refused: loading it would run code stored in it ({detail}); "
                                f"lit-video reads checkpoints as data only (weights_only=True)") from None
        raise LitVideoError(f"{where} is not a checkpoint (not a file written by torch.save): {detail}") from None
    except Exception as err:  # noqa: BLE001 - torch.load reports a damaged file in many ways (EOFError, RuntimeError)
        reason = str(err).strip().splitlines()[0].split(". ")[0] if str(err).strip() else type(err).__name__
        raise LitVideoError(f"{where} is not a readable checkpoint (truncated or damaged?): {reason}") from None
    if not isinstance(checkpoint, dict):
        raise LitVideoError(f"{where} is not a Lightning checkpoint: it holds a {type(checkpoint).__name__}, "
                            f"not a dict")
    return checkpoint


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
    `every_n_steps` optimizer steps when given, when training stops on SIGTERM (Lightning raises
    SIGTERMException at the end of the current step) and on Ctrl-C (KeyboardInterrupt, wherever it came:
    the weights and optimizer are those of the last finished step, unless it came during an optimizer's
    update, when the previous checkpoint is kept). Not on other exceptions: the state after an error is
    not one to resume from.

    It keeps no state of its own, so it sits beside any ModelCheckpoint the experiment configures.

    Args:
        dirpath: the folder of last.ckpt.
        every_n_steps: also save every this many optimizer steps (None: at epoch ends only).
    """

    def __init__(self, dirpath: str | Path, every_n_steps: int | None = None):
        self.path = Path(dirpath) / "last.ckpt"
        self.every_n_steps = every_n_steps
        self.saved_step: int | None = None
        # From the optimizer's update to the step's end (its step counter and LR scheduler updated): an
        # interrupt there leaves a state between two steps, which is not saved.
        self.updating = False

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.updating = True

    def _save(self, trainer) -> None:
        if self.saved_step != trainer.global_step:
            # The whole training state (optimizers, schedulers, loops, callbacks), said explicitly:
            # left unset, Lightning logs that it defaults to it at every save.
            trainer.save_checkpoint(self.path, weights_only=False)
            self.saved_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.updating = False
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self._save(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._save(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException) or (isinstance(exception, KeyboardInterrupt) and not self.updating):
            self._save(trainer)
