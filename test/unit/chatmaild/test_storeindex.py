"""The store index: a second run reads only the directories that changed, and gets the same answers.

Every test compares an indexed run with ``rescan=True`` (every directory
listed) on the same store, so the index can only save work, never change a
figure.  The seeded store's directories were just written, so their ctimes
are "racy" (chatmaild.storeindex): ``settled`` moves the jobs' clock
ahead, as if the store had been written a minute earlier.
"""

from __future__ import annotations

import os
import shutil
import stat
import time

import pytest

from chatmaild import maildirfiles, mailstore, storeindex
from chatmaild.config import read_config
from chatmaild.expire import run_expire
from chatmaild.fsreport import run_fsreport
from support.storeseed import DOMAIN, NOW, all_files, dovecot_name, seed_store, write_file, write_ini

A, C, N, Q = (f"{name}@{DOMAIN}" for name in ("active", "ci-abcdef", "nopass", "quiet"))
# active@'s INBOX holds files whose names do not tell time and size (the seed's
# hand-made files, tmp/ without ,S=): those three directories are read every time
ALWAYS_READ = 3
VOLATILE = ("duration_s", "dirs_listed", "dirs_from_index", "mailboxes_not_due")


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "mail" / DOMAIN
    seed_store(root)
    return root, read_config(write_ini(tmp_path / "chatmail.ini", root))


@pytest.fixture
def settled(monkeypatch):
    """The jobs see every ctime as a minute old (so nothing is too recent to record)."""
    monkeypatch.setattr(mailstore, "now_ns", lambda: time.time_ns() + 60 * 10**9)


def figures(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in VOLATILE}


def message_dirs(root) -> int:
    return sum(1 for path, dirs, _ in os.walk(root) for d in dirs if d in maildirfiles.MESSAGE_DIRS)


def test_a_second_run_reads_no_unchanged_directory_and_reports_the_same(store, settled):
    root, config = store
    first = run_fsreport(config, now=NOW, rescan=True)
    assert first["dirs_listed"] == message_dirs(root) > 0 and first["dirs_from_index"] == 0
    again = run_fsreport(config, now=NOW)
    assert again["dirs_listed"] == ALWAYS_READ and again["dirs_from_index"] == message_dirs(root) - ALWAYS_READ
    assert figures(again) == figures(first)
    for option in ({"mdir": "cur"}, {"min_login_age": 30}, {"days": 40}):
        assert figures(run_fsreport(config, now=NOW, **option)) == figures(
            run_fsreport(config, now=NOW, rescan=True, **option)
        )


@pytest.mark.parametrize("days", [0, 3, 8, 19, 25, 100])
def test_expire_from_the_index_finds_what_a_full_listing_finds(store, settled, days):
    root, config = store
    run_fsreport(config, now=NOW, rescan=True)  # leaves the index
    indexed = run_expire(config, days=days, now=NOW)
    listed = run_expire(config, days=days, now=NOW, rescan=True)
    assert figures(indexed) == figures(listed)
    # only directories holding a message due for removal are read
    assert indexed["dirs_listed"] < listed["dirs_listed"]


def test_expire_removes_from_an_indexed_store_what_a_listing_would(store, settled, tmp_path):
    root, config = store
    twin = tmp_path / "twin"
    shutil.copytree(root, twin, symlinks=True)
    twin_config = read_config(write_ini(tmp_path / "twin.ini", twin))
    run_expire(config, now=NOW)  # a day-0 run leaves the index
    removed = run_expire(config, days=25, now=NOW, remove=True)
    expected = run_expire(twin_config, days=25, now=NOW, remove=True, rescan=True)
    assert figures(removed) | {"mailboxes_dir": ""} == figures(expected) | {"mailboxes_dir": ""}
    assert {os.path.relpath(p, root) for p in all_files(root)} == {os.path.relpath(p, twin) for p in all_files(twin)}
    # the directories expire changed are read again by the next run, and agree
    assert figures(run_fsreport(config, now=NOW)) == figures(run_fsreport(config, now=NOW, rescan=True))


def test_a_delivery_a_flag_change_and_an_expunge_are_seen(store, settled):
    root, config = store
    run_fsreport(config, now=NOW, rescan=True)
    box = root / C
    write_file(box / "new" / dovecot_name(int(NOW.timestamp()), 900, 4321, "new"), 4321, NOW.timestamp())
    (seen,) = (box / "cur").iterdir()
    os.rename(seen, str(seen) + "T")  # a flag change is a rename
    os.unlink(next((root / N / "cur").iterdir()))
    (box / ".Archive" / "cur").mkdir(parents=True)  # a new Maildir++ folder with a message
    write_file(box / ".Archive" / "cur" / dovecot_name(int(NOW.timestamp()), 901, 99, "cur"), 99, NOW.timestamp())
    indexed = run_fsreport(config, now=NOW)
    assert figures(indexed) == figures(run_fsreport(config, now=NOW, rescan=True))
    assert indexed["dirs_listed"] == ALWAYS_READ + 4  # both of ci-'s, nopass@'s cur, the new folder's cur


