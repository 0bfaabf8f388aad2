"""chatmail.clean on a deployed relay (docs/clean.md): a dry run touches nothing,
the real run stops every daemon and removes the formula's files but keeps
the data, a second run has nothing left to do, and the relay can be built
again on the same host.

One relay for the module; the steps build on each other in this order
(fixtures ``untouched`` -> ``applied`` -> ``dry_run`` -> ``cleaned`` -> ``cleaned_again`` ->
``rebuilt``), so each test reads the state its step left.
"""

from __future__ import annotations

import pytest

from harness import changed_states, failed_states

pytestmark = pytest.mark.system

# the daemons a relay runs (postfix@- is Postfix's real daemon)
DAEMONS = (
    "postfix",
    "dovecot",
    "nginx",
    "opendkim",
    "unbound",
    "coturn",
    "fcgiwrap.socket",
    "fcgiwrap",
    "chatmail-dicts",
    "filtermail",
    "chatmail-expire.timer",
)
# files the formula wrote, Debian's own config files it replaced among them
FORMULA_FILES = (
    "/etc/dovecot/dovecot.conf",
    "/etc/postfix/main.cf",
    "/etc/nginx/nginx.conf",
    "/etc/opendkim.conf",
    "/etc/opendkim",
    "/etc/turnserver.conf",
    "/etc/unbound/unbound.conf.d/chatmail.conf",
    "/etc/systemd/system/dovecot.service.d/10_restart.conf",
    "/etc/systemd/system/coturn.service.d/chatmail.conf",
    "/etc/systemd/system/chatmail-dicts.service",
    "/usr/local/lib/chatmaild",
    "/usr/lib/cgi-bin/newemail.py",
    "/var/www/html/index.html",
    "/etc/chatmail-version",
    "/etc/mailname",
    "/etc/resolv.conf.pre-chatmail",
)
# data that must survive: DKIM key (published in DNS), TURN secret, certificate
KEPT_FILES = (
    "/etc/dkimkeys/opendkim.private",
    "/etc/chatmail-turn/secret",
    "/etc/ssl/certs/mailserver.pem",
    "/etc/ssl/private/mailserver.key",
)


def clean(container, test: bool = False):
    return container.salt_call(
        "state.apply", "chatmail.clean", *(["test=True"] if test else []), pillar=container.pillar
    )


def unit_state(container, unit: str) -> tuple[str, str]:
    """(is-active, is-enabled) as systemctl prints them."""
    active = container.run(["systemctl", "is-active", unit], check=False).stdout.strip()
    enabled = container.run(["systemctl", "is-enabled", unit], check=False).stdout.strip()
    return active, enabled


def snapshot(container, paths) -> dict[str, str]:
    return {path: container.read_file(path) for path in paths}


@pytest.fixture(scope="module")
def relay1(relay):
    return relay("clean1")


@pytest.fixture(scope="module")
def untouched(relay1):
    """clean on a host the formula never ran on (Debian's mail daemons preinstalled)."""
    return clean(relay1)


@pytest.fixture(scope="module")
def applied(relay1, untouched):
    relay1.resolv_conf_before = relay1.read_file("/etc/resolv.conf")
    result = relay1.apply(relay1.pillar)
    assert "managed by the chatmail formula" in relay1.read_file("/etc/resolv.conf")
    assert failed_states(result) == []
    domain = relay1.pillar["mail_domain"]
    mailbox = f"/home/vmail/mail/{domain}/keep1@{domain}"
    message = f"{mailbox}/cur/1700000000.M1P1.clean1:2,S"
    relay1.write_file(message, "Subject: kept\n\nthis message outlives chatmail.clean\n", mode="0600")
    relay1.run(["chown", "-R", "vmail:vmail", mailbox])
    return message, snapshot(relay1, (message, *KEPT_FILES))


@pytest.fixture(scope="module")
def dry_run(relay1, applied):
    before = relay1.written_files()
    result = clean(relay1, test=True)
    return result, before, relay1.written_files()


@pytest.fixture(scope="module")
def cleaned(relay1, dry_run):
    return clean(relay1)


@pytest.fixture(scope="module")
def cleaned_again(relay1, cleaned):
    return clean(relay1), clean(relay1, test=True)


@pytest.fixture(scope="module")
def rebuilt(relay1, cleaned_again):
    return relay1.apply(relay1.pillar)


def test_clean_on_a_host_the_formula_never_ran_on_fails_nothing(untouched):
    assert failed_states(untouched) == []
    assert untouched.retcode == 0


def test_dry_run_names_what_it_would_do_and_changes_nothing(relay1, dry_run):
    result, before, after = dry_run
    assert failed_states(result) == []
    would = changed_states(result)
    assert {"chatmail-dovecot-dovecot-service-dead", "chatmail-postfix-etc-postfix-main-cf-file-absent"} <= set(would)
    assert sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p)) == []
    assert unit_state(relay1, "postfix@-")[0] == "active"


def test_clean_stops_and_disables_every_daemon(relay1, cleaned):
    assert failed_states(cleaned) == []
    assert cleaned.retcode == 0
    states = {unit: unit_state(relay1, unit) for unit in DAEMONS}
    assert {unit: s for unit, s in states.items() if s[0] == "active" or s[1] == "enabled"} == {}
    assert unit_state(relay1, "postfix@-")[0] != "active"


def test_clean_removes_the_formulas_files(relay1, cleaned):
    assert [path for path in FORMULA_FILES if relay1.exists(path)] == []
    # Postfix always needs a master.cf: Debian's default is put back
    assert relay1.read_file("/etc/postfix/master.cf") == relay1.read_file("/usr/share/postfix/master.cf.dist")
    # systemd was reloaded: the removed units are gone from its view, not just from disk
    assert "not-found" in relay1.run(["systemctl", "show", "-p", "LoadState", "chatmail-dicts"]).stdout


def test_clean_gives_the_host_its_own_resolver_back(relay1, applied, cleaned):
    """unbound is gone; the resolv.conf the host had before the first apply is back (DNS still works)."""
    assert relay1.read_file("/etc/resolv.conf") == relay1.resolv_conf_before
    names = relay1.run(["getent", "hosts", relay1.pillar["mail_domain"]], check=False).stdout
    assert relay1.address in names


def test_clean_keeps_mail_keys_and_secrets(relay1, applied, cleaned):
    _, kept = applied
    assert snapshot(relay1, kept) == kept


def test_second_clean_has_nothing_to_do(cleaned_again):
    again, dry = cleaned_again
    assert failed_states(again) == [] and failed_states(dry) == []
    assert changed_states(again) == []
    assert changed_states(dry) == []


def test_relay_is_rebuilt_after_clean_with_its_old_keys(relay1, applied, rebuilt):
    _, kept = applied
    assert failed_states(rebuilt) == []
    assert rebuilt.retcode == 0
    assert unit_state(relay1, "postfix@-")[0] == "active"
    assert all(unit_state(relay1, unit) == ("active", "enabled") for unit in ("dovecot", "nginx", "coturn"))
    # the same DKIM key (the one in DNS), TURN secret and certificate serve the rebuilt relay
    assert snapshot(relay1, kept) == kept
