"""Fixtures for system tests: a lab (bridge, proxy, test DNS) and relay containers.

Booting is cheap (~2 s) but applying the formula is not, so relays are
module-scoped: a test module boots the relays it needs once and its tests
share them.  Everything is torn down by the finalizers, and by the
harness's atexit/signal handlers if the session dies first.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable

import pytest

from harness import Container, Lab

TOOLS = ("systemd-nspawn", "debootstrap", "tinyproxy", "nsd", "nsenter", "ip")


def _why_not_runnable() -> str | None:
    if os.geteuid() != 0:
        return "system tests boot systemd-nspawn containers and need root"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"system tests need {', '.join(missing)} (run scripts/bootstrap)"
    return None


# Markers of tests too slow for every run (CI's budget): they run only when
# the -m expression names them (e.g. ``-m upgrade``).
OPT_IN = {"upgrade": "the Debian 12 -> 13 dist-upgrade takes 5-12 min; select it with -m upgrade"}


def pytest_collection_modifyitems(config, items):
    reason = _why_not_runnable()
    if reason:
        for item in items:
            if item.get_closest_marker("system"):
                item.add_marker(pytest.mark.skip(reason=reason))
    selected = config.getoption("-m") or ""
    for marker, why in OPT_IN.items():
        if marker not in selected:
            for item in items:
                if item.get_closest_marker(marker):
                    item.add_marker(pytest.mark.skip(reason=f"opt-in: {why}"))


def pytest_terminal_summary(terminalreporter):
    """Name the files tests kept for people to look at (``record_property("kept", path)``)."""
    kept = [
        value
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for name, value in getattr(report, "user_properties", ())
        if name == "kept"
    ]
    if kept:
        terminalreporter.write_sep("-", "files kept by tests")
        for path in kept:
            terminalreporter.write_line(path)


@pytest.fixture(scope="session")
def lab() -> Lab:
    reason = _why_not_runnable()
    if reason:
        pytest.skip(reason)
    lab = Lab(log=lambda msg: print(msg, file=sys.stderr))
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()


@pytest.fixture(scope="session")
def test_dns(lab):
    return lab.dns


RelayFactory = Callable[..., Container]


@pytest.fixture(scope="module")
def relay(lab, request) -> RelayFactory:
    """A factory: ``relay(name, domain=None, **pillar)`` boots a container.

    The container gets ``.pillar``: the default relay pillar (mail_domain
    ``<name>.test`` or ``domain``, tls_mode self_signed, the test zone
    forwarded to the test DNS) updated with ``pillar``; nothing is applied
    (``container.apply(container.pillar)`` does that).  ``domain`` must lie
    in the test zone (``*.test``); it gets A and MX records like the name.
    ``release`` picks the Debian release ("12" or "13") of the container;
    by default the relays take the releases of ``--relay-release`` in turn.
    Module-scoped: call it from a module-scoped fixture and share the relay.
    """
    booted: list[Container] = []
    releases = request.config.getoption("--relay-release").split(",")

    def boot(name: str, domain: str | None = None, release: str | None = None, **pillar) -> Container:
        container = lab.boot(name, release=release or releases[len(booted) % len(releases)])
        booted.append(container)
        if domain:
            lab.dns.a(domain, container.address)
            lab.dns.mx(domain, domain)
            pillar.setdefault("mail_domain", domain.rstrip("."))
        container.pillar = lab.default_pillar(name, **pillar)
        return container

    yield boot
    for container in booted:
        lab.discard(container)
