"""pyproject.toml: chatmaild is found where the formula keeps it, the extras match what bootstrap installs."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def requirements() -> set[str]:
    lines = (REPO / "test" / "requirements.txt").read_text().splitlines()
    return {line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()}


def test_extras_are_the_bootstrap_requirements():
    extras = PROJECT["project"]["optional-dependencies"]
    dev = set(extras["test"]) | {req for req in extras["dev"] if not req.startswith("chatmaild[")}
    assert dev == requirements()


def test_package_dir_is_the_shipped_source():
    setuptools = PROJECT["tool"]["setuptools"]
    source = REPO / setuptools["package-dir"][""]
    for package in setuptools["packages"]:
        assert (source / package / "__init__.py").is_file()


def test_console_scripts_name_existing_mains():
    import importlib

    for target in PROJECT["project"]["scripts"].values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), target
