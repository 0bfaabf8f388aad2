#!/usr/bin/env python3
"""Time the storage jobs (expire dry run, fsreport) against a stat-per-file scan.

Two conditions, each printed with the ratio "stat scan / job":

* hot: 100,000 files (10,000 mailboxes), page cache warm (one untimed run first);
* cold: 1,000,000 files (100,000 mailboxes), ``echo 3 > /proc/sys/vm/drop_caches``
  before every timed run (needs root; it slows everything else on the host
  for a moment, so it is asked for with ``--cold``).

The store is built once and cached under /var/tmp/chatmail-bench-store:
MAILBOXES accounts (each with cur/new/tmp, every tenth with a .DeltaChat
subfolder) holding FILES message files with Dovecot-style names.  The files
are empty (os.mknod): sizes come from the names' ``,S=`` field, so the disk
cost is the directories and inodes, not the messages.  Subfolder files
get their received date as mtime, like hard-linked moves do.  The store is
what a relay holds between two daily runs: messages up to
``delete_mails_after`` days old, large seen ones up to ``delete_large_after``,
logins within ``delete_inactive_users_after``; the jobs run one day later,
as the next daily run does.

The stat scan is what a job that decides from mtime and st_size must do
(upstream's approach): listdir every directory and stat() every file.  The
jobs decide from the names where they can (chatmaild.mailstore, docs/design.md
5.8) and stat only what the names cannot tell.  Each job is timed twice:

* ``--rescan``: every directory listed (a first run, or no index);
* with the store index (chatmaild.storeindex) after a day's changes: before
  every timed run a share of the mailboxes (``--changed``, default 10% and
  50%) gets a delivery and an expunge in new/, so those directories must be
  read again, as must every directory that holds a message the run expires;
  expire does not read a mailbox at all whose recap says nothing is due
  (printed as "mailboxes not due").

Usage::

    scripts/bench storage                          # hot 100k files
    scripts/bench storage --cold                   # and cold 1M files (root)
    scripts/bench storage --per-mailbox 100 --cold # fuller mailboxes
    scripts/bench storage --changed 0.3            # another day's churn
    scripts/bench storage --clean                  # remove the cached stores
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import stat
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from chatmaild.config import Config, validate
from chatmaild.expire import run_expire
from chatmaild.fsreport import run_fsreport
from chatmaild.storeindex import INDEX_NAME
from reference import print_reference

BASE = Path("/var/tmp/chatmail-bench-store")
DOMAIN = "bench.example.org"
DAY = 86400
# reference clock of the synthetic store; runs use now=NOW so results do not drift
NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
# the relay's defaults (chatmaild.config): the store's ages stay within them
MAILS_DAYS, LARGE_DAYS, INACTIVE_DAYS = 20, 7, 90
LARGE = 300000


def store_dir(mailboxes: int, files: int) -> Path:
    return BASE / f"{mailboxes}x{files}" / DOMAIN


def build(root: Path, mailboxes: int, files: int, seed: int = 1) -> float:
    """Create the store; returns seconds taken."""
    started = time.monotonic()
    rng = random.Random(seed)
    now = NOW.timestamp()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    regular = stat.S_IFREG | 0o600
    per_box = files / mailboxes
    made = 0
    for i in range(mailboxes):
        box = f"{root}/u{i:07d}@{DOMAIN}"
        os.mkdir(box)
        folders = [box]
        if i % 10 == 0:
            folders.append(box + "/.DeltaChat")
            os.mkdir(folders[-1])
        for folder in folders:
            for mdir in ("cur", "new", "tmp"):
                os.mkdir(f"{folder}/{mdir}")
        os.mknod(f"{box}/password", regular)
        login = now - rng.uniform(0, INACTIVE_DAYS) * DAY
        os.utime(f"{box}/password", (login, login))
        os.mknod(f"{box}/maildirsize", regular)
        os.mknod(f"{box}/dovecot-uidlist", regular)
        # spread the remaining files evenly: the last mailbox takes the rest
        count = files - made if i == mailboxes - 1 else round(per_box * (i + 1)) - made
        for seq in range(count):
            size = LARGE if rng.random() < 0.05 else min(int(rng.lognormvariate(8.5, 1.0)), LARGE // 2)
            folder = folders[-1] if len(folders) > 1 and seq % 3 == 0 else box
            mdir = "cur" if seq % 4 else "new"
            # what the last daily run left: large seen messages only younger than LARGE_DAYS
            days = LARGE_DAYS if size == LARGE and mdir == "cur" else MAILS_DAYS
            when = int(now - rng.uniform(0, days) * DAY)
            name = f"{when}.M{seq}P{i}.bench,S={size},W={size + 40}"
            path = f"{folder}/{mdir}/{name}:2,S" if mdir == "cur" else f"{folder}/{mdir}/{name}"
            os.mknod(path, regular)
            if folder != box:
                os.utime(path, (when, when))
        made += count
    return time.monotonic() - started


def ensure_store(mailboxes: int, files: int) -> tuple[Path, float | None]:
    root = store_dir(mailboxes, files)
    marker = root.parent / "complete.json"
    want = {"mailboxes": mailboxes, "files": files, "version": 2}
    if marker.exists() and json.loads(marker.read_text()) == want:
        return root, None
    seconds = build(root, mailboxes, files)
    marker.write_text(json.dumps(want))
    return root, seconds


def config_for(root: Path) -> Config:
    return Config(validate({"mail_domain": DOMAIN, "mailboxes_dir": str(root)}, "bench"))


def stat_every_file(root: Path) -> int:
    """The upstream cost model: listdir + one stat() per file."""
    count = 0
    for name in os.listdir(root):
        if "@" not in name:
            continue
        stack = [f"{root}/{name}"]
        while stack:
            folder = stack.pop()
            for entry in os.listdir(folder):
                path = f"{folder}/{entry}"
                if entry in ("cur", "new", "tmp"):
                    for msg in os.listdir(path):
                        os.stat(f"{path}/{msg}")
                        count += 1
                elif os.path.isdir(path):
                    stack.append(path)
                else:
                    os.stat(path)
    return count


def drop_caches() -> None:
    """Write back dirty pages and drop the page, dentry and inode caches (root only)."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def churn(root: Path, share: float, seed: int) -> None:
    """A day's changes: ``share`` of the mailboxes get a delivery and an expunge in new/
    (the directory changes, its messages stay what they were)."""
    boxes = sorted(name for name in os.listdir(root) if "@" in name)
    for name in random.Random(seed).sample(boxes, round(len(boxes) * share)):
        path = f"{root}/{name}/new/{int(NOW.timestamp())}.Mchurn{seed}.bench,S=1,W=1"
        os.mknod(path, stat.S_IFREG | 0o600)
        os.unlink(path)


