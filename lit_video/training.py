"""`lit-video fit|validate|test|predict`: LightningCLI over the tasks and DataModules.

A config names the task (`model.class_path`) and the DataModule (`data.class_path`); the number of
classes, clip length and resolution flow from the DataModule to the task by links, never by hand.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import logging
import os
import re
import sys
import tempfile
import typing
from pathlib import Path
from typing import Any

import torch
from jsonargparse import ArgumentParser, Namespace
from lightning.fabric.plugins.environments import LightningEnvironment, SLURMEnvironment
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_warn

from lit_video.checkpoint import AtomicCheckpointIO, fetch_checkpoint, is_url, read_checkpoint
from lit_video.errors import LitVideoError
from lit_video.run_cost import ComputeProfileCallback
from lit_video.validation_media import ValidationMedia
from lit_video.wandb_runs import TRACKED_SUBCOMMANDS, WandbOptions
from lit_video.yaml_files import install_config_loader

SUBCOMMANDS = ("fit", "validate", "test", "predict")
# --ckpt_path values the Trainer resolves itself, to a checkpoint its callbacks wrote
CKPT_KEYWORDS = ("best", "last", "hpc")
_STAGES = {"fit": TrainerFn.FITTING, "validate": TrainerFn.VALIDATING, "test": TrainerFn.TESTING,
           "predict": TrainerFn.PREDICTING}


def _not_a_product_tip(record: logging.LogRecord) -> bool:
    # Every Trainer prints two "Tip: try installing litlogger / litmodels" lines: once per trial in a sweep.
    return not str(record.msg).startswith("\N{ELECTRIC LIGHT BULB} Tip:")


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_not_a_product_tip)
# configs and command-line values: a key given twice, or a document of nested aliases, is an error
install_config_loader()



def _batch_limits_count_batches() -> None:
    """Make `--trainer.limit_val_batches 1` one batch, not all of them.

    The Trainer declares the limits `Optional[Union[int, float]]`: an int counts batches, a float is a fraction.
    typing caches unions by equality, which ignores order, so whichever module built `Optional[Union[float, int]]`
    first decides the order the Trainer's annotation carries (Lightning issue #21259); float first, the parser
    reads "1" as 1.0, all the batches. Annotating them int first again (`int | float | None`, which typing does
    not cache) restores what the Trainer declares.
    """
    from lightning.pytorch import Trainer

    annotations = Trainer.__init__.__annotations__
    for name in ("limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches"):
        if typing.get_args(annotations.get(name)) == (float, int, type(None)):
            annotations[name] = int | float | None  # a types.UnionType: typing does not cache it


_batch_limits_count_batches()


class VideoCLI(LightningCLI):
    """LightningCLI with the links every lit-video task relies on and the compute profile callback."""

    # (source, target, apply_on): what flows from the DataModule to the task. A source of another task's
    # DataModule that this one lacks (e.g. captioning's tokenizer_config) is skipped.
    LINKS = (
        ("data.num_classes", "model.init_args.num_classes", "instantiate"),
        ("data.init_args.clip_len", "model.init_args.clip_len", "parse"),
        ("data.init_args.resolution", "model.init_args.resolution", "parse"),
        # captioning: the vocabulary built from (or given to) the DataModule
        ("data.tokenizer_config", "model.init_args.tokenizer", "instantiate"),
        # what the clips' channels hold (rgb, flow, rgb+flow); a task without the argument (VIS, captioning)
        # is not linked and refuses any modality but rgb (`check_modality_link`)
        ("data.init_args.modality", "model.init_args.modality", "parse"),
    )

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(ComputeProfileCallback, "compute_profile")
        parser.add_class_arguments(WandbOptions, "wandb")  # the W&B run of fit / validate / test
        for source, target, apply_on in self.LINKS:
            parser.link_arguments(source, target, apply_on=apply_on)

    def before_instantiate_classes(self) -> None:
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config
        check_modality_link(config)
        cpu_precision_fallback(config)

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        if self.datamodule is None:
            return
        data_modality = getattr(self.datamodule, "modality", "rgb")
        model_modality = getattr(self.model, "modality", "rgb")
        if data_modality != model_modality:  # a checkpoint's hyperparameters replaced the linked value
            raise LitVideoError(f"the model reads modality {model_modality!r} (its checkpoint's) but "
                                f"data.init_args.modality is {data_modality!r}; give the data the modality the "
                                "model was trained on")

    def instantiate_trainer(self, **kwargs):
        config = self._get(self.config_init, "trainer", default={})
        if not config.get("plugins") and "plugins" not in kwargs and _one_slurm_task_for_many_devices(config):
            # Lightning's SLURM environment expects one SLURM task per device, started by srun; in a job
            # with one task (a sweep worker of a job array, `sbatch` without --ntasks-per-node) it would
            # wait forever for ranks nobody starts. Lightning starts them itself, as on a workstation.
            kwargs["plugins"] = [LightningEnvironment()]
        check_trainer_arguments(config)
        try:
            trainer = super().instantiate_trainer(**kwargs)
        except (MisconfigurationException, ValueError) as err:  # Lightning's checks of the trainer's arguments
            raise LitVideoError(f"trainer: {' '.join(str(err).split())}") from None
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # not one the config chose
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        # what the model did, logged at validation and test by whichever W&B logger the run gets (its own, or
        # a sweep trial's, added after this); without one it does nothing
        options = self._get(self.config_init, "wandb", default=None) or WandbOptions()
        trainer.callbacks.append(ValidationMedia(options.media_videos, options.media_seed))
        self._wandb_logger = None
        if self.subcommand in TRACKED_SUBCOMMANDS and config.get("logger") in (None, True):
            self._wandb_logger = self._default_wandb_logger(trainer)
            if self._wandb_logger is not None:
                # beside Lightning's default CSVLogger, which stays first: checkpoints, config.yaml and
                # metrics.csv keep their folder (<default_root_dir>/lightning_logs/version_N)
                trainer.loggers = [*trainer.loggers, self._wandb_logger]
        return trainer

    def _default_wandb_logger(self, trainer):
        """The W&B logger of a run whose config names no logger (see `lit_video.wandb_runs`), or None when
        W&B is disabled."""
        from lit_video.wandb_runs import plain_run_logger, recipe_group, resolved_config, run_tags

        subcommand = self.subcommand
        config = resolved_config(self._parser(subcommand), self.config[subcommand], self.model, self.datamodule)
        profile = next((c for c in trainer.callbacks if isinstance(c, ComputeProfileCallback)), None)
        return plain_run_logger(self._get(self.config_init, "wandb"), subcommand, trainer, config,
                                group=recipe_group(self.config[subcommand].get("config")),
                                tags=run_tags(self.model, self.datamodule),
                                cost_source=profile.metrics if profile is not None else None)

    def _run_subcommand(self, subcommand: str) -> None:
        """Run the subcommand, then close its W&B run: Lightning leaves it open, and the next run in this
        process (a notebook's, a test's) would log into it."""
        from lit_video.wandb_runs import finish_run

        exit_code = 1
        try:
            super()._run_subcommand(subcommand)
            exit_code = 0
        finally:
            finish_run(getattr(self, "_wandb_logger", None), {}, exit_code)

    # ------------------------------------------------------------ checkpoints
    def _parse_ckpt_path(self) -> None:
        """Read `--ckpt_path` as data (never running code pickled in it) and let its hyperparameters complete
        the model's config, as LightningCLI does; an argument given explicitly that disagrees with them is an
        error. A URL is downloaded once; the Trainer loads the local copy."""
        self._checkpoint_file: str | None = None
        self._checkpoint_hparams: dict[str, Any] = {}
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        arguments = self.config[subcommand]
        if arguments.get("weights_only") is False:
            raise LitVideoError("--weights_only false is refused: lit-video reads checkpoints as data only "
                                "(weights_only=true), never running code stored in them")
        ckpt_path = arguments.get("ckpt_path")
        if ckpt_path is None or str(ckpt_path) in CKPT_KEYWORDS:
            return  # keywords name checkpoints the Trainer finds once it is built (_prepare_subcommand_kwargs)
        ckpt_path = str(ckpt_path)
        local = ckpt_path
        if is_url(ckpt_path):
            self._downloads = tempfile.TemporaryDirectory(prefix="lit-video-ckpt-")  # removed with the CLI
            local = str(fetch_checkpoint(ckpt_path, self._downloads.name))
        checkpoint = read_checkpoint(local, name=ckpt_path)
        self._checkpoint_file = local
        hparams = dict(checkpoint.get("hyper_parameters") or {})
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        self._checkpoint_hparams = dict(hparams)
        self._check_explicit_arguments(subcommand, ckpt_path, hparams)
        hparams = _accepted_hparams(hparams)
        if "_class_path" in hparams:
            # as init_args (LightningCLI: dict_kwargs), so that jsonargparse checks each against the arguments
            hparams = {"class_path": hparams.pop("_class_path"), "init_args": hparams}
        self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)

    def _check_explicit_arguments(self, subcommand: str, ckpt_path: str, hparams: dict[str, Any]) -> None:
        """Raise LitVideoError when the config or command line sets a model argument to a value other than
        the checkpoint's (LightningCLI would silently take the checkpoint's). A value equal to the
        argument's default counts as not given. Linked arguments follow the data and are checked once built.
        """
        model = self.config[subcommand].get("model")
        if not isinstance(model, Namespace) or not model.get("class_path"):
            return
        saved_class = hparams.get("_class_path")
        if saved_class and saved_class != model.class_path:
            raise LitVideoError(f"--ckpt_path {ckpt_path}: model.class_path is {model.class_path} in the config but "
                                f"the checkpoint holds a {saved_class}")
        try:
            task_class = _import(model.class_path)
            parameters = inspect.signature(task_class.__init__).parameters
        except Exception:  # noqa: BLE001 - a class jsonargparse could not import has been reported already
            return
        hints = _type_hints(task_class.__init__)
        linked = {target.rpartition(".")[2] for _, target, _ in self.LINKS if target.startswith("model.init_args.")}
        given = model.get("init_args")
        given = given.as_dict() if isinstance(given, Namespace) else dict(given or {})
        for key, saved in hparams.items():
            if key.startswith("_") or key in linked or key not in parameters or key not in given:
                continue
            default = parameters[key].default
            default = None if default is inspect.Parameter.empty else default
            for where, value, stored in _disagreements(f"model.init_args.{key}", _plain(given[key]), _plain(saved),
                                                       _plain(default), hints.get(key)):
                raise LitVideoError(f"--ckpt_path {ckpt_path}: {where} is {value!r} in the config or command line "
                                    f"but {stored!r} in the checkpoint; leave it out or give the checkpoint's value")

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        if "weights_only" in self._subcommand_method_arguments[subcommand]:
            kwargs["weights_only"] = True  # whatever CheckpointIO the config chose reads data only
        ckpt_path = kwargs.get("ckpt_path")
        if ckpt_path is not None and str(ckpt_path) in CKPT_KEYWORDS:
            kwargs["ckpt_path"] = self._resolve_ckpt_keyword(subcommand, str(ckpt_path))
            if kwargs["ckpt_path"] is not None:
                read_checkpoint(kwargs["ckpt_path"])  # one line for a damaged or refused file
        elif self._checkpoint_file is not None:
            kwargs["ckpt_path"] = self._checkpoint_file
            self._check_linked_hparams(str(ckpt_path))
        return kwargs

    def _resolve_ckpt_keyword(self, subcommand: str, keyword: str) -> str | None:
        """The checkpoint `best`, `last` or `hpc` names, as the Trainer would find it; None for `fit --ckpt_path
        last` with no last checkpoint yet (training starts afresh, as in Lightning)."""
        callback = self.trainer.checkpoint_callback
        if keyword == "best" and not getattr(callback, "best_model_path", None):
            raise LitVideoError("--ckpt_path best: no checkpoint exists yet ('best' is the best checkpoint of a fit "
                                "in this same run); give the path of a .ckpt file")
        try:
            path = self.trainer._checkpoint_connector._parse_ckpt_path(
                _STAGES[subcommand], keyword, model_provided=True, model_connected=False)
        except (MisconfigurationException, ValueError) as err:
            raise LitVideoError(f"--ckpt_path {keyword}: {' '.join(str(err).split())}") from None
        if path is None and subcommand != "fit":
            raise LitVideoError(f"--ckpt_path {keyword}: no checkpoint exists yet (no ModelCheckpoint folder holds a "
                                f"last checkpoint); give the path of a .ckpt file")
        return None if path is None else str(path)

    def _check_linked_hparams(self, ckpt_path: str) -> None:
        """The arguments linked from the data when the classes are built (the number of classes, a captioner's
        vocabulary) and the modality replace the checkpoint's: they must agree with them, or its weights do not
        fit."""
        built = getattr(self.model, "hparams", {})
        for source, target, apply_on in self.LINKS:
            key = target.rpartition(".")[2]
            shapes_weights = apply_on == "instantiate" or key == "modality"  # the input layers' channels
            if not shapes_weights or key not in self._checkpoint_hparams or key not in built:
                continue
            saved, value = _plain(self._checkpoint_hparams[key]), _plain(built[key])
            if saved != value:
                raise LitVideoError(f"--ckpt_path {ckpt_path}: the checkpoint's model has {key} {_short(saved)} but "
                                    f"the data gives {_short(value)} ({source}); evaluate it on the data it was "
                                    f"trained for")


def check_modality_link(config: Any) -> None:
    """Refuse a modality other than rgb for a task that does not take `modality` (VIS, captioning): its model
    would be given channels it was not built for.

    Args:
        config: the parsed config of one subcommand (with `model` and `data`).

    Raises:
        LitVideoError: one line naming the task and the modality.
    """
    data, model = config.get("data"), config.get("model")
    modality = data.get("init_args", {}).get("modality", "rgb") if isinstance(data, Namespace) else "rgb"
    if modality in (None, "rgb") or not isinstance(model, Namespace) or not model.get("class_path"):
        return
    try:
        parameters = inspect.signature(_import(model.class_path).__init__).parameters
    except Exception:  # noqa: BLE001 - a class jsonargparse could not import has been reported already
        return
    if "modality" not in parameters:
        raise LitVideoError(f"data.init_args.modality is {modality!r} but {model.class_path} reads RGB clips only "
                            "(it takes no modality argument); use modality rgb with this task")


# bfloat16 autocast on a CPU without AVX-512 (x86) or BF16 (Arm) has no oneDNN bfloat16 kernels to run: it falls
# back to reference code, and the tiny VOS recipes' training steps ran 5-10x slower than in float32 on an
# AVX2-only CPU (docs/configuration.md, "Precision on a CPU").
BF16_AUTOCAST = ("bf16-mixed", "bf16")


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN has bfloat16 kernels for this CPU (x86 with AVX-512, Arm with BF16), as PyTorch reports it."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN: no fast bfloat16 on the CPU either
        return False


def cpu_precision_fallback(config: Any) -> None:
    """Train a `precision: bf16-mixed` config in 32-true where it runs on a CPU without bfloat16 kernels, with one
    warning: there the recipe would take several times as long for the same steps. The config is
    changed in place, so the saved config.yaml and the run's compute record name the precision that ran.

    Args:
        config: the parsed config of one subcommand (with `trainer`).
    """
    trainer = config.get("trainer") if hasattr(config, "get") else None
    if not isinstance(trainer, Namespace) or str(trainer.get("precision")) not in BF16_AUTOCAST:
        return
    accelerator = trainer.get("accelerator")
    # "auto" resolves to the CPU only where Lightning finds neither a CUDA GPU nor Apple's MPS
    on_cpu = accelerator == "cpu" or (accelerator in (None, "auto") and not torch.cuda.is_available()
                                      and not torch.backends.mps.is_available())
    if on_cpu and not cpu_has_native_bf16():
        rank_zero_warn(f"trainer.precision {trainer.precision}: this CPU has no bfloat16 kernels (they need AVX-512 "
                       "or Arm BF16), so bf16 autocast runs several times slower than float32; training in 32-true "
                       "instead")
        trainer.precision = "32-true"


def check_trainer_arguments(config: Any) -> None:
    """The trainer arguments Lightning accepts but cannot use (a negative epoch count, a log folder that is a
    file), each an error naming the argument.

    Raises:
        LitVideoError: the first argument out of range.
    """
    def value(key: str) -> Any:
        return config.get(key) if hasattr(config, "get") else None

    for key, least in (("max_epochs", -1), ("max_steps", -1), ("min_epochs", 0), ("min_steps", 0)):
        number = value(key)
        if number is not None and (isinstance(number, bool) or not isinstance(number, int) or number < least):
            meaning = " (-1: no limit)" if least < 0 else ""
            raise LitVideoError(f"trainer.{key} must be an integer >= {least}{meaning}, got {number!r}")
    root = value("default_root_dir")
    if root is not None and not is_url(root):
        for folder in (Path(root), *Path(root).parents):
            if folder.exists():
                if not folder.is_dir():
                    what = "is a file" if folder == Path(root) else f"is inside {folder}, a file"
                    raise LitVideoError(f"trainer.default_root_dir {root} {what}, not a folder")
                break


def _accepted_hparams(hparams: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's hyperparameters that its task's constructor takes. LightningCLI also records the
    instantiation links it applied, those whose target the task lacks among them (a VOS task's
    `num_classes`, linked from every DataModule): given back to the task, they would be rejected."""
    try:
        parameters = inspect.signature(_import(hparams["_class_path"]).__init__).parameters
    except Exception:  # noqa: BLE001 - no class to ask: jsonargparse reports what it cannot use
        return hparams
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters.values()):
        return hparams
    return {key: value for key, value in hparams.items() if key.startswith("_") or key in parameters}


