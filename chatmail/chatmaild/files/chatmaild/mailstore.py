"""One walk over the mailbox store, shared by expire and fsreport.

Layout (design.md §0.8): ``MB/<addr>/`` holds the account; entries of ``MB``
without ``@`` are not accounts.  Inside a mailbox, every regular file that
sits directly in a directory named ``cur``, ``new`` or ``tmp`` is a message,
at any depth, so Maildir++ subfolders such as ``.DeltaChat/cur`` count.
Other directories are descended into; other regular files are "extra
files" (``password``, ``dovecot*``, ``maildirsize``, rawlogs, ...).
Symlinks are never followed.

Which timestamp makes a message "old" and how a directory's messages are
read from their names: chatmaild.maildirfiles.

Cost: per mailbox one scandir() of each folder, one listdir() of each
cur/new/tmp and one stat() of ``password``; per INBOX message nothing but
a regex match on its name.  On a cold cache that avoids one inode read
per message (the dominant cost at a million files).

With a store index (chatmaild.storeindex) a directory whose ctime has not
moved since the last run is not read at all: its ``Summary`` (per size
floor: how many messages, their bytes, the oldest one's age) comes from the
index after one lstat(), and its messages are listed only if a job needs
them (expire, when the summary says one is due).  A folder's listing (its
subdirectories and extra files) is kept the same way.  Two limits follow
from trusting the ctime: a directory with a file whose name does not give
time and size (``tmp/`` files being written, hand-made files) is never
recorded, and in subfolders an mtime changed in place (``touch`` on a
message, nothing Dovecot does) is seen when the directory next changes.

A walk that skips mailboxes (expire, ``iter_mailboxes(skip=...)``) keeps a
``Recap`` per mailbox it looks at, and takes a mailbox's recap instead of
looking when the caller's test accepts it: then the mailbox costs no system
call at all.

All times are POSIX timestamps (seconds since the epoch, UTC by
definition), so nothing here depends on the host's timezone.
"""

from __future__ import annotations

import math
import os
import struct
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from stat import S_ISDIR, S_ISREG
from typing import NamedTuple

from chatmaild.maildirfiles import (
    LARGE_FLOOR,
    MESSAGE_DIRS,
    Message,
    Summary,
    pack_summary,
    scan_message_dir,
    summarize,
    unpack_summary,
)
from chatmaild.storeindex import StoreIndex, now_ns, settled

PASSWORD = "password"
DAY = 86400


def reference_time(days: float = 0, now: datetime | None = None) -> datetime:
    """The moment the storage jobs judge ages against: now (aware UTC),
    moved ``days`` into the future so an operator can preview what a later
    run will do (and tests can age a store without touching its files)."""
    if now is None:
        now = datetime.now(timezone.utc)
    return now + timedelta(days=days)


class ExtraFile(NamedTuple):
    path: str
    size: int


def pack_listing(subdirs: tuple[str, ...], files: tuple[str, ...]) -> bytes:
    """A folder's subdirectory and file names ("/" is the one byte no name holds)."""
    return os.fsencode("/".join(subdirs) + "//" + "/".join(files))


def unpack_listing(data: bytes) -> tuple[tuple[str, ...], tuple[str, ...]]:
    subdirs, _, files = os.fsdecode(data).partition("//")
    return tuple(filter(None, subdirs.split("/"))), tuple(filter(None, files.split("/")))


class MessageDir:
    """One cur/new/tmp directory: its summary, and its messages once somebody needs them.

    From the store index (module storeindex) only the summary is known; the
    messages are listed on the first call of ``messages()``.
    """

    __slots__ = ("path", "mdir", "inbox", "summary", "from_index", "_messages")

    def __init__(self, path: str, mdir: str, inbox: bool, summary: Summary, messages: list[Message] | None):
        self.path = path
        self.mdir = mdir
        self.inbox = inbox
        self.summary = summary
        self.from_index = messages is None
        self._messages = messages

    @property
    def listed(self) -> bool:
        """Whether the directory was read (not only summarized from the index)."""
        return self._messages is not None

    def messages(self) -> list[Message]:
        if self._messages is None:
            self._messages = scan_message_dir(self.path, self.mdir, self.inbox)[0]
        return self._messages


