"""Every experiment config runs: `lit-video fit --trainer.fast_dev_run` on each recipe (in bf16 autocast where
the recipe asks for it and the CPU has bfloat16 kernels), on synthetic data in the recipe's dataset layout
wherever the real dataset is absent."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from lit_video.cli import main
from lit_video.data.flow import compute_dataset_flow

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "experiments").rglob("*.yaml"))


def test_there_are_recipes_for_each_dataset():
    names = {p.relative_to(ROOT / "experiments").as_posix() for p in CONFIGS}
    assert {"ucf101/r2plus1d_18.yaml", "ucf101/timesformer.yaml", "kinetics400/mvit_v2_s.yaml"} <= names
    assert {"davis/stm_resnet18.yaml", "youtube_vos/stm_resnet18.yaml", "youtube_vis/query_vis_resnet18.yaml"} <= names
    assert {"msrvtt/caption_transformer_resnet18.yaml", "msvd/caption_transformer_resnet18.yaml"} <= names
    assert {"hmdb51/r2plus1d_18.yaml", "ssv2/r2plus1d_18.yaml"} <= names
    assert any(n.startswith("synthetic/") for n in names)


def store_flow(class_path: str, root: str) -> None:
    """Farneback flow for every video of the synthetic dataset at `root` (complete videos are skipped)."""
    module_name, _, class_name = class_path.rpartition(".")
    datamodule = getattr(importlib.import_module(module_name), class_name)
    compute_dataset_flow(datamodule.format_name, root, method="farneback")


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.relative_to(ROOT / "experiments").as_posix())
def test_fast_dev_run(config, tmp_path, ucf101_root, hmdb51_root, kinetics_root, ssv2_root, davis_root, ytvos_root,
                      ytvis_root, msrvtt_root, msvd_root):
    recipe = yaml.safe_load(config.read_text())
    data = recipe["data"]["init_args"]
    class_path = recipe["data"]["class_path"]
    synthetic = {"hmdb51": hmdb51_root, "ssv2": ssv2_root, "kinetics": kinetics_root, "davis": davis_root, "youtube_vos": ytvos_root,
                 "youtube_vis": ytvis_root, "msrvtt": msrvtt_root, "msvd": msvd_root}
    if not (ROOT / data["root"]).is_dir():
        data["root"] = str(next((root for name, root in synthetic.items() if name in class_path), ucf101_root))
        if "msvd" in class_path:  # the small copy's split boundaries (see the msvd_root fixture)
            data.update(train_end=18, val_end=24, test_end=30)
    if data.get("modality", "rgb") != "rgb" and data.get("flow_source", "stored") == "stored":
        # Farneback stands in for the recipe's method: the same store layout, a hundred times faster than TV-L1
        data["flow_method"] = "farneback"
        store_flow(class_path, data["root"])
    # One clip of one view through the recipe's model at the recipe's clip length and resolution.
    data.update(batch_size=1, num_workers=0)
    if recipe["model"]["class_path"].rsplit(".", 2)[-2] not in ("vos", "vis"):  # the segmentation tasks
        data.update(num_clips=1, num_crops=1)
    task = recipe["model"]["init_args"]
    if (task.get("model_kwargs") or {}).get("pretrained"):
        task["model_kwargs"]["pretrained"] = False  # no weights can be downloaded here
    # bf16 autocast runs on a CPU too, so the GPU recipes' bf16-mixed is exercised as written where the CPU has
    # bfloat16 kernels (elsewhere the CLI trains it in 32-true: `cpu_precision_fallback`); fp16 is GPU-only
    precision = "bf16-mixed" if recipe["trainer"].get("precision") == "bf16-mixed" else "32-true"
    recipe["trainer"].update(precision=precision, accelerator="cpu", fast_dev_run=1, logger=False,
                             enable_progress_bar=False, default_root_dir=str(tmp_path))
    recipe["trainer"].pop("callbacks", None)  # ModelCheckpoint / LR monitor need a logger or a real run
    path = tmp_path / config.name
    path.write_text(yaml.safe_dump(recipe))
    assert main(["fit", "--config", str(path)]) == 0
