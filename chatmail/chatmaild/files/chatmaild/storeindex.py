"""What the storage jobs learnt about each directory, kept until it changes.

A directory's ctime moves whenever an entry is created, removed or renamed
in it (Dovecot's deliveries, flag changes, expunges, expire's removals), and
nobody can set it back (``utime`` sets the mtime, and the ctime to now).  So
when a directory's inode number and ctime are what they were at the last
run, its listing is what it was: the jobs reuse what they computed from it
(docs/design.md 5.8) with one ``lstat()`` instead of reading the directory.
On a relay most directories are unchanged from one day to the next
(inactive accounts, read mail), which is where the daily jobs spend their
time.

Entries are checked, never trusted: a stale, partial or foreign index only
costs listings.  Two rules keep them exact:

* *racy ctime*: a directory whose ctime is less than RACY_SECONDS older
  than the moment the job stat()ed it is not recorded, because a change in
  the same clock tick after the listing would leave the ctime as it was
  (file system timestamps come from a coarse clock; git's "racy clean" rule);
* a directory is recorded only when the caller says the listing decided
  everything (see ``record``).

The file is ``<mailboxes_dir>/.chatmail-store-index`` (no ``@``: not an
account), written whole and atomically by every complete walk; a file that
does not load (other version, cut short, unreadable) is an empty index.
"""

from __future__ import annotations

import marshal
import os
import struct
import time
import zlib

INDEX_NAME = ".chatmail-store-index"
MAGIC = b"chatmail-store-index 1\n"
RACY_SECONDS = 2
# an entry: the directory's inode number and ctime (ns), then the caller's bytes;
# a dict of short bytes values is what marshal loads fastest (~10x a dict of tuples)
_STAMP = struct.Struct("<Qq")


class StoreIndex:
    """Old entries (from the file) checked against stat results, new entries for the next run."""

    def __init__(self, mailboxes_dir: str | os.PathLike, old: dict[str, bytes] | None = None, save: bool = True):
        self.root = os.fspath(mailboxes_dir).rstrip("/") + "/"
        self.old = old or {}
        self.new: dict[str, bytes] = {}
        self.saving = save

    @property
    def path(self) -> str:
        return self.root + INDEX_NAME

    @classmethod
    def load(cls, mailboxes_dir: str | os.PathLike, rescan: bool = False) -> StoreIndex:
        """The index of ``mailboxes_dir``; ``rescan``: start empty (every directory is listed)."""
        index = cls(mailboxes_dir)
        if not rescan:
            index.old = read_entries(index.path)
        return index

    def lookup(self, path: str, st: os.stat_result) -> bytes | None:
        """What was recorded for directory ``path`` if it is unchanged since, else None."""
        key = path[len(self.root) :]
        entry = self.old.pop(key, None)  # visited: it moves to the new entries or goes
        if entry is None or _STAMP.unpack_from(entry) != (st.st_ino, st.st_ctime_ns):
            return None
        self.new[key] = entry
        return entry[_STAMP.size :]

    # Entries trusted for a reason of their own, not by ctime (the mailbox recaps of
    # chatmaild.mailstore): read with ``peek``, written with ``put``, and either dropped
    # or carried into the next run.

    def peek(self, path: str) -> tuple[int, bytes] | None:
        """The old entry of ``path`` unchecked, left in place: its inode number and value."""
        entry = self.old.get(path[len(self.root) :])
        return None if entry is None else (_STAMP.unpack_from(entry)[0], entry[_STAMP.size :])

    def drop(self, path: str) -> None:
        """Forget the old entry of ``path`` (it no longer holds)."""
        self.old.pop(path[len(self.root) :], None)

    def carry(self, path: str) -> None:
        """Keep the old entry of ``path``, if any, for the next run as it is."""
        key = path[len(self.root) :]
        entry = self.old.pop(key, None)
        if entry is not None:
            self.new[key] = entry

    def put(self, path: str, inode: int, value: bytes) -> None:
        """Keep ``value`` for ``path`` with the inode number it belongs to."""
        self.new[path[len(self.root) :]] = _STAMP.pack(inode, 0) + value

    def record(self, path: str, st: os.stat_result, value: bytes, stat_time_ns: int) -> None:
        """Remember ``value`` for ``path`` as listed after ``st`` was taken at ``stat_time_ns``
        (time.time_ns() before the stat); skipped when the ctime is too recent to tell."""
        if settled(st, stat_time_ns):
            self.new[path[len(self.root) :]] = _STAMP.pack(st.st_ino, st.st_ctime_ns) + value

    def save(self, complete: bool = True) -> bool:
        """Write what this walk saw; an incomplete walk (one that skipped mailboxes or
        stopped early) keeps the old entries it did not visit.

        Returns whether the file was written; a read-only or full store only
        means the next run lists again.
        """
        if not self.saving:
            return False
        entries = self.new if complete else {**self.old, **self.new}
        payload = marshal.dumps(entries)
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(MAGIC + zlib.crc32(payload).to_bytes(4, "big"))
                f.write(payload)
            os.replace(tmp, self.path)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return False
        return True


def settled(st: os.stat_result, stat_time_ns: int) -> bool:
    """Whether ``st`` (taken after ``stat_time_ns``) is old enough that a later change moves its ctime."""
    return stat_time_ns - st.st_ctime_ns > RACY_SECONDS * 1_000_000_000


def read_entries(path: str) -> dict[str, bytes]:
    """The entries of an index file, or {} when it is missing or does not check out."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return {}
    head = len(MAGIC)
    if not data.startswith(MAGIC) or len(data) < head + 4:
        return {}
    payload = memoryview(data)[head + 4 :]
    if zlib.crc32(payload) != int.from_bytes(data[head : head + 4], "big"):
        return {}
    try:
        entries = marshal.loads(payload)
    except (ValueError, EOFError, TypeError):
        return {}
    return entries if isinstance(entries, dict) else {}


def now_ns() -> int:
    """The wall clock (the clock file system timestamps come from), in ns."""
    return time.time_ns()