def timed(rounds: int, func, cold: bool, before=None) -> float:
    """The fastest of ``rounds`` timed runs (``before(round)`` and, when ``cold``, a cache drop first)."""
    times = []
    for n in range(rounds):
        if before is not None:
            before(n)
        if cold:
            drop_caches()
        started = time.monotonic()
        func()
        times.append(time.monotonic() - started)
    return min(times)


def condition(label: str, mailboxes: int, files: int, rounds: int, cold: bool, changed: list[float]) -> None:
    """Time the stat scan and the jobs on one store; print one line each with the ratio."""
    root, built = ensure_store(mailboxes, files)
    if built is not None:
        print(f"built {mailboxes:,} mailboxes / {files:,} files in {built:.1f} s ({files / built:,.0f} files/s)")
    config = config_for(root)
    results: dict[str, dict] = {}

    def job(name: str, rescan: bool):
        run = run_expire if name == "expire" else run_fsreport
        return lambda: results.update({name: run(config, days=1, now=NOW, rescan=rescan)})

    if not cold:  # warm the cache once, untimed
        stat_every_file(root)
    rows = [("stat scan (listdir + stat every file)", timed(rounds, lambda: stat_every_file(root), cold), "")]
    for name, title in (("expire", "expire dry run"), ("fsreport", "fsreport")):
        rows.append((f"{title}, --rescan", timed(rounds, job(name, True), cold), ""))
        assert results[name]["dirs_from_index"] == 0
    assert results["expire"]["files_examined"] == results["fsreport"]["messages"] == files
    for share in changed:
        job("expire", True)()  # a fresh index, as the last daily run left it
        for name, title in (("expire", "expire dry run"), ("fsreport", "fsreport")):
            seconds = timed(rounds, job(name, False), cold, lambda n, share=share: churn(root, share, n))
            listed, indexed = results[name]["dirs_listed"], results[name]["dirs_from_index"]
            note = f"{listed:,} dirs read, {indexed:,} not"
            if "mailboxes_not_due" in results[name]:
                note += f", {results[name]['mailboxes_not_due']:,} mailboxes not due (unread)"
            rows.append((f"{title}, index, {share:.0%} changed", seconds, note))
        assert results["expire"]["files_examined"] == results["fsreport"]["messages"] == files
    base = rows[0][1]
    index_size = (root / INDEX_NAME).stat().st_size / 1e6
    print(f"\n{label}: {mailboxes:,} mailboxes, {files:,} files, best of {rounds}; index {index_size:.1f} MB")
    for name, seconds, note in rows:
        print(f"  {name:40s} {seconds:7.3f} s  {files / seconds:12,.0f} files/s  {base / seconds:5.2f}x  {note}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hot-files", type=int, default=100_000, help="files of the hot-cache store")
    parser.add_argument("--cold-files", type=int, default=1_000_000, help="files of the cold-cache store")
    parser.add_argument("--per-mailbox", type=int, default=10, help="message files per mailbox (default 10)")
    parser.add_argument("--cold", action="store_true", help="also run the cold-cache condition (root)")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of each job; the best counts")
    parser.add_argument(
        "--changed", default="0.1,0.5", help="shares of mailboxes changed before each indexed run (default 0.1,0.5)"
    )
    parser.add_argument("--clean", action="store_true", help="remove the cached stores and exit")
    args = parser.parse_args()
    if args.clean:
        shutil.rmtree(BASE, ignore_errors=True)
        return 0
    changed = [float(share) for share in args.changed.split(",") if share]
    condition("hot cache", args.hot_files // args.per_mailbox, args.hot_files, args.rounds, False, changed)
    if args.cold:
        condition("cold cache", args.cold_files // args.per_mailbox, args.cold_files, args.rounds, True, changed)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"max RSS {rss:.0f} MB")
    print_reference("storage")
    return 0


if __name__ == "__main__":
    sys.exit(main())
