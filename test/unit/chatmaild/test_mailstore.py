"""The shared mailbox walk, on a seeded store of real maildir-named files.

``seed_store`` and its tables are also used by test_expire and test_fsreport:
one seed, with each file's expected fate written next to it.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from chatmaild import mailstore

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


def all_files(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "mail" / DOMAIN
    return root, seed_store(root)


def test_name_fields():
    name = "1764000000.M123P456.relay,S=31415,W=32000:2,S"
    assert mailstore.name_time(name) == 1764000000
    assert mailstore.name_size(name) == 31415
    assert mailstore.name_time("1764000000.M1P2.relay") == 1764000000
    assert mailstore.name_size("1764000000.M1P2.relay") is None
    # flags after ":2," are letters; an S flag is not a size
    assert mailstore.name_size("1764000000.M1P2.relay:2,S") is None
    assert mailstore.name_time("msg1") is None
    assert mailstore.name_time("12ab.M1") is None
    assert mailstore.name_time("\u0661\u0662.M1") is None  # non-ASCII digits
    assert mailstore.name_size("x,S=,W=3") is None


def test_scan_finds_every_message_with_time_and_size(store):
    root, expected = store
    found = {}
    for mbox in mailstore.iter_mailboxes(root):
        for m in mbox.messages:
            found[m.path] = m
    assert set(found) == set(expected)
    for path, row in expected.items():
        m = found[path]
        assert (m.mdir, m.size) == (row["mdir"], row["size"]), path
        assert m.time == pytest.approx(row["time"], abs=1), path
        # the name's size is the real size (so stat and name agree)
        assert os.path.getsize(path) == m.size


def test_scan_mailboxes_logins_and_extras(store):
    root, _ = store
    mboxes = {m.name: m for m in mailstore.iter_mailboxes(root, with_extras=True)}
    assert set(mboxes) == set(MAILBOXES) | {f"empty@{DOMAIN}", f"fresh@{DOMAIN}"}
    t = NOW.timestamp()
    for name, age in MAILBOXES.items():
        login = mboxes[name].last_login
        assert login is None if age is None else login == pytest.approx(t - age * DAY)
    extras_a = {os.path.relpath(e.path, root / A): e.size for e in mboxes[A].extra_files}
    expected = {rel: size for mb, rel, size in EXTRAS if mb == A}
    expected["password"] = len(PASSWORD_TEXT)
    assert extras_a == expected
    # extras are only collected on request (expire needs none)
    assert all(not m.extra_files for m in mailstore.iter_mailboxes(root))


def test_maxnum_and_missing_dir(store, tmp_path):
    root, _ = store
    assert len(list(mailstore.iter_mailboxes(root, maxnum=2))) == 2
    assert len(list(mailstore.iter_mailboxes(root, maxnum=0))) == 0
    with pytest.raises(FileNotFoundError):
        list(mailstore.iter_mailboxes(tmp_path / "nowhere"))


def test_symlinks_are_not_followed(tmp_path):
    root = tmp_path / "mb"
    outside = tmp_path / "outside"
    write_file(outside / "cur" / dovecot_name(1, 1, 5, "cur"), 5, 1)
    (root / f"a@{DOMAIN}").mkdir(parents=True)
    os.symlink(outside / "cur", root / f"a@{DOMAIN}" / "cur")
    os.symlink(outside, root / f"b@{DOMAIN}")
    mboxes = list(mailstore.iter_mailboxes(root))
    assert [m.name for m in mboxes] == [f"a@{DOMAIN}"]
    assert mboxes[0].messages == []


def test_only_regular_files_are_messages(tmp_path):
    box = tmp_path / "mb" / f"a@{DOMAIN}"
    write_file(box / "cur" / "handmade", 7, 1)
    (box / "cur" / "subdir").mkdir()
    write_file(box / "cur" / "subdir" / "inner", 5, 1)  # not directly in cur: ignored
    os.symlink(box / "cur" / "handmade", box / "cur" / "link")
    (box / "new" / "fifo").parent.mkdir()
    os.mkfifo(box / "new" / "fifo")
    (mbox,) = mailstore.iter_mailboxes(tmp_path / "mb", with_extras=True)
    assert [os.path.basename(m.path) for m in mbox.messages] == ["handmade"]
    assert mbox.extra_files == []


def test_reference_time_is_aware_utc_and_shifts_forward():
    ref = mailstore.reference_time(3, NOW)
    assert ref.tzinfo is not None and (ref - NOW).days == 3
    assert mailstore.reference_time().utcoffset().total_seconds() == 0


def test_a_cold_cache_scan_in_threads_yields_the_same_mailboxes_in_the_same_order(store):
    """Once the probe says the cache is cold, threads scan ahead; the caller sees no difference."""
    root, _ = store
    sequential = list(mailstore.iter_mailboxes(root, with_extras=True, workers=1))
    threaded = list(mailstore.iter_mailboxes(root, with_extras=True, workers=4, cold_after=0, probe=2))
    assert len(sequential) > 2
    assert [m.name for m in threaded] == [m.name for m in sequential]
    for a, b in zip(threaded, sequential):
        assert sorted(a.messages) == sorted(b.messages) and sorted(a.extra_files) == sorted(b.extra_files)
        assert a.last_login == b.last_login
