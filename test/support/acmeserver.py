"""A real ACME server for system tests: Debian's pebble on the harness bridge.

Let's Encrypt cannot be reached from here, so tests talk to pebble, the
ACME test server from Let's Encrypt.  It runs on the host, listens only on
the bridge address, resolves names through the lab's test DNS
(``-dnsserver``) and validates HTTP-01 challenges for real, on port 80 of
whatever address the name has there - the relay's container.

Debian's package ships no TLS certificate for pebble's own HTTPS API, so
:func:`make_ca` makes a throwaway CA and a server certificate for the
directory's name; the relay is given that CA to trust (pillar
``acme_ca_file``).  Pebble makes a fresh root and intermediate for the
certificates it issues at every start; :meth:`Pebble.root_pem` fetches
the root from pebble's management API.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

from harness import check_target, lifecycle

API_PORT = 14000
MANAGEMENT_PORT = 15000
# pebble 2.4.0's terms of service; acmetool must accept it without asking
TERMS_OF_SERVICE = "data:text/plain,Do%20what%20thou%20wilt"


def make_ca(workdir: Path, name: str, address: str) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for ``name`` and ``address``: (ca, cert, key)."""
    workdir.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (workdir / f for f in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req",
        "-x509",
        *ec,
        "-days",
        "2",
        "-subj",
        "/CN=chatmail test ACME API CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout",
        ca_key,
        "-out",
        ca,
    )
    _openssl("req", *ec, "-subj", f"/CN={name}", "-keyout", key, "-out", csr)
    ext = workdir / "server.ext"
    ext.write_text(
        f"subjectAltName=DNS:{name},IP:{address}\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        ca,
        "-CAkey",
        ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        ext,
        "-out",
        cert,
    )
    return ca, cert, key


class Pebble:
    """``Pebble(address, dns_address, workdir, name).start()``; ``.directory`` is the ACME URL."""

    def __init__(self, address: str, dns_address: str, workdir: Path, name: str):
        self.address = check_target(address)
        self.dns_address = dns_address
        self.workdir = Path(workdir)
        self.name = name  # the directory's host name (must resolve to ``address`` for the relay)
        self.ca: Path | None = None
        self.process: subprocess.Popen | None = None
        self._handle = None

    @property
    def directory(self) -> str:
        return f"https://{self.name}:{API_PORT}/dir"

    def config(self, cert: Path, key: Path) -> dict:
        return {
            "pebble": {
                "listenAddress": f"{self.address}:{API_PORT}",
                "managementListenAddress": f"{self.address}:{MANAGEMENT_PORT}",
                "certificate": str(cert),
                "privateKey": str(key),
                "httpPort": 80,  # HTTP-01 goes to the relay's acmetool redirector
                "tlsPort": 443,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
            }
        }

    def start(self, timeout: float = 20) -> Pebble:
        self.ca, cert, key = make_ca(self.workdir / "api-tls", self.name, self.address)
        conf = self.workdir / "pebble-config.json"
        conf.write_text(json.dumps(self.config(cert, key), indent=1))
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "PEBBLE_VA_NOSLEEP": "1",  # no random 0-15 s pause before each validation
            "PEBBLE_WFE_NONCEREJECT": "0",  # no deliberately rejected nonces
        }
        log = open(self.workdir / "pebble.log", "ab")
        self.process = subprocess.Popen(
            ["pebble", "-config", str(conf), "-dnsserver", f"{self.dns_address}:53"],
            cwd=self.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            preexec_fn=lifecycle.die_with_parent,
        )
        self._handle = lifecycle.register("pebble", self.stop)
        self._wait_listening(timeout)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            lifecycle.stop_process(self.process, group=self.process.pid)
        lifecycle.unregister(self._handle)

    def log(self) -> str:
        try:
            return (self.workdir / "pebble.log").read_text(errors="replace")
        except OSError:
            return ""

    def root_pem(self) -> str:
        """The root that signs this run's certificates (pebble makes a new one at every start)."""
        return self._management("/roots/0")

    def intermediate_pem(self) -> str:
        return self._management("/intermediates/0")

    def _management(self, path: str) -> str:
        check_target(self.address)
        context = ssl.create_default_context(cafile=str(self.ca))
        context.check_hostname = False  # connecting by address; the chain is still verified
        url = f"https://{self.address}:{MANAGEMENT_PORT}{path}"
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
        with opener.open(url, timeout=10) as response:
            return response.read().decode()

    def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pebble exited with {self.process.returncode}:\n{self.log()[-2000:]}")
            try:
                with socket.create_connection((self.address, API_PORT), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"pebble does not listen on {self.address}:{API_PORT} after {timeout} s")


def _openssl(*args) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)
