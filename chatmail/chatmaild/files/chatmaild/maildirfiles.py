"""What one cur/new/tmp directory holds, read from Dovecot's file names.

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

The rule the jobs apply (docs/design.md 5.8; chatmaild.mailstore says which
directories are the INBOX):

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

A directory's messages fold into a ``Summary`` (per size floor: how many,
their bytes, the oldest one's age), which is what the jobs decide from and
what the store index (chatmaild.storeindex) keeps per directory.
"""

from __future__ import annotations

import math
import os
import re
import struct
from stat import S_ISREG
from typing import NamedTuple

MESSAGE_DIRS = frozenset(("cur", "new", "tmp"))
LARGE_MESSAGE = 200000  # bytes; expire's rule 3 applies to messages larger than this
SIZE_BUCKETS = (0, 160000, 500000, 2000000)  # bytes: fsreport's "messages at least this large"
# the sizes a directory summary counts from: the buckets and "larger than LARGE_MESSAGE"
SIZE_FLOORS = tuple(sorted({*SIZE_BUCKETS, LARGE_MESSAGE + 1}))
LARGE_FLOOR = SIZE_FLOORS.index(LARGE_MESSAGE + 1)


class Message(NamedTuple):
    path: str
    mdir: str  # name of the parent directory: cur, new or tmp
    time: float  # the age the rules use: save time from the name, or older mtime (module docstring)
    size: int  # bytes on disk


class Summary(NamedTuple):
    """What the jobs need of one cur/new/tmp directory, per floor of SIZE_FLOORS:
    how many messages are at least that large, their bytes, and the oldest one's age."""

    counts: tuple[int, ...]
    sizes: tuple[int, ...]
    oldest: tuple[float, ...]  # math.inf where there is none


EMPTY_SUMMARY = Summary((0,) * len(SIZE_FLOORS), (0,) * len(SIZE_FLOORS), (math.inf,) * len(SIZE_FLOORS))


def summarize(messages: list[Message]) -> Summary:
    """The summary of a directory's messages (most are small: one pass per floor they reach)."""
    if not messages:
        return EMPTY_SUMMARY
    times = [m.time for m in messages]
    sizes = [m.size for m in messages]
    counts, totals, oldest = [len(sizes)], [sum(sizes)], [min(times)]
    for floor in SIZE_FLOORS[1:]:
        picked = [i for i, size in enumerate(sizes) if size >= floor]
        if not picked:
            break
        counts.append(len(picked))
        totals.append(sum(sizes[i] for i in picked))
        oldest.append(min(times[i] for i in picked))
    missing = len(SIZE_FLOORS) - len(counts)
    return Summary(
        tuple(counts) + (0,) * missing, tuple(totals) + (0,) * missing, tuple(oldest) + (math.inf,) * missing
    )


# a summary in the store index: (count, bytes, oldest) for each floor that has a message
# (counts do not grow with the floor, so those come first); an empty directory is b""
_FLOOR = struct.Struct("<IQd")


def pack_summary(summary: Summary) -> bytes:
    return b"".join(_FLOOR.pack(*floor) for floor in zip(*summary) if floor[0])


def unpack_summary(data: bytes) -> Summary:
    floors = list(_FLOOR.iter_unpack(data))
    floors += [(0, 0, math.inf)] * (len(SIZE_FLOORS) - len(floors))
    counts, sizes, oldest = zip(*floors)
    return Summary(counts, sizes, oldest)


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


def scan_message_dir(path: str, mdir: str, trust_name_time: bool) -> tuple[list[Message], bool]:
    """Messages of one cur/new/tmp directory, and whether their names told everything.

    os.listdir, not scandir: the names are all we need for most files.  An
    entry with a full Dovecot name is taken to be a regular file (Dovecot
    puts nothing else there); anything else is lstat()ed and skipped
    unless it is a regular file.  A directory with such entries is not
    recorded in the index (a file being written in tmp/ grows in place).
    """
    out: list[Message] = []
    try:
        names = os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return out, False
    prefix = path + "/"
    match = _DOVECOT_NAME.match
    append = out.append
    by_name = True
    for name in names:
        found = match(name)
        if found is not None and trust_name_time:
            append(Message(prefix + name, mdir, int(found.group(1)), int(found.group(2))))
            continue
        by_name = by_name and found is not None
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
    return out, by_name
