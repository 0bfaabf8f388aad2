"""IP-only relays' settings as the formula validates them (test_ip_relay.py: the services' side)."""

from __future__ import annotations

import pytest

from chatmail_config import SettingsError, derived, validate
from support.params import TLS

IP = "192.0.2.7"


def test_an_ipv4_address_is_an_ip_only_relay():
    s = validate({"mail_domain": IP})
    d = derived(s, TLS)
    assert s["mail_domain"] == IP and s["tls_mode"] == "self_signed"
    assert d["ip_relay"] and d["mail_domain_address"] == f"[{IP}]"
    assert d["smtp_hostname"] == "7.2.0.192.in-addr.arpa" and d["dclogin_accounts"]
    assert d["mailboxes_dir"] == f"/home/vmail/mail/{IP}"
    assert d["tls_cert_path"] == "/etc/ssl/certs/mailserver.pem"
    # the bracketed form is the same relay
    assert validate({"mail_domain": f"[{IP}]"})["mail_domain"] == IP


def test_a_domain_relay_is_unchanged():
    d = derived(validate({"mail_domain": "chat.example.org"}), TLS)
    assert not d["ip_relay"] and not d["dclogin_accounts"]
    assert d["mail_domain_address"] == d["smtp_hostname"] == "chat.example.org"
    assert derived(validate({"mail_domain": "_chat.example.org"}), TLS)["dclogin_accounts"]


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2001:db8::7", "IPv4 address only"),
        ("127.0.0.1", "not an address other hosts can reach"),
        ("0.0.0.0", "not an address other hosts can reach"),
        ("192.0.2.007", "expected"),
    ],
)
def test_unusable_addresses_are_refused_by_name(value, expected):
    with pytest.raises(SettingsError) as info:
        validate({"mail_domain": value})
    assert "mail_domain" in str(info.value) and expected in str(info.value)


def test_acme_is_refused_for_an_ip():
    with pytest.raises(SettingsError, match="no CA issues certificates for an IP address"):
        validate({"mail_domain": IP, "tls_mode": "acme"})
