"""Atomic checkpoints: a writer killed mid-write never leaves a truncated file in place of a good one."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lit_video.checkpoint import AtomicCheckpointIO, write_atomically
from lit_video.training import run_cli

REPO = Path(__file__).resolve().parents[1]

# Rewrites a ~64 MB checkpoint in a loop, each with a new `version`, printing each version once written.
WRITER = """
import sys, torch
from lit_video.checkpoint import write_atomically
for version in range(10**6):
    write_atomically(sys.argv[1], {"version": version, "weights": torch.full((16, 1024, 1024), float(version))})
    print(version, flush=True)
"""


def test_a_writer_killed_mid_write_leaves_the_last_complete_checkpoint(tmp_path):
    path = tmp_path / "ckpt" / "last.ckpt"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                              cwd=REPO)
    written = [int(writer.stdout.readline()) for _ in range(3)]
    time.sleep(0.05)  # into the next write
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    done = written + [int(line) for line in writer.stdout.read().split()]
    checkpoint = torch.load(path, weights_only=True)
    # the file is whole: the last version reported written, or the one after if its rename had happened
    assert checkpoint["version"] in (done[-1], done[-1] + 1)
    assert torch.equal(checkpoint["weights"], torch.full((16, 1024, 1024), float(checkpoint["version"])))


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    write_atomically(path, {"step": 1})

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_atomically(path, {"step": 2})
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_every_run_writes_checkpoints_atomically(ucf101_root):
    cli = run_cli(["--config", str(REPO / "experiments/synthetic/r2plus1d_tiny.yaml"),
                   "--data.init_args.root", str(ucf101_root)], run=False)
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
