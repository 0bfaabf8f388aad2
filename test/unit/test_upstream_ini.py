"""A chatmail.ini from cmdeploy 1.12 converts 1:1: every key accepted, each typed as upstream reads it."""

from pathlib import Path

import pytest

from chatmail_config import SETTINGS, SettingsError, derived, parse_ini, render_ini, validate
from support.params import TLS

INI = Path(__file__).resolve().parents[1] / "data" / "chatmail-1.12.ini"
# every key cmdeploy 1.12's chatmail.ini template lists (commented or not)
UPSTREAM_TEMPLATE_KEYS = {
    "mail_domain",
    "max_user_send_per_minute",
    "max_user_send_burst_size",
    "max_mailbox_size",
    "max_message_size",
    "delete_mails_after",
    "delete_large_after",
    "delete_inactive_users_after",
    "username_min_length",
    "username_max_length",
    "password_min_length",
    "max_load_1m",
    "min_available_memory",
    "min_free_disk_space",
    "max_imap_connections",
    "max_smtp_connections",
    "tls_external_cert_and_key",
    "www_folder",
    "disable_ipv6",
    "acme_email",
    "iroh_relay",
    "mtail_address",
    "imap_rawlog",
    "imap_compress",
    "privacy_postal",
    "privacy_mail",
    "privacy_pdo",
    "privacy_supervisor",
}
# keys upstream 1.12's Config reads although its template does not list them
UPSTREAM_HIDDEN_KEYS = {
    "filtermail_smtp_port",
    "filtermail_smtp_port_incoming",
    "filtermail_http_port_incoming",
    "filtermail_lmtp_port_transport",
    "postfix_reinject_port",
    "postfix_reinject_port_incoming",
    "turn_socket_path",
    "mailboxes_dir",
    "passdb_path",
}


@pytest.fixture
def raw():
    return parse_ini(INI.read_text())


def test_the_file_sets_every_upstream_key(raw):
    assert set(raw) == UPSTREAM_TEMPLATE_KEYS | UPSTREAM_HIDDEN_KEYS
    assert set(raw) <= set(SETTINGS)


def test_converts_with_each_value_typed(raw):
    s = validate(raw, "chatmail-1.12.ini")
    assert (s["max_user_send_per_minute"], s["max_user_send_burst_size"]) == (30, 5)
    assert (s["max_mailbox_size"], s["max_message_size"]) == ("1G", 20971520)
    assert (s["delete_mails_after"], s["delete_large_after"], s["delete_inactive_users_after"]) == (30, 10, 120)
    assert (s["username_min_length"], s["username_max_length"], s["password_min_length"]) == (8, 12, 12)
    assert (s["max_load_1m"], s["min_available_memory"], s["min_free_disk_space"]) == (2.5, "300M", "2G")
    assert (s["max_imap_connections"], s["max_smtp_connections"]) == (4000, 500)
    # tls_external_cert_and_key is upstream's spelling of tls_mode external
    assert s["tls_mode"] == "external"
    assert (s["tls_cert_file"], s["tls_key_file"]) == ("/etc/ssl/chat/fullchain.pem", "/etc/ssl/chat/privkey.pem")
    d = derived(s, TLS)
    assert (d["tls_cert_path"], d["tls_key_path"]) == ("/etc/ssl/chat/fullchain.pem", "/etc/ssl/chat/privkey.pem")
    assert s["disable_ipv6"] is True and s["mtail_address"] == "127.0.0.1"
    assert d["iroh_relay_url"] == "https://iroh.example.org" and not d["iroh_relay_local"]
    assert s["privacy_postal"] == "Example Operator\nStreet 1, Town" and s["privacy_pdo"] == ""
    assert s["filtermail_lmtp_port_transport"] == 10083 and s["turn_socket_path"] == "/run/chatmail-turn/turn.socket"


def test_services_read_back_what_the_formula_renders(raw):
    """The rendered chatmail.ini (for the relay's services) validates to the same settings."""
    s = validate(raw)
    again = validate(parse_ini(render_ini(s)))
    assert {k: again[k] for k in s if SETTINGS[k].scope == "ini"} == {k: s[k] for k in s if SETTINGS[k].scope == "ini"}


def test_unknown_keys_are_still_refused_with_a_hint(raw):
    raw["max_user_send_burst"] = "5"
    with pytest.raises(SettingsError) as info:
        validate(raw)
    assert info.value.problems == [
        "chatmail:max_user_send_burst: got '5' for an unknown key (did you mean max_user_send_burst_size?); "
        "expected one of the keys in pillar.example"
    ]


def test_keys_upstream_dropped_still_work(raw):
    """passthrough_* left upstream in 1.11; an ini from 1.10 still converts."""
    raw.update(passthrough_senders="bot@chat.example.org", passthrough_recipients="@example.com")
    s = validate(raw)
    assert (s["passthrough_senders"], s["passthrough_recipients"]) == (["bot@chat.example.org"], ["@example.com"])


@pytest.mark.parametrize(
    "extra, key, expected",
    [
        ({"tls_external_cert_and_key": "/only/one.pem"}, "tls_external_cert_and_key", "two absolute paths"),
        ({"tls_external_cert_and_key": "cert.pem key.pem"}, "tls_external_cert_and_key", "two absolute paths"),
        ({"tls_mode": "acme"}, "tls_mode", "tls_external_cert_and_key is set"),
        ({"tls_cert_file": "/other.pem"}, "tls_cert_file", "tls_external_cert_and_key says"),
        ({"max_user_send_burst_size": "0"}, "max_user_send_burst_size", ">= 1"),
        ({"max_load_1m": "high"}, "max_load_1m", "number >= 0"),
        ({"min_available_memory": "lots"}, "min_available_memory", "size like 500M"),
        ({"max_smtp_connections": "-1"}, "max_smtp_connections", "not a negative"),
        ({"mail_domain": "2001:db8::7"}, "mail_domain", "IPv4 address only"),
        ({"mail_domain": "127.0.0.1"}, "mail_domain", "not an address other hosts can reach"),
    ],
)
def test_bad_upstream_values_are_named(raw, extra, key, expected):
    raw.update(extra)
    with pytest.raises(SettingsError) as info:
        validate(raw)
    mine = [p for p in info.value.problems if f":{key}:" in p]
    assert len(mine) == 1 and expected in mine[0], info.value.problems


@pytest.mark.parametrize(
    "extra, mode",
    [
        ({}, "self_signed"),
        ({"tls_mode": "self_signed"}, "self_signed"),
        ({"tls_external_cert_and_key": "/c.pem /k.pem"}, "external"),
    ],
)
def test_underscore_domain_means_self_signed(extra, mode):
    s = validate({"mail_domain": "_chat.example.org", **extra})
    assert s["tls_mode"] == mode
    if mode == "self_signed":
        assert derived(s, TLS)["tls_cert_path"] == "/etc/ssl/certs/mailserver.pem"


def test_underscore_domain_refuses_acme():
    with pytest.raises(SettingsError) as info:
        validate({"mail_domain": "_chat.example.org", "tls_mode": "acme"})
    assert "no CA issues certificates" in str(info.value)


def test_defaults_are_upstreams():
    s = validate({"mail_domain": "chat.example.org"})
    assert s["max_user_send_burst_size"] == 10
    assert (s["max_load_1m"], s["min_available_memory"], s["min_free_disk_space"]) == (5.0, "200M", "1G")
    assert (s["max_imap_connections"], s["max_smtp_connections"]) == (10000, 1000)
    assert s["tls_mode"] == "acme" and s["tls_external_cert_and_key"] == []
