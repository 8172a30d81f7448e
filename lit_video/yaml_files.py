"""Reading YAML that a user hands us: experiment configs, sweep specs, profile configs.

PyYAML's safe loader builds no Python objects beyond plain data, but two things it allows still hurt:

- a key given twice in one mapping silently keeps the last value (a sweep whose `search_space` names
  `clip_len` twice sweeps only the second), so a repeated key is an error naming both lines;
- aliases share one object per anchor, so a 2 KB file of nested aliases (a "billion laughs") loads
  quickly but expands to billions of nodes as soon as anything walks it (a dump, a deep copy, a
  parser). The expanded size of a document is counted on its node graph before anything is built,
  and a document past `MAX_EXPANDED_NODES` is refused.

`load_yaml` reads a file, `parse_yaml` a string; both raise `YamlFileError` (a LitVideoError: one line
at the command line). `install_config_loader` makes jsonargparse (LightningCLI's parser) read configs
and command-line values the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lit_video.errors import LitVideoError

# A real config or spec has hundreds of nodes; a million leaves room for long lists (per-video
# settings, class names) while a billion-laughs file needs far more to do harm.
MAX_EXPANDED_NODES = 1_000_000

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlFileError(LitVideoError):
    """A YAML file (or value) that cannot be read: bad syntax, a repeated key, too large once expanded."""


class _StrictLoader(_BaseLoader):
    """Safe loader whose documents are checked (repeated keys, expanded size) before being built."""


def parse_yaml(text: str | bytes, source: str = "<string>") -> Any:
    """The plain data of one YAML document.

    Args:
        text: the document.
        source: what to call it in an error (a file name, a key).

    Raises:
        YamlFileError: naming `source` (and the line) for bad syntax, a key given twice in a mapping,
            or a document of more than MAX_EXPANDED_NODES nodes once its aliases are expanded.
    """
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check(node, source)
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        raise YamlFileError(f"{source}: not valid YAML: {_one_line(err)}") from None
    finally:
        loader.dispose()


def load_yaml(path: str | Path) -> Any:
    """`parse_yaml` of a file, read as UTF-8.

    Raises:
        YamlFileError: the file is missing, unreadable, not UTF-8, or not valid YAML (see parse_yaml).
    """
    from lit_video.data.records import read_text_file  # the one reader of user text files

    try:
        text = read_text_file(path, missing="no such file")
    except LitVideoError as err:
        raise YamlFileError(str(err)) from None
    return parse_yaml(text, str(path))


def _check(root: yaml.Node, source: str) -> None:
    """Raise YamlFileError for a repeated key anywhere under `root`, or a graph too large once expanded."""
    expanded: dict[int, int] = {}  # id(node) -> nodes under it, aliases expanded; each node is walked once
    on_path: set[int] = set()  # nodes whose children are being walked: the ancestors of the current one
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in expanded:
            continue
        children = _children(node)
        line = node.start_mark.line + 1
        if not children_done:
            if isinstance(node, yaml.MappingNode):
                _check_repeated_keys(node, source)
            # an alias is the very node object of its anchor, so a recursive alias is a cycle in the graph
            if any(id(child) in on_path or child is node for child in children):
                raise YamlFileError(f"{source}:{line}: an alias (*name) refers to the value that contains it")
            on_path.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in expanded)
            continue
        on_path.discard(id(node))
        total = 1 + sum(expanded[id(child)] for child in children)
        expanded[id(node)] = total
        if total > MAX_EXPANDED_NODES:
            raise YamlFileError(f"{source}:{line}: the document expands to more than {MAX_EXPANDED_NODES:,} values "
                                f"through its aliases (*name); write the values out or use fewer aliases")


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_repeated_keys(node: yaml.MappingNode, source: str) -> None:
    first_line: dict[tuple[str, str], int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        line = key.start_mark.line + 1
        previous = first_line.setdefault((key.tag, key.value), line)
        if previous != line:
            raise YamlFileError(f"{source}:{line}: key '{key.value}' given twice in one mapping (first on line "
                                f"{previous}); keep one")


def _one_line(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem


def install_config_loader() -> None:
    """Make jsonargparse read YAML (config files and command-line values) through `parse_yaml`, keeping
    its own handling of plain strings. Idempotent."""
    from jsonargparse import set_loader
    from jsonargparse._loaders_dumpers import yaml_load

    if getattr(_jsonargparse_yaml_load, "installed", False):
        return
    _jsonargparse_yaml_load.original = yaml_load
    set_loader("yaml", _jsonargparse_yaml_load, exceptions=(yaml.YAMLError, YamlFileError))
    _jsonargparse_yaml_load.installed = True


def _jsonargparse_yaml_load(stream: str) -> Any:
    # jsonargparse treats some strings specially ("a:" or "{a, b}" kept as text); do what it does, after
    # checking the document. The check raises a YAMLError subclass-free YamlFileError, which jsonargparse
    # reports with the key it was reading.
    _check_text(stream)
    return _jsonargparse_yaml_load.original(stream)


def _check_text(stream: str) -> None:
    loader = _StrictLoader(stream)
    try:
        node = loader.get_single_node()
        if node is not None:
            _check(node, "config")
    finally:
        loader.dispose()
