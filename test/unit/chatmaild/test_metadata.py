"""chatmail-metadata over a real unix socket: tokens, push trigger, server entries."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from chatmail_config import validate
from chatmaild.metadata import MetadataDict
from chatmaild.metadata_tokens import TokenStore
from chatmaild.notifier import Notifier
from support.dicts import DictClient, assert_survives_garbage, make_config, openssl_hmac_sha1_base64, running

ADDR = "abcdefghi@chat.example.org"
GUID = "0123456789abcdef0123456789abcdef"
SERVER = "shared/{}/vendor/vendor.dovecot/pvt/server/vendor/deltachat/"
SHIPPED_APPVERSIONS = Path(__file__).resolve().parents[3] / "chatmail/chatmaild/files/appversions.json"


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "turn-secret"
    path.write_text("turn-secret-value\n")
    return path


@pytest.fixture
def appversions(tmp_path):
    """The formula's appversions.json, where the state puts it (here: in tmp)."""
    path = tmp_path / "appversions.json"
    path.write_bytes(SHIPPED_APPVERSIONS.read_bytes())
    return path


@pytest.fixture
def service(config, push_server, secret, appversions):
    (config.mailboxes_dir / ADDR).mkdir()
    tokens = TokenStore(config)
    notifier = Notifier(
        config.mailboxes_dir / "pending_notifications", tokens, url=push_server.url, workers=(1, 1, 1, 1, 1), timeout=5
    )
    notifier.load()
    notifier.start()
    proxy = MetadataDict(config, tokens, notifier, turn_secret=secret, appversions=appversions)
    with running(proxy) as path:
        yield proxy, path
    notifier.stop()


@pytest.fixture
def client(service):
    c = DictClient(service[1])
    c.hello("metadata")
    yield c
    c.close()


def set_token(client, token, txid="1", user=ADDR):
    return client.transaction(txid, user, [(f"priv/{GUID}/devicetoken", token)])


def test_devicetokens_roundtrip(client, config):
    assert client.lookup(f"priv/{GUID}/devicetoken", ADDR) == "O"
    assert set_token(client, "1111") == "O1"
    assert client.lookup(f"priv/{GUID}/devicetoken", ADDR) == "O1111"
    assert set_token(client, "2222") == "O1"
    assert client.lookup(f"priv/{GUID}/devicetoken", ADDR) == "O1111 2222"
    data = json.loads((config.mailboxes_dir / ADDR / "metadata.json").read_text())
    assert list(data["devicetoken"]) == ["1111", "2222"]
    assert all(abs(ts - time.time()) < 5 for ts in data["devicetoken"].values())


def test_expired_and_legacy_tokens(client, config):
    path = config.mailboxes_dir / ADDR / "metadata.json"
    now = int(time.time())
    path.write_text(json.dumps({"devicetoken": {"old": now - 91 * 86400, "future": now + 3600, "ok": now - 86400}}))
    assert client.lookup(f"priv/{GUID}/devicetoken", ADDR) == "Ook"
    assert list(json.loads(path.read_text())["devicetoken"]) == ["ok"]
    # legacy list form is read (upstream defect #9) and converted
    path.write_text(json.dumps({"devicetoken": ["l1", "l2"]}))
    assert client.lookup(f"priv/{GUID}/devicetoken", ADDR) == "Ol1 l2"
    assert isinstance(json.loads(path.read_text())["devicetoken"], dict)
    path.write_text("{not json")
    assert client.lookup(f"priv/{GUID}/devicetoken", ADDR) == "O"


def test_messagenew_pushes_each_token(client, push_server, config):
    set_token(client, "tok-a")
    set_token(client, "tok-b")
    assert client.transaction("5", ADDR, [(f"priv/{GUID}/messagenew", "")]) == "O5"
    got = push_server.wait_for(2)
    assert sorted(body for _, body in got) == [b"tok-a", b"tok-b"]


def test_messagenew_as_lua_hook_sends_it(service, push_server):
    """The Lua hook's transaction: B, S with the value field missing, C."""
    c = DictClient(service[1])
    set_token(c, "tok-z")
    c.send(f"B9\t{ADDR}")
    c.send(f"S9\tpriv/{GUID}/messagenew")
    assert c.request("C9") == "O9"
    assert [body for _, body in push_server.wait_for(1)] == [b"tok-z"]
    c.close()


def test_refused_sets(client, config):
    assert client.transaction("1", ADDR, [("shared/x/foo", "v")]) == "F1"
    assert client.transaction("2", ADDR, [(f"priv/{GUID}/other", "v")]) == "F2"
    assert set_token(client, "t", txid="3", user="") == "F3"
    assert set_token(client, "t", txid="4", user="nobody@chat.example.org") == "F4"
    # a failed set fails the whole transaction; sets apply when they arrive
    assert client.transaction("6", ADDR, [(f"priv/{GUID}/devicetoken", "keep"), ("shared/x/y", "z")]) == "F6"
    assert client.lookup(f"priv/{GUID}/devicetoken", ADDR) == "Okeep"


def test_iroh_relay_entry(client):
    assert client.lookup(SERVER.format("") + "irohrelay") == "Ohttps://chat.example.org"
    assert client.lookup(SERVER.format("abc") + "irohrelay") == "Ohttps://chat.example.org"
    assert client.lookup(SERVER.format("") + "unknown") == "N"


