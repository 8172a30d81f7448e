"""Datasets: one module per format, each registering its DataModule on import."""

import importlib
import pkgutil

_SHARED = {"base", "keys", "synthetic", "check", "tokenizer", "captioning", "synthetic_captions"}

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _SHARED:
        importlib.import_module(f"{__name__}.{_module.name}")