def _import(class_path: str) -> Any:
    module_name, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module_name), name)


def _type_hints(function: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve only loses the nested defaults
        return {}


def _plain(value: Any) -> Any:
    """`value` as plain data: Namespaces and dataclasses as dicts, tuples as lists."""
    if isinstance(value, Namespace):
        value = value.as_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _dataclass_defaults(annotation: Any) -> dict[str, Any]:
    """The field defaults of the dataclass `annotation` names (alone or in a union), else {}."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if dataclasses.is_dataclass(candidate):
            return {field.name: field.default for field in dataclasses.fields(candidate)
                    if field.default is not dataclasses.MISSING}
    return {}


def _disagreements(where: str, given: Any, saved: Any, default: Any, annotation: Any = None):
    """(key, given value, saved value) of each leaf where `given` differs from both `saved` and `default`."""
    if isinstance(given, dict) and isinstance(saved, dict):
        defaults = default if isinstance(default, dict) else _dataclass_defaults(annotation)
        for key in given:
            yield from _disagreements(f"{where}.{key}", given[key], saved.get(key), defaults.get(key))
    elif given != saved and given != default:
        yield where, given, saved


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _one_slurm_task_for_many_devices(trainer_config: dict) -> bool:
    """True inside a SLURM job of one task whose trainer asks for more than one device on one node."""
    if not SLURMEnvironment.detect() or int(os.environ.get("SLURM_NTASKS", "1")) != 1:
        return False
    devices, num_nodes = trainer_config.get("devices", "auto"), int(trainer_config.get("num_nodes") or 1)
    if isinstance(devices, list | tuple):
        count = len(devices)
    elif str(devices).strip() in ("auto", "-1"):
        count = torch.cuda.device_count() if trainer_config.get("accelerator") != "cpu" else 1
    else:
        count = len(str(devices).split(",")) if "," in str(devices) else int(devices)
    return count > 1 and num_nodes == 1


class _ParseOnlyCLI(VideoCLI):
    """Parses and validates a config (every key, type and link) without building anything."""

    def instantiate_classes(self) -> None:
        pass

    def _set_seed(self) -> None:
        pass  # nothing runs, so nothing to seed (and no "Seed set to" line per parse)


def run_cli(args: list[str], run: bool = True) -> VideoCLI:
    """Run a LightningCLI subcommand; `args` starts with it (e.g. ["fit", "--config", "x.yaml"]).

    `fit`, `validate` and `test` log to W&B unless the config names a logger (see `lit_video.wandb_runs`).
    With run=False, `args` holds no subcommand: the model, DataModule and Trainer are built and
    returned for the caller to run, without a W&B run (the sweep adds its own callbacks and logger first)."""
    return _with_argv(lambda: _cli(VideoCLI, args, run))


def validate_config(args: list[str]) -> None:
    """Raise jsonargparse's ArgumentError (naming the key) if `args` (no subcommand) do not parse."""
    parse_config(args)


def parse_config(args: list[str], data_required: bool = True) -> tuple[ArgumentParser, Namespace]:
    """Parse `args` (no subcommand) as `fit` does, building nothing.

    Args:
        args: command-line arguments, e.g. ["--config", "experiments/x.yaml"].
        data_required: False accepts a config without a `data` section (profiling needs no data).

    Returns:
        The parser and the parsed config, whose `parser.instantiate_classes(config)` builds the
        classes (links of `VideoCLI.LINKS` with apply_on="instantiate" apply then).

    Raises:
        jsonargparse.ArgumentError: a key, type or class_path the config gets wrong (naming it).
    """
    cli = _with_argv(lambda: _cli(_ParseOnlyCLI, args, run=False, data_required=data_required))
    return cli.parser, cli.config


# a jsonargparse line naming a key: 'Parser key "data.init_args.root":', with the reason after it on some errors
_PARSER_KEY = re.compile(r'Parser key "([^"]+)":?(.*)')


def config_error_reason(err: BaseException) -> tuple[str, str]:
    """(where, reason) of a jsonargparse error, whose message spans many lines: `where` names the key
    and class (e.g. 'Parser key "data" (lit_video.data.formats.ucf101.UCF101DataModule)', or
    'Parser key "model.init_args.optimizer.name" (lit_video.tasks.optim.OptimizerConfig)' for a key nested
    in a class's arguments), `reason` is the line that says why (for a class_path that does not import:
    'X cannot be imported: why'; for a value out of a set: 'expected one of 'a', 'b', got c')."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    # the first line names the key, and for some errors also says why ('Parser key "config": File does not
    # exist: ...'): the key alone, so that the reason is not said twice
    first = _PARSER_KEY.fullmatch(lines[0]) if lines else None
    key = f'Parser key "{first[1]}"' if first else ""
    marker = "- Problem with given class_path"
    for index, line in enumerate(lines):
        if line.startswith(marker) and index + 1 < len(lines):
            class_path = line[len(marker):].strip().rstrip(":").strip("'\"")
            if not _importable(class_path):
                return key, f"{class_path} cannot be imported: {lines[index + 1]}"
    # Descend through the nested keys and classes to the first line that says why.
    keys: list[str] = []
    class_path = ""
    noise = ("Does not validate against any of the Union subtypes", "Subtypes:", "Errors:", "Given value type:",
             "Given value:", "Expected a <class 'NoneType'>")
    for index, line in enumerate(lines):
        text = line.removeprefix("- ").strip()
        nested_key = _PARSER_KEY.fullmatch(text)
        if nested_key:
            keys.append(nested_key[1])
            text = nested_key[2].strip()
            if not text:
                continue
        if line.startswith(marker):
            class_path = line[len(marker):].strip().rstrip(":").strip("'\"")
            if keys and not _is_dataclass_path(class_path):
                keys.append("init_args")  # a subclass's arguments are its init_args on the command line
            continue
        if text.startswith(noise):
            continue
        given = next((rest.removeprefix("Given value:").strip() for rest in lines[index + 1:]
                      if rest.startswith("Given value:")), None)
        reason = _expected_reason(text, given)
        dotted = ".".join(keys).replace("init_args.init_args", "init_args")
        where = f'Parser key "{dotted}"' if dotted else key
        if dotted and dotted.endswith(".init_args"):
            where = f'Parser key "{dotted.removesuffix(".init_args")}"'
        return (f"{where} ({class_path})" if class_path and where else where or class_path), reason
    return key, " ".join(lines[:2])


def _expected_reason(text: str, given: str | None) -> str:
    """jsonargparse's 'Expected a typing.Literal['a', 'b']. Got value: c' as 'expected one of 'a', 'b', got c'
    (and 'Expected a <class 'int'>' as 'expected int, got VALUE' with the union's given value)."""
    literal = re.fullmatch(r"Expected a typing\.Literal\[(.*)\]\. Got value: (.*)", text)
    if literal:
        return f"expected one of {literal[1]}, got {literal[2]}"
    expected = re.fullmatch(r"Expected a <class '([\w.]+)'>(?:\. Got value: (.*))?", text)
    if expected:
        got = expected[2] if expected[2] is not None else given
        return f"expected {expected[1]}" + (f", got {got}" if got is not None else "")
    return text


def _is_dataclass_path(class_path: str) -> bool:
    try:
        return dataclasses.is_dataclass(_import(class_path))
    except Exception:  # noqa: BLE001 - not importable: not a dataclass
        return False


def _importable(class_path: str) -> bool:
    module_name, _, name = class_path.rpartition(".")
    try:
        return hasattr(importlib.import_module(module_name), name)
    except Exception:  # noqa: BLE001 - whatever stops the import, the class cannot be used
        return False


def _with_argv(build):
    # LightningCLI warns when both `args` and sys.argv hold arguments; `args` is the whole story here.
    saved, sys.argv = sys.argv, sys.argv[:1]
    try:
        return build()
    finally:
        sys.argv = saved


def _cli(cls: type[VideoCLI], args: list[str], run: bool, data_required: bool = True) -> VideoCLI:
    return cls(
        LightningModule,
        LightningDataModule if data_required else None,  # None: `data` is an optional section
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        run=run,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"exit_on_error": False},
    )
