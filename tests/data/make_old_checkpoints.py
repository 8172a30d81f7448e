"""Writes the checkpoints `tests/test_task_base.py` loads: tiny VOS, VIS and captioning tasks saved by
the code from before the compute-profile wrapper stopped being a registered submodule, so that their
`state_dict` holds every weight twice (`model.*` and `profiled_network.model.*`).

Run from the repository root with that code first on the path, e.g. a checkout of the commit before the
change in /tmp/before:

    PYTHONPATH=/tmp/before python tests/data/make_old_checkpoints.py

It writes `tests/data/old_{vos,vis,captioning}.ckpt` with Lightning's own `Trainer.save_checkpoint`.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from lit_video.data.tokenizer import WordTokenizer
from lit_video.tasks.captioning import VideoCaptioning
from lit_video.tasks.vis import VideoInstanceSegmentation
from lit_video.tasks.vos import VideoObjectSegmentation

HERE = Path(__file__).resolve().parent
CAPTIONS = ["a red circle moves left", "a blue square moves up"]
# smaller than the registry's tiny variants, to keep each file well under 300 KB
TASKS = {
    "vos": lambda: VideoObjectSegmentation(
        model="stm", model_kwargs={"width": 8, "blocks": 1, "key_dim": 8, "value_dim": 8, "decoder_dim": 8},
        clip_len=3, resolution=32),
    "vis": lambda: VideoInstanceSegmentation(
        model="query_vis", model_kwargs={"backbone": "small", "width": 8, "blocks": 1, "hidden_dim": 16,
                                         "num_queries": 4, "num_layers": 1, "num_heads": 2, "ffn_dim": 32},
        num_classes=3, clip_len=3, resolution=32),
    "captioning": lambda: VideoCaptioning(
        model="caption_transformer",
        model_kwargs={"backbone": "small", "width": 8, "depth": 2, "hidden_dim": 16, "num_encoder_layers": 1,
                      "num_decoder_layers": 1, "num_heads": 2, "ffn_dim": 32, "max_len": 32},
        tokenizer=WordTokenizer.build(CAPTIONS).to_config(), clip_len=4, resolution=32),
}


def save(task: L.LightningModule, path: Path) -> None:
    """`task` as a Lightning checkpoint, the way a fit writes one (no training step is taken)."""
    trainer = L.Trainer(max_epochs=0, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, accelerator="cpu", default_root_dir=path.parent)
    trainer.fit(task, train_dataloaders=DataLoader([0]))
    trainer.save_checkpoint(path)


def main() -> None:
    for name, build in TASKS.items():
        torch.manual_seed(0)
        task = build()
        assert any(key.startswith("profiled_network.") for key in task.state_dict()), (
            "this is the code after the change: put the code from before it first on PYTHONPATH")
        path = HERE / f"old_{name}.ckpt"
        save(task, path)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
