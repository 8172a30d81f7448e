"""`lit-video profile`: parameters, FLOPs, memory and clips/s of an experiment's task at clip sizes.

The config goes through the parser of `lit-video fit` (`lit_video.training.parse_config`), so its
keys, types and links are checked as for training. What a DataModule links into the task at
instantiation (`VideoCLI.LINKS`: its number of classes, a captioning vocabulary) comes from the
DataModule when its root exists; otherwise, or when given, from --num-classes and --vocab-size.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lit_video.cli.arguments import int_list
from lit_video.errors import LitVideoError

DEFAULT_NUM_CLASSES = 400  # Kinetics-400: the head torchvision's published figures count
DEFAULT_VOCAB_SIZE = 10000
WEIGHT_OPTIONS = ("pretrained", "checkpoint")  # model_kwargs that load weights: no part of the cost


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register `profile` on the top-level parser's `commands`."""
    profile = commands.add_parser("profile", help="params, GFLOPs, memory and clips/s of an experiment's model")
    profile.add_argument("--config", required=True, help="an experiment YAML (its model section is profiled)")
    profile.add_argument("--clip-lens", type=int_list, default=None, help="e.g. 8,16,32 (default: the config's)")
    profile.add_argument("--resolutions", type=int_list, default=None, help="e.g. 112,224 (default: the config's)")
    profile.add_argument("--num-classes", type=int, default=None,
                         help=f"classes of the task's head (default: the dataset's when its root exists, "
                         f"else {DEFAULT_NUM_CLASSES})")
    profile.add_argument("--vocab-size", type=int, default=None,
                         help=f"captioning: tokens of the vocabulary (default: the dataset's when its root "
                         f"exists, else {DEFAULT_VOCAB_SIZE})")
    profile.add_argument("--batch-size", type=int, default=2, help="clips per timed step")
    profile.add_argument("--steps", type=int, default=3, help="timed steps per throughput figure")
    profile.add_argument("--device", default=None, help="e.g. cpu, cuda, cuda:1 (default: cuda when available)")
    profile.add_argument("--out", default=None, help="CSV path (default outputs/profile/<config>.csv)")
    profile.set_defaults(run=profile_config)


