"""Extensions from other packages: modules named under the `lit_video.plugins` entry points.

A package that adds a dataset format, a synthetic generator or a model declares the module that
registers them (with `register_datamodule`, `register_generator`, `register_model`):

    [project.entry-points."lit_video.plugins"]
    my_formats = "my_package.formats"

and every lookup by name (`--format` of the `data` commands, `synthesize`) finds them. A task or a
DataModule named by its class path in a config needs no entry point: the config imports it.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from lit_video.errors import LitVideoError

GROUP = "lit_video.plugins"
_loaded: set[str] = set()


def load_plugins() -> None:
    """Import every module declared under the `lit_video.plugins` entry points, each once per process.

    Raises:
        LitVideoError: a declared module cannot be imported (names the entry point and the reason).
    """
    for entry in entry_points(group=GROUP):
        if entry.value in _loaded:
            continue
        try:
            importlib.import_module(entry.module)
        except ImportError as error:
            raise LitVideoError(f"plugin {entry.name} = {entry.value} (entry point group {GROUP}) "
                                f"cannot be imported: {error}") from None
        _loaded.add(entry.value)
