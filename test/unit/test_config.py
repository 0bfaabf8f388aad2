"""The settings table: defaults, typing, and every kind of bad input.

``validate`` here is the formula's (_utils/chatmail_config.py: the relay's
keys and the formula's), as an operator's pillar meets it; ``Config`` and
``read_config`` are what the relay's services build from the rendered ini.
"""

import pytest

from chatmail_config import SETTINGS, SettingsError, derived, parse_ini, render_ini, validate
from chatmaild.config import Config, read_config
from support.params import TLS


def problems_of(raw):
    with pytest.raises(SettingsError) as info:
        validate(raw)
    return info.value.problems


def test_defaults_match_the_reference_relay():
    s = validate({"mail_domain": "chat.example.org"})
    assert s["max_mailbox_size"] == "500M"
    assert s["max_message_size"] == 31457280
    assert s["max_user_send_per_minute"] == 60
    assert (s["delete_mails_after"], s["delete_large_after"], s["delete_inactive_users_after"]) == (20, 7, 90)
    assert (s["username_min_length"], s["username_max_length"], s["password_min_length"]) == (9, 9, 9)
    assert (s["filtermail_smtp_port"], s["postfix_reinject_port"]) == (10080, 10025)
    assert (s["filtermail_smtp_port_incoming"], s["postfix_reinject_port_incoming"]) == (10081, 10026)
    assert s["disable_ipv6"] is False and s["iroh_relay"] is None
    assert derived(s, TLS)["mailboxes_dir"] == "/home/vmail/mail/chat.example.org"


def test_ini_strings_are_typed_like_yaml_values():
    from_ini = validate(
        {
            "mail_domain": "c.example.org",
            "max_message_size": "1000",
            "disable_ipv6": "True",
            "passthrough_recipients": "a@x.org @y.org",
        }
    )
    from_yaml = validate(
        {
            "mail_domain": "c.example.org",
            "max_message_size": 1000,
            "disable_ipv6": True,
            "passthrough_recipients": ["a@x.org", "@y.org"],
        }
    )
    assert from_ini == from_yaml


# a table: one case per line: not reformatted
# fmt: off
@pytest.mark.parametrize(
    "raw, key, expected",
    [
        ({}, "mail_domain", "required"),
        ({"mail_domain": "chat.example.org", "max_mailbox_sise": "1G"}, "max_mailbox_sise", "did you mean max_mailbox_size"),
        ({"mail_domain": "chat.example.org", "max_user_send_per_minute": "lots"}, "max_user_send_per_minute", "whole number"),
        ({"mail_domain": "chat.example.org", "max_mailbox_size": "500X"}, "max_mailbox_size", "size like 500M"),
        ({"mail_domain": "chat.example.org", "delete_mails_after": -3}, "delete_mails_after", "not a negative"),
        ({"mail_domain": "chat..example"}, "mail_domain", "domain name"),
        ({"mail_domain": "localhost"}, "mail_domain", "domain name"),
        ({"mail_domain": "Chat.Example.org"}, "mail_domain", "upper-case"),
        ({"mail_domain": "chat.example.org", "disable_ipv6": "maybe"}, "disable_ipv6", "true or false"),
        ({"mail_domain": "chat.example.org", "filtermail_smtp_port": 70000}, "filtermail_smtp_port", "between 1 and 65535"),
        ({"mail_domain": "chat.example.org", "privacy_mail": "privacy@testrun.org"}, "privacy_mail", "your own contact"),
        ({"mail_domain": "chat.example.org", "privacy_postal": "Merlinux GmbH\nBerlin"}, "privacy_postal", "upstream operator"),
        # found by the hypothesis round trip: chatmail.ini would read this line as a comment and drop it
        ({"mail_domain": "chat.example.org", "privacy_postal": "Main Street\n# 3\nTown"}, "privacy_postal", "reads as a comment"),
        ({"mail_domain": "chat.example.org", "tls_mode": "letsencrypt"}, "tls_mode", "acme, self_signed, external"),
        ({"mail_domain": "chat.example.org", "tls_mode": False}, "tls_mode", "acme, self_signed, external"),
        ({"mail_domain": "chat.example.org", "tls_mode": "external"}, "tls_cert_file", "absolute path"),
        ({"mail_domain": "chat.example.org", "username_min_length": 10}, "username_min_length", "at most"),
        # found by bench/fuzz.py: /new then suggested addresses doveauth refuses
        ({"mail_domain": "chat.example.org", "username_max_length": 65}, "username_max_length", "at most 64"),
        ({"mail_domain": "chat.example.org", "postfix_reinject_port": 10080}, "postfix_reinject_port", "distinct"),
        ({"mail_domain": "chat.example.org", "stages": ["install", "deploy"]}, "stages", "install, configure, activate"),
        ({"mail_domain": "chat.example.org", "dns_forward_zones": {"test.": ["not-an-ip"]}}, "dns_forward_zones", "resolver addresses"),
        ({"mail_domain": "chat.example.org", "selfheal": "on"}, "selfheal", "disabled, masterless, master"),
        ({"mail_domain": "chat.example.org", "acme_terms_url": "see the website"}, "acme_terms_url", "terms of service"),
        ({"mail_domain": "chat.example.org", "acme_caa_issuer": "Let's Encrypt"}, "acme_caa_issuer", "domain name"),
        ({"mail_domain": "chat.example.org", "appversions": "{not json"}, "appversions", "not JSON"),
        ({"mail_domain": "chat.example.org", "appversions": {"clients": [{"clientId": "deltachat", "sources": [
            {"sourceId": "gplay", "versionInteger": "754", "versionString": "2.57.0", "downloadUrl": "https://x.org/a.apk"}]}]}},
         "appversions", "versionInteger"),
        ({"mail_domain": "chat.example.org", "appversions": {"clients": [{"clientIds": "deltachat", "sources": []}]}},
         "appversions", "clientId"),
    ],
)
# fmt: on
def test_bad_values_name_key_value_and_expected_form(raw, key, expected):
    mine = [p for p in problems_of(raw) if f":{key}:" in p]
    assert len(mine) == 1, mine
    assert expected in mine[0]
    if key in raw:
        assert repr(raw[key]) in mine[0]


