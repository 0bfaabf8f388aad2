"""chatmail_service.restarted_if_stale, loaded by Salt's loader.

The host has no systemd, so the restart itself is exercised by the system
test (test/system/test_stages.py); here: the start-time parsing, which files
count as newer (``__pycache__`` never does), and that a unit that is not
running is left alone.
"""

from __future__ import annotations

import importlib.util
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parents[2] / "_states" / "chatmail_service.py"


@pytest.fixture(scope="module")
def state(salt_loaders):
    return salt_loaders.states.chatmail_service


@pytest.fixture(scope="module")
def helpers():
    """The module's private helpers (the loader exposes only the state)."""
    spec = importlib.util.spec_from_file_location("chatmail_service", MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parses_systemctl_microsecond_utc_timestamps(helpers):
    when = helpers._parse_timestamp("Wed 2026-11-25 19:40:05.123456 UTC")
    assert when == datetime(2026, 11, 25, 19, 40, 5, 123456, tzinfo=timezone.utc).timestamp()
    assert helpers._parse_timestamp("") is None
    assert helpers._parse_timestamp("n/a") is None


def test_newer_files_walks_directories_but_not_bytecode(helpers, tmp_path):
    old, new = tmp_path / "old.conf", tmp_path / "code" / "mod.py"
    cache = tmp_path / "code" / "__pycache__" / "mod.cpython-311.pyc"
    cache.parent.mkdir(parents=True)
    for path in (old, new, cache):
        path.write_text("x")
    os.utime(old, (1000, 1000))
    since = 2000.0
    paths = [str(old), str(tmp_path / "code"), str(tmp_path / "missing.conf")]
    assert helpers._newer_files(paths, since) == [str(new)]
    os.utime(new, (1500, 1500))
    assert helpers._newer_files(paths, since) == []


def test_a_unit_that_is_not_running_is_left_alone(state, tmp_path):
    conf = tmp_path / "x.conf"
    conf.write_text("x")
    ret = state.restarted_if_stale("chatmail-no-such-unit", configs=[str(conf)])
    assert ret["result"] is True
    assert ret["changes"] == {}
    assert "not running" in ret["comment"]
