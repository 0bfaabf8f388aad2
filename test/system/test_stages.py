"""Stages run apart (docs/migration.md): install+configure now, activate later.

The test image ships Postfix, Dovecot, OpenDKIM and nginx preinstalled, so
they start at boot with Debian's own config - the daemons a real server
has running when step 2 of a migration writes the relay's config.  The
later run - activate-only (relay ``stage1``) or all stages (``stage2``,
step 6 of docs/migration.md) - must restart them onto that config
(``watch`` cannot: the config changed in an earlier run), then change
nothing on a repeat.
"""

from __future__ import annotations

import time

import pytest

from harness import changed_states, failed_states
from support import mailclient

pytestmark = pytest.mark.system

CHATMAILD = ("chatmail-dicts", "filtermail")


@pytest.fixture(scope="module")
def staged(relay):
    return relay("stage1")


def _pillar(container, *stages):
    return {**container.pillar, "stages": list(stages)}


def _active(container, unit: str) -> bool:
    return container.run(["systemctl", "is-active", "--quiet", unit], check=False).returncode == 0


def _capabilities(host: str) -> str:
    conn = mailclient.imap(host, 143)
    try:
        return " ".join(conn.capabilities)
    finally:
        conn.logout()


def _listener(container, port: int) -> str:
    """The `ss` line of the TCP listener on ``port`` (with its process), or ''."""
    out = container.run(["ss", "-Hltnp", f"sport = :{port}"]).stdout
    return out.strip()


@pytest.fixture(scope="module")
def configured(staged):
    result = staged.apply(_pillar(staged, "install", "configure"))
    # what the daemons run with just before activation (for the checks below)
    running_before = {unit: _active(staged, unit) for unit in ("dovecot", "postfix@-")}
    return result, running_before


@pytest.fixture(scope="module")
def dry_run(staged, configured):
    """An activate-only dry run before the real one: it must name the stale daemon and touch nothing."""
    result = staged.apply(_pillar(staged, "activate"), test=True)
    return result, _capabilities(staged.address)


@pytest.fixture(scope="module")
def activated(staged, configured, dry_run):
    return staged.apply(_pillar(staged, "activate"))


def test_install_and_configure_start_nothing_new(staged, configured):
    result, running_before = configured
    assert failed_states(result) == []
    assert result.retcode == 0
    for unit in CHATMAILD:
        assert not _active(staged, unit), f"{unit} runs before the activate stage"
    # the precondition of the bug: Debian's dovecot already runs, with its own config
    assert running_before["dovecot"], "dovecot should run since boot (preinstalled in the image)"


def test_dry_run_names_the_stale_daemon_and_restarts_nothing(dry_run):
    result, capabilities = dry_run
    assert failed_states(result) == []
    assert "chatmail-dovecot-service-restarted-if-stale" in changed_states(result)
    assert "XCHATMAIL" not in capabilities, "Debian's dovecot should still run after a dry run"


def test_activate_alone_restarts_daemons_onto_the_relay_config(staged, configured, activated):
    assert failed_states(activated) == []
    assert activated.retcode == 0
    assert "XCHATMAIL" in _capabilities(staged.address)
    deadline = time.monotonic() + 20
    while not (_listener(staged, 465) and _listener(staged, 10080)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _listener(staged, 465), "postfix does not listen on 465"
    filtermail = staged.run(["systemctl", "show", "-p", "MainPID", "--value", "filtermail"]).stdout.strip()
    assert f"pid={filtermail}," in _listener(staged, 10080), _listener(staged, 10080)
    for unit in CHATMAILD:
        assert _active(staged, unit), unit


def test_activate_again_changes_nothing(staged, activated):
    again = staged.apply(_pillar(staged, "activate"))
    assert failed_states(again) == []
    assert changed_states(again) == []


def test_full_apply_after_stages_changes_nothing(staged, activated):
    full = staged.apply(staged.pillar)
    assert failed_states(full) == []
    assert changed_states(full) == []


# -- install+configure, then a run of all stages (step 6 of docs/migration.md) --

# what each daemon Debian starts before the formula reads (its main config)
CONFIGS = {"nginx": "/etc/nginx/nginx.conf", "opendkim": "/etc/opendkim.conf"}


def _started(container, unit: str) -> int:
    """When ``unit`` last became active (epoch seconds); 0 when it is not active."""
    out = container.run(["systemctl", "show", "--timestamp=unix", "-p", "ActiveEnterTimestamp", "--value", unit])
    stamp = out.stdout.strip()
    return int(stamp.lstrip("@")) if _active(container, unit) and stamp.startswith("@") else 0


def _mtime(container, path: str) -> int:
    return int(container.run(["stat", "-c", "%Y", path]).stdout.strip())


@pytest.fixture(scope="module")
def staged_full(relay):
    return relay("stage2")


@pytest.fixture(scope="module")
def configured_then_full(staged_full):
    """install+configure, then all stages: the later run has no config change for ``watch``."""
    configured = staged_full.apply(_pillar(staged_full, "install", "configure"))
    before = {unit: _started(staged_full, unit) for unit in CONFIGS}
    full = staged_full.apply(staged_full.pillar)
    return configured, before, full


def test_full_apply_after_configure_restarts_daemons_onto_the_relay_config(staged_full, configured_then_full):
    configured, before, full = configured_then_full
    assert failed_states(configured) == []
    assert failed_states(full) == []
    assert full.retcode == 0
    for unit, config in CONFIGS.items():
        # the precondition: Debian started it, before the configure run wrote its config
        assert 0 < before[unit] < _mtime(staged_full, config), f"{unit} should run since boot, on Debian's config"
        started = _started(staged_full, unit)
        assert started >= _mtime(staged_full, config), f"{unit} still runs with the config it had before {config}"
    # the relay's nginx config is live: it, not Debian's default site, answers on 443
    assert "nginx" in _listener(staged_full, 443), _listener(staged_full, 443)


def test_full_apply_again_changes_nothing(staged_full, configured_then_full):
    again = staged_full.apply(staged_full.pillar)
    assert failed_states(again) == []
    assert changed_states(again) == []
