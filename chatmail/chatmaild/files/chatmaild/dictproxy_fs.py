"""File helpers shared by the dict services: atomic writes and file locks.

Readers (Dovecot via doveauth, chatmail-expire, the notifier threads) must
never see a half-written password or token file, so every write goes to a
unique temporary sibling that is renamed over the target.  Writers that
read-modify-write take an exclusive ``flock`` on a ``.lock`` sibling; flock
excludes other threads (each opens its own descriptor) and other processes
alike, and is the same lock the ``filelock`` package takes on Unix.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


def write_atomic(path: Path, data: str | bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new content."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp = path.with_name(f"{path.name}.tmp-{secrets.randbelow(2**63)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``lock_path`` (created if missing)."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