def test_a_directory_changed_moments_before_the_walk_is_not_recorded(store, monkeypatch):
    """Racy ctimes: a change in the same clock tick after the listing would not move the ctime."""
    root, config = store
    clock = {"offset": 60 * 10**9}
    monkeypatch.setattr(mailstore, "now_ns", lambda: time.time_ns() + clock["offset"])
    run_fsreport(config, now=NOW, rescan=True)
    made = root / C / "new" / dovecot_name(int(NOW.timestamp()), 902, 1, "new")
    write_file(made, 1, NOW.timestamp())
    made.unlink()
    clock["offset"] = 0  # the real clock: new/ changed just now
    assert run_fsreport(config, now=NOW)["dirs_listed"] == ALWAYS_READ + 1
    clock["offset"] = 60 * 10**9
    assert run_fsreport(config, now=NOW)["dirs_listed"] == ALWAYS_READ + 1  # it was not recorded
    assert run_fsreport(config, now=NOW)["dirs_listed"] == ALWAYS_READ  # now it is


def test_the_racy_rule_at_its_edge(tmp_path):
    index = storeindex.StoreIndex(tmp_path)
    st = os.stat(tmp_path)
    index.record(str(tmp_path / "a"), st, b"", st.st_ctime_ns + storeindex.RACY_SECONDS * 10**9)
    index.record(str(tmp_path / "b"), st, b"", st.st_ctime_ns + storeindex.RACY_SECONDS * 10**9 + 1)
    assert set(index.new) == {"b"}


def test_a_directory_with_a_file_its_name_does_not_describe_is_always_read(store, settled):
    """A file being written in tmp/ (no ,S= yet) can grow without its directory changing."""
    root, config = store
    write_file(root / Q / "tmp" / "1780000000.M1P1.relay", 10, NOW.timestamp())
    run_fsreport(config, now=NOW, rescan=True)
    assert run_fsreport(config, now=NOW)["dirs_listed"] == ALWAYS_READ + 1


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"",
        lambda data: data[: len(data) // 2],
        lambda data: data[:-1] + bytes([data[-1] ^ 1]),
        lambda data: b"something else entirely",
    ],
    ids=["empty", "cut short", "one bit flipped", "foreign"],
)
def test_a_damaged_index_is_an_empty_one(store, settled, damage):
    root, config = store
    first = run_fsreport(config, now=NOW, rescan=True)
    path = root / storeindex.INDEX_NAME
    path.write_bytes(damage(path.read_bytes()))
    again = run_fsreport(config, now=NOW)
    assert again["dirs_from_index"] == 0 and figures(again) == figures(first)
    assert run_fsreport(config, now=NOW)["dirs_listed"] == ALWAYS_READ  # rewritten whole


def test_the_index_is_private_and_replaced_atomically(store, settled):
    root, config = store
    run_fsreport(config, now=NOW)
    path = root / storeindex.INDEX_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(storeindex.INDEX_NAME)) == [path.name]


def test_an_unwritable_store_only_costs_listings(store, settled, monkeypatch):
    root, config = store
    monkeypatch.setattr(storeindex.os, "replace", fail_with_enospc)
    first = run_fsreport(config, now=NOW)
    assert not (root / storeindex.INDEX_NAME).exists()
    assert figures(run_fsreport(config, now=NOW)) == figures(first)
    assert not [p for p in root.iterdir() if p.name.startswith(storeindex.INDEX_NAME)]


def fail_with_enospc(src, dst):
    raise OSError(28, "No space left on device")


def test_a_partial_walk_keeps_what_it_did_not_visit(store, settled):
    root, config = store
    run_fsreport(config, now=NOW, rescan=True)
    run_fsreport(config, now=NOW, maxnum=1)
    assert run_fsreport(config, now=NOW)["dirs_listed"] == ALWAYS_READ


def test_threads_read_the_index_as_one_walk_does(store, settled):
    root, _ = store
    index = storeindex.StoreIndex.load(root, rescan=True)
    list(mailstore.iter_mailboxes(root, with_extras=True, index=index))
    index.save()
    sequential = list(mailstore.iter_mailboxes(root, with_extras=True, workers=1))
    threaded = list(
        mailstore.iter_mailboxes(
            root, with_extras=True, index=storeindex.StoreIndex.load(root), workers=4, cold_after=0, probe=2
        )
    )
    assert [m.name for m in threaded] == [m.name for m in sequential]
    assert sum(not d.listed for m in threaded for d in m.dirs) == message_dirs(root) - ALWAYS_READ
    for a, b in zip(threaded, sequential):
        assert [d.summary for d in sorted(a.dirs, key=lambda d: d.path)] == [
            d.summary for d in sorted(b.dirs, key=lambda d: d.path)
        ]
        assert sorted(a.messages) == sorted(b.messages) and sorted(a.extra_files) == sorted(b.extra_files)
