"""A real Delta Chat client (deltachat-rpc-server) confined to the test bridge.

The core knows public relays by name and may try to reach them (its
"autorelay" and relay-list features), so it never runs on the host's
network.  :class:`ClientNamespace` creates a network namespace whose only
link is a veth end on the harness bridge, with an address of the bridge's
subnet and no default route: the core can reach the relays on the bridge
and nothing else.  Names resolve through ``/etc/netns/<ns>/hosts`` (which
``ip netns exec`` bind-mounts over /etc/hosts for that process only); its
resolv.conf names a resolver inside the namespace where nothing listens,
so any other lookup fails fast.

The namespace's name carries the owning process id, so a later session
removes namespaces whose owner died without cleaning up.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from deltachat_rpc_client import DeltaChat, Rpc

from harness import lifecycle

VENV = (Path(__file__).resolve().parents[2] / ".venv").resolve()
RPC_SERVER = VENV / "bin" / "deltachat-rpc-server"
NETNS_ETC = Path("/etc/netns")
PREFIX = "cmdc"


class ClientNamespace:
    """A network namespace attached to ``bridge`` (a harness Bridge) by a veth pair."""

    def __init__(self, bridge, hosts: dict[str, str], tag: str = "0"):
        self.bridge = bridge
        self.hosts = dict(hosts)
        self.name = f"{PREFIX}{os.getpid()}x{tag}"
        # interface names: at most 15 characters
        self.host_if = f"{PREFIX}h{os.getpid() % 100000}{tag}"[:15]
        self.address = bridge.next_address()
        self._handle = None

    def __enter__(self) -> ClientNamespace:
        return self.create()

    def __exit__(self, *exc) -> None:
        self.delete()

    def create(self) -> ClientNamespace:
        remove_stale_namespaces()
        self._handle = lifecycle.register(f"netns {self.name}", self.delete)
        _ip("netns", "add", self.name)
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", "dc0", "netns", self.name)
        _ip("link", "set", self.host_if, "master", self.bridge.name)
        _ip("link", "set", self.host_if, "up")
        _ip("-n", self.name, "addr", "add", f"{self.address}/{self.bridge.prefixlen}", "dev", "dc0")
        _ip("-n", self.name, "link", "set", "dc0", "up")
        _ip("-n", self.name, "link", "set", "lo", "up")
        routes = _ip("-n", self.name, "-4", "route")
        assert "default" not in routes, routes
        etc = NETNS_ETC / self.name
        etc.mkdir(parents=True, exist_ok=True)
        lines = ["127.0.0.1 localhost"] + [f"{addr} {name}" for name, addr in self.hosts.items()]
        (etc / "hosts").write_text("\n".join(lines) + "\n")
        # a resolver on the namespace's own loopback, where nothing listens
        (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        return self

    def delete(self) -> None:
        _ip("netns", "del", self.name, check=False)  # takes the veth pair with it
        _ip("link", "del", self.host_if, check=False)
        shutil.rmtree(NETNS_ETC / self.name, ignore_errors=True)
        lifecycle.unregister(self._handle)

    def command(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]


class DeltaChatClient:
    """deltachat-rpc-server running in a :class:`ClientNamespace`, driven over JSON-RPC."""

    def __init__(self, namespace: ClientNamespace, workdir: Path | None = None):
        self.namespace = namespace
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="dcclient-"))
        self.rpc: Rpc | None = None
        self.dc: DeltaChat | None = None

    def __enter__(self) -> DeltaChat:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> DeltaChat:
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.workdir),
            "DC_ACCOUNTS_PATH": str(self.workdir / "accounts"),
            "RUST_LOG": os.environ.get("RUST_LOG", "warn"),
        }
        self.rpc = Rpc(
            rpc_server_path=self.namespace.command(str(RPC_SERVER)), env=env, preexec_fn=lifecycle.die_with_parent
        )
        self.rpc.start()
        self.dc = DeltaChat(self.rpc)
        return self.dc

    def stop(self) -> None:
        if self.rpc is not None:
            try:
                self.rpc.close()
            except Exception as exc:  # noqa: BLE001 - teardown goes on
                print(f"dcclient: closing the rpc server: {exc}", file=sys.stderr)
            self.rpc = None
        shutil.rmtree(self.workdir, ignore_errors=True)


def transport(addr: str, password: str, server: str) -> dict:
    """Explicit transport settings: IMAP 993 and SMTP 465 with TLS, any certificate (self-signed relays)."""
    return {
        "addr": addr,
        "password": password,
        "imapServer": server,
        "imapPort": 993,
        "imapSecurity": "ssl",
        "smtpServer": server,
        "smtpPort": 465,
        "smtpSecurity": "ssl",
        "certificateChecks": "acceptInvalidCertificates",
    }


def account_from_web(dc, box):
    """A configured, online account on ``dc`` (a DeltaChat) with credentials from ``box``'s /new."""
    from . import mailclient as mc

    domain = box.pillar["mail_domain"]
    creds = mc.new_account_from_web(box.address, domain)
    account = dc.add_account()
    account.add_or_update_transport(transport(creds.addr, creds.password, domain))
    assert account.is_configured()
    account.bring_online()
    account.addr = creds.addr
    return account


def remove_stale_namespaces() -> list[str]:
    """Delete client namespaces whose owning process is gone (a killed earlier session)."""
    removed = []
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for match in re.finditer(rf"^({PREFIX}(\d+)x\S*)", names, re.M):
        name, pid = match.group(1), match.group(2)
        if not Path(f"/proc/{pid}").exists():
            _ip("netns", "del", name, check=False)
            shutil.rmtree(NETNS_ETC / name, ignore_errors=True)
            removed.append(name)
    return removed


def _ip(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


# 2 shared cores: generous, but bounded
EVENT_TIMEOUT = 120


def wait_for(account, predicate, timeout: float = EVENT_TIMEOUT):
    """The first event of ``account`` that ``predicate`` accepts (fails after ``timeout``)."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        event = account.wait_for_event()
        seen.append(event.kind)
        if event.kind == "Error":
            pytest.fail(f"core error: {event.msg}")
        if event.kind == "MsgFailed":
            pytest.fail(f"a message failed to send: {account.get_message_by_id(event.msg_id).get_snapshot().error}")
        if predicate(event):
            return event
    pytest.fail(f"no awaited event within {timeout} s; saw {seen[-20:]}")
