"""Storage and login report of the mailbox store (design.md §5.9); changes no mail (it rewrites the store index).

``run_fsreport`` returns the figures as a dict (for ``--json`` and the Salt
function ``chatmail.fsreport``); ``render`` turns that dict into the text
the daily timer writes to the journal; ``prometheus_text`` turns it into
a Prometheus textfile for node_exporter's textfile collector (metric names
as upstream's fsreport), written with ``--textfile`` beside the text
report.  It walks the store with the same iteration as expire
(:mod:`chatmaild.mailstore`).

Examples::

    python3 -m chatmaild.fsreport chatmail.ini --mdir cur --min-login-age 30
    python3 -m chatmaild.fsreport chatmail.ini --maxnum 1000 --json
    python3 -m chatmaild.fsreport chatmail.ini --textfile /var/lib/chatmail-fsreport/
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from chatmaild.config import Config, read_config
from chatmaild.dictproxy_fs import write_atomic
from chatmaild.maildirfiles import MESSAGE_DIRS, SIZE_BUCKETS, SIZE_FLOORS
from chatmaild.mailstore import DAY, Mailbox, iter_mailboxes, reference_time
from chatmaild.storeindex import StoreIndex

LOGIN_WINDOWS = (1, 10, 30, 40, 80, 100, 150)  # days: "logged in within"
CI_PREFIX = "ci-"


_FLOOR_OF = {minsize: SIZE_FLOORS.index(minsize) for minsize in SIZE_BUCKETS}


def is_ci(mailbox_name: str) -> bool:
    return mailbox_name.startswith(CI_PREFIX)


def _percent(part: float, whole: float) -> float:
    return round(part / whole * 100, 2) if whole else 0.0


class Report:
    """Accumulates the figures one mailbox at a time."""

    def __init__(self, now: float, min_login_age: int = 0, mdir: str | None = None):
        self.now = now
        self.min_login_age = min_login_age
        self.mdir = mdir
        self.mailboxes = 0
        self.messages = dict.fromkeys(sorted(MESSAGE_DIRS), 0)
        self.extra_files = 0
        self.size_messages = 0
        self.size_extra = 0
        self.buckets = dict.fromkeys(SIZE_BUCKETS, 0)
        self.bucket_counts = dict.fromkeys(SIZE_BUCKETS, 0)
        self.logins_all = 0
        self.logins_ci = 0
        self.active = dict.fromkeys(LOGIN_WINDOWS, 0)
        self.dirs_listed = 0
        self.dirs_from_index = 0

    def add(self, mailbox: Mailbox) -> None:
        self.mailboxes += 1
        for folder in mailbox.dirs:
            self.messages[folder.mdir] += folder.summary.counts[0]
            self.size_messages += folder.summary.sizes[0]
            if folder.listed:
                self.dirs_listed += 1
            else:
                self.dirs_from_index += 1
        self.extra_files += len(mailbox.extra_files)
        self.size_extra += sum(f.size for f in mailbox.extra_files)

        last_login = mailbox.last_login
        if last_login is None:
            return
        self.logins_all += 1
        if is_ci(mailbox.name):
            self.logins_ci += 1
        else:
            for days in LOGIN_WINDOWS:
                if last_login >= self.now - days * DAY:
                    self.active[days] += 1
        if last_login <= self.now - self.min_login_age * DAY:
            for folder in mailbox.dirs:
                if self.mdir is not None and folder.mdir != self.mdir:
                    continue
                summary = folder.summary
                for minsize in SIZE_BUCKETS:
                    floor = _FLOOR_OF[minsize]
                    self.buckets[minsize] += summary.sizes[floor]
                    self.bucket_counts[minsize] += summary.counts[floor]

    def as_dict(self) -> dict:
        total = self.size_messages + self.size_extra
        nonci = self.logins_all - self.logins_ci
        return {
            "now": datetime.fromtimestamp(self.now, timezone.utc).isoformat(),
            "mailboxes": self.mailboxes,
            "messages": sum(self.messages.values()),
            "messages_by_mdir": dict(self.messages),
            "extra_files": self.extra_files,
            "size_total": total,
            "size_messages": self.size_messages,
            "size_extra": self.size_extra,
            "extra_percent": _percent(self.size_extra, total),
            "min_login_age": self.min_login_age,
            "mdir": self.mdir,
            "dirs_listed": self.dirs_listed,
            "dirs_from_index": self.dirs_from_index,
            "size_buckets": [
                {
                    "min_size": size,
                    "bytes": summed,
                    "count": self.bucket_counts[size],
                    "percent": _percent(summed, self.size_messages),
                }
                for size, summed in self.buckets.items()
            ],
            "logins": {
                "all": self.logins_all,
                "nonci": nonci,
                "ci": self.logins_ci,
                "active": [
                    {"days": days, "count": count, "percent": _percent(count, nonci)}
                    for days, count in self.active.items()
                ],
            },
        }


def build_report(mailboxes: Iterable[Mailbox], now: float, min_login_age: int = 0, mdir: str | None = None) -> dict:
    report = Report(now, min_login_age, mdir)
    for mailbox in mailboxes:
        report.add(mailbox)
    return report.as_dict()


def run_fsreport(
    config: Config,
    days: float = 0,
    min_login_age: int = 0,
    mdir: str | None = None,
    maxnum: int | None = None,
    now: datetime | None = None,
    rescan: bool = False,
) -> dict:
    """The report of the store of ``config`` (``days``: pretend the clock is later;
    ``rescan``: list every directory instead of trusting the store index)."""
    if mdir is not None and mdir not in MESSAGE_DIRS:
        raise ValueError(f"mdir must be one of {sorted(MESSAGE_DIRS)}, not {mdir!r}")
    started = time.monotonic()
    ref = reference_time(days, now).timestamp()
    index = StoreIndex.load(config.mailboxes_dir, rescan)
    try:
        mailboxes = iter_mailboxes(config.mailboxes_dir, maxnum, with_extras=True, index=index)
        result = build_report(mailboxes, ref, min_login_age, mdir)
        index.save(complete=maxnum is None)
    except FileNotFoundError:
        if config.mailboxes_dir.exists():
            raise
        result = build_report([], ref, min_login_age, mdir)
    result["mailboxes_dir"] = str(config.mailboxes_dir)
    result["duration_s"] = round(time.monotonic() - started, 3)
    return result


def human_size(size: float) -> str:
    """Decimal K/M/G, 5 characters wide plus unit."""
    if size < 10000:
        return f"{size / 1000:5.2f}K"
    if size < 1000**2:
        return f"{size / 1000:5.0f}K"
    if size < 1000**3:
        return f"{size / 1000**2:5.0f}M"
    return f"{size / 1000**3:5.2f}G"


def render(report: dict) -> str:
    """The report as text for the journal."""
    lines = [
        "## Mailbox storage use",
        f"Mailboxes              : {report['mailboxes']}",
        f"Message files          : {report['messages']} "
        + " ".join(f"{k}={v}" for k, v in report["messages_by_mdir"].items()),
        f"Mailbox data total size: {human_size(report['size_total'])}",
        f"Messages total size    : {human_size(report['size_messages'])}",
        f"Extra files            : {human_size(report['size_extra'])} ({report['extra_percent']:.2f}%)"
        f" in {report['extra_files']} files",
        "",
    ]
    if report["min_login_age"]:
        lines.append(f"### Message storage of mailboxes whose last login is {report['min_login_age']}+ days old")
    prefix = f"[{report['mdir']}] " if report["mdir"] else ""
    for bucket in report["size_buckets"]:
        lines.append(
            f"{prefix}at least {human_size(bucket['min_size'])}: "
            f"{human_size(bucket['bytes'])} ({bucket['percent']:.2f}%)"
        )
    logins = report["logins"]
    lines += [
        "",
        f"## Login stats, reference time {report['now']}",
        f"all:     {logins['all']}",
        f"non-ci:  {logins['nonci']}",
        f"ci:      {logins['ci']}",
    ]
    for window in logins["active"]:
        lines.append(f"last {window['days']:3} days: {window['count']} ({window['percent']:.2f}%)")
    return "\n".join(lines)


TEXTFILE_NAME = "fsreport.prom"


def prometheus_text(report: dict) -> str:
    """The figures in Prometheus' text exposition format (all gauges)."""
    lines: list[str] = []

    def gauge(name: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        lines.extend(f"{name}{labels} {value}" for labels, value in samples)

    logins = report["logins"]
    gauge(
        "chatmail_storage_bytes",
        "Mailbox storage in bytes.",
        [
            ('{kind="messages"}', report["size_messages"]),
            ('{kind="extra"}', report["size_extra"]),
            ('{kind="total"}', report["size_total"]),
        ],
    )
    buckets = report["size_buckets"]
    gauge(
        "chatmail_messages_bytes",
        "Sum of message bytes >= min_size.",
        [(f'{{min_size="{b["min_size"]}"}}', b["bytes"]) for b in buckets],
    )
    gauge(
        "chatmail_messages_count",
        "Number of messages >= min_size.",
        [(f'{{min_size="{b["min_size"]}"}}', b["count"]) for b in buckets],
    )
    gauge(
        "chatmail_accounts",
        "Number of accounts with a recorded login.",
        [
            ('{kind="all"}', logins["all"]),
            ('{kind="ci"}', logins["ci"]),
            ('{kind="user"}', logins["nonci"]),
        ],
    )
    gauge(
        "chatmail_accounts_active",
        "Non-CI accounts active within N days.",
        [(f'{{days="{w["days"]}"}}', w["count"]) for w in logins["active"]],
    )
    gauge("chatmail_mailboxes", "Mailbox directories.", [("", report["mailboxes"])])
    gauge("chatmail_fsreport_duration_seconds", "Time the report took.", [("", report["duration_s"])])
    return "\n".join(lines) + "\n"


def write_textfile(path: str | Path, report: dict) -> Path:
    """Write the textfile atomically (node_exporter never reads half of it); a directory gets fsreport.prom."""
    target = Path(path)
    if target.is_dir() or str(path).endswith("/"):
        target = target / TEXTFILE_NAME  # a missing directory fails here, not as a file in its place
    write_atomic(target, prometheus_text(report), mode=0o644)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatmail-fsreport", description=__doc__.split("\n")[0])
    parser.add_argument("ini", help="chatmail.ini (the units pass the relay's)")
    parser.add_argument("--days", type=float, default=0, help="pretend the clock is DAYS days later")
    parser.add_argument(
        "--min-login-age",
        type=int,
        default=0,
        help="size buckets only count mailboxes whose last login is this many days old",
    )
    parser.add_argument(
        "--mdir", choices=sorted(MESSAGE_DIRS), help="size buckets only count messages in this kind of dir"
    )
    parser.add_argument("--maxnum", type=int, default=None, help="examine at most N mailboxes")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--rescan", action="store_true", help="list every directory, ignoring the store index")
    parser.add_argument(
        "--textfile",
        metavar="PATH",
        help=f"also write a Prometheus textfile to PATH (a directory: PATH/{TEXTFILE_NAME})",
    )
    args = parser.parse_args(argv)
    config = read_config(args.ini)
    report = run_fsreport(
        config, days=args.days, min_login_age=args.min_login_age, mdir=args.mdir, maxnum=args.maxnum, rescan=args.rescan
    )
    print(json.dumps(report) if args.json else render(report))
    if args.textfile:
        write_textfile(args.textfile, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
