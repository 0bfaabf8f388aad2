"""lastlogin over a real unix socket: the login day becomes the password mtime."""

from __future__ import annotations

import os

import pytest

from chatmaild.lastlogin import LastLoginDict
from support.dicts import DictClient, assert_survives_garbage, running

ADDR = "abcdefghi@chat.example.org"
LOGIN = 1_700_000_123  # 2023-11-14 22:15:23 UTC
DAY = 1_699_920_000  # 2023-11-14 00:00:00 UTC


@pytest.fixture
def password(config):
    userdir = config.mailboxes_dir / ADDR
    userdir.mkdir()
    path = userdir / "password"
    path.write_text("{SHA512-CRYPT}$6$x$y")
    os.utime(path, (1_600_000_000, 1_600_000_000))
    return path


@pytest.fixture
def client(config):
    with running(LastLoginDict(config)) as path:
        c = DictClient(path)
        c.hello("lastlogin")
        yield c
        c.close()


def test_login_sets_day_as_mtime(client, password):
    assert client.transaction("1", ADDR, [(f"shared/last-login/{ADDR}", str(LOGIN))]) == "O1"
    st = password.stat()
    assert (st.st_mtime, st.st_atime) == (DAY, DAY)


def test_same_day_does_not_write_again(client, password):
    client.transaction("1", ADDR, [(f"shared/last-login/{ADDR}", str(LOGIN))])
    os.utime(password, (DAY + 5, DAY))  # atime differs: a second write would reset it
    client.transaction("1", ADDR, [(f"shared/last-login/{ADDR}", str(LOGIN + 60))])
    assert password.stat().st_atime == DAY + 5
    client.transaction("1", ADDR, [(f"shared/last-login/{ADDR}", str(LOGIN + 86400))])
    assert password.stat().st_mtime == DAY + 86400


def test_async_commit_and_address_from_key(client, password):
    # the address comes from the key, not from the transaction's user
    assert client.transaction("7", "", [(f"shared/last-login/{ADDR}", str(LOGIN))], commit="D") == "AO7"
    assert password.stat().st_mtime == DAY


def test_missing_password_file_still_succeeds(client, config):
    assert client.transaction("1", ADDR, [(f"shared/last-login/{ADDR}", str(LOGIN))]) == "O1"
    assert not (config.mailboxes_dir / ADDR).exists()


def test_other_keys_fail(client, password):
    assert client.transaction("1", ADDR, [("shared/other/x", "1")]) == "F1"
    assert client.transaction("2", ADDR, [(f"shared/last-login/{ADDR}", "yesterday")]) == "F2"
    assert client.transaction("3", ADDR, [("shared/last-login/../x@y", "1")]) == "F3"
    assert client.lookup(f"shared/last-login/{ADDR}") == "N"
    assert client.iterate("shared/last-login/") == []


def test_address_without_at_is_ignored(client, config):
    assert client.transaction("1", "", [("shared/last-login/master", str(LOGIN))]) == "O1"
    assert list(config.mailboxes_dir.iterdir()) == []


def test_survives_malformed_input(config, password):
    with running(LastLoginDict(config)) as path:

        def probe(c):
            assert c.transaction("1", ADDR, [(f"shared/last-login/{ADDR}", str(LOGIN))]) == "O1"

        assert_survives_garbage(path, probe)


def test_overlong_address_is_refused_without_a_traceback(client, caplog):
    """Found by bench/fuzz.py: a 300-character address reached stat() and raised ENAMETOOLONG."""
    addr = "x" * 300 + "@chat.example.org"
    assert client.transaction("1", addr, [(f"shared/last-login/{addr}", str(LOGIN))]) == "F1"
    assert not [r for r in caplog.records if r.exc_info]
    assert client.transaction("2", ADDR, [(f"shared/last-login/{ADDR}", str(LOGIN))]) == "O2"


@pytest.mark.parametrize("value", ["9" * 30, "-" + "9" * 30])
def test_login_time_out_of_range_is_refused_without_a_traceback(client, password, caplog, value):
    """Found by bench/fuzz.py: os.utime() raised OverflowError."""
    assert client.transaction("1", ADDR, [(f"shared/last-login/{ADDR}", value)]) == "F1"
    assert not [r for r in caplog.records if r.exc_info]
