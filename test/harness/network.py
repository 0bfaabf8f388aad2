"""A private bridge for test containers, on a /24 nobody else routes.

The bridge gets the first address of the subnet (the host side: proxy and
test DNS listen there) and containers get static addresses from .10 on,
with no default route: a container can reach the bridge subnet and nothing
else.  The bridge's alias carries :data:`guard.MARKER` and the owning
process id, which is how guard.py recognises harness links and how a later
run removes bridges whose owner died without cleaning up.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import re
import subprocess
from pathlib import Path

from . import lifecycle
from .guard import MARKER

CANDIDATES = [ipaddress.ip_network(f"10.213.{n}.0/24") for n in range(256)]
LOCK = Path("/run/chatmail-test-network.lock")
FIRST_CONTAINER_HOST = 10


class Bridge:
    """A Linux bridge with one IPv4 /24; ``address`` is the host's side."""

    def __init__(self, name: str, network: ipaddress.IPv4Network, persistent: bool = False):
        self.name = name
        self.network = network
        self.address = str(network.network_address + 1)
        self.persistent = persistent
        self._next = FIRST_CONTAINER_HOST
        self._handle = None

    @property
    def prefixlen(self) -> int:
        return self.network.prefixlen

    def next_address(self) -> str:
        """A container address not handed out before by this bridge object."""
        used = set(self.used_addresses())
        while True:
            addr = str(self.network.network_address + self._next)
            self._next += 1
            if addr not in used:
                return addr

    def used_addresses(self) -> list[str]:
        """Addresses seen on the bridge (neighbours), to skip after a restart."""
        out = _ip("-j", "neigh", "show", "dev", self.name, check=False)
        return [n["dst"] for n in json.loads(out or "[]") if "dst" in n]

    def exists(self) -> bool:
        return Path(f"/sys/class/net/{self.name}").exists()

    def delete(self) -> None:
        if self.exists():
            _ip("link", "del", self.name, check=False)
        lifecycle.unregister(self._handle)

    def to_dict(self) -> dict:
        return {"name": self.name, "network": str(self.network)}

    @classmethod
    def from_dict(cls, data: dict, persistent: bool = True) -> Bridge:
        return cls(data["name"], ipaddress.ip_network(data["network"]), persistent)


def create_bridge(prefix: str = "cmtest", persistent: bool = False, name: str | None = None) -> Bridge:
    """Create a bridge on the first unused candidate /24 and bring it up."""
    remove_stale_bridges()
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two sessions must not pick the same subnet
        name = name or _free_name(prefix)
        network = free_subnet()
        bridge = Bridge(name, network, persistent)
        owner = "persistent" if persistent else f"pid={os.getpid()}"
        _ip("link", "add", name, "type", "bridge", "forward_delay", "0", "stp_state", "0")
        if not persistent:
            bridge._handle = lifecycle.register(f"bridge {name}", bridge.delete)
        _ip("link", "set", name, "alias", f"{MARKER} {owner}")
        _ip("addr", "add", f"{bridge.address}/{network.prefixlen}", "dev", name)
        _ip("link", "set", name, "up")
    return bridge


def free_subnet() -> ipaddress.IPv4Network:
    """The first candidate that no route, address, gateway or resolver touches."""
    taken = _routed_networks()
    for candidate in CANDIDATES:
        if not any(candidate.overlaps(net) for net in taken):
            return candidate
    raise RuntimeError("no free test subnet among 10.213.0.0/16")


def _routed_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 range this machine already routes or depends on, except the default route."""
    nets = []
    for route in json.loads(_ip("-j", "-4", "route", "show", "table", "all") or "[]"):
        dst = route.get("dst", "")
        if dst and dst != "default":
            try:
                nets.append(ipaddress.ip_network(dst, strict=False))
            except ValueError:
                pass
        if route.get("gateway"):
            nets.append(ipaddress.ip_network(route["gateway"]))
    for link in json.loads(_ip("-j", "-4", "addr", "show") or "[]"):
        for a in link.get("addr_info", []):
            nets.append(ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}").network)
    for server in re.findall(r"^\s*nameserver\s+(\S+)", _read("/etc/resolv.conf"), re.M):
        try:
            nets.append(ipaddress.ip_network(server))
        except ValueError:
            pass
    return [n for n in nets if n.version == 4]


def remove_stale_bridges() -> list[str]:
    """Delete harness bridges whose owning process is gone (a killed earlier run)."""
    removed = []
    for link in json.loads(_ip("-j", "link", "show") or "[]"):
        alias = str(link.get("ifalias", ""))
        match = re.fullmatch(rf"{MARKER} pid=(\d+)", alias)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            _ip("link", "del", link["ifname"], check=False)
            removed.append(link["ifname"])
    return removed


def find_bridge(name: str) -> Bridge | None:
    """An existing harness bridge by name (for deploy-local --stop and re-runs)."""
    links = json.loads(_ip("-j", "link", "show", "dev", name, check=False) or "[]")
    if not links or not str(links[0].get("ifalias", "")).startswith(MARKER):
        return None
    for link in json.loads(_ip("-j", "-4", "addr", "show", "dev", name, check=False) or "[]"):
        for a in link.get("addr_info", []):
            net = ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}").network
            return Bridge(name, net, persistent=True)
    return None


def _free_name(prefix: str) -> str:
    for n in range(100):
        if not Path(f"/sys/class/net/{prefix}{n}").exists():
            return f"{prefix}{n}"
    raise RuntimeError(f"no free bridge name {prefix}0..99")


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _ip(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout
