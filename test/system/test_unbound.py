"""The relay's resolver on a host without IPv6 whose resolv.conf is a symlink (upstream 1.12, #738).

One relay container, prepared before the first apply the way such hosts
come: IPv6 switched off by sysctl (::1 is gone from the loopback, as on a
host booted with IPv6 disabled) while ``disable_ipv6`` stays at its
default, and /etc/resolv.conf a symlink to a file under /run, as
systemd-resolved and resolvconf leave it.  Then ``state.apply chatmail``.
"""

from __future__ import annotations

import pytest

from harness import changed_states
from support.relays import require_converged

pytestmark = pytest.mark.system

MANAGED = "managed by the chatmail formula"
HOST_RESOLV = "/run/resolvconf/resolv.conf"  # where resolvconf keeps the file it links to


@pytest.fixture(scope="module")
def box(relay):
    box = relay("unbound4")
    original = box.read_file("/etc/resolv.conf")
    box.run(["mkdir", "-p", "/run/resolvconf"])
    box.write_file(HOST_RESOLV, original)
    box.run(["ln", "-sfn", HOST_RESOLV, "/etc/resolv.conf"])
    for conf in ("all", "default", "lo"):
        box.run(["sh", "-c", f"echo 1 > /proc/sys/net/ipv6/conf/{conf}/disable_ipv6"])
    assert "00000000000000000000000000000001" not in box.read_file("/proc/net/if_inet6")  # no ::1
    box.original_resolv = original
    assert box.pillar.get("disable_ipv6", False) is False
    return require_converged(box, box.apply(box.pillar))


def test_unbound_runs_on_ipv4_only_and_resolves(box):
    assert box.run(["systemctl", "is-active", "unbound"], check=False).stdout.strip() == "active"
    # local port 53 (0x35) in the kernel's socket tables: IPv4 only
    assert "0100007F:0035" in box.read_file("/proc/net/udp")
    assert ":0035 " not in box.read_file("/proc/net/udp6")
    conf = box.read_file("/etc/unbound/unbound.conf.d/chatmail.conf")
    assert "do-ip6: no" in conf and "interface: ::1" not in conf
    # the relay's own name, through resolv.conf -> unbound -> the forwarded test zone
    domain = box.pillar["mail_domain"]
    assert box.address in box.run(["getent", "ahostsv4", domain]).stdout


def test_symlinked_resolv_conf_becomes_the_formulas_file(box):
    assert box.run(["test", "-L", "/etc/resolv.conf"], check=False).returncode != 0, "still a symlink"
    text = box.read_file("/etc/resolv.conf")
    assert MANAGED in text and "nameserver 127.0.0.1" in text and "::1" not in text
    # the host's own symlink is kept as it was, for chatmail.clean
    assert box.run(["readlink", "/etc/resolv.conf.pre-chatmail"]).stdout.strip() == HOST_RESOLV
    assert box.read_file(HOST_RESOLV) == box.original_resolv


def test_unbound_resolvconf_is_disabled(box):
    enabled = box.run(["systemctl", "is-enabled", "unbound-resolvconf"], check=False).stdout.strip()
    active = box.run(["systemctl", "is-active", "unbound-resolvconf"], check=False).stdout.strip()
    assert enabled == "disabled" and active != "active", (enabled, active)


def test_second_apply_changes_nothing(box):
    result = box.apply(box.pillar)
    require_converged(box, result)
    assert changed_states(result) == []
