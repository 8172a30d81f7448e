"""Models: one module per architecture, each registering itself on import (`@register_model`).

Adding a model is one new file in this package (or in a subpackage of it); nothing here needs to change.
"""

import importlib
import pkgutil

from lit_video.models.registry import (
    build_task_model,
    create_model,
    list_models,
    model_entry,
    model_task,
    register_model,
    tiny_kwargs,
)

for _module in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
    # Every module, subpackages included; the shared parts (interfaces, layers, losses, weights) register
    # nothing, and importing them is harmless.
    importlib.import_module(_module.name)

__all__ = ["build_task_model", "create_model", "list_models", "model_entry", "model_task", "register_model", "tiny_kwargs"]
