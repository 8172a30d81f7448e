"""YAML a user hands us (configs, specs): a repeated key, an alias bomb or a recursive alias is one line
naming the file and line, read fast and in bounded memory; configs read by LightningCLI get the same."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from cli_errors import Result, assert_one_line_error, run_lit_video

from lit_video.yaml_files import MAX_EXPANDED_NODES, YamlFileError, load_yaml, parse_yaml


def billion_laughs(levels: int = 9) -> str:
    """Each level a list of ten aliases of the one before: 10**levels strings from ~500 bytes."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels + 1):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


def test_plain_documents_load_as_safe_load_would():
    assert parse_yaml("a: [1, 2]\nb: {c: 3}\nd: &x {k: 1}\ne: *x\nf: {<<: *x, y: 2}") == {
        "a": [1, 2], "b": {"c": 3}, "d": {"k": 1}, "e": {"k": 1}, "f": {"k": 1, "y": 2}}
    assert parse_yaml("") is None
    # the same key in different mappings is fine; a list may repeat values
    assert parse_yaml("a: {x: 1}\nb: {x: 2}\nc: [1, 1]") == {"a": {"x": 1}, "b": {"x": 2}, "c": [1, 1]}


def test_a_key_given_twice_names_both_lines(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("search_space:\n  clip_len: [8]\n  stride: [1]\n  clip_len: [16]\n")
    with pytest.raises(YamlFileError, match=r"spec.yaml:4: key 'clip_len' given twice in one mapping \(first on line 2\)"):
        load_yaml(path)


def test_an_alias_bomb_is_refused_fast_in_bounded_memory():
    text = billion_laughs()
    assert len(text) < 2048
    started = time.perf_counter()
    with pytest.raises(YamlFileError, match=f"expands to more than {MAX_EXPANDED_NODES:,} values"):
        parse_yaml(text, "bomb.yaml")
    assert time.perf_counter() - started < 1.0
    # aliases as such are fine: four levels expand to about 12,000 values
    assert len(parse_yaml(billion_laughs(levels=4))["l4"]) == 10


def test_a_recursive_alias_is_refused():
    with pytest.raises(YamlFileError, match="bad.yaml:1: an alias"):
        parse_yaml("a: &x [1, *x]\n", "bad.yaml")


def test_not_utf8_and_bad_syntax_name_the_file_and_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"a: 1\nb: caf\xe9\n")
    with pytest.raises(YamlFileError, match=r"c.yaml:2: not UTF-8"):
        load_yaml(path)
    path.write_text("a: [1,\n")
    with pytest.raises(YamlFileError, match=r"c.yaml: not valid YAML: .*line 2"):
        load_yaml(path)


def test_a_python_tag_builds_nothing():
    with pytest.raises(YamlFileError, match="not valid YAML"):
        parse_yaml("!!python/object/apply:os.system ['touch /tmp/pwned']")


@pytest.mark.parametrize("name, text, fragments", [
    ("bomb.yaml", billion_laughs(), ("bomb.yaml:", "expands to more than")),
    ("twice.yaml", "seed_everything: 1\ntrainer:\n  max_epochs: 1\nseed_everything: 2\n",
     ("twice.yaml:4", "'seed_everything' given twice")),
])
def test_fit_refuses_the_config_in_one_line(tmp_path, name, text, fragments):
    path = tmp_path / name
    path.write_text(text)
    assert_one_line_error(run_lit_video("fit", "--config", path, timeout=120), *fragments)


# The command's own peak resident memory, from /proc (VmHWM starts afresh at exec; a child's rusage would count
# the memory of the pytest process it was forked from).
PEAK_PROBE = """
import atexit, os, re, sys
from pathlib import Path
def record():
    status = Path("/proc/self/status").read_text()
    Path(os.environ["PEAK_FILE"]).write_text(re.search(r"VmHWM:\\s+(\\d+)", status).group(1))
atexit.register(record)
from lit_video.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_nested_config_values_are_checked_too(tmp_path):
    """A bomb given as a command-line value (not a --config file) goes through jsonargparse's loader, and
    the command stays far below the 8.5 GB the unbounded expansion took."""
    peak_file = tmp_path / "peak_kib"
    env = {**os.environ, "WANDB_MODE": "offline", "PEAK_FILE": str(peak_file)}
    # a timeout: without the check the expansion never ends, and the test must fail rather than hang
    completed = subprocess.run([sys.executable, "-c", PEAK_PROBE, "fit", "--trainer", billion_laughs()], env=env,
                               capture_output=True, text=True, timeout=120)
    assert_one_line_error(Result(completed.returncode, completed.stdout, completed.stderr), "expands to more than")
    assert int(peak_file.read_text()) < 2 * 1024**2  # KiB
