"""Fixtures of the chatmaild tests (the helpers they build on: support.dicts)."""

from __future__ import annotations

import pytest

from support.dicts import PushServer, make_config


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
