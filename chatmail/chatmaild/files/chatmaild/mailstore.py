"""One walk over the mailbox store, shared by expire and fsreport.

Layout (design.md §0.8): ``MB/<addr>/`` holds the account; entries of ``MB``
without ``@`` are not accounts.  Inside a mailbox, every regular file that
sits directly in a directory named ``cur``, ``new`` or ``tmp`` is a message,
at any depth, so Maildir++ subfolders such as ``.DeltaChat/cur`` count.
Other directories are descended into; other regular files are "extra
files" (``password``, ``dovecot*``, ``maildirsize``, rawlogs, ...).
Symlinks are never followed.

Which timestamp makes a message "old", and why most files need no stat()
-----------------------------------------------------------------------
Dovecot names a maildir file ``<unix time>.M<usec>P<pid>.<host>,S=<size>,W=<vsize>:2,<flags>``
when it saves the file into a folder: the name's time is the *save time*
(when this relay stored the file in this folder) and ``S=`` its size.  The
file's mtime is the IMAP received date (INTERNALDATE), which Dovecot reads
back with stat().  For an LMTP delivery both are the same moment.  They
differ when a save carries a received date of its own, which Dovecot then
writes with utime():

* IMAP APPEND with a date argument (any date, past or future);
* COPY/MOVE into another folder: a hard link (shared inode, so the old
  mtime) under a new name, or a copy whose mtime is set to the original's;
* dsync / ``doveadm import`` / ``doveadm backup``, which keep received dates;
* anyone running ``touch`` or ``cp`` without ``-p`` on the store (``rsync -a``,
  the documented migration, keeps both).

Flag changes (``:2,S`` -> ``:2,ST``) are renames: they change the ctime,
never the mtime nor the name's time.

The rule the jobs apply (docs/design.md 5.8):

* In the INBOX (``<mailbox>/{cur,new,tmp}``), where mail arrives by LMTP,
  the age is the name's save time: no stat().  When the two disagree the
  name is the better measure of "how long this relay has held the file":
  a message APPENDed with a date in the future is not kept for ever, and
  one APPENDed or moved in with an old date is kept for the full period
  from its save, not removed at the next run.
* In subfolders (``.DeltaChat`` of old clients), where files arrive by
  MOVE/COPY, a name's time is the time of the move, so moving messages
  back and forth would keep them young: there the age is the older of the
  name's time and the mtime (one stat() per file).  That is the received
  date for moved files (as upstream, which always uses the mtime) and the
  save time for a future-dated APPEND.

The size comes from ``,S=<bytes>`` (the file's size on disk, which Dovecot
also uses for its maildir quota).  A file whose name lacks the timestamp or
the size (``tmp/`` files have no ``,S=``; files not made by Dovecot) falls
back to lstat() and is skipped unless it is a regular file.  A file that
vanishes in between is skipped.

Cost: per mailbox one scandir() of each folder, one listdir() of each
cur/new/tmp and one stat() of ``password``; per INBOX message nothing but
a regex match on its name.  On a cold cache that avoids one inode read
per message (the dominant cost at a million files).

All times are POSIX timestamps (seconds since the epoch, UTC by
definition), so nothing here depends on the host's timezone.
"""

from __future__ import annotations

import os
import re
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from stat import S_ISREG
from typing import NamedTuple

MESSAGE_DIRS = frozenset(("cur", "new", "tmp"))
PASSWORD = "password"
DAY = 86400


def reference_time(days: float = 0, now: datetime | None = None) -> datetime:
    """The moment the storage jobs judge ages against: now (aware UTC),
    moved ``days`` into the future so an operator can preview what a later
    run will do (and tests can age a store without touching its files)."""
    if now is None:
        now = datetime.now(timezone.utc)
    return now + timedelta(days=days)


class Message(NamedTuple):
    path: str
    mdir: str  # name of the parent directory: cur, new or tmp
    time: float  # the age the rules use: save time from the name, or older mtime (module docstring)
    size: int  # bytes on disk


class ExtraFile(NamedTuple):
    path: str
    size: int


class Mailbox(NamedTuple):
    path: str
    name: str
    # mtime of the password file (doveauth/lastlogin touch it on login);
    # None when the mailbox has no password file
    last_login: float | None
    messages: list[Message]
    # regular files outside cur/new/tmp; only collected when asked for
    extra_files: list[ExtraFile]


def name_time(name: str) -> int | None:
    """The leading unix timestamp of a Dovecot maildir file name, or None."""
    head, dot, _ = name.partition(".")
    if dot and head.isascii() and head.isdigit():
        return int(head)
    return None


def name_size(name: str) -> int | None:
    """The ``,S=<bytes>`` size of a Dovecot maildir file name, or None."""
    found = _SIZE.search(name)
    return int(found.group(1)) if found else None


# both fields at once: the common case, one regex call per file
_DOVECOT_NAME = re.compile(r"([0-9]+)\.[^,]*,S=([0-9]+)")
_SIZE = re.compile(r",S=([0-9]+)")


