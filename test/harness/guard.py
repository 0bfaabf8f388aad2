"""The network rule, enforced: connect only to loopback or to what the harness built.

Every test, benchmark and the harness itself calls :func:`check_target`
before it opens a connection from the host.  It asks the kernel, right now,
where a packet to that address would go, and allows it only when

* the address is loopback, or
* the route leads onto a link the harness created (its alias starts with
  :data:`MARKER`, see network.py) and the address lies inside a subnet
  assigned to that link - so the packet cannot leave through the default
  route, whatever was torn down in the meantime.

Anything else (the default route, private ranges we did not create, public
addresses, names instead of addresses) raises :class:`TargetRefused`.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess

MARKER = "chatmail-test"


class TargetRefused(RuntimeError):
    """Connecting to this address would break the network rule."""


def check_target(addr: str) -> str:
    """Return ``addr`` if a connection to it is allowed, else raise TargetRefused."""
    try:
        ip = ipaddress.ip_address(str(addr).split("%")[0])
    except ValueError:
        raise TargetRefused(f"{addr!r} is not an IP address; resolve it yourself and check the address") from None
    if ip.is_loopback:
        return str(addr)
    links = harness_links()
    route = _route(ip)
    if route is None:
        raise TargetRefused(f"{ip}: no route to it right now")
    dev = route.get("dev")
    if route.get("type") == "local":
        # one of our own addresses: allowed only if a harness link holds it
        dev = next((name for name in links if _holds(name, ip)), None)
    if dev not in links:
        raise TargetRefused(
            f"{ip}: the route goes via {route.get('gateway') or route.get('dev')}, not a harness bridge"
        )
    if route.get("gateway"):
        raise TargetRefused(f"{ip}: routed through gateway {route['gateway']}")
    if not any(ip in net for net in links[dev]):
        raise TargetRefused(f"{ip}: not inside a subnet of harness link {dev}")
    return str(addr)


def harness_links() -> dict[str, list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    """Links the harness created (by alias) with the subnets assigned to them."""
    marked = {link["ifname"] for link in _ip_json("link", "show") if str(link.get("ifalias", "")).startswith(MARKER)}
    return {
        link["ifname"]: [
            ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}").network
            for a in link.get("addr_info", [])
            if a.get("scope") != "link"
        ]
        for link in _ip_json("addr", "show")
        if link["ifname"] in marked
    }


def _ip_json(*args: str) -> list[dict]:
    out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")


def _holds(dev: str, ip) -> bool:
    out = subprocess.run(["ip", "-j", "addr", "show", "dev", dev], capture_output=True, text=True).stdout
    return any(a.get("local") == str(ip) for link in json.loads(out or "[]") for a in link.get("addr_info", []))


def _route(ip) -> dict | None:
    proc = subprocess.run(["ip", "-j", "route", "get", str(ip)], capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    routes = json.loads(proc.stdout)
    return routes[0] if routes else None
