"""Fixtures of the chatmaild tests (helpers they build on live in dict_fixtures.py)."""

from __future__ import annotations

import pytest

from dict_fixtures import PushServer, make_config


@pytest.fixture
def config(tmp_path):
    """Settings for a relay whose mailbox root exists under tmp_path."""
    cfg = make_config(tmp_path)
    cfg.mailboxes_dir.mkdir(parents=True)
    return cfg


@pytest.fixture
def push_server():
    """A local stand-in for the push service (see PushServer)."""
    server = PushServer()
    yield server
    server.close()
