"""Shared test setup: import path for chatmaild and Salt loader options."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHATMAILD_SRC = REPO / "chatmail" / "chatmaild" / "files"
sys.path.insert(0, str(CHATMAILD_SRC))


def pytest_addoption(parser):
    parser.addoption(
        "--relay-release",
        default="12",
        help="Debian release(s) of the system tests' relay containers: 12, 13, or a list like "
        "12,13 that the relays of a module take in turn (the first 12, the second 13, ...)",
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "system: boots systemd containers (needs root, slow)")
    config.addinivalue_line("markers", "e2e: drives a real Delta Chat client against a container relay")
    config.addinivalue_line("markers", "debian13: runs on a Debian 13 (trixie) relay container (-m debian13)")
    config.addinivalue_line("markers", "upgrade: dist-upgrades a Debian 12 relay to 13 in place (slow, -m upgrade)")


@pytest.fixture(scope="session")
def salt_minion_opts(tmp_path_factory):
    """Minion options for saltfactories Loaders, pointed at this repo's modules."""
    import salt.config

    tmp_path = tmp_path_factory.mktemp("salt-minion")

    opts = salt.config.minion_config(None)
    root = tmp_path / "salt"
    # Serve only the state tree: walking the whole checkout (.git, .venv)
    # on every file list costs seconds and, under pytest's log capture, GBs.
    served = tmp_path / "file_root"
    served.mkdir()
    (served / "chatmail").symlink_to(REPO / "chatmail")
    opts.update(
        {
            "root_dir": str(root),
            "cachedir": str(root / "cache"),
            "pki_dir": str(root / "pki"),
            "sock_dir": str(root / "sock"),
            "file_client": "local",
            "file_roots": {"base": [str(served)]},
            "pillar_roots": {"base": [str(tmp_path / "pillar")]},
            "module_dirs": [str(REPO / "_modules")],
            "states_dirs": [str(REPO / "_states")],
            "utils_dirs": [str(REPO / "_utils")],
            "pillar_dirs": [str(REPO / "_pillar")],
            "pillar": {},
            "fileserver_list_cache_time": 0,
        }
    )
    os.makedirs(opts["cachedir"], exist_ok=True)
    return opts


@pytest.fixture(scope="session")
def salt_loaders(salt_minion_opts):
    """One loader for the session: building one costs seconds."""
    from saltfactories.utils.functional import Loaders

    loaders = Loaders(salt_minion_opts)
    try:
        yield loaders
    finally:
        loaders.reset_state()
