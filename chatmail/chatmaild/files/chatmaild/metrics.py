"""Account counts in Prometheus text format (design.md §5.10).

Upstream runs it every 5 minutes by cron as ``python3 -m chatmaild.metrics MB > WWW/metrics``
(``WWW``: the website folder, website.www of the formula's parameters table;
``MB``: the mailbox root; a chatmail.ini path works too).  An account is
a directory of ``MB`` that has a ``cur`` directory, i.e. one that Dovecot
has opened at least once; CI accounts are those created by test suites.
"""

from __future__ import annotations

import os
import sys
from typing import NamedTuple

CI_PREFIXES = ("ci-", "ac_")


class Metric(NamedTuple):
    name: str
    help: str


METRICS = (
    Metric("accounts", "total number of accounts"),
    Metric("ci_accounts", "number of CI accounts"),
    Metric("nonci_accounts", "number of non-CI accounts"),
)


def count_accounts(mailboxes_dir: str | os.PathLike) -> dict[str, int]:
    accounts = ci_accounts = 0
    try:
        entries = os.scandir(mailboxes_dir)
    except FileNotFoundError:
        entries = None
    if entries is not None:
        with entries:
            for entry in entries:
                if not os.path.isdir(os.path.join(entry.path, "cur")):
                    continue
                accounts += 1
                if entry.name.startswith(CI_PREFIXES):
                    ci_accounts += 1
    return {"accounts": accounts, "ci_accounts": ci_accounts, "nonci_accounts": accounts - ci_accounts}


def render(values: dict[str, int]) -> str:
    """Prometheus exposition format: HELP and TYPE lines name their metric."""
    lines = []
    for metric in METRICS:
        lines.append(f"# HELP {metric.name} {metric.help}")
        lines.append(f"# TYPE {metric.name} gauge")
        lines.append(f"{metric.name} {values[metric.name]}")
    return "\n".join(lines) + "\n"


def mailboxes_dir_from_arg(arg: str) -> str:
    """A directory is the mailbox root; a file is a chatmail.ini naming it."""
    if os.path.isfile(arg):
        from chatmaild.config import read_config

        return str(read_config(arg).mailboxes_dir)
    return arg


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python3 -m chatmaild.metrics MAILBOXES_DIR|CHATMAIL_INI", file=sys.stderr)
        return 2
    sys.stdout.write(render(count_accounts(mailboxes_dir_from_arg(argv[0]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