def profile_config(args: argparse.Namespace) -> int:
    """`profile`: print a table of the config's task at each clip length and resolution; write it as CSV."""
    import csv

    from lit_video.compute import profile_model, profiled_network, resolve_device

    path = Path(args.config)
    if not path.is_file():
        raise LitVideoError(f"config file {path} does not exist")
    _check_config_file(path)
    _check_options(args)
    out = _output_file(args.out or f"outputs/profile/{path.stem}.csv")
    device = resolve_device(args.device, "--device")
    builder = _TaskBuilder(path, args)
    clip_lens = args.clip_lens or [builder.default("clip_len")]
    resolutions = args.resolutions or [builder.default("resolution")]
    rows = []
    print(f"{path} on {device}; FLOPs count a multiply-add as 2 (GMACs = GFLOPs / 2), per clip, forward")
    print(f"{'clip':>5} {'res':>5} {'params(M)':>10} {'GFLOPs':>9} {'GMACs':>9} {'peak MB':>9} {'train clips/s':>14} "
          f"{'infer clips/s':>14}")
    for clip_len in clip_lens:
        for resolution in resolutions:
            task = builder.build(clip_len, resolution)
            try:
                p = profile_model(profiled_network(task), clip_len, resolution, batch_size=args.batch_size,
                                  steps=args.steps, device=device, channels=task.example_input_array.shape[1])
            except RuntimeError as err:
                # most often a size the network cannot take (smaller than its kernels), or out of memory
                reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
                raise LitVideoError(f"{path}: the model cannot run a clip of {clip_len} frames at resolution "
                                    f"{resolution} (batch size {args.batch_size}) on {device}: {reason}") from None
            rows.append(p)
            print(f"{clip_len:>5} {str(resolution):>5} {p.params / 1e6:>10.2f} {p.gflops:>9.2f} {p.gmacs:>9.2f} "
                  f"{p.peak_memory_mb:>9.0f} {p.train_clips_per_s:>14.2f} {p.infer_clips_per_s:>14.2f}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0].__dict__))
            writer.writeheader()
            writer.writerows(r.__dict__ for r in rows)
    except OSError as err:
        raise LitVideoError(f"--out {out}: cannot write the CSV: {err.strerror or err}") from None
    print(f"wrote {out}")
    return 0


def _check_config_file(path: Path) -> None:
    """The config is plain YAML (no Python tags, no repeated key) holding a mapping of sections."""
    from lit_video.yaml_files import load_yaml

    config = load_yaml(path)
    if not isinstance(config, dict):
        found = "an empty file" if config is None else f"a {type(config).__name__}"
        raise LitVideoError(f"{path}: an experiment config is a mapping of sections (model:, data:, trainer:), "
                            f"found {found}")


def _check_options(args: argparse.Namespace) -> None:
    """Sizes and counts of the command line, each checked before anything is built."""
    from lit_video.data.tokenizer import SPECIALS

    for option, values in (("--clip-lens", args.clip_lens), ("--resolutions", args.resolutions)):
        if values is not None and (not values or min(values) < 1):
            raise LitVideoError(f"{option}: expected positive integers such as 8,16, got "
                                f"{','.join(map(str, values)) or 'none'}")
    checks = (("--batch-size", args.batch_size, 1, "clips per timed step"),
              ("--steps", args.steps, 0, "timed steps; 0 counts parameters and FLOPs only"),
              ("--num-classes", args.num_classes, 1, "classes of the task's head"),
              ("--vocab-size", args.vocab_size, len(SPECIALS) + 1, f"tokens, {len(SPECIALS)} of them special"))
    for option, value, least, meaning in checks:
        if value is not None and value < least:
            raise LitVideoError(f"{option}: expected an integer >= {least} ({meaning}), got {value}")


def _output_file(out: str) -> Path:
    """The CSV path, checked before anything is measured: not a folder, and not below a file."""
    out = Path(out)
    if out.is_dir():
        raise LitVideoError(f"--out {out}: is a folder; expected the path of the CSV file to write "
                            f"(e.g. {out / 'profile.csv'})")
    for folder in out.parents:
        if folder.exists():
            if not folder.is_dir():
                raise LitVideoError(f"--out {out}: {folder} is a file, not a folder")
            break
    return out


class _TaskBuilder:
    """Builds the config's task at any clip size, through the parser of `fit`, without its data's files.

    Args:
        path: the experiment YAML.
        args: the command's arguments (--num-classes, --vocab-size).
    """

    def __init__(self, path: Path, args: argparse.Namespace):
        from lit_video.training import parse_config

        self.path = path
        self.parser, self.config = self._checked(lambda: parse_config(["--config", str(path)], data_required=False))
        model_kwargs = self.config.get("model.init_args.model_kwargs")
        if model_kwargs:  # what a model costs does not depend on its weights: never load (or download) them
            self.config["model.init_args.model_kwargs"] = {k: v for k, v in model_kwargs.items()
                                                           if k not in WEIGHT_OPTIONS}
        self.linked = self._linked_values(args)

    def default(self, key: str):
        """The task's `key` (clip_len, resolution) as the config sets it, by a link from its data or not."""
        return self.config[f"model.init_args.{key}"]

    def build(self, clip_len: int, resolution: int | list[int]):
        """The task at this clip size, with the linked values and no data."""
        config = self.config.clone()
        config.data = None  # no DataModule to link from: the values are set below
        config["model.init_args.clip_len"], config["model.init_args.resolution"] = clip_len, resolution
        for target, value in self.linked.items():
            config[target] = value
        return self._checked(lambda: self.parser.instantiate(config)).model

    def _linked_values(self, args: argparse.Namespace) -> dict[str, object]:
        """Each instantiation link's target the task takes (e.g. model.init_args.num_classes) -> its value:
        the option's when given, else the DataModule's when its root exists, else the option's default."""
        from lit_video.training import VideoCLI

        given = {"num_classes": args.num_classes,
                 "tokenizer_config": None if args.vocab_size is None else _word_tokenizer(args.vocab_size)}
        defaults = {"num_classes": lambda: DEFAULT_NUM_CLASSES, "tokenizer_config": lambda: _word_tokenizer(
            DEFAULT_VOCAB_SIZE)}
        links = [(source.removeprefix("data."), target) for source, target, apply_on in VideoCLI.LINKS
                 if apply_on == "instantiate" and target in self.config]
        datamodule = None
        if any(given.get(attribute) is None for attribute, _ in links) and self._data_exists():
            datamodule = self._checked(lambda: self.parser.instantiate(self.config)).data
        values = {}
        for attribute, target in links:
            if given.get(attribute) is not None:
                values[target] = given[attribute]
            elif datamodule is not None and hasattr(datamodule, attribute):
                values[target] = getattr(datamodule, attribute)
            elif attribute in defaults:
                values[target] = defaults[attribute]()
        return values

    def _data_exists(self) -> bool:
        root = self.config.get("data.init_args.root") if self.config.get("data") else None
        return root is not None and Path(root).exists()

    def _checked(self, build):
        """`build()`, with a mistake in the config (or in what it builds) as one line naming the file."""
        from jsonargparse import ArgumentError

        from lit_video.cli.train import explain_config_error

        try:
            return build()
        except (ArgumentError, LitVideoError, ValueError) as err:
            message = explain_config_error(err)
            cause = err.__cause__
            if message is None and isinstance(err, ValueError) and isinstance(cause, ValueError | TypeError):
                # jsonargparse wraps what a constructor refused (e.g. torchmetrics' "num_classes larger than
                # 1") in a message of many lines: the constructor's own says which value
                message = f"cannot build the task: {(str(cause).strip().splitlines() or [''])[0]}"
            if message is None:
                raise
            raise LitVideoError(f"{self.path}: {message}") from None


def _word_tokenizer(vocab_size: int) -> dict:
    """A word tokenizer config of `vocab_size` tokens: what a captioning DataModule would link."""
    from lit_video.data.tokenizer import SPECIALS

    words = [f"word{i}" for i in range(max(vocab_size - len(SPECIALS), 0))]
    return {"type": "word", "vocabulary": [*SPECIALS, *words]}
