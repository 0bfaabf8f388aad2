"""Whether the relay has room for one more account (upstream 1.12's system limits).

A relay that is overloaded, short of memory or nearly out of disk keeps
serving its existing accounts but stops creating new ones: each new
account adds lasting load, and refusing a first login costs the client a
retry later, while a full disk or an OOM kill costs every user mail.

The three readers are plain functions so tests (and doveauth's own tests
over its socket) can put any value in their place.  A reader that fails
does not block creation: a limit that cannot be measured is not exceeded
(the failure is logged), as upstream.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from .config import Config, size_bytes

log = logging.getLogger(__name__)

__all__ = ["SystemLimits", "load_1m", "available_memory", "free_disk"]

MEMINFO = Path("/proc/meminfo")


def load_1m() -> float:
    """The 1-minute load average (runnable plus disk-waiting processes)."""
    return os.getloadavg()[0]


def available_memory(meminfo: Path = MEMINFO) -> int:
    """Bytes the kernel says are available without swapping (MemAvailable)."""
    for line in meminfo.read_text().splitlines():
        name, _, rest = line.partition(":")
        if name == "MemAvailable":
            return int(rest.split()[0]) * 1024
    raise ValueError(f"no MemAvailable in {meminfo}")


def free_disk(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the file system of ``path``.

    The nearest existing parent counts while ``path`` does not exist yet
    (a fresh relay before its first account).
    """
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _mb(n: int) -> str:
    return f"{n // (1024 * 1024)}M"


class SystemLimits:
    """The configured limits and the readers that measure them."""

    def __init__(
        self,
        config: Config,
        load: Callable[[], float] = load_1m,
        memory: Callable[[], int] = available_memory,
        disk: Callable[[Path], int] = free_disk,
    ):
        self.config = config
        self.load = load
        self.memory = memory
        self.disk = disk
        self.min_memory = size_bytes(config.min_available_memory)
        self.min_disk = size_bytes(config.min_free_disk_space)

    def shortage(self) -> str | None:
        """Why no new account may be created now, or None."""
        cfg = self.config
        load = self._read("load average", self.load)
        if load is not None and load > cfg.max_load_1m:
            return f"1-minute load average {load:.2f} above max_load_1m {cfg.max_load_1m:g}"
        memory = self._read("available memory", self.memory)
        if memory is not None and memory < self.min_memory:
            return f"available memory {_mb(memory)} below min_available_memory {cfg.min_available_memory}"
        disk = self._read("free disk", lambda: self.disk(cfg.mailboxes_dir))
        if disk is not None and disk < self.min_disk:
            return (
                f"free disk under {cfg.mailboxes_dir} {_mb(disk)} below min_free_disk_space {cfg.min_free_disk_space}"
            )
        return None

    @staticmethod
    def _read(what: str, reader: Callable[[], float]):
        try:
            return reader()
        except (OSError, ValueError) as exc:
            log.warning("cannot read %s, not limiting on it: %s", what, exc)
            return None
