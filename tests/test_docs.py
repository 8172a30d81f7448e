"""The docs site builds with warnings as errors, and the README and docs name only what exists."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
# Files that the how-to guides ask the reader to create: examples, not parts of the project.
HOWTO_EXAMPLES = {
    "experiments/synthetic/arrow_of_time_tiny.yaml",
    "lit_video.tasks.arrow_of_time",
    "lit_video.data.formats.something",
}


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def test_the_site_builds_with_warnings_as_errors(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        pytest.fail('the docs tools are missing: pip install -e ".[docs]" (make test installs them)')
    site = tmp_path / "site"
    # Material for MkDocs prints a banner about MkDocs 2.0 on every build
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    for page in ("index.html", "benchmarks/index.html", "howto/add-a-task/index.html",
                 "reference/lit_video/index.html", "reference/lit_video/models/registry/index.html"):
        assert (site / page).is_file(), page
    # the API reference is rendered from the docstrings
    registry_page = (site / "reference/lit_video/models/registry/index.html").read_text()
    assert "register_model" in registry_page and "tiny_kwargs" in registry_page


def test_the_readme_fits_on_a_page_and_starts_with_the_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    first_block = text.split("```")[1]
    assert "make demo" in first_block and "make test" in first_block


def test_every_relative_link_of_the_readme_and_docs_resolves():
    for path in markdown_files():
        prose = re.sub(r"```.*?```|`[^`\n]*`", "", path.read_text(), flags=re.S)  # code is not links
        for target in re.findall(r"\]\(([^)\s]+)\)", prose):
            if re.match(r"[a-z]+://|#|mailto:", target) or "reference/" in target:
                continue  # web links, anchors (mkdocs checks those), generated API pages (built above)
            assert (path.parent / target.split("#")[0]).exists(), f"{path.relative_to(ROOT)}: {target}"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_project_path_and_module_named_exists(path):
    """Backquoted repository paths (`lit_video/...`, `experiments/...`) and dotted names under
    `lit_video.` must exist, so that moving a file without updating the docs fails here."""
    text = path.read_text()
    missing = []
    for name in set(re.findall(r"`((?:lit_video|experiments|sweeps|benchmarks|tests|notebooks)/[\w./<>-]*)", text)):
        name = name.rstrip("./")
        if "<" not in name and name not in HOWTO_EXAMPLES and not (ROOT / name).exists():
            missing.append(name)
    for name in set(re.findall(r"\blit_video(?:\.\w+)+", text)):
        if not _module_prefix_exists(name):
            missing.append(name)
    assert not missing, f"{path.relative_to(ROOT)} names what does not exist: {sorted(missing)}"


def _module_prefix_exists(dotted: str) -> bool:
    """True when `dotted` is a module of the package, or an attribute path that starts with one."""
    parts = dotted.split(".")
    if ".".join(parts[:4]) in HOWTO_EXAMPLES or ".".join(parts[:3]) in HOWTO_EXAMPLES:
        return True
    for end in range(len(parts), 1, -1):
        base = ROOT.joinpath(*parts[:end])
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            attributes = parts[end:]
            # an attribute must at least be spelt in its module (a class, function or constant)
            source = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
            return not attributes or re.search(rf"\b{re.escape(attributes[0])}\b", source.read_text()) is not None
    return False
