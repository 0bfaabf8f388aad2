"""IP-only relays (upstream 1.12): mail_domain an IPv4 address, accounts user@[1.2.3.4].

The settings, the account rules doveauth applies to a first login, and the
dclogin: code /new hands out (Delta Chat cannot use DCACCOUNT: with the
relay's self-signed certificate).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from chatmaild.accountrules import address_refusal
from chatmaild.config import Config, SettingsError, derived, validate
from chatmaild.doveauth import AuthDict

CHATMAILD_DIR = Path(__file__).resolve().parents[3] / "chatmail" / "chatmaild" / "files" / "chatmaild"
IP = "192.0.2.7"


def test_the_services_see_the_address_literal():
    config = Config(validate({"mail_domain": IP}))
    assert config.mail_domain == IP and config.mail_domain_address == f"[{IP}]"
    assert config.ip_relay and config.dclogin_accounts
    d = derived(validate({"mail_domain": IP}))
    assert d["smtp_hostname"] == "7.2.0.192.in-addr.arpa" and d["mailboxes_dir"] == f"/home/vmail/mail/{IP}"


def test_unusable_addresses_are_refused_by_name():
    for value, expected in [("2001:db8::7", "IPv4 address only"), ("127.0.0.1", "other hosts can reach")]:
        with pytest.raises(SettingsError) as info:
            validate({"mail_domain": value})
        assert "mail_domain" in str(info.value) and expected in str(info.value)


@pytest.mark.parametrize(
    "addr, ok",
    [
        (f"abcdefghi@[{IP}]", True),
        (f"abcdefghi@{IP}", False),  # not an address literal
        ("abcdefghi@[192.0.2.8]", False),  # another relay's
        ("abcdefghi@chat.example.org", False),
    ],
)
def test_account_rules_take_the_address_literal(addr, ok):
    refusal = address_refusal(addr, f"[{IP}]", 9, 9)
    assert (refusal is None) == ok, refusal


def test_doveauth_creates_an_account_on_the_literal(tmp_path):
    config = Config(validate({"mail_domain": IP, "mailboxes_dir": str(tmp_path / "mail")}))
    (tmp_path / "mail").mkdir()
    auth = AuthDict(config, nocreate_path=tmp_path / "nocreate")
    addr = f"abcdefghi@[{IP}]"
    assert auth.refusal(addr, "a-long-password") is None
    assert auth.refusal(f"abcdefghi@{IP}", "a-long-password") == f"address must end in @[{IP}]"


def run_cgi(ini: Path, accept: str = "") -> tuple[dict[str, str], str]:
    env = {
        "PATH": os.environ["PATH"],
        "REQUEST_METHOD": "POST",
        "CHATMAIL_INI": str(ini),
        "PYTHONPATH": str(CHATMAILD_DIR.parent),
        **({"HTTP_ACCEPT": accept} if accept else {}),
    }
    proc = subprocess.run(
        [sys.executable, str(CHATMAILD_DIR / "newemail.py")], capture_output=True, env=env, timeout=60
    )
    head, _, body = proc.stdout.decode().partition("\r\n\r\n")
    assert proc.returncode == 0, proc.stderr
    return dict(line.split(": ", 1) for line in head.split("\r\n")), body


@pytest.fixture
def ip_ini(tmp_path):
    ini = tmp_path / "chatmail.ini"
    ini.write_text(f"[params]\nmail_domain = {IP}\n")
    return ini


def test_new_gives_an_address_literal_and_a_dclogin_code(ip_ini):
    headers, body = run_cgi(ip_ini)
    assert headers["Content-Type"] == "application/json"
    creds = json.loads(body)
    assert creds["email"].endswith(f"@[{IP}]")
    url = urlsplit(creds["dclogin_url"])
    assert url.scheme == "dclogin" and unquote(url.path) == creds["email"]
    query = parse_qs(url.query)
    # the password survives quoting; the servers are the IP (the literal names no host);
    # ic=3: accept the self-signed certificate
    assert query["p"] == [creds["password"]] and query["ih"] == [IP] and query["sh"] == [IP]
    assert query["v"] == ["1"] and query["ic"] == ["3"]


def test_a_browser_gets_a_page_with_the_link(ip_ini):
    headers, body = run_cgi(ip_ini, accept="text/html,application/xhtml+xml,*/*;q=0.8")
    assert headers["Content-Type"].startswith("text/html") and headers["Cache-Control"] == "no-store"
    assert 'href="dclogin:' in body and f"%40%5B{IP}%5D" not in body and f"@[{IP}]" in body


def test_a_domain_relay_answers_as_before(tmp_path):
    ini = tmp_path / "chatmail.ini"
    ini.write_text("[params]\nmail_domain = chat.example.org\n")
    headers, body = run_cgi(ini, accept="text/html")
    assert headers["Content-Type"] == "application/json" and "dclogin_url" not in json.loads(body)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("<abcdefghi@[192.0.2.7]>", "abcdefghi@[192.0.2.7]"),
        ("Alice <abcdefghi@[192.0.2.7]>", "abcdefghi@[192.0.2.7]"),
        ("abcdefghi@[192.0.2.7]", "abcdefghi@[192.0.2.7]"),
        ("<bob@chat.example.org>", "bob@chat.example.org"),
        # what strict parsing is for: two addresses, one hidden; still nothing
        ("abcdefghi@[192.0.2.7])<bob@chat.example.org>", ""),
        ("<a@[192.0.2.7]>, <b@[192.0.2.8]>", ""),
        ("<abcdefghi@[example.org]>", ""),
    ],
)
def test_from_header_with_an_address_literal(value, expected):
    """The stdlib's strict parser refuses user@[IP]; the filters must still see the sender."""
    from chatmaild.mimecheck import header_address

    assert header_address(value) == expected
