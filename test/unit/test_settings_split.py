"""The relay's table and the formula's: the relay ships only its keys, the operator sees one table.

chatmaild/config.py (copied to every relay) holds the keys the relay's
services read; _utils/chatmail_config.py extends it with the keys only Salt
reads.  What must hold for that split to be invisible to an operator and
harmless to a relay is checked here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import chatmail_config
from chatmaild import config as relay
from support.params import TLS

REPO = Path(__file__).resolve().parents[2]

# a pillar that sets every formula key away from its default
FORMULA_PILLAR = {
    "mail_domain": "chat.example.org",
    "tls_mode": "external",
    "tls_cert_file": "/etc/ssl/chatmail/fullchain.pem",
    "tls_key_file": "/etc/ssl/chatmail/privkey.pem",
    "acme_directory": "https://acme.example.net/directory",
    "acme_ca_file": "/etc/ssl/ca.pem",
    "acme_terms_url": "https://acme.example.net/terms",
    "acme_caa_issuer": "acme.example.net",
    "dns_forward_zones": {"test.": ["10.0.0.1"]},
    "dovecot_source": "chatmail",
    "disable_mail": True,
    "stages": ["install", "configure"],
    "selfheal": "masterless",
    "appversions": {"clients": []},
    "backup_repository": "/srv/backup",
    "backup_password_file": "/etc/backup-password",
    "backup_schedule": "weekly",
    "backup_keep": 3,
    "newemail_per_minute": 10,
    "newemail_burst": 2,
    "tofs": {"path_prefix": "site/chatmail"},
}


def test_the_formula_table_is_the_relays_then_its_own():
    relay_keys = list(relay.SETTINGS)
    formula_keys = list(chatmail_config.FORMULA_SETTINGS)
    assert list(chatmail_config.SETTINGS) == relay_keys + formula_keys
    assert not set(relay_keys) & set(formula_keys)
    assert {s.scope for s in relay.SETTINGS.values()} == {"ini", "upstream"}
    assert {s.scope for s in chatmail_config.FORMULA_SETTINGS.values()} == {"formula"}
    # the relay's rows come from the relay's own file (no copy to drift)
    assert Path(chatmail_config.relay.__file__).resolve() == Path(relay.__file__).resolve()
    for key in relay_keys:
        mine, theirs = chatmail_config.SETTINGS[key], relay.SETTINGS[key]
        assert (mine.kind.__qualname__, mine.doc) == (theirs.kind.__qualname__, theirs.doc)
        if theirs.default is relay.REQUIRED:
            assert mine.default is chatmail_config.REQUIRED
        else:
            assert mine.default == theirs.default


def test_every_formula_key_is_covered_by_this_test():
    assert set(FORMULA_PILLAR) - {"mail_domain"} == set(chatmail_config.FORMULA_SETTINGS)


def test_the_relays_ini_holds_no_formula_key_and_its_services_read_it(tmp_path):
    settings = chatmail_config.validate(FORMULA_PILLAR)
    settings.update(chatmail_config.derived(settings, TLS))
    ini = tmp_path / "chatmail.ini"
    ini.write_text(chatmail_config.render_ini(settings))
    written = relay.read_ini(ini)
    assert not set(written) & set(chatmail_config.FORMULA_SETTINGS)
    config = relay.read_config(ini)  # what every service does at start
    assert config.mail_domain == "chat.example.org"
    assert not hasattr(config, "tls_mode") and not hasattr(config, "tofs")


def test_the_relay_refuses_formula_keys_it_would_never_be_given():
    """chatmaild alone knows only its keys: a formula key is unknown to it (the formula never writes one)."""
    with pytest.raises(relay.SettingsError, match="tls_mode: got 'acme' for an unknown key"):
        relay.validate({"mail_domain": "chat.example.org", "tls_mode": "acme"})


def test_the_relays_module_carries_no_rule_of_the_formula():
    source = (REPO / "chatmail/chatmaild/files/chatmaild/config.py").read_text()
    for name in ("kind_tofs", "kind_appversions", "kind_forward_zones", "one_of(", "subset_of(", "STAGES"):
        assert name not in source, name
    for key in chatmail_config.FORMULA_SETTINGS:
        assert f'"{key}"' not in source, key


def test_salt_gets_the_relay_module_beside_the_formulas_but_does_not_load_it_as_its_own():
    link = REPO / "_utils" / "_chatmaild_config.py"
    assert link.is_symlink() and link.resolve() == (REPO / "chatmail/chatmaild/files/chatmaild/config.py").resolve()
    assert link.name.startswith("_")  # Salt's loader skips private files: no __utils__["_chatmaild_config.*"]
