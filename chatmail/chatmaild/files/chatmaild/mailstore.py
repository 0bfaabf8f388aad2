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
when it creates the file in a folder, and sets the file's mtime to the
message's received date.  The age of a message is its received date
(= mtime, as upstream uses), and the name gives the same value for free
where the two cannot differ:

* In the INBOX (``<mailbox>/{cur,new,tmp}``) messages arrive by LMTP
  delivery: the name's time and the mtime are the same moment (the name is
  taken when the file is opened in ``tmp/``, the mtime when it is closed a
  moment later), so the name's time is used and no stat() is needed.
* In subfolders (``.DeltaChat`` of old clients) messages arrive by IMAP
  MOVE/COPY, which Dovecot does with a hard link under a *new* name: the
  name then carries the time of the move, while the mtime (shared inode)
  still carries the received date.  There the mtime is authoritative, so
  those files are stat()ed.
* Flag changes (``:2,S`` -> ``:2,ST``) are renames; a rename changes the
  ctime, never the mtime, so neither timestamp drifts when a client marks a
  message seen.

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
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from stat import S_ISREG
from typing import NamedTuple

MESSAGE_DIRS = frozenset(("cur", "new", "tmp"))
PASSWORD = "password"
DAY = 86400
DEFAULT_INI = "/usr/local/lib/chatmaild/chatmail.ini"


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
    time: float  # received date (see module docstring)
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
        when = name_time(name) if trust_name_time else None
        size = int(found.group(2)) if found is not None else name_size(name)
        append(Message(file_path, mdir, st.st_mtime if when is None else when, st.st_size if size is None else size))


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


def iter_mailboxes(
    mailboxes_dir: str | os.PathLike, maxnum: int | None = None, with_extras: bool = False
) -> Iterator[Mailbox]:
    """Scan each account directory in turn; one mailbox in memory at a time."""
    for path in mailbox_paths(mailboxes_dir, maxnum):
        yield scan_mailbox(path, with_extras)