SEEN_MARGIN = 60  # seconds: a name's time is whole seconds, taken before the file is renamed into place


class Recap(NamedTuple):
    """What one complete, consistent look at a mailbox found, kept in the store index.

    A job may take it instead of looking again (expire: when none of its
    rules can apply yet, docs/design.md 5.8), because of how ages move:
    a message saved into the mailbox later has a name time of at least
    ``seen``, moving a message between folders keeps its received date
    (the subfolders' age), and the last login only moves forward.  What
    it cannot know: a message saved later with an older date of its own
    (IMAP APPEND with a date, dsync) into a subfolder, which the next look
    finds.
    """

    seen: float  # when the look began, less SEEN_MARGIN
    last_login: float
    oldest: float  # the oldest message's age (math.inf: none)
    oldest_large: float  # the oldest one larger than LARGE_MESSAGE, or in tmp/ (it may grow)
    count: int
    size: int


_RECAP = struct.Struct("<ddddQQ")
RECAP_SUFFIX = "\0recap"  # the index key of a mailbox's recap: its path and this (no name holds NUL)


class Mailbox(NamedTuple):
    path: str
    name: str
    # mtime of the password file (doveauth/lastlogin touch it on login);
    # None when the mailbox has no password file
    last_login: float | None
    dirs: list[MessageDir]
    # regular files outside cur/new/tmp; only collected when asked for
    extra_files: list[ExtraFile]
    # set when the mailbox was not looked at: the last look's figures (dirs is then empty)
    recap: Recap | None = None

    @property
    def messages(self) -> list[Message]:
        """Every message (lists the directories the index summarized)."""
        return [m for d in self.dirs for m in d.messages()]

    @property
    def count(self) -> int:
        if self.recap is not None:
            return self.recap.count
        return sum(d.summary.counts[0] for d in self.dirs)

    @property
    def size(self) -> int:
        if self.recap is not None:
            return self.recap.size
        return sum(d.summary.sizes[0] for d in self.dirs)


