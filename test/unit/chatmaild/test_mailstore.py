"""The shared mailbox walk, on a seeded store of real maildir-named files.

``seed_store`` and its tables are also used by test_expire and test_fsreport:
one seed, with each file's expected fate written next to it.
"""

from __future__ import annotations

import os

import pytest

from chatmaild import maildirfiles, mailstore
from support.storeseed import (
    DAY,
    DOMAIN,
    EXTRAS,
    MAILBOXES,
    NOW,
    PASSWORD_TEXT,
    A,
    dovecot_name,
    seed_store,
    write_file,
)


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "mail" / DOMAIN
    return root, seed_store(root)


def test_name_fields():
    name = "1764000000.M123P456.relay,S=31415,W=32000:2,S"
    assert maildirfiles.name_time(name) == 1764000000
    assert maildirfiles.name_size(name) == 31415
    assert maildirfiles.name_time("1764000000.M1P2.relay") == 1764000000
    assert maildirfiles.name_size("1764000000.M1P2.relay") is None
    # flags after ":2," are letters; an S flag is not a size
    assert maildirfiles.name_size("1764000000.M1P2.relay:2,S") is None
    assert maildirfiles.name_time("msg1") is None
    assert maildirfiles.name_time("12ab.M1") is None
    assert maildirfiles.name_time("\u0661\u0662.M1") is None  # non-ASCII digits
    assert maildirfiles.name_size("x,S=,W=3") is None


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
