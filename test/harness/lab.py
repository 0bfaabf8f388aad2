"""The test lab: one bridge, its proxy and test DNS, and the containers on it.

This is what the pytest fixtures (test/system/conftest.py), benchmarks and
scripts/deploy-local build on.  ``Lab().start()`` creates the bridge,
starts tinyproxy and NSD on the bridge address, makes sure the base
image exists and snapshots the formula (containers of one session all see
the repo as it was when the session started); ``lab.boot(name)`` boots a container with an address, A and
MX records ``<name>.test`` and the relay's default pillar at hand.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from . import lifecycle
from .container import Container, snapshot_formula
from .dns import TestDNS
from .image import DEFAULT_RELEASE, base_image, container_venv
from .network import Bridge, create_bridge
from .proxy import Proxy
from .stale import remove_stale_sessions, session_dir


def relay_pillar(domain: str, zone: str, dns_address: str, **overrides) -> dict:
    """Pillar ``chatmail`` of a relay in a container: self-signed TLS, test DNS forwarded."""
    pillar = {
        "mail_domain": domain,
        "tls_mode": "self_signed",
        "dns_forward_zones": {f"{zone.rstrip('.')}.": [dns_address]},
        # no local iroh relay: its binary comes from GitHub releases, which a
        # container cannot reach (the proxy passes package registries only)
        "iroh_relay": "",
        # containers see the host's load average, which parallel test runs on
        # a small machine push past upstream's 5: accounts must still be made
        "max_load_1m": 1000,
    }
    pillar.update(overrides)
    return pillar


class Lab:
    def __init__(self, log=print):
        self.log = log
        self.bridge: Bridge | None = None
        self.proxy: Proxy | None = None
        self.dns: TestDNS | None = None
        self.image: Path | None = None
        self.containers: list[Container] = []
        self.timings: dict[str, float] = {}
        self.session: Path | None = None
        self.formula: Path | None = None

    def start(self) -> Lab:
        t0 = time.monotonic()
        self.image = base_image(log=self.log)
        t1 = time.monotonic()
        remove_stale_sessions()
        self.session = session_dir()
        session = self.session
        lifecycle.register(f"session {session.name}", lambda: shutil.rmtree(session, ignore_errors=True))
        self.bridge = create_bridge()
        self.proxy = Proxy(self.bridge.address, str(self.bridge.network), workdir=self.session / "proxy").start()
        self.dns = TestDNS(self.bridge.address, workdir=self.session / "dns").start()
        self.formula = snapshot_formula(self.session / "formula")
        t2 = time.monotonic()
        self.timings.update(image=t1 - t0, network=t2 - t1)
        return self

    def boot(
        self, name: str, address: str | None = None, image: Path | None = None, release: str = DEFAULT_RELEASE
    ) -> Container:
        """A started container ``name`` of Debian ``release`` whose domain ``<name>.test`` resolves to it.

        ``image`` is the release's base image unless given (e.g. ``image.core_image()``).
        Another release than the default boots its own base image with the
        Salt venv built inside it (its Python is not the host's)."""
        state_dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.session))
        if image is None:
            image = self.image if str(release) == DEFAULT_RELEASE else base_image(log=self.log, release=str(release))
        venv = container_venv(str(release), image, log=self.log)
        container = Container(
            name,
            image,
            self.bridge,
            address or self.bridge.next_address(),
            proxy_url=self.proxy.url,
            state_dir=state_dir,
            formula=self.formula,
            **venv,
        )
        container.release = str(release)
        self.containers.append(container)
        container.start()
        self.dns.a(name, container.address)
        self.dns.mx(name, name)
        return container

    def default_pillar(self, name: str, **overrides) -> dict:
        """The relay's pillar ``chatmail`` for a test container ``name``."""
        return relay_pillar(f"{name}.{self.dns.zone}", self.dns.zone, self.dns.address, **overrides)

    def discard(self, container: Container) -> None:
        container.stop()
        if container in self.containers:
            self.containers.remove(container)
        self.dns.remove(container.name)

    def stop(self) -> None:
        for container in reversed(self.containers):
            container.stop()
        self.containers.clear()
        if self.dns:
            self.dns.stop()
        if self.proxy:
            self.proxy.stop()
        if self.bridge:
            self.bridge.delete()
        if self.session:
            shutil.rmtree(self.session, ignore_errors=True)