class _Walk:
    """One mailbox's scan: the index to consult and the time its stat()s began."""

    __slots__ = ("index", "started", "dirs", "extras", "looked", "login")

    def __init__(self, index: StoreIndex | None, with_extras: bool):
        self.index = index
        self.started = now_ns()
        self.dirs: list[MessageDir] = []
        self.extras: list[ExtraFile] | None = [] if with_extras else None
        # with an index: (path, stat, kind) of every directory, for the recap's consistency check
        self.looked: list[tuple[str, os.stat_result, str]] = []
        self.login: float | None = None  # the password file's mtime, when the extra files gave it

    def message_dir(self, path: str, mdir: str, inbox: bool) -> None:
        index = self.index
        if index is not None:
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                return
            recorded = index.lookup(path, st)
            self.looked.append((path, st, "indexed" if recorded is not None else "read"))
            if recorded is not None:
                self.dirs.append(MessageDir(path, mdir, inbox, unpack_summary(recorded), None))
                return
        messages, by_name = scan_message_dir(path, mdir, inbox)
        summary = summarize(messages)
        if index is not None and by_name:
            index.record(path, st, pack_summary(summary), self.started)
        self.dirs.append(MessageDir(path, mdir, inbox, summary, messages))

    def folder(self, path: str, is_inbox: bool) -> None:
        """A mailbox or Maildir++ folder: its directories (from the index when unchanged) and extra files."""
        listing = self._folder_listing(path)
        if listing is None:
            return
        subdirs, files = listing
        prefix = path + "/"
        # tmp, new, cur: the order Dovecot renames messages in, so none escapes a look
        for name in _LOOK_ORDER:
            if name in subdirs:
                self.message_dir(prefix + name, name, is_inbox)
        for name in subdirs:
            if name not in MESSAGE_DIRS:
                self.folder(prefix + name, False)
        if self.extras is not None:
            for name in files:
                try:
                    st = os.lstat(prefix + name)
                except FileNotFoundError:
                    continue
                self.extras.append(ExtraFile(prefix + name, st.st_size))
                if is_inbox and name == PASSWORD and S_ISREG(st.st_mode):
                    self.login = st.st_mtime  # the same stat last_login() would make

    def _folder_listing(self, path: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """Names of the subdirectories and of the regular files of ``path``."""
        index = self.index
        if index is not None:
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                return None
            if not S_ISDIR(st.st_mode):
                return None
            recorded = index.lookup(path, st)
            self.looked.append((path, st, "folder"))
            if recorded is not None:
                return unpack_listing(recorded)
        subdirs: list[str] = []
        files: list[str] = []
        try:
            entries = os.scandir(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        with entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.name)
                elif entry.is_file(follow_symlinks=False):
                    files.append(entry.name)
        if index is not None:
            index.record(path, st, pack_listing(subdirs, files), self.started)
        return tuple(subdirs), tuple(files)

    def recap(self, last_login: float) -> Recap:
        """What this look found (it holds only if ``consistent``)."""
        oldest = min((d.summary.oldest[0] for d in self.dirs), default=math.inf)
        large = min((d.summary.oldest[0 if d.mdir == "tmp" else LARGE_FLOOR] for d in self.dirs), default=math.inf)
        count = sum(d.summary.counts[0] for d in self.dirs)
        size = sum(d.summary.sizes[0] for d in self.dirs)
        return Recap(self.started / 1e9 - SEEN_MARGIN, last_login, oldest, large, count, size)

    def consistent(self) -> bool:
        """Whether this look is one consistent picture: every directory it read had settled
        before the look and is unchanged after it (with subfolders, whose messages move
        between folders, every directory).  Costs one lstat() per such directory."""
        subfolders = sum(1 for _, _, kind in self.looked if kind == "folder") > 1
        for path, st, kind in self.looked:
            if kind == "indexed" and not subfolders:
                continue
            if kind != "indexed" and not settled(st, self.started):
                return False
            try:
                if os.lstat(path).st_ctime_ns != st.st_ctime_ns:
                    return False
            except OSError:
                return False
        return True


_LOOK_ORDER = ("tmp", "new", "cur")


def last_login(mailbox_path: str) -> float | None:
    """mtime of the mailbox's password file (= day of last login), or None."""
    try:
        return os.stat(os.path.join(mailbox_path, PASSWORD)).st_mtime
    except (FileNotFoundError, NotADirectoryError):
        return None


def scan_mailbox(
    path: str, with_extras: bool = False, index: StoreIndex | None = None, skip: RecapTest | None = None
) -> Mailbox:
    """All message directories of one mailbox (INBOX and every subfolder);
    with ``index``, the unchanged ones are summarized from it instead of listed,
    and the mailbox's Recap is kept: with ``skip``, a new one from this look
    if ``skip`` would take it (one it declines now it declines at every later
    run: ages only grow), else the old one (a recap holds as of its look,
    whatever happened since)."""
    walk = _Walk(index, with_extras)
    walk.folder(path, True)
    login = walk.login if walk.login is not None else last_login(path)
    if index is not None and skip is None:
        index.carry(path + RECAP_SUFFIX)
    elif index is not None and login is not None and walk.looked:
        found = walk.recap(login)
        if skip(found) and walk.consistent():
            index.put(path + RECAP_SUFFIX, walk.looked[0][1].st_ino, _RECAP.pack(*found))
    return Mailbox(path, os.path.basename(path), login, walk.dirs, walk.extras or [])


# Whether a job can take a mailbox's Recap instead of looking (expire.may_be_due says)
RecapTest = Callable[[Recap], bool]


def recalled_mailbox(path: str, inode: int, index: StoreIndex, skip: RecapTest) -> Mailbox | None:
    """The mailbox from its recap, without a system call, when ``skip`` accepts the recap.

    Its index entries stay as they are: the walk that skips mailboxes saves
    the index as an incomplete one (StoreIndex.save), so they are kept for
    whoever looks next, who checks them.  None: look at it (no recap, the
    directory was replaced, or ``skip`` declined); the old recap is dropped.
    """
    key = path + RECAP_SUFFIX
    kept = index.peek(key)
    if kept is not None and kept[0] == inode:
        recap = Recap(*_RECAP.unpack(kept[1]))
        if skip(recap):
            return Mailbox(path, os.path.basename(path), recap.last_login, [], [], recap)
    index.drop(key)
    return None


def mailbox_paths(mailboxes_dir: str | os.PathLike, maxnum: int | None = None) -> Iterator[tuple[str, int]]:
    """Paths and inode numbers of the account directories in ``mailboxes_dir`` (directory order).

    Not sorted by inode: from a cold cache, reading the inode tables in
    order was slower here than reading them at random with several threads
    (13.5 s against 11.3 s for the 1M-file store, docs/design.md 5.8).
    Raises FileNotFoundError when ``mailboxes_dir`` does not exist.
    """
    count = 0
    with os.scandir(mailboxes_dir) as entries:
        for entry in entries:
            if maxnum is not None and count >= maxnum:
                return
            if "@" in entry.name and entry.is_dir(follow_symlinks=False):
                count += 1
                yield entry.path, entry.inode()


# A scan slower than this per mailbox means the kernel is reading directories from disk
# (hot cache: ~50-100 us; cold: ~500-800 us on the 2-core test machine, docs/design.md 5.8)
COLD_SECONDS_PER_MAILBOX = 0.0003
PROBE_MAILBOXES = 200  # mailboxes scanned one by one before deciding
PREFETCH_WORKERS = 4  # concurrent scans once the cache is cold: the disk serves several reads at once
PREFETCH_WINDOW = 256  # mailboxes scanned ahead at most (bounds memory)


def iter_mailboxes(
    mailboxes_dir: str | os.PathLike,
    maxnum: int | None = None,
    with_extras: bool = False,
    index: StoreIndex | None = None,
    workers: int = PREFETCH_WORKERS,
    cold_after: float = COLD_SECONDS_PER_MAILBOX,
    probe: int = PROBE_MAILBOXES,
    skip: RecapTest | None = None,
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

    With ``index`` and ``skip``, a mailbox whose recap ``skip`` accepts is
    not scanned at all (``recalled_mailbox``), and every look records a new
    recap; the caller then saves the index as incomplete.
    """
    paths = mailbox_paths(mailboxes_dir, maxnum)

    def recalled(path: str, inode: int) -> Mailbox | None:
        return None if skip is None or index is None else recalled_mailbox(path, inode, index, skip)

    scanning, looked = 0.0, 0
    for path, inode in paths:
        mailbox = recalled(path, inode)
        if mailbox is not None:
            yield mailbox
            continue
        started = time.monotonic()
        mailbox = scan_mailbox(path, with_extras, index, skip)
        scanning += time.monotonic() - started
        looked += 1
        yield mailbox
        if looked == probe and workers > 1 and scanning / looked > cold_after:
            break
    else:
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="mailstore-scan") as pool:
        window: deque[Future[Mailbox] | Mailbox] = deque()
        for path, inode in paths:
            mailbox = recalled(path, inode)
            if mailbox is None:
                mailbox = pool.submit(scan_mailbox, path, with_extras, index, skip)
            window.append(mailbox)
            if len(window) >= PREFETCH_WINDOW:
                yield _done(window.popleft())
        while window:
            yield _done(window.popleft())


def _done(item: Future[Mailbox] | Mailbox) -> Mailbox:
    return item.result() if isinstance(item, Future) else item
