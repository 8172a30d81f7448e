"""The GPU scripts' CPU dry runs: benchmarks/gpu_data.py (every mode but GPU decoding, tiny clips and data)
and the decode part of benchmarks/gpu_check.py (the GPU's comparisons made on the CPU), and `lit-video data
decoders`, which says whether GPU decoding works here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from lit_video.cli import main
from lit_video.video.backends import BACKENDS, DEVICE_DECODERS

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def test_gpu_data_dry_run_measures_every_cpu_mode_on_both_datasets(tmp_path):
    proc = _run("gpu_data.py", "--device", "cpu", "--models", "r2plus1d_18", "--workers", "1", "--steps", "2",
                "--warmup", "1", "--max-seconds", "120", "--out", str(tmp_path / "out"),
                "--data-dir", str(tmp_path / "data"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "gpu_data.json").read_text())
    rows = {(r["dataset"], r["mode"]): r for r in result["rows"]}
    assert sorted(rows) == [(d, m) for d in ("real", "synthetic") for m in ("in-memory", "loader")]
    for (dataset, _), row in rows.items():
        assert "error" not in row, row
        # whole rounds of the workers: 2 warm-up steps (two rounds of one worker), 2 timed steps of 2 clips
        assert row["warmup_steps"] == 2 and row["timed_steps"] == 2 and row["clips"] == 4, row
        assert row["clips_per_s"] == row["clips"] / row["seconds"] > 0
        assert 0 < row["step_busy"] <= 1
        assert row["over_in_memory"] == row["clips_per_s"] / rows[dataset, "in-memory"]["clips_per_s"]
        assert row["nvml_busy"] is None and row["nvml_note"] == "no GPU"
    assert rows["synthetic", "loader"]["decode_path"].endswith("in 1 workers")
    assert rows["real", "in-memory"]["over_in_memory"] == 1.0
    tables = proc.stdout.split("== r2plus1d_18 on ")[1:]
    assert [table.split(" ")[0] for table in tables] == ["synthetic", "real"]
    for table in tables:
        assert "/ in-memory" in table and " in-memory " in table and "loader 1 workers (" in table
    assert "gpu-decode mode is left out" in proc.stdout


def test_gpu_data_refuses_a_missing_gpu_and_bad_arguments_in_one_line(tmp_path):
    no_gpu = _run("gpu_data.py", "--out", str(tmp_path), env={"CUDA_VISIBLE_DEVICES": ""})
    bad = _run("gpu_data.py", "--workers", "4,many", "--out", str(tmp_path))
    for proc, fragment in ((no_gpu, "--device cuda needs a CUDA GPU"), (bad, "--workers: expected")):
        assert proc.returncode != 0 and proc.stderr.strip().count("\n") == 0 and fragment in proc.stderr, proc.stderr
    assert not (tmp_path / "gpu_data.json").exists()


def test_gpu_check_decode_part_passes_its_dry_run(tmp_path):
    proc = _run("gpu_check.py", "--parts", "decode", "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"),
                env={"GPU_CHECK_ACCELERATOR": "cpu"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = (tmp_path / "out" / "gpu_check.log").read_text()
    checks = [line for line in log.splitlines() if line.endswith(("PASS", "FAIL"))]
    names = [line.split(":")[0] for line in checks]
    assert names == ["frames mp4 (H.264, B-frames)", "frames avi (MPEG-4 part 2)",
                     "transform train (scale jitter, crop, flip) on cpu vs cpu, 4 draws",
                     "transform eval (3 crops, 2 clips) on cpu vs cpu, 4 draws",
                     "datamodule train batch (4, 3, 8, 112, 112)", "datamodule val batch (3, 2, 3, 8, 112, 112)",
                     "decode"], log
    assert all(line.endswith("PASS") for line in checks), log
    assert "each nearest its own index" in checks[0] and "cpu_fallback: none" in checks[0]
    assert "choose_decoder (" in log and "decoder auto: " in log


def test_data_decoders_lists_every_decoder_and_says_whether_the_gpu_decodes(capsys):
    assert main(["data", "decoders"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [*BACKENDS, *DEVICE_DECODERS]
    for name in BACKENDS:  # every worker backend is installed with the dev extra
        assert f"{name}: available (decodes in the DataLoader workers)" in lines
    gpu_line = lines[-1]
    if torch.cuda.is_available():
        assert gpu_line.startswith("torchcodec-cuda: available") or "unavailable: " in gpu_line
    else:
        assert gpu_line.startswith("torchcodec-cuda: unavailable: no CUDA device") and "docs/gpu.md" in gpu_line
