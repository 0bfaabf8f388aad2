"""System limits: doveauth over its socket refuses new accounts, never existing ones.

Each condition is faked by handing doveauth's SystemLimits a reader that
returns the value under test; everything else (the dict protocol, account
creation, the log) is the real service.
"""

from __future__ import annotations

import logging

import pytest

from chatmaild.doveauth import AuthDict
from chatmaild.syslimits import SystemLimits, available_memory, free_disk, load_1m
from support.dicts import ADDR, PASSWORD, DictClient, entry, make_config, passdb, running

MB = 1024 * 1024
NEW = "zyxwvutsr@chat.example.org"
# plenty of everything, within upstream's default limits (5, 200M, 1G)
FINE = {"load": 0.5, "memory": 4096 * MB, "disk": 50 * 1024 * MB}


@pytest.fixture
def world(tmp_path):
    """Measured values doveauth sees; a test changes one of them."""
    return dict(FINE)


@pytest.fixture
def auth(tmp_path, world):
    config = make_config(tmp_path, max_load_1m=5, min_available_memory="200M", min_free_disk_space="1G")
    config.mailboxes_dir.mkdir(parents=True)
    limits = SystemLimits(
        config, load=lambda: world["load"], memory=lambda: world["memory"], disk=lambda path: world["disk"]
    )
    with running(AuthDict(config, nocreate_path=tmp_path / "nocreate", limits=limits)) as path:
        client = DictClient(path)
        client.hello("auth")
        yield client
        client.close()


@pytest.mark.parametrize(
    "what, short, enough, reason",
    [
        ("load", 5.01, 5.0, "1-minute load average 5.01 above max_load_1m 5"),
        ("memory", 200 * MB - 1, 200 * MB, "available memory 199M below min_available_memory 200M"),
        ("disk", 1024 * MB - 1, 1024 * MB, "below min_free_disk_space 1G"),
    ],
)
def test_shortage_refuses_new_accounts_only(auth, world, caplog, what, short, enough, reason):
    entry(passdb(auth, ADDR, PASSWORD))  # an account made while all is well
    world[what] = short
    with caplog.at_level(logging.WARNING, logger="chatmaild.doveauth"):
        assert passdb(auth, NEW, PASSWORD) == "N"
    assert any(NEW in r.getMessage() and reason in r.getMessage() for r in caplog.records), caplog.text
    # the existing account logs in, and its userdb entry is there, as before
    assert entry(passdb(auth, ADDR, PASSWORD))["addr"] == ADDR
    assert entry(auth.lookup(f"shared/userdb/{ADDR}"))["addr"] == ADDR
    # exactly at the limit is not short
    world[what] = enough
    assert entry(passdb(auth, NEW, PASSWORD))["addr"] == NEW


def test_unreadable_value_does_not_block(tmp_path, caplog):
    """A limit that cannot be measured is not exceeded; the others still count."""

    def broken():
        raise OSError("no /proc here")

    config = make_config(tmp_path, max_load_1m=5, min_available_memory="200M", min_free_disk_space="1G")
    disk = [50 * 1024 * MB]
    limits = SystemLimits(config, load=broken, memory=broken, disk=lambda path: disk[0])
    assert limits.shortage() is None
    assert "cannot read load average" in caplog.text and "cannot read available memory" in caplog.text
    disk[0] = 0
    assert limits.shortage().startswith("free disk under")


def test_real_readers_measure_this_host(tmp_path):
    assert load_1m() >= 0
    assert available_memory() > 0
    # nearest existing parent; other writers on the disk may move the figure a little between the calls
    assert free_disk(tmp_path) > 0
    assert abs(free_disk(tmp_path / "not" / "yet") - free_disk(tmp_path)) < 64 * MB
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  8000000 kB\nMemAvailable:  204800 kB\n")
    assert available_memory(meminfo) == 200 * MB
    meminfo.write_text("MemTotal:  8000000 kB\n")
    with pytest.raises(ValueError):
        available_memory(meminfo)
