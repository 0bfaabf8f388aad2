"""scripts/deploy-local: a persistent relay container on this machine.

``deploy-local [--domain NAME]`` builds or reuses the base image, creates
the bridge ``cmlocal0`` with its proxy and DNS (NSD serving the relay's
domain), boots the container ``chatmail-local`` (overlay under
/var/lib/chatmail-local/) unless it already runs, applies the formula with
tls_mode self_signed and prints how to reach it.  Everything keeps running
after the script exits; ``deploy-local --stop`` tears it all down.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from .container import Container, changed_states, failed_states
from .dns import TestDNS
from .image import DEFAULT_RELEASE, RELEASES, base_image, container_venv
from .lab import relay_pillar
from .network import create_bridge, find_bridge
from .proxy import Proxy

HOME = Path("/var/lib/chatmail-local")
STATE = HOME / "deploy.json"
NAME = "chatmail-local"
BRIDGE = "cmlocal0"
DEFAULT_DOMAIN = "chatmail-local.test"


def up(domain: str, release: str = DEFAULT_RELEASE) -> int:
    t0 = time.monotonic()
    HOME.mkdir(parents=True, exist_ok=True)
    state = _load()
    running = state.get("release", DEFAULT_RELEASE)
    if Container.attach(HOME / "container", Path("/")) is not None and running != release:
        print(
            f"deploy-local: the running container is Debian {running}; "
            f"scripts/deploy-local --stop first to switch to Debian {release}",
            file=sys.stderr,
        )
        return 2
    image = base_image(release=release)
    venv = container_venv(release, image)
    bridge = find_bridge(BRIDGE) or create_bridge(name=BRIDGE, persistent=True)

    proxy_pid = state.get("proxy_pid")
    proxy = Proxy(bridge.address, str(bridge.network), workdir=HOME / "proxy", persistent=True)
    if not _running(proxy_pid, "tinyproxy"):
        proxy_pid = proxy.start().process.pid

    container = Container.attach(HOME / "container", image, **venv)
    if container is None:
        _cleanup_container_dir()
        container = Container(
            NAME,
            image,
            bridge,
            bridge.next_address(),
            proxy_url=proxy.url,
            state_dir=HOME / "container",
            persistent=True,
            **venv,
        )
        print(f"deploy-local: booting {NAME} ...")
        container.start()

    # the relay's domain gets its own zone, whatever it is called
    _stop_pid(state.get("dns_pid"), "nsd")
    dns = TestDNS(bridge.address, zone=domain, workdir=HOME / "dns", persistent=True).start()
    dns.a(domain, container.address)
    dns.mx(domain, domain)
    for sub in ("mta-sts", "www"):
        dns.a(f"{sub}.{domain}", container.address)
    _save(
        {
            "domain": domain,
            "release": release,
            "proxy_pid": proxy_pid,
            "dns_pid": dns.process.pid,
            "bridge": bridge.to_dict(),
            "address": container.address,
            "init_pid": container.init_pid,
        }
    )

    pillar = relay_pillar(domain, zone=domain, dns_address=bridge.address)
    print(f"deploy-local: applying the formula for {domain} ...")
    result = container.apply(pillar)
    failed = failed_states(result)
    for line in failed:
        print(f"  FAILED {line[:500]}")
    print(
        f"deploy-local: {len(changed_states(result))} states changed, {len(failed)} failed "
        f"({time.monotonic() - t0:.0f} s)"
    )
    _print_access(container, domain, bridge.address)
    return 1 if failed or result.retcode else 0


def down() -> int:
    state = _load()
    container = Container.attach(HOME / "container", Path("/"))
    if container is not None:
        container.stop()
    _cleanup_container_dir()
    _stop_pid(state.get("dns_pid"), "nsd")
    _stop_pid(state.get("proxy_pid"), "tinyproxy")
    bridge = find_bridge(BRIDGE)
    if bridge is not None:
        bridge.delete()
    shutil.rmtree(HOME, ignore_errors=True)
    print(f"deploy-local: {NAME} stopped, bridge {BRIDGE} and {HOME} removed")
    return 0


def _print_access(container: Container, domain: str, dns_address: str) -> None:
    print(f"""
  relay       {domain}  at {container.address} (bridge {BRIDGE}, reachable from this machine only)
  IMAP        {container.address}:993 (TLS), :143 (STARTTLS)
  SMTP        {container.address}:465 (TLS), :587 (STARTTLS), :25
  web         https://{container.address}/  (self-signed certificate)
  account     dcaccount:https://{domain}/new
  DNS         dig @{dns_address} {domain} MX   (NSD serves {domain}.)
  shell       {container.shell_command()}
  stop        scripts/deploy-local --stop
""")


def _cleanup_container_dir() -> None:
    root = HOME / "container" / "root"
    if os.path.ismount(root):
        subprocess.run(["umount", "-l", str(root)], check=False)
    shutil.rmtree(HOME / "container", ignore_errors=True)


def _running(pid: int | None, comm: str) -> bool:
    if not pid:
        return False
    try:
        # nsd renames its processes "nsd: xfrd", "nsd: main", ...
        return Path(f"/proc/{pid}/comm").read_text().startswith(comm)
    except OSError:
        return False


def _stop_pid(pid: int | None, comm: str) -> None:
    """SIGTERM ``pid`` if it still is the ``comm`` we started, and wait for it."""
    if not _running(pid, comm):
        return
    os.killpg(pid, signal.SIGTERM)  # started in its own session: the whole group
    for _ in range(100):
        if not _running(pid, comm):
            return
        time.sleep(0.05)
    os.killpg(pid, signal.SIGKILL)


def _load() -> dict:
    try:
        return json.loads(STATE.read_text())
    except (OSError, ValueError):
        return {}


def _save(state: dict) -> None:
    STATE.write_text(json.dumps(state, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy-local", description=__doc__.split("\n\n")[0])
    parser.add_argument("--domain", default=None, help=f"mail domain of the relay (default {DEFAULT_DOMAIN})")
    parser.add_argument("--stop", action="store_true", help="tear the container, bridge, proxy and DNS down")
    parser.add_argument(
        "--release",
        choices=sorted(RELEASES),
        default=None,
        help=f"Debian release of the container (default: the running one, else {DEFAULT_RELEASE})",
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root (systemd-nspawn, bridges, mounts)")
    if args.stop:
        return down()
    domain = args.domain or _load().get("domain") or DEFAULT_DOMAIN
    release = args.release or _load().get("release") or DEFAULT_RELEASE
    return up(domain.rstrip(".").lower(), release)


if __name__ == "__main__":
    sys.exit(main())
