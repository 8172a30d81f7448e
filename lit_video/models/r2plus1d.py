"""R(2+1)D (Tran et al. 2018) with configurable width and depth, for ablations and CPU-sized runs.

Built from torchvision's own blocks (`BasicBlock`, `Conv2Plus1D`): with the default widths and
depths it is torchvision's R(2+1)D-18 layer for layer (the `r2plus1d_18` entry, which also loads the
Kinetics-400 weights). What torchvision cannot do is change the widths (64...512 are fixed in its
`VideoResNet`), and a 1-block, 16-channel R(2+1)D is what trains on a CPU in a minute.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.video.resnet import BasicBlock, Conv2Plus1D

from lit_video.models.registry import register_model


def _stem(width: int) -> nn.Sequential:
    """torchvision's R2Plus1dStem with its 45 / 64 channels scaled to `width`: a (1,7,7) spatial
    convolution at stride 2, then a (3,1,1) temporal one."""
    mid = max(1, round(width * 45 / 64))
    return nn.Sequential(
        nn.Conv3d(3, mid, kernel_size=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
        nn.BatchNorm3d(mid),
        nn.ReLU(inplace=True),
        nn.Conv3d(mid, width, kernel_size=(3, 1, 1), padding=(1, 0, 0), bias=False),
        nn.BatchNorm3d(width),
        nn.ReLU(inplace=True),
    )


@register_model("r2plus1d", tiny=dict(widths=(8, 16, 32, 32), layers=(1, 1, 1, 1)))
class R2Plus1D(nn.Module):
    """Residual network of (2+1)D convolutions: each 3x3x3 convolution is a 1x3x3 spatial one followed
    by a 3x1x1 temporal one, with the middle width chosen to keep the 3D parameter count.

    Args:
        num_classes: number of output logits.
        widths: channels of the four stages (R(2+1)D-18: 64, 128, 256, 512).
        layers: residual blocks per stage (R(2+1)D-18: 2, 2, 2, 2; R(2+1)D-34: 3, 4, 6, 3).
        dropout: dropout before the classifier.
    """

    def __init__(
        self,
        num_classes: int,
        widths: Sequence[int] = (64, 128, 256, 512),
        layers: Sequence[int] = (2, 2, 2, 2),
        dropout: float = 0.0,
    ):
        super().__init__()
        if len(widths) != 4 or len(layers) != 4:
            raise ValueError(f"R(2+1)D has 4 stages: got widths={widths}, layers={layers}")
        self.stem = _stem(widths[0])
        stages, in_planes = [], widths[0]
        for index, (planes, blocks) in enumerate(zip(widths, layers)):
            stride = 1 if index == 0 else 2  # each later stage halves T, H and W
            downsample = None
            if stride != 1 or in_planes != planes:
                downsample = nn.Sequential(
                    nn.Conv3d(in_planes, planes, kernel_size=1, stride=Conv2Plus1D.get_downsample_stride(stride), bias=False),
                    nn.BatchNorm3d(planes),
                )
            stage = [BasicBlock(in_planes, planes, Conv2Plus1D, stride, downsample)]
            stage += [BasicBlock(planes, planes, Conv2Plus1D) for _ in range(1, blocks)]
            stages.append(nn.Sequential(*stage))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.drop = nn.Dropout(dropout)
        self.num_features = in_planes
        self.head = nn.Linear(in_planes, num_classes)
        for module in self.modules():  # torchvision's initialisation
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, widths[-1])."""
        x = self.stem(x)  # (B, w0, T, H/2, W/2)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, w3, T/8, H/16, W/16), rounded up
        return self.pool(x).flatten(1)

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, widths[-1]) -> (B, num_classes)."""
        return self.head(self.drop(feats))
