"""`sweep_test_slow`, a model that takes ~0.3 s per training step, registered before running the CLI:
`python tests/slow_model.py sweep SPEC` is a sweep worker whose trials are long enough to be killed or
preempted mid-training (tests/test_cluster.py)."""

from __future__ import annotations

import sys
import time

import torch
from torch import nn

from lit_video.models.registry import register_model


@register_model("sweep_test_slow")
class SlowModel(nn.Module):
    def __init__(self, num_classes: int, **unused):
        super().__init__()
        self.head = nn.Linear(3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W) -> (B, num_classes)
        if self.training:
            time.sleep(0.3)
        return self.head(x.mean(dim=(2, 3, 4)))


if __name__ == "__main__":
    from lit_video.cli import main

    sys.exit(main(sys.argv[1:]))
