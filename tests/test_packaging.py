"""environment.yml (conda, clusters) and pyproject.toml must not drift apart."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    names = project["dependencies"] + extras["torchcodec"] + extras["gpu"]
    return {Requirement(r).name: Requirement(r) for r in names}


def _environment_requirements() -> dict[str, Requirement]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return {Requirement(r).name: Requirement(r) for r in pip}


def test_same_dependencies_and_bounds():
    ours, conda = _pyproject_requirements(), _environment_requirements()
    assert sorted(ours) == sorted(conda)
    for name, requirement in ours.items():
        assert requirement.specifier == conda[name].specifier, name
        assert requirement.extras == conda[name].extras, name


def test_environment_brings_ffmpeg_and_python():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    plain = [d for d in env["dependencies"] if isinstance(d, str)]
    assert "ffmpeg" in plain and any(d.startswith("python=3.11") for d in plain)


def test_lightning_never_resolves_to_compromised_releases():
    lightning = _pyproject_requirements()["lightning"].specifier
    assert not lightning.contains("2.6.2") and not lightning.contains("2.6.3")
    assert not lightning.contains("2.6.1") and lightning.contains("2.6.4") and lightning.contains("2.7.0")
