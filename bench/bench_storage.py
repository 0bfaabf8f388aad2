#!/usr/bin/env python3
"""Time the storage jobs (expire dry run, fsreport) on a large synthetic store.

The store is built once and cached under /var/tmp/chatmail-bench-store:
MAILBOXES accounts (each with cur/new/tmp, every tenth with a .DeltaChat
subfolder) holding FILES message files with Dovecot-style names.  The files
are empty (os.mknod): sizes come from the names' ``,S=`` field, so the disk
cost is the directories (~4 KiB each), not the messages.  Subfolder files
get their received date as mtime, like hard-linked moves do.

For comparison it also times the upstream approach (one stat() per file)
and prints upstream's measured figures (bench/reference.py).
Hot page cache only (dropping caches would disturb everything else on the host).

Usage::

    scripts/bench storage                 # 100k mailboxes / 1M files
    scripts/bench storage --scale 0.1     # 10k / 100k
    scripts/bench storage --clean         # remove the cached store
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
from reference import print_reference

BASE = Path("/var/tmp/chatmail-bench-store")
DOMAIN = "bench.example.org"
DAY = 86400
# reference clock of the synthetic store; runs use now=NOW so results do not drift
NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


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
        login = now - rng.uniform(0, 120) * DAY
        os.utime(f"{box}/password", (login, login))
        os.mknod(f"{box}/maildirsize", regular)
        os.mknod(f"{box}/dovecot-uidlist", regular)
        # spread the remaining files evenly: the last mailbox takes the rest
        count = files - made if i == mailboxes - 1 else round(per_box * (i + 1)) - made
        for seq in range(count):
            when = int(now - rng.uniform(0, 30) * DAY)
            size = 300000 if rng.random() < 0.05 else int(rng.lognormvariate(8.5, 1.0))
            folder = folders[-1] if len(folders) > 1 and seq % 3 == 0 else box
            mdir = "cur" if seq % 4 else "new"
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
    want = {"mailboxes": mailboxes, "files": files, "version": 1}
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


def timed(label: str, func, files: int) -> float:
    started = time.monotonic()
    func()
    seconds = time.monotonic() - started
    print(f"{label:38s} {seconds:7.2f} s  {files / seconds:12,.0f} files/s")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 100k mailboxes / 1M files")
    parser.add_argument("--rounds", type=int, default=2, help="timed runs of each job")
    parser.add_argument("--clean", action="store_true", help="remove the cached store and exit")
    args = parser.parse_args()
    if args.clean:
        shutil.rmtree(BASE, ignore_errors=True)
        return 0
    mailboxes, files = int(100_000 * args.scale), int(1_000_000 * args.scale)
    root, built = ensure_store(mailboxes, files)
    if built is not None:
        print(f"built {mailboxes:,} mailboxes / {files:,} files in {built:.1f} s ({files / built:,.0f} files/s)")
    else:
        print(f"using cached store {root}")
    config = config_for(root)
    expire_result = fsreport_result = None
    for n in range(1, args.rounds + 1):
        expire_result = run_expire(config, now=NOW)
        print(
            f"expire dry run #{n}: {expire_result['duration_s']:.2f} s, "
            f"{expire_result['files_examined'] / expire_result['duration_s']:,.0f} files/s"
        )
        fsreport_result = run_fsreport(config, now=NOW)
        print(
            f"fsreport #{n}:       {fsreport_result['duration_s']:.2f} s, "
            f"{fsreport_result['messages'] / fsreport_result['duration_s']:,.0f} files/s"
        )
    timed("baseline: listdir + stat every file", lambda: stat_every_file(root), files)
    print(
        f"expire would remove {expire_result['files_removed']:,} of {expire_result['files_examined']:,} files "
        f"and {expire_result['mailboxes_removed']:,} of {expire_result['mailboxes_examined']:,} mailboxes"
    )
    assert expire_result["files_examined"] == fsreport_result["messages"] == files
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"max RSS {rss:.0f} MB")
    print_reference("storage")
    return 0


if __name__ == "__main__":
    sys.exit(main())
