"""An HTTP proxy on the bridge address so apt and pip inside containers work.

Containers have no default route; the only way out is this tinyproxy,
which listens on the bridge address only, accepts clients from the bridge
subnet only, and forwards only to the package registries in
:data:`REGISTRIES` (everything else gets 403).
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from pathlib import Path

from . import lifecycle
from .guard import check_target

PORT = 8888
# hosts apt and pip inside a container may reach (regular expressions)
REGISTRIES = (
    r"^deb\.debian\.org$",
    r"^security\.debian\.org$",
    r"^pypi\.org$",
    r"^files\.pythonhosted\.org$",
)


class Proxy:
    def __init__(
        self, address: str, subnet: str, port: int = PORT, workdir: str | Path | None = None, persistent: bool = False
    ):
        self.address = address
        self.subnet = subnet
        self.port = port
        self.persistent = persistent
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="chatmail-proxy-"))
        self.process: subprocess.Popen | None = None
        self._handle = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def config(self) -> str:
        filters = self.workdir / "registries"
        filters.write_text("\n".join(REGISTRIES) + "\n")
        return (
            "\n".join(
                [
                    "User nobody",
                    "Group nogroup",
                    f"Port {self.port}",
                    f"Listen {self.address}",
                    f"Allow {self.subnet}",
                    "Timeout 300",
                    "MaxClients 64",
                    "ConnectPort 443",
                    "LogLevel Warning",
                    f'Filter "{filters}"',
                    "FilterType ere",
                    "FilterDefaultDeny Yes",
                    "DisableViaHeader Yes",
                ]
            )
            + "\n"
        )

    def start(self) -> Proxy:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "tinyproxy.conf"
        conf.write_text(self.config())
        self.process = lifecycle.start_daemon(
            ["tinyproxy", "-d", "-c", str(conf)],
            self.workdir / "tinyproxy.log",
            self.workdir / "tinyproxy.pid",
            self.persistent,
        )
        if not self.persistent:
            self._handle = lifecycle.register("tinyproxy", self.stop)
        _wait_for_port(self.address, self.port, self.process)
        return self

    def stop(self) -> None:
        lifecycle.stop_process(self.process)
        lifecycle.unregister(self._handle)


def _wait_for_port(address: str, port: int, process: subprocess.Popen, timeout: float = 10) -> None:
    check_target(address)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before listening")
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {address}:{port} after {timeout} s")
