"""Shared test setup: options, markers and Salt loader options (the import path: pytest.ini)."""

from __future__ import annotations

import pytest

from support import salt as salt_driver


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
    config.addinivalue_line(
        "markers",
        "dovecot_rebuild: needs the rebuilt Dovecot .debs (dovecot_source: rebuilt); skipped when they are not"
        " cached, built first when -m names this marker",
    )
    config.addinivalue_line("markers", "debian13: runs on a Debian 13 (trixie) relay container (-m debian13)")
    config.addinivalue_line("markers", "upgrade: dist-upgrades a Debian 12 relay to 13 in place (slow, -m upgrade)")


@pytest.fixture(scope="session")
def salt_minion_opts(tmp_path_factory):
    """Minion options for saltfactories Loaders, pointed at this repo's modules (support.salt)."""
    return salt_driver.loader_options(tmp_path_factory.mktemp("salt-minion"))


@pytest.fixture(scope="session")
def salt_loaders(salt_minion_opts):
    """One loader for the session: building one costs seconds."""
    loaders = salt_driver.loaders(salt_minion_opts)
    try:
        yield loaders
    finally:
        loaders.reset_state()