@pytest.mark.parametrize("value,expected", [("", "N"), ("https://iroh.example.net", "Ohttps://iroh.example.net")])
def test_iroh_relay_configured(tmp_path, push_server, secret, value, expected):
    cfg = make_config(tmp_path, iroh_relay=value)
    tokens = TokenStore(cfg)
    proxy = MetadataDict(cfg, tokens, Notifier(tmp_path / "q", tokens, url=push_server.url), turn_secret=secret)
    with running(proxy) as path:
        c = DictClient(path)
        assert c.lookup(SERVER.format("") + "irohrelay") == expected
        c.close()


def test_turn_entry(client, secret):
    reply = client.lookup(SERVER.format("") + "turn", ADDR)
    assert reply.startswith("O")
    host, port, username, password = reply[1:].split(":")
    assert (host, port) == ("chat.example.org", "3478")
    assert abs(int(username) - (time.time() + 5 * 86400)) < 60
    assert password == openssl_hmac_sha1_base64("turn-secret-value", username)


def test_turn_entry_without_secret(client, secret):
    secret.unlink()
    assert client.lookup(SERVER.format("") + "turn") == "N"


def test_max_smtp_recipients_entry(client):
    """Postfix's smtpd_recipient_limit, so clients split larger groups themselves."""
    assert client.lookup(SERVER.format("") + "maxsmtprecipients", ADDR) == "O1000"


def test_appversions_entry_is_the_file_on_one_line(client, appversions):
    reply = client.lookup(SERVER.format("") + "appversions", ADDR)
    assert reply.startswith("O") and "\n" not in reply
    assert json.loads(reply[1:]) == json.loads(SHIPPED_APPVERSIONS.read_text())
    assert validate({"mail_domain": "c.example.org", "appversions": reply[1:]})["appversions"] == json.loads(reply[1:])


def test_appversions_follow_the_file_without_restart(client, appversions):
    entry = SERVER.format("") + "appversions"
    # a value with a newline still travels as one dict-protocol line
    appversions.write_text('{"clients": [{"clientId": "one\\ntwo", "sources": []}]}')
    assert client.lookup(entry) == 'O{"clients":[{"clientId":"one\\ntwo","sources":[]}]}'
    appversions.write_text("not json")
    assert client.lookup(entry) == "N"
    appversions.unlink()
    assert client.lookup(entry) == "N"
    assert client.lookup(SERVER.format("") + "maxsmtprecipients") == "O1000"  # still in step


def test_iterate_is_empty(client):
    assert client.iterate(f"priv/{GUID}/") == []
    assert client.lookup(f"priv/{GUID}/devicetoken", ADDR) == "O"


def test_survives_malformed_input(service):
    def probe(c):
        assert c.lookup(SERVER.format("") + "irohrelay") == "Ohttps://chat.example.org"

    assert_survives_garbage(service[1], probe)


def test_main_refuses_missing_mailbox_dir(tmp_path):
    from chatmaild.config import render_ini
    from chatmaild.metadata import main

    cfg = make_config(tmp_path)
    ini = tmp_path / "chatmail.ini"
    ini.write_text(render_ini(cfg.settings))
    assert main([str(tmp_path / "s.socket"), str(ini)]) == 1


def test_started_service_reads_appversions_beside_its_ini(tmp_path, appversions):
    """The formula writes appversions.json beside chatmail.ini (chatmaild.lib): the service the
    unit starts with that ini answers with it."""
    from chatmaild.config import read_config
    from chatmaild.metadata import start

    (tmp_path / "mail").mkdir()
    ini = tmp_path / "chatmail.ini"
    ini.write_text(f"[params]\nmail_domain = chat.example.org\nmailboxes_dir = {tmp_path / 'mail'}\n")
    proxy = start(read_config(ini))
    try:
        assert proxy.appversions_path == appversions
        assert json.loads(proxy.server_entries["appversions"]()) == json.loads(appversions.read_text())
    finally:
        proxy.notifier.stop()


@pytest.mark.parametrize("from_unit", [True, False], ids=["secret-named", "not-named"])
def test_started_service_takes_the_turn_secret_its_unit_names(tmp_path, monkeypatch, secret, from_unit):
    """The unit names the secret file (CHATMAIL_TURN_SECRET); without it the service still
    serves everything else and hands out no TURN credentials instead of guessing a path."""
    from chatmaild.config import read_config
    from chatmaild.metadata import TURN_SECRET_ENV, start

    if from_unit:
        monkeypatch.setenv(TURN_SECRET_ENV, str(secret))
    else:
        monkeypatch.delenv(TURN_SECRET_ENV, raising=False)
    (tmp_path / "mail").mkdir()
    ini = tmp_path / "chatmail.ini"
    ini.write_text(f"[params]\nmail_domain = chat.example.org\nmailboxes_dir = {tmp_path / 'mail'}\n")
    proxy = start(read_config(ini))
    try:
        value = proxy.server_entries["turn"]()
        if from_unit:
            assert value.startswith("chat.example.org:3478:")
        else:
            assert value is None
        assert proxy.server_entries["maxsmtprecipients"]()
    finally:
        proxy.notifier.stop()