def _scan_message_dir(path: str, mdir: str, trust_name_time: bool, out: list[Message]) -> None:
    """Messages of one cur/new/tmp directory.

    os.listdir, not scandir: the names are all we need for most files.  An
    entry with a full Dovecot name is taken to be a regular file (Dovecot
    puts nothing else there); anything else is lstat()ed and skipped
    unless it is a regular file.
    """
    try:
        names = os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    prefix = path + "/"
    match = _DOVECOT_NAME.match
    append = out.append
    for name in names:
        found = match(name)
        if found is not None and trust_name_time:
            append(Message(prefix + name, mdir, int(found.group(1)), int(found.group(2))))
            continue
        file_path = prefix + name
        try:
            st = os.lstat(file_path)
        except FileNotFoundError:
            continue
        if not S_ISREG(st.st_mode):
            continue
        when = name_time(name)
        if when is None:
            when = st.st_mtime
        elif not trust_name_time:
            when = min(when, st.st_mtime)
        size = int(found.group(2)) if found is not None else name_size(name)
        append(Message(file_path, mdir, when, st.st_size if size is None else size))


def _scan_folder(path: str, is_inbox: bool, messages: list[Message], extras: list[ExtraFile] | None) -> None:
    try:
        entries = os.scandir(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    with entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if entry.name in MESSAGE_DIRS:
                    _scan_message_dir(entry.path, entry.name, is_inbox, messages)
                else:
                    _scan_folder(entry.path, False, messages, extras)
            elif extras is not None and entry.is_file(follow_symlinks=False):
                try:
                    extras.append(ExtraFile(entry.path, entry.stat(follow_symlinks=False).st_size))
                except FileNotFoundError:
                    continue


def last_login(mailbox_path: str) -> float | None:
    """mtime of the mailbox's password file (= day of last login), or None."""
    try:
        return os.stat(os.path.join(mailbox_path, PASSWORD)).st_mtime
    except (FileNotFoundError, NotADirectoryError):
        return None


def scan_mailbox(path: str, with_extras: bool = False) -> Mailbox:
    """All messages of one mailbox (INBOX and every subfolder)."""
    messages: list[Message] = []
    extras: list[ExtraFile] | None = [] if with_extras else None
    _scan_folder(path, True, messages, extras)
    return Mailbox(path, os.path.basename(path), last_login(path), messages, extras or [])


def mailbox_paths(mailboxes_dir: str | os.PathLike, maxnum: int | None = None) -> Iterator[str]:
    """Paths of the account directories in ``mailboxes_dir`` (directory order).

    Raises FileNotFoundError when ``mailboxes_dir`` does not exist.
    """
    count = 0
    with os.scandir(mailboxes_dir) as entries:
        for entry in entries:
            if maxnum is not None and count >= maxnum:
                return
            if "@" in entry.name and entry.is_dir(follow_symlinks=False):
                count += 1
                yield entry.path


# A scan slower than this per mailbox means the kernel is reading directories from disk
# (hot cache: ~50-100 us; cold: ~500-800 us on the 2-core test machine, docs/design.md 5.8)
COLD_SECONDS_PER_MAILBOX = 0.0003
PROBE_MAILBOXES = 200  # mailboxes scanned one by one before deciding
PREFETCH_WORKERS = 16  # concurrent scans once the cache is cold: the disk serves many reads at once
PREFETCH_WINDOW = 256  # mailboxes scanned ahead at most (bounds memory)


def iter_mailboxes(
    mailboxes_dir: str | os.PathLike,
    maxnum: int | None = None,
    with_extras: bool = False,
    workers: int = PREFETCH_WORKERS,
    cold_after: float = COLD_SECONDS_PER_MAILBOX,
    probe: int = PROBE_MAILBOXES,
) -> Iterator[Mailbox]:
    """Scan each account directory in turn, in directory order.

    From a hot cache the scan is CPU-bound and runs here, one mailbox at a
    time.  When the first ``probe`` mailboxes take longer than ``cold_after``
    seconds each, the directories come from disk and each read waits on it:
    then up to ``workers`` threads scan the next mailboxes ahead (at most
    PREFETCH_WINDOW), so the disk serves many reads at once.  The caller
    still gets every mailbox in the same order, one after another, and does
    all removals itself; the scans only read.  Threads do not pay from a
    hot cache (they contend for the interpreter), hence the probe.
    """
    paths = mailbox_paths(mailboxes_dir, maxnum)
    scanning = 0.0
    for count, path in enumerate(paths, 1):
        started = time.monotonic()
        mailbox = scan_mailbox(path, with_extras)
        scanning += time.monotonic() - started
        yield mailbox
        if count == probe and workers > 1 and scanning / count > cold_after:
            break
    else:
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="mailstore-scan") as pool:
        window: deque[Future[Mailbox]] = deque()
        for path in paths:
            window.append(pool.submit(scan_mailbox, path, with_extras))
            if len(window) >= PREFETCH_WINDOW:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
