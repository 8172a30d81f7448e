"""What the tasks share across ranks: corpus-level metrics (AP, CIDEr-D) need every rank's outputs at once."""

from __future__ import annotations

from typing import Any

import torch


def gather_from_ranks(payload: Any) -> list[Any]:
    """Every rank's `payload` (picklable), in rank order; `[payload]` outside distributed runs."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        parts = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(parts, payload)
        return parts
    return [payload]
