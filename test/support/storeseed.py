"""A relay's mail store for tests: mailboxes, messages named as Dovecot names them, logins, and what is not a mailbox.

Laid out by :func:`seed_store` under a tmp root with known sizes and ages,
so the mail store scan (chatmaild.mailstore), expire and fsreport can be
checked against these tables instead of against themselves.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from chatmaild.storeindex import INDEX_NAME

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
DAY = 86400
DOMAIN = "chat.example.org"
PASSWORD_TEXT = "{SHA512-CRYPT}$6$salt$hash"

# mailbox -> days since last login (None: no password file)
MAILBOXES = {
    f"active@{DOMAIN}": 1,
    f"inactive@{DOMAIN}": 100,
    f"nopass@{DOMAIN}": None,
    f"ci-abcdef@{DOMAIN}": 5,
    f"quiet@{DOMAIN}": 35,
}

# (mailbox, dir, name age in days or None for a non-Dovecot name, mtime age, size, fate)
# fate: "keep", "old" (rule 2), "large" (rule 3), "mailbox" (removed with its inactive mailbox)
A, IN, N, C, Q = MAILBOXES
MESSAGES = [
    (A, "cur", 1, 1, 500, "keep"),
    (A, "cur", 25, 25, 600, "old"),
    (A, "new", 25, 25, 700, "old"),
    (A, "tmp", 25, 25, 300, "old"),  # tmp names carry no ,S=: size from stat
    (A, "cur", 10, 10, 300000, "large"),
    (A, "new", 10, 10, 300000, "keep"),  # large but unseen (new/): left alone
    (A, "cur", 3, 3, 300000, "keep"),  # large but younger than delete_large_after
    (A, "cur", 10, 10, 200000, "keep"),  # exactly 200000 is not larger than 200000
    (A, "cur", 19, 19, 1000, "keep"),
    # INBOX trusts the name's save time; an mtime that disagrees does not matter:
    # APPEND with an old date (or a move into the INBOX) is kept for the full period ...
    (A, "cur", 2, 30, 800, "keep"),
    (A, "cur", 30, 2, 900, "old"),
    # ... and APPEND with a date in the future does not make a message immortal
    (A, "cur", 25, -100, 850, "old"),
    # files without a Dovecot name fall back to mtime and stat size
    (A, "cur", None, 25, 100, "old"),
    (A, "new", None, 1, 110, "keep"),
    # subfolders of old clients: moved messages keep their received date as mtime
    (A, ".DeltaChat/cur", 1, 25, 1200, "old"),
    (A, ".DeltaChat/cur", 25, 25, 1300, "old"),
    # ... and the older of name and mtime counts there: a future-dated APPEND still expires
    (A, ".DeltaChat/cur", 25, -100, 1250, "old"),
    (A, ".DeltaChat/new", 2, -100, 1260, "keep"),
    (A, ".DeltaChat/new", 2, 2, 1400, "keep"),
    (A, ".DeltaChat/cur", 2, 10, 250000, "large"),
    (A, ".DeltaChat/new", 2, 10, 250000, "keep"),
    (A, ".Archive.2024/cur", 21, 21, 1500, "old"),
    (IN, "cur", 1, 1, 2000, "mailbox"),
    (IN, "new", 50, 50, 2100, "mailbox"),
    (N, "cur", 25, 25, 3000, "old"),
    (N, "cur", 1, 1, 3100, "keep"),
    (C, "cur", 1, 1, 600000, "keep"),
    (C, "new", 1, 1, 2500000, "keep"),
    (Q, "cur", 5, 5, 170000, "keep"),
]

# (mailbox, relative path, size): files outside cur/new/tmp, never expired
EXTRAS = [
    (A, "maildirsize", 40),
    (A, "dovecot-uidlist", 60),
    (A, "enforceE2EEincoming", 0),
    (A, "garbagedir/bimbum", 5),
    (A, ".DeltaChat/dovecot-uidlist", 50),
    (A, "big-rawlog.in", 400000),
    (N, "dovecot.index", 70),
    (Q, "maildirsize", 40),
]

NOT_MAILBOXES = ["pending_notifications/queued-token", "README"]


def dovecot_name(when: int, seq: int, size: int, mdir: str) -> str:
    base = f"{when}.M{seq}P4242.relay"
    if mdir.endswith("tmp"):
        return base
    base += f",S={size},W={size + 7}"
    return base + ":2,S" if mdir.endswith("cur") else base


def write_file(path: Path, size: int, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (mtime, mtime))


def seed_store(root: Path, now: datetime = NOW) -> dict[str, dict]:
    """Build the store under ``root``; returns {absolute path: row} for every message."""
    t = now.timestamp()
    for mailbox, age in MAILBOXES.items():
        (root / mailbox).mkdir(parents=True)
        if age is not None:
            write_file(root / mailbox / "password", len(PASSWORD_TEXT), t - age * DAY)
            (root / mailbox / "password").write_text(PASSWORD_TEXT)
            os.utime(root / mailbox / "password", (t - age * DAY,) * 2)
    messages = {}
    for seq, (mailbox, mdir, name_age, mtime_age, size, fate) in enumerate(MESSAGES):
        if name_age is None:
            name = f"handmade-{seq}"
        else:
            name = dovecot_name(int(t - name_age * DAY), seq, size, mdir)
        path = root / mailbox / mdir / name
        write_file(path, size, t - mtime_age * DAY)
        if name_age is None:
            age = mtime_age  # not a Dovecot name: mtime
        elif "/" in mdir:
            age = max(name_age, mtime_age)  # subfolder: the older of the two
        else:
            age = name_age  # INBOX: the name's save time
        messages[str(path)] = {
            "mailbox": mailbox,
            "mdir": mdir.rsplit("/", 1)[-1],
            "size": size,
            "fate": fate,
            "time": t - age * DAY,
        }
    for mailbox, rel, size in EXTRAS:
        write_file(root / mailbox / rel, size, t - DAY)
    for rel in NOT_MAILBOXES:
        write_file(root / rel, 10, t - 400 * DAY)
    # an empty, password-less mailbox dir: removed once older than a day
    (root / f"empty@{DOMAIN}").mkdir()
    os.utime(root / f"empty@{DOMAIN}", (t - 2 * DAY,) * 2)
    # ... but not while it may be mid-creation by doveauth
    (root / f"fresh@{DOMAIN}").mkdir()
    os.utime(root / f"fresh@{DOMAIN}", (t - 600,) * 2)
    return messages


def write_ini(path: Path, root: Path, **settings) -> Path:
    """A chatmail.ini at ``path`` for the seed's domain with ``root`` as mailboxes_dir (and ``settings``)."""
    lines = ["[params]", f"mail_domain = {DOMAIN}", f"mailboxes_dir = {root}"]
    path.write_text("\n".join(lines + [f"{k} = {v}" for k, v in settings.items()]) + "\n")
    return path


def all_files(root: Path) -> set[str]:
    """Every file of the store but the jobs' own index (chatmaild.storeindex), which any run rewrites."""
    return {str(p) for p in root.rglob("*") if p.is_file() and p.name != INDEX_NAME}
