"""Loading weights without a network: torchvision's files from the torch hub cache, or a local checkpoint.

Nothing here downloads. Training nodes of a cluster often have no internet; a download attempt there
hangs or dies deep inside a sweep, so a missing file is a clear `LitVideoError` that says where to put
it instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import WeightsEnum

from lit_video.errors import LitVideoError


def cached_weights_path(weights: WeightsEnum) -> Path:
    """Where torchvision would have cached `weights`: `<torch.hub.get_dir()>/checkpoints/<file name>`."""
    file_name = os.path.basename(urlparse(weights.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def load_cached_weights(weights: WeightsEnum) -> dict[str, torch.Tensor]:
    """The state_dict of torchvision `weights`, read from the hub cache only.

    Raises:
        LitVideoError: the file is not in the cache (says where to put it, or to pass `checkpoint=`).
    """
    path = cached_weights_path(weights)
    if not path.is_file():
        raise LitVideoError(
            f"pretrained weights {weights} are not in the torch hub cache: download {weights.url} "
            f"on a machine with internet and copy it to {path} (or set TORCH_HOME), "
            f"or pass checkpoint=<local state_dict file>"
        )
    return read_state_dict(path)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state_dict from a local file: a plain state_dict, or a Lightning / training checkpoint holding
    one under "state_dict" (or "model").

    Raises:
        LitVideoError: the file is missing or is not a readable checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise LitVideoError(f"checkpoint file not found: {path}")
    try:
        # weights_only: a checkpoint is data; never execute pickled code from a file someone shared.
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unpickling failure means "not a checkpoint"
        raise LitVideoError(f"cannot read checkpoint {path}: {err}") from None
    for key in ("state_dict", "model"):
        if isinstance(content, dict) and isinstance(content.get(key), dict):
            content = content[key]
    if not isinstance(content, dict) or not all(isinstance(v, torch.Tensor) for v in content.values()):
        raise LitVideoError(f"checkpoint {path} does not hold a state_dict (a dict of tensors)")
    return content


def strip_prefix(state_dict: dict[str, torch.Tensor], module: nn.Module) -> dict[str, torch.Tensor]:
    """Drop the prefix under which a wrapper saved `module` (e.g. "model." in a LightningModule)."""
    own_keys = set(module.state_dict())
    if not state_dict or own_keys & state_dict.keys():
        return state_dict
    first = next(iter(state_dict))
    parts = first.split(".")
    for i in range(1, len(parts)):
        prefix = ".".join(parts[:i]) + "."
        if first[len(prefix):] in own_keys:
            return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    return state_dict


def load_weights(
    module: nn.Module,
    state_dict: dict[str, torch.Tensor],
    source: str,
    head_prefixes: Iterable[str] = (),
    ignore_prefixes: Iterable[str] = (),
) -> None:
    """Load `state_dict` into `module`, strictly except for the classification head.

    Head tensors whose shape differs (e.g. Kinetics-400's 400 classes vs this dataset's) are skipped and
    keep their fresh initialisation: that is fine-tuning from a pretrained backbone.

    Args:
        module: the model to load into.
        state_dict: the weights; a prefix such as "model." is detected and removed.
        source: where the weights came from, for error messages.
        head_prefixes: key prefixes of the head, skipped when their shapes do not match.
        ignore_prefixes: key prefixes that are always skipped (layers the module dropped).

    Raises:
        LitVideoError: keys or shapes that do not match outside the head.
    """
    own = module.state_dict()
    head_prefixes, ignore_prefixes = tuple(head_prefixes), tuple(ignore_prefixes)
    state_dict = strip_prefix(state_dict, module)
    kept = {}
    for key, value in state_dict.items():
        if ignore_prefixes and key.startswith(ignore_prefixes):
            continue
        if head_prefixes and key.startswith(head_prefixes) and key in own and own[key].shape != value.shape:
            continue
        kept[key] = value
    mismatched = [k for k, v in kept.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in kept and not (head_prefixes and k.startswith(head_prefixes))]
    unexpected = [k for k in kept if k not in own]
    if mismatched or missing or unexpected:
        details = []
        for label, keys in (("shape mismatch", mismatched), ("missing", missing), ("unexpected", unexpected)):
            if keys:
                shown = ", ".join(keys[:5]) + (f", ... ({len(keys)} in all)" if len(keys) > 5 else "")
                details.append(f"{label}: {shown}")
        raise LitVideoError(f"weights from {source} do not fit {type(module).__name__}: {'; '.join(details)}")
    module.load_state_dict(kept, strict=False)
