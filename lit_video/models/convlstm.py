"""ConvLSTM (Shi et al., "Convolutional LSTM Network", NeurIPS 2015) over per-frame CNN feature maps.

An LSTM whose input-to-state and state-to-state transitions are convolutions, so the recurrent state keeps
its spatial layout: motion at one place is tracked there instead of being averaged away by pooling first.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import rearrange
from torch import nn

from lit_video.models.frame_encoders import SmallConvEncoder
from lit_video.models.registry import register_model


class ConvLSTMCell(nn.Module):
    """One ConvLSTM layer step: all four gates from one convolution over [input, hidden].

    Args:
        in_channels: channels of the input map.
        hidden_channels: channels of the hidden and cell states.
        kernel_size: square kernel of the gate convolution (odd, so that the map keeps its size).
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3):
        super().__init__()
        self.hidden_channels = hidden_channels
        self.gates = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        # x: (B, C_in, H, W); state: h, c each (B, C_h, H, W)
        h, c = state
        i, f, o, g = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)

    def init_state(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero h and c for an input map like `x` (B, C_in, H, W)."""
        zeros = x.new_zeros(x.shape[0], self.hidden_channels, *x.shape[2:])
        return zeros, zeros


@register_model("convlstm", tiny=dict(width=8, depth=2, hidden_dims=(16, 16)))
class ConvLSTM(nn.Module):
    """Per-frame conv encoder -> stacked ConvLSTM layers -> global pool of the last hidden state -> head.

    Args:
        num_classes: number of output logits.
        width: channels of the encoder's first layer ("small" encoder, doubling per layer).
        depth: encoder layers; the recurrent maps are the frame size / 2**depth.
        hidden_dims: channels of each ConvLSTM layer.
        kernel_size: kernel of the ConvLSTM gate convolutions.
        dropout: dropout before the classifier.
    """

    def __init__(
        self,
        num_classes: int,
        width: int = 32,
        depth: int = 3,
        hidden_dims: Sequence[int] = (64, 64),
        kernel_size: int = 3,
        dropout: float = 0.5,
    ):
        super().__init__()
        self.encoder = SmallConvEncoder(width=width, depth=depth)
        channels = [self.encoder.out_dim, *hidden_dims]
        self.cells = nn.ModuleList(ConvLSTMCell(c_in, c_out, kernel_size) for c_in, c_out in zip(channels, channels[1:]))
        self.num_features = channels[-1]
        self.head_drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.num_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, hidden_dims[-1])."""
        b = x.shape[0]
        maps = self.encoder.forward_map(rearrange(x, "b c t h w -> (b t) c h w"))  # all frames in one batch
        maps = rearrange(maps, "(b t) c h w -> t b c h w", b=b)
        states: list = [None] * len(self.cells)  # zero (h, c) per layer, made at the first frame
        for frame in maps:  # (B, C, h, w)
            inp = frame
            for i, cell in enumerate(self.cells):
                if states[i] is None:
                    states[i] = cell.init_state(inp)
                inp, states[i] = cell(inp, states[i])
        return inp.mean(dim=(2, 3))  # last layer's last hidden state, pooled: (B, C_h)

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, num_classes)."""
        return self.head(self.head_drop(feats))
