"""Mailbox recaps: expire skips a mailbox whose last look says nothing can be due, and still removes what a full listing removes.

The store is seeded at the real clock (the recap's ``seen`` is wall-clock
time, like the file system's), and ``settled`` moves the jobs' clock a
minute ahead so that the fresh directories count as settled
(chatmaild.storeindex).  Every comparison is with ``rescan=True``, which
reads every directory.
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import datetime, timezone

import pytest

from chatmaild import mailstore
from chatmaild.config import read_config
from chatmaild.expire import run_expire
from chatmaild.fsreport import run_fsreport
from chatmaild.storeindex import StoreIndex
from support.storeseed import DAY, DOMAIN, dovecot_name, seed_store, write_file, write_ini

A, Q = f"active@{DOMAIN}", f"quiet@{DOMAIN}"
# what the runs read, and files_examined: a skipped mailbox counts its messages as of its look
VOLATILE = ("duration_s", "dirs_listed", "dirs_from_index", "mailboxes_not_due", "files_examined")


@pytest.fixture
def store(tmp_path, monkeypatch):
    now = datetime.now(timezone.utc)
    root = tmp_path / "mail" / DOMAIN
    seed_store(root, now=now)
    monkeypatch.setattr(mailstore, "now_ns", lambda: time.time_ns() + 60 * 10**9)
    return root, read_config(write_ini(tmp_path / "chatmail.ini", root)), now


def figures(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in VOLATILE}


def agree(config, now, days: float) -> dict:
    """An indexed dry run, checked against a full listing; returns the indexed run's figures."""
    indexed = run_expire(config, days=days, now=now)
    assert figures(indexed) == figures(run_expire(config, days=days, now=now, rescan=True)), days
    return indexed


def test_a_mailbox_with_nothing_due_is_not_read_and_the_figures_agree(store):
    root, config, now = store
    run_expire(config, now=now, rescan=True)  # a look at every mailbox
    run_fsreport(config, now=now)  # fsreport keeps the recaps it finds
    first = agree(config, now, 0)
    # quiet@ (a 5-day-old message, last login 35 days ago) and ci-... (1 day) are not due;
    # active@ holds 25-day-old messages and inactive@ is due for removal
    assert first["mailboxes_not_due"] == 2
    for days in (1, 6.9, 7.1, 15.5, 25, 60, 100):
        agree(config, now, days)


def test_what_arrives_after_the_look_is_removed_when_it_is_due(store):
    """A day of mail between two runs: a delivery, a message read (new/ -> cur/), a large one read,
    a move into a subfolder (a hard link keeps the received date), a login."""
    root, config, now = store
    run_expire(config, now=now, rescan=True)
    box, t = root / Q, int(now.timestamp())
    write_file(box / "new" / dovecot_name(t, 900, 1000, "new"), 1000, t)
    large = box / "new" / dovecot_name(t, 901, 300000, "new")
    write_file(large, 300000, t)
    os.rename(large, box / "cur" / (large.name + ":2,S"))
    (old,) = (box / "cur").glob("*,S=170000,*")
    (box / ".DeltaChat" / "cur").mkdir(parents=True)
    os.link(old, box / ".DeltaChat" / "cur" / dovecot_name(t, 902, 170000, "cur"))
    old.unlink()
    os.utime(box / "password", (t, t))
    moved = box / ".DeltaChat" / "cur" / dovecot_name(t, 902, 170000, "cur")
    read_large = box / "cur" / (large.name + ":2,S")
    due = {days: removals(config, now, days) for days in (0, 6.9, 7.1, 14.9, 15.1, 20.1)}
    assert not due[0] & {str(moved), str(read_large)}
    assert str(read_large) not in due[6.9] and str(read_large) in due[7.1]  # delete_large_after
    assert str(moved) not in due[14.9] and str(moved) in due[15.1]  # its received date, 5 days before
    delivered = str(box / "new" / dovecot_name(t, 900, 1000, "new"))
    assert delivered not in due[15.1] and delivered in due[20.1]  # delete_mails_after


def removals(config, now, days: float) -> set[str]:
    """The paths an indexed dry run would remove (checked against a full listing)."""
    lines: list[str] = []
    indexed = run_expire(config, days=days, now=now, log=lines.append)
    assert figures(indexed) == figures(run_expire(config, days=days, now=now, rescan=True)), days
    return {line.rsplit(" ", 1)[1] for line in lines if line.startswith("removing ") and "mailbox" not in line}


def test_an_old_dated_append_into_a_subfolder_waits_at_most_for_the_next_look(store):
    """The one case a recap cannot know (mailstore.Recap): it is found once the look is
    delete_large_after days old, instead of at the next run."""
    root, config, now = store
    run_expire(config, now=now, rescan=True)
    t = now.timestamp()
    appended = root / Q / ".Archive" / "cur" / dovecot_name(int(t), 903, 500, "cur")
    write_file(appended, 500, t - 30 * DAY)
    kept = run_expire(config, days=6.9, now=now)
    assert kept["mailboxes_not_due"] >= 1
    found = run_expire(config, days=7.1, now=now)
    assert found["files_removed"] == kept["files_removed"] + 1
    assert figures(found) == figures(run_expire(config, days=7.1, now=now, rescan=True))


def test_a_replaced_mailbox_directory_is_looked_at(store):
    """The recap belongs to the directory's inode: a restored or recreated mailbox is read."""
    root, config, now = store
    run_expire(config, now=now, rescan=True)
    box = root / Q
    os.rename(box, root / "quiet-away")
    shutil.copytree(root / "quiet-away", box)  # a new inode, as a restore makes
    shutil.rmtree(root / "quiet-away")
    t = now.timestamp()
    write_file(box / "cur" / dovecot_name(int(t - 30 * DAY), 904, 500, "cur"), 500, t - 30 * DAY)
    assert agree(config, now, 0)["mailboxes_not_due"] == 1


def test_a_look_that_overlaps_a_change_keeps_no_recap(store, monkeypatch):
    """A rename during the look (a flag change: readdir may miss the file) makes the
    picture inconsistent, so the next run reads the mailbox."""
    root, config, now = store
    box = str(root / Q)
    index = StoreIndex(root)
    mailstore.scan_mailbox(box, index=index, skip=lambda recap: True)
    assert (Q + mailstore.RECAP_SUFFIX) in index.new

    real_last_login = mailstore.last_login

    def flag_change_meanwhile(path):
        (seen,) = (root / Q / "cur").iterdir()
        os.rename(seen, str(seen) + "T")
        return real_last_login(path)

    monkeypatch.setattr(mailstore, "last_login", flag_change_meanwhile)
    index = StoreIndex(root)
    mailstore.scan_mailbox(box, index=index, skip=lambda recap: True)
    assert (Q + mailstore.RECAP_SUFFIX) not in index.new


def test_the_mailboxes_expire_skips_keep_their_index_entries(store):
    """A run that skips mailboxes saves the index as incomplete: fsreport after it reads no more than before."""
    root, config, now = store
    run_expire(config, now=now, rescan=True)
    before = run_fsreport(config, now=now)
    assert run_expire(config, now=now)["mailboxes_not_due"] == 2
    after = run_fsreport(config, now=now)
    assert after["dirs_listed"] == before["dirs_listed"] and after["dirs_from_index"] == before["dirs_from_index"]
    assert run_expire(config, now=now)["mailboxes_not_due"] == 2  # and fsreport kept the recaps
