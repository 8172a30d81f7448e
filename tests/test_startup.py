"""Start-up: `--help`, the evaluate commands and the metrics import neither Lightning nor torch."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import numpy as np
import pytest

import lit_video.metrics
from lit_video.cli.arguments import format_names, package_format_names
from lit_video.data.masks import write_mask

HEAVY = ("lightning", "torch")


def _heavy_modules_after(code: str) -> list[str]:
    """Run `code` in a fresh interpreter -> which of Lightning and torch it imported."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _command(*args: str) -> str:
    """Python that runs `lit-video ARGS` in-process, as the entry point does."""
    return f"from lit_video.cli import main\ntry:\n    main({list(args)!r})\nexcept SystemExit:\n    pass"


@pytest.mark.parametrize("args", [["--help"], ["evaluate", "vos", "--help"], ["evaluate", "vis", "--help"],
                                  ["evaluate", "captioning", "--help"], ["data", "synth", "--help"],
                                  ["profile", "--help"], ["sweep", "--help"]],
                         ids=lambda args: " ".join(args))
def test_help_imports_neither_lightning_nor_torch(args):
    assert _heavy_modules_after(_command(*args)) == []


@pytest.mark.parametrize("module", ["lit_video.metrics"] + [
    f"lit_video.metrics.{m.name}" for m in pkgutil.iter_modules(lit_video.metrics.__path__)])
def test_metrics_import_neither_lightning_nor_torch(module):
    assert _heavy_modules_after(f"import {module}") == []


def test_evaluate_vos_runs_without_lightning_or_torch(tmp_path):
    """Scoring a results folder end to end: reading the PNGs, J&F, the CSV files."""
    rng = np.random.default_rng(0)
    (tmp_path / "ImageSets" / "2017").mkdir(parents=True)
    (tmp_path / "ImageSets" / "2017" / "val.txt").write_text("blob\n")
    for frame in range(4):
        gt = np.zeros((24, 32), np.uint8)
        gt[4:14, 6 + frame:18 + frame] = 1
        pred = np.where(rng.random(gt.shape) < 0.05, 0, gt).astype(np.uint8)
        write_mask(tmp_path / "Annotations" / "480p" / "blob" / f"{frame:05d}.png", gt)
        write_mask(tmp_path / "results" / "blob" / f"{frame:05d}.png", pred)
    args = ["evaluate", "vos", "--gt", str(tmp_path), "--pred", str(tmp_path / "results")]
    assert _heavy_modules_after(_command(*args)) == []
    assert (tmp_path / "results" / "global_results-val.csv").is_file()


def test_evaluate_vis_runs_without_lightning_or_torch(tmp_path):
    """Reading an annotation JSON and a results JSON, the AP/AR and the metrics file."""
    from lit_video.data.rle import encode_tube

    masks = np.zeros((2, 12, 16), bool)  # (T, H, W)
    masks[:, 2:8, 3:11] = True
    video = {"id": 1, "height": 12, "width": 16, "length": 2}
    ground_truth = {"videos": [video], "categories": [{"id": 1}],
                    "annotations": [{"id": 1, "video_id": 1, "category_id": 1, "iscrowd": 0,
                                     "segmentations": encode_tube(masks), "areas": [48, 48]}]}
    results = [{"video_id": 1, "category_id": 1, "segmentations": encode_tube(masks), "score": 0.9}]
    (tmp_path / "ann.json").write_text(json.dumps(ground_truth))
    (tmp_path / "results.json").write_text(json.dumps(results))
    args = ["evaluate", "vis", "--gt", str(tmp_path / "ann.json"), "--pred", str(tmp_path / "results.json")]
    assert _heavy_modules_after(_command(*args)) == []
    assert json.loads((tmp_path / "ytvis_metrics.json").read_text())["AP"] == pytest.approx(1.0)


def test_format_names_found_without_importing_are_the_registered_ones():
    """Each module of lit_video.data.formats registers the format its file name spells with hyphens."""
    from lit_video.data.base import datamodule_class, datamodule_names

    registered = {name: datamodule_class(name).__module__ for name in datamodule_names()}
    in_package = {name for name, module in registered.items() if module.startswith("lit_video.data.formats.")}
    assert package_format_names() == sorted(in_package)
    assert set(registered) <= set(format_names())