def test_all_problems_are_reported_at_once():
    problems = problems_of({"mail_domain": "x", "max_mailbox_size": "big", "nope": 1})
    assert len(problems) == 3


def test_upstream_privacy_contacts_are_fine_on_testrun_domains():
    s = validate({"mail_domain": "nine.testrun.org", "privacy_mail": "privacy@testrun.org"})
    assert s["privacy_mail"] == "privacy@testrun.org"


def test_iroh_relay_absent_empty_and_url_differ():
    base = {"mail_domain": "chat.example.org"}
    assert derived(validate(base), TLS)["iroh_relay_local"] is True
    assert derived(validate(base), TLS)["iroh_relay_url"] == "https://chat.example.org"
    empty = derived(validate({**base, "iroh_relay": ""}), TLS)
    assert (empty["iroh_relay_url"], empty["iroh_relay_local"]) == ("", False)
    url = derived(validate({**base, "iroh_relay": " https://iroh.example.net "}), TLS)
    assert (url["iroh_relay_url"], url["iroh_relay_local"]) == ("https://iroh.example.net", False)


def test_forward_zones_from_ini_and_yaml():
    ini = validate({"mail_domain": "a.test", "dns_forward_zones": "test=10.9.0.1@5353,10.9.0.2"})
    yaml = validate({"mail_domain": "a.test", "dns_forward_zones": {"test.": ["10.9.0.1@5353", "10.9.0.2"]}})
    assert ini["dns_forward_zones"] == yaml["dns_forward_zones"] == {"test.": ["10.9.0.1@5353", "10.9.0.2"]}


def test_ini_round_trip_keeps_every_value(tmp_path):
    original = validate(
        {
            "mail_domain": "chat.example.org",
            "max_mailbox_size": "1g",
            "passthrough_senders": "bot@chat.example.org",
            "privacy_postal": "Jane Doe\n  Main Street 1\n\n  12345 Town",
            "iroh_relay": "",
            "disable_ipv6": True,
        }
    )
    path = tmp_path / "chatmail.ini"
    path.write_text(render_ini(original))
    again = read_config(path)
    for key, setting in SETTINGS.items():
        if setting.scope == "ini":
            assert again.settings[key] == original[key], key
    assert again.privacy_postal == "Jane Doe\nMain Street 1\n12345 Town"


def test_parse_ini_continuation_lines_and_comments():
    params = parse_ini("# c\n[params]\nmail_domain = a.example.org\nprivacy_pdo = Line one\n    line two\n[other]\nx = 1\n")
    assert params == {"mail_domain": "a.example.org", "privacy_pdo": "Line one\nline two"}


def test_parse_ini_refuses_lines_it_cannot_read():
    with pytest.raises(SettingsError, match="line 2.*key = value"):
        parse_ini("[params]\nthis is not a setting\n")


def test_user_dir_refuses_paths():
    config = Config(validate({"mail_domain": "chat.example.org", "mailboxes_dir": "/tmp/mb"}))
    assert str(config.get_user_dir("a@chat.example.org")) == "/tmp/mb/a@chat.example.org"
    for bad in ("", "nobody", "../x@y", "a/b@chat.example.org"):
        with pytest.raises(ValueError):
            config.get_user_dir(bad)
