"""The test lab: one bridge, its proxy and test DNS, and the containers on it.

This is what the pytest fixtures (test/system/conftest.py), benchmarks and
scripts/deploy-local build on.  ``Lab().start()`` creates the bridge,
starts tinyproxy and NSD on the bridge address and makes sure the base
image exists; ``lab.boot(name)`` boots a container with an address, A and
MX records ``<name>.test`` and the relay's default pillar at hand.
"""

from __future__ import annotations

import time
from pathlib import Path

from .container import Container
from .dns import TestDNS
from .image import base_image
from .network import Bridge, create_bridge
from .proxy import Proxy


class Lab:
    def __init__(self, log=print):
        self.log = log
        self.bridge: Bridge | None = None
        self.proxy: Proxy | None = None
        self.dns: TestDNS | None = None
        self.image: Path | None = None
        self.containers: list[Container] = []
        self.timings: dict[str, float] = {}

    def start(self) -> "Lab":
        t0 = time.monotonic()
        self.image = base_image(log=self.log)
        t1 = time.monotonic()
        self.bridge = create_bridge()
        self.proxy = Proxy(self.bridge.address, str(self.bridge.network)).start()
        self.dns = TestDNS(self.bridge.address).start()
        t2 = time.monotonic()
        self.timings.update(image=t1 - t0, network=t2 - t1)
        return self

    def boot(self, name: str, address: str | None = None) -> Container:
        """A started container ``name`` whose domain ``<name>.test`` resolves to it."""
        container = Container(name, self.image, self.bridge, address or self.bridge.next_address(),
                              proxy_url=self.proxy.url)
        self.containers.append(container)
        container.start()
        self.dns.a(name, container.address)
        self.dns.mx(name, name)
        return container

    def default_pillar(self, name: str, **overrides) -> dict:
        """The relay's pillar ``chatmail`` for a test container ``name``."""
        pillar = {
            "mail_domain": f"{name}.{self.dns.zone}",
            "tls_mode": "self_signed",
            "dns_forward_zones": {f"{self.dns.zone}.": [self.dns.address]},
        }
        pillar.update(overrides)
        return pillar

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
