"""Models: one module per architecture, each registering itself on import (`@register_model`).

Adding a model is one new file in this package; nothing here needs to change.
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

for _module in pkgutil.iter_modules(__path__):
    # Shared helpers (registry, layers, encoders, weights) register nothing; importing them is harmless.
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["build_task_model", "create_model", "list_models", "model_entry", "model_task", "register_model", "tiny_kwargs"]
