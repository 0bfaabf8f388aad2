"""The test DNS: a real authoritative server (NSD) for the ``test.`` zone.

It listens on the bridge address, port 53; containers use it as their
resolver, and a relay's own unbound forwards ``test.`` to it (pillar
``dns_forward_zones``).  Tests add and remove records through
:class:`TestDNS`; every change rewrites the zone file with a higher serial
and makes NSD reload it, and returns only once NSD serves the new serial.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from . import lifecycle
from .guard import check_target

ZONE = "test"
TTL = 5


class TestDNS:
    __test__ = False  # not a pytest test class

    def __init__(self, address: str, zone: str = ZONE, workdir: str | Path | None = None, persistent: bool = False):
        self.address = address
        self.zone = zone.rstrip(".")
        self.persistent = persistent
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="chatmail-dns-"))
        self.records: list[tuple[str, str, str]] = []
        self.serial = int(time.time())
        self.process: subprocess.Popen | None = None
        self._handle = None

    # -- records -------------------------------------------------------------

    def fqdn(self, name: str) -> str:
        """``relay1`` and ``relay1.test`` both become ``relay1.test.``."""
        name = name.rstrip(".")
        if name in ("", "@", self.zone):
            return self.zone + "."
        if not name.endswith("." + self.zone):
            name = f"{name}.{self.zone}"
        return name + "."

    def add(self, name: str, rtype: str, value: str) -> None:
        """Add one record, e.g. ``add("relay1", "A", "10.213.0.10")``,
        ``add("relay1.test", "MX", "10 relay1.test.")``,
        ``add("_dmarc.relay1", "TXT", "v=DMARC1;p=reject")``,
        ``add("_submissions._tcp.relay1", "SRV", "0 1 465 relay1.test.")``."""
        self.records.append((self.fqdn(name), rtype.upper(), _rdata(rtype.upper(), value)))
        self.reload()

    def a(self, name: str, address: str) -> None:
        self.add(name, "A", address)

    def mx(self, name: str, host: str, priority: int = 10) -> None:
        self.add(name, "MX", f"{priority} {self.fqdn(host)}")

    def txt(self, name: str, text: str) -> None:
        self.add(name, "TXT", text)

    def srv(self, name: str, target: str, port: int, priority: int = 0, weight: int = 1) -> None:
        self.add(name, "SRV", f"{priority} {weight} {port} {self.fqdn(target)}")

    def cname(self, name: str, target: str) -> None:
        self.add(name, "CNAME", self.fqdn(target))

    def remove(self, name: str, rtype: str | None = None) -> None:
        """Remove the records of ``name`` (of one type, or all)."""
        fqdn = self.fqdn(name)
        self.records = [r for r in self.records if not (r[0] == fqdn and rtype in (None, r[1]))]
        self.reload()

    def zone_text(self) -> str:
        origin = self.zone + "."
        lines = [
            f"$ORIGIN {origin}",
            f"$TTL {TTL}",
            f"@ IN SOA ns.{origin} hostmaster.{origin} {self.serial} 60 60 600 {TTL}",
            f"@ IN NS ns.{origin}",
            f"ns IN A {self.address}",
        ]
        lines += [f"{name} IN {rtype} {rdata}" for name, rtype, rdata in self.records]
        return "\n".join(lines) + "\n"

    # -- the server ------------------------------------------------------------

    def config(self) -> str:
        w = self.workdir
        return f"""server:
    ip-address: {self.address}
    port: 53
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "{w}"
    database: ""
    zonelistfile: "{w}/zone.list"
    xfrdfile: "{w}/xfrd.state"
    xfrdir: "{w}"
    pidfile: "{w}/nsd.pid"
    logfile: "{w}/nsd.log"
    server-count: 1
    verbosity: 1
    hide-version: yes
    refuse-any: yes
remote-control:
    control-enable: no
zone:
    name: {self.zone}
    zonefile: "{w}/{self.zone}.zone"
"""

    def start(self) -> TestDNS:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "nsd.conf"
        conf.write_text(self.config())
        self._write_zone()
        subprocess.run(["nsd-checkconf", str(conf)], check=True, capture_output=True)
        self.process = lifecycle.start_daemon(
            ["nsd", "-d", "-c", str(conf)], self.workdir / "nsd.out", self.workdir / "server.pid", self.persistent
        )
        if not self.persistent:
            self._handle = lifecycle.register("nsd", self.stop)
        self._wait_for_serial()
        return self

    def reload(self) -> None:
        """Serve the current records: new serial, rewrite, SIGHUP, wait."""
        self.serial += 1
        self._write_zone()
        pid = self.pid()
        if pid:
            os.kill(pid, signal.SIGHUP)
            self._wait_for_serial()

    def pid(self) -> int | None:
        if self.process is not None:
            return self.process.pid if self.process.poll() is None else None
        try:  # a persistent server started by another process (deploy-local)
            pid = int((self.workdir / "server.pid").read_text())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        pid = self.pid()
        if pid:
            lifecycle.stop_process(self.process, group=pid)  # nsd forks xfrd/main/server: the whole group
        lifecycle.unregister(self._handle)

    def query_serial(self) -> int | None:
        """The SOA serial NSD serves now (a raw UDP query to the bridge address)."""
        check_target(self.address)
        import dns.exception
        import dns.message
        import dns.query
        import dns.rdatatype

        request = dns.message.make_query(self.zone + ".", dns.rdatatype.SOA)
        try:
            response = dns.query.udp(request, self.address, timeout=0.5)
        except (OSError, dns.exception.Timeout):
            return None
        for rrset in response.answer:
            for rdata in rrset:
                return rdata.serial
        return None

    def _write_zone(self) -> None:
        path = self.workdir / f"{self.zone}.zone"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.zone_text())
        os.replace(tmp, path)
        # NSD compares mtimes; make each version's distinct even within a second
        os.utime(path, (time.time(), self.serial))

    def _wait_for_serial(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        resent = time.monotonic()
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"nsd exited: {(self.workdir / 'nsd.log').read_text()[-500:] if (self.workdir / 'nsd.log').exists() else ''}"
                )
            if self.query_serial() == self.serial:
                return
            if time.monotonic() - resent > 1 and self.pid():
                os.kill(self.pid(), signal.SIGHUP)  # a reload signal that arrived mid-startup
                resent = time.monotonic()
            time.sleep(0.05)
        raise RuntimeError(f"nsd does not serve serial {self.serial} of zone {self.zone} after {timeout} s")


def _rdata(rtype: str, value: str) -> str:
    """Zone-file form of a value; TXT text is quoted in 255-byte pieces."""
    if rtype != "TXT" or value.startswith('"'):
        return value
    chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
    return "( " + " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks) + " )"


def resolv_conf(address: str) -> str:
    return f"# test DNS of the chatmail harness\nnameserver {address}\noptions timeout:1 attempts:2\n"
