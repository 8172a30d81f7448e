"""Model registry: every architecture file registers its classes / factories here by name.

Each entry has a task tag, any name a task chooses. A "classification" callable (the default) takes
`num_classes` first and returns an `nn.Module` mapping `(B, C, T, H, W)` to `(B, num_classes)`; the
callables of every other task take keyword arguments only, `num_classes` among them where the task has
classes: "vos" (`lit_video.models.vos_base.VOSModel`, no classes), "vis"
(`lit_video.models.vis_base.VISModel`), "captioning" (`vocab_size` as a keyword;
`lit_video.models.caption_transformer.CaptionTransformer`'s interface), and the tags of tasks added later.
Each entry also stores a "tiny" config: kwargs that make a CPU-cheap variant, so the tests can loop over
every model of a task without knowing any of them. Every task builds its model through `build_task_model`,
which takes a registry name, a class from a config's class_path, or a ready module.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from lit_video.errors import LitVideoError

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_TINY: dict[str, dict[str, Any]] = {}
_TASKS: dict[str, str] = {}


def register_model(
    name: str | Callable | None = None, *, tiny: dict[str, Any] | None = None, task: str = "classification"
):
    """Decorator for a model class or factory function; usable as `@register_model`, `@register_model()`
    or `@register_model("name", tiny=dict(width=16))`.

    Args:
        name: registry name; defaults to the lower-cased `__name__` of the decorated object.
        tiny: kwargs that build a small variant for CPU tests (`{}` where the architecture cannot shrink).
        task: the task whose models this is one of ("classification", "vos", "vis", "captioning", or a new
            task's own tag); decides how `create_model` calls it.
    """
    if not isinstance(task, str) or not task.isidentifier():
        raise ValueError(f"a model's task tag must be a name such as 'classification', got {task!r}")
    if callable(name):  # bare `@register_model`
        return register_model()(name)

    def decorate(obj):
        key = name or obj.__name__.lower()
        if key in _MODELS and _MODELS[key] is not obj:
            raise ValueError(f"model name '{key}' is registered twice ({_MODELS[key]} and {obj})")
        _MODELS[key] = obj
        _TINY[key] = dict(tiny or {})
        _TASKS[key] = task
        return obj

    return decorate


def model_entry(name: str) -> Callable[..., nn.Module]:
    """The registered class or factory `name` (e.g. to inspect which arguments it takes).

    Raises:
        LitVideoError: unknown name; the message lists the known names.
    """
    if name not in _MODELS:
        raise LitVideoError(f"unknown model '{name}'; known models: {', '.join(list_models(task=None))}")
    return _MODELS[name]


def model_task(name: str) -> str:
    """The task tag of the registered model `name`."""
    model_entry(name)
    return _TASKS.get(name, "classification")


def create_model(
    name: str, num_classes: int | None = None, *, task: str | None = None, **kwargs: Any
) -> nn.Module:
    """Build the registered model `name` as its task's models are called: a classifier with `num_classes`
    outputs (its first argument), a VIS model with `num_classes` categories (a keyword), the other
    tasks' models from keyword arguments alone.

    Args:
        name: registry name.
        num_classes: outputs of a classification model, categories of a "vis" model; must be left out for
            other tasks.
        task: when given, `name` must be a model of this task (e.g. "vos" in the VOS LightningModule).
        kwargs: the model's own arguments.

    Raises:
        LitVideoError: unknown name, a model of another task, or an argument the model does not take
            (a config typo).
    """
    factory = model_entry(name)
    own_task = model_task(name)
    if task is not None and task != own_task:
        raise LitVideoError(f"model '{name}' is a {own_task} model, not a {task} model; "
                            f"{task} models: {', '.join(list_models(task=task)) or 'none'}")
    if own_task == "classification":
        if num_classes is None:
            raise LitVideoError(f"model '{name}' is a classification model and needs num_classes")
        args: tuple[Any, ...] = (num_classes,)
    else:  # every other task's models take keywords only (a VIS model's num_classes, a captioner's vocab_size)
        args = ()
        if num_classes is not None:
            if not _accepts(factory, "num_classes"):
                raise LitVideoError(f"model '{name}' is a {own_task} model and takes no num_classes "
                                    f"(got {num_classes}); a classification task cannot use it")
            kwargs = {**kwargs, "num_classes": num_classes}
    try:
        inspect.signature(factory).bind(*args, **kwargs)
    except TypeError as err:
        # A typo in a config key should read as a user error, not a traceback from deep inside a model.
        raise LitVideoError(f"model '{name}': {err}") from None
    return factory(*args, **kwargs)


def _accepts(factory: Callable[..., nn.Module], argument: str) -> bool:
    parameters = inspect.signature(factory).parameters.values()
    return any(p.name == argument or p.kind is p.VAR_KEYWORD for p in parameters)


def build_task_model(
    model: str | nn.Module | Callable[..., nn.Module],
    task: str,
    model_kwargs: dict[str, Any] | None = None,
    *,
    num_classes: int | None = None,
    clip_len: int | None = None,
    resolution: int | list[int] | None = None,
    modality: str = "rgb",
    **fixed: Any,
) -> nn.Module:
    """What a task's `model` argument names -> the module; the one model builder of every task.

    Args:
        model: a registry name of a `task` model, a ready module, or a class / factory from a config's
            class_path (a classifier's takes num_classes first, the other tasks' take keywords).
        task: the registry task tag the name must belong to.
        model_kwargs: a registry model's own arguments (an error for anything but a name).
        num_classes: outputs of a classifier, categories of a VIS model; None for the other tasks.
        clip_len, resolution: the DataModule's clip size, given to architectures built for one clip size
            (whose factory takes them, e.g. torchvision's MViT) unless `model_kwargs` sets them.
        modality: what the input's channels hold (rgb, flow, rgb+flow), given to every model whose factory
            takes `modality`; a model that does not take it reads RGB only.
        fixed: other arguments the task itself supplies (e.g. a captioner's vocabulary size), passed to a
            name or a factory.

    Raises:
        LitVideoError: a name of another task, an argument the model does not take, `model_kwargs`
            beside a class, or a modality other than rgb for a model that does not take `modality`.
    """
    if isinstance(model, nn.Module):
        return model
    if isinstance(model, str):
        model_kwargs = dict(model_kwargs or {})
        accepted = inspect.signature(model_entry(model)).parameters
        for name, value in (("clip_len", clip_len), ("resolution", resolution)):
            if value is not None and name in accepted:
                model_kwargs.setdefault(name, value)
        if "modality" in accepted:
            if "modality" in model_kwargs and model_kwargs["modality"] != modality:
                raise LitVideoError(f"model '{model}': model_kwargs.modality {model_kwargs['modality']!r} differs from "
                                    f"the data's modality {modality!r}; leave it out (it follows data.init_args.modality)")
            model_kwargs["modality"] = modality
        elif modality != "rgb":
            raise _modality_refused(repr(model), modality, task)
        try:
            return create_model(model, num_classes, task=task, **fixed, **model_kwargs)
        except LitVideoError:
            raise
        except (TypeError, ValueError, AssertionError, IndexError, KeyError, RuntimeError) as err:
            if not model_kwargs:
                raise  # no argument the config chose (model_kwargs, the linked clip size): a bug of the model
            # the architecture's own check of an argument the config chose (e.g. a list of the wrong length)
            reason = " ".join(str(err).split()) or type(err).__name__
            raise LitVideoError(f"model '{model}' rejects its arguments {model_kwargs}: {reason}") from None
    if model_kwargs:
        raise LitVideoError("model_kwargs applies to a registry name; put a class's arguments in its init_args")
    if not callable(model):
        raise LitVideoError(f"model must be a {task} model name or module, got {model!r}")
    if modality != "rgb":
        if not _accepts(model, "modality"):
            raise _modality_refused(getattr(model, "__name__", repr(model)), modality, task)
        fixed = {**fixed, "modality": modality}
    if task == "classification":
        return model(num_classes, **fixed) if modality != "rgb" else model(num_classes)
    return model(**fixed) if num_classes is None else model(num_classes=num_classes, **fixed)


def _modality_refused(model: str, modality: str, task: str) -> LitVideoError:
    """The one-line refusal of a model that reads RGB only, naming the models of `task` that take `modality`."""
    takers = [name for name in list_models(task=task) if "modality" in inspect.signature(_MODELS[name]).parameters]
    return LitVideoError(f"model {model} reads RGB only (its factory takes no modality argument), but the data's "
                         f"modality is {modality!r}; {task} models that take it: {', '.join(takers) or 'none yet'}")


def list_models(task: str | None = "classification") -> list[str]:
    """Registered model names of `task` (all tasks when None), sorted."""
    return sorted(name for name in _MODELS if task is None or _TASKS.get(name, "classification") == task)


def tiny_kwargs(name: str) -> dict[str, Any]:
    """The kwargs of `name`'s CPU-cheap test variant (a copy: callers may modify it)."""
    model_entry(name)
    return dict(_TINY[name])
