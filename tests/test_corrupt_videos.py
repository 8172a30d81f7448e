"""A corrupt video never stops an epoch: it is replaced, named, counted, and `data check` lists it."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from lit_video.cli import main
from lit_video.data.formats.ucf101 import UCF101DataModule
from lit_video.data.synthetic import synthesize
from lit_video.data.synthetic.spec import SynthSpec


@pytest.fixture
def ucf101_with_bad_files(tmp_path):
    root = tmp_path / "ucf"
    synthesize("ucf101", root, SynthSpec(num_classes=2, videos_per_class=10, num_frames=16, size=(48, 64)))
    train = UCF101DataModule(str(root)).list_records("train")
    truncated, garbage = train[1].path, train[4].path
    with open(truncated, "r+b") as file:
        file.truncate(300)  # only the AVI header survives
    with open(garbage, "wb") as file:
        file.write(b"\x00not a video" * 100)
    return root, {truncated, garbage}, len(train)


def test_epoch_survives_corrupt_videos_with_two_workers(ucf101_with_bad_files):
    root, bad, num_train = ucf101_with_bad_files
    dm = UCF101DataModule(str(root), clip_len=4, stride=2, resolution=32, batch_size=2, num_workers=2)
    loader = dm.train_dataloader()
    seen = []
    for batch in loader:
        seen += batch["video_id"]
    assert len(seen) == num_train  # every item yielded: bad ones were replaced by readable neighbours
    assert not {p.rsplit("/", 1)[1][:-4] for p in bad} & set(seen)
    assert dm.decode_failures.value >= len(bad)  # counted across worker processes


def test_iterate_command_names_and_counts_bad_files(ucf101_with_bad_files):
    root, bad, num_train = ucf101_with_bad_files
    result = subprocess.run(
        [sys.executable, "-m", "lit_video.cli", "data", "iterate", "--format", "ucf101", "--root", str(root),
         "--clip-len", "4", "--resolution", "32", "--batch-size", "1", "--num-workers", "2"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert f"{num_train} clips in" in result.stdout and "unreadable videos replaced: 2" in result.stdout
    for path in bad:  # each worker's message reaches the console and names the file
        assert f"skipping unreadable video {path}" in result.stderr


def test_data_check_lists_unreadable_files(ucf101_with_bad_files, capsys):
    root, bad, _ = ucf101_with_bad_files
    assert main(["data", "check", "--format", "ucf101", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "unreadable files:" in out
    for path in bad:
        assert path in out
    train_row = next(line for line in out.splitlines() if line.startswith("train"))
    assert train_row.split()[-1] == "2"  # unreadable column
    assert main(["data", "check", "--format", "ucf101", "--root", str(root), "--strict"]) == 1


def test_missing_video_is_counted_by_check(ucf101_with_bad_files, capsys):
    root, _, _ = ucf101_with_bad_files
    victim = UCF101DataModule(str(root)).list_records("test")[0].path
    shutil.move(victim, victim + ".bak")
    main(["data", "check", "--format", "ucf101", "--root", str(root)])
    out = capsys.readouterr().out
    assert "missing files (1):" in out and victim in out
