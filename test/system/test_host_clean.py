"""scripts/bootstrap leaves the machine it sets up without a relay daemon.

Both README commands run scripts/bootstrap on the user's machine.  This
boots a plain Debian with systemd as PID 1 (the harness's core image: no
relay package, no policy-rc.d, like a fresh host), runs bootstrap in it as
a user would, and compares: no unit is active that was not before, nothing
listens on a mail, DNS, web or proxy port, and the services of the test
peers bootstrap installs (nsd, tinyproxy) are masked, since the harness
runs its own instances only while tests run.

Packages come through the harness proxy; the .deb files are kept in
/var/cache/chatmail-test/bootstrap-debs between runs, and the venv is the
host's (bind-mounted; bootstrap finds it current), so a rerun costs the
install, not the downloads or the pip build.
"""

from __future__ import annotations

import shutil

import pytest

from harness.container import VENV
from harness.image import CACHE, core_image

pytestmark = pytest.mark.system

# what a relay daemon or a harness peer would listen on
WATCHED_PORTS = (25, 53, 80, 443, 465, 587, 993, 8888)
CHECKOUT = "/root/chatmail-formula"
DEB_CACHE = CACHE / "bootstrap-debs"
ARCHIVES = "var/cache/apt/archives"


def active_units(box) -> set[str]:
    out = box.run(["systemctl", "list-units", "--state=active", "--plain", "--no-legend", "--all"]).stdout
    units = {line.split()[0] for line in out.splitlines() if line.strip()}
    # the harness's own `systemd-run` of this very command, and the credential
    # mounts systemd makes for a oneshot while it (re)runs (systemd-tmpfiles-setup
    # after an apt install): systemd's plumbing, no daemon
    return {u for u in units if not u.startswith(("run-u", "run-credentials-"))}


def listening_ports(box) -> dict[int, str]:
    """Port -> the `ss -ltnup` line of every TCP/UDP socket listening or bound."""
    out = box.run(["ss", "-H", "-ltnup"]).stdout
    ports = {}
    for line in out.splitlines():
        local = line.split()[4]
        port = local.rsplit(":", 1)[-1]
        if port.isdigit():
            ports[int(port)] = line
    return ports


def keep_debs(box, into_box: bool) -> None:
    """Copy the cached .debs into the box's apt archive, or the box's new ones back."""
    src, dst = (DEB_CACHE, box.root / ARCHIVES) if into_box else (box.root / ARCHIVES, DEB_CACHE)
    dst.mkdir(parents=True, exist_ok=True)
    for deb in src.glob("*.deb"):
        if not (dst / deb.name).exists():
            shutil.copy2(deb, dst / deb.name)


@pytest.fixture(scope="module")
def bootstrapped(lab):
    """A fresh systemd box: its units and ports before, then bootstrap's output, units and ports after."""
    box = lab.boot("fresh", image=core_image(log=lab.log))
    try:
        assert not box.exists("/usr/sbin/policy-rc.d"), "the core image must start services like a fresh host"
        before = active_units(box), listening_ports(box)
        keep_debs(box, into_box=True)
        # a checkout with the host's venv in it, as after scripts/bootstrap there
        box.run(["sh", "-c", 'cp -a /srv/formula "$1" && ln -s "$2" "$1/.venv"', "sh", CHECKOUT, str(VENV)])
        first = box.run([f"{CHECKOUT}/scripts/bootstrap"], check=False, timeout=900)
        keep_debs(box, into_box=False)
        assert first.returncode == 0, first.stdout + first.stderr
        after = active_units(box), listening_ports(box)
        yield box, before, first, after
    finally:
        lab.discard(box)


def test_bootstrap_installs_the_harness_tools(bootstrapped):
    box, _, first, _ = bootstrapped
    assert "bootstrap: installing" in first.stdout and "bootstrap: ready (salt-call 3008" in first.stdout
    for tool in ("debootstrap", "systemd-nspawn", "tinyproxy", "nsd", "pebble", "yamllint"):
        assert box.run(["sh", "-c", f"command -v {tool}"], check=False).returncode == 0, tool


def test_no_relay_daemon_is_installed(bootstrapped):
    box = bootstrapped[0]
    installed = box.run(["dpkg-query", "-W", "-f", "${Package} ${Status}\\n"]).stdout
    names = {line.split()[0] for line in installed.splitlines() if line.endswith(" installed")}
    relay = {
        "postfix",
        "dovecot-core",
        "opendkim",
        "nginx",
        "nginx-common",
        "unbound",
        "coturn",
        "fcgiwrap",
        "mtail",
        "acmetool",
    }
    assert not names & relay


def test_no_new_unit_is_active(bootstrapped):
    _, (units_before, _), _, (units_after, _) = bootstrapped
    new = sorted(units_after - units_before)
    assert not new, f"became active: {', '.join(new)}"


def test_nothing_listens_on_relay_or_peer_ports(bootstrapped):
    _, (_, ports_before), _, (_, ports_after) = bootstrapped
    assert not set(ports_before) & set(WATCHED_PORTS)  # else the check below would prove nothing
    assert {port: ports_after[port] for port in WATCHED_PORTS if port in ports_after} == {}


def test_peer_services_are_masked_and_policy_rc_d_removed(bootstrapped):
    box = bootstrapped[0]
    for unit in ("nsd.service", "tinyproxy.service"):
        assert box.run(["systemctl", "is-enabled", unit], check=False).stdout.strip() == "masked", unit
    # bootstrap's policy-rc.d lived only for its install: later installs start services again
    assert not box.exists("/usr/sbin/policy-rc.d")


def test_second_run_only_checks(bootstrapped):
    box = bootstrapped[0]
    again = box.run([f"{CHECKOUT}/scripts/bootstrap"], timeout=300)
    assert "installing" not in again.stdout and "building" not in again.stdout
    assert again.stdout.strip().startswith("bootstrap: ready")
