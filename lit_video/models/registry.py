"""Model registry: every architecture file registers its classes / factories here by name.

A registered callable takes `num_classes` first and returns an `nn.Module` mapping `(B, C, T, H, W)` to
`(B, num_classes)`. Each entry also stores a "tiny" config: kwargs that make a CPU-cheap variant, so the
tests can loop over every model without knowing any of them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from lit_video.errors import LitVideoError

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_TINY: dict[str, dict[str, Any]] = {}


def register_model(name: str | Callable | None = None, *, tiny: dict[str, Any] | None = None):
    """Decorator for a model class or factory function; usable as `@register_model`, `@register_model()`
    or `@register_model("name", tiny=dict(width=16))`.

    Args:
        name: registry name; defaults to the lower-cased `__name__` of the decorated object.
        tiny: kwargs that build a small variant for CPU tests (`{}` where the architecture cannot shrink).
    """
    if callable(name):  # bare `@register_model`
        return register_model()(name)

    def decorate(obj):
        key = name or obj.__name__.lower()
        if key in _MODELS and _MODELS[key] is not obj:
            raise ValueError(f"model name '{key}' is registered twice ({_MODELS[key]} and {obj})")
        _MODELS[key] = obj
        _TINY[key] = dict(tiny or {})
        return obj

    return decorate


def model_entry(name: str) -> Callable[..., nn.Module]:
    """The registered class or factory `name` (e.g. to inspect which arguments it takes).

    Raises:
        LitVideoError: unknown name; the message lists the known names.
    """
    if name not in _MODELS:
        raise LitVideoError(f"unknown model '{name}'; known models: {', '.join(list_models())}")
    return _MODELS[name]


def create_model(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """Build the registered model `name` with `num_classes` outputs.

    Raises:
        LitVideoError: unknown name, or an argument the model does not take (a config typo).
    """
    factory = model_entry(name)
    try:
        inspect.signature(factory).bind(num_classes, **kwargs)
    except TypeError as err:
        # A typo in a config key should read as a user error, not a traceback from deep inside a model.
        raise LitVideoError(f"model '{name}': {err}") from None
    return factory(num_classes, **kwargs)


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_MODELS)


def tiny_kwargs(name: str) -> dict[str, Any]:
    """The kwargs of `name`'s CPU-cheap test variant (a copy: callers may modify it)."""
    model_entry(name)
    return dict(_TINY[name])
