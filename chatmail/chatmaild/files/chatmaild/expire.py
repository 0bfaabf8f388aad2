"""Expire old messages and inactive accounts (design.md §5.8).

``run_expire`` is the one implementation; the CLI below, the daily systemd
timer (``python3 -m chatmaild.expire INI -v --remove``) and the Salt
function ``chatmail.expire`` all call it.  Without ``remove`` it is a dry
run that reports what a real run would remove.

Rules, per mailbox (ages as defined in :mod:`chatmaild.mailstore`):

1. the password file (last login) is older than
   ``delete_inactive_users_after`` days: remove the whole mailbox;
2. a message older than ``delete_mails_after`` days: remove it;
3. a message larger than 200000 bytes in a ``cur`` directory (seen by a
   client; unseen ones in ``new/`` are left for the client to fetch) and
   older than ``delete_large_after`` days: remove it;
4. if anything was removed, remove ``<mailbox>/maildirsize`` so Dovecot
   recalculates the quota instead of trusting a stale sum.

A mailbox whose recap in the store index (mailstore.Recap) shows that no
rule can apply yet is not read at all (``may_be_due``; docs/design.md 5.8
says why that is exact, and the one case it only finds at the next look).

A mailbox without a password file is never removed by rule 1 (it may be
one that doveauth is creating right now, or one an operator blocked the
documented way by editing the hash), but its messages still expire; if
it is an empty directory older than a day, it is removed.

Quota-driven expiry (``--mailbox ADDR --target-percent 70``, upstream 1.12):
Dovecot's ``quota_warning`` runs it when a mailbox passes 75 % of
``max_mailbox_size``, so a full mailbox frees space at once instead of
refusing deliveries until the daily run.  The oldest messages go until the
mailbox holds at most the target share of ``max_mailbox_size``; messages
younger than a day stay (as upstream: a full mailbox's refusals are what
tells its owner's devices that something is wrong), and ``maildirsize``
goes as in rule 4.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from chatmaild.config import Config, read_config, size_bytes
from chatmaild.maildirfiles import LARGE_FLOOR, LARGE_MESSAGE, Message
from chatmaild.mailstore import (
    DAY,
    Mailbox,
    MessageDir,
    Recap,
    iter_mailboxes,
    reference_time,
    scan_mailbox,
)
from chatmaild.storeindex import StoreIndex

EMPTY_MAILBOX_GRACE = DAY  # an empty mailbox dir younger than this may be mid-creation
QUOTA_KEEP_RECENT = DAY  # quota-driven expiry never removes messages younger than this


@dataclass(frozen=True)
class Cutoffs:
    """Timestamps before which the rules apply."""

    now: float
    inactive: float
    mails: float
    large: float

    @classmethod
    def from_config(cls, config: Config, now: float) -> Cutoffs:
        return cls(
            now=now,
            inactive=now - int(config.delete_inactive_users_after) * DAY,
            mails=now - int(config.delete_mails_after) * DAY,
            large=now - int(config.delete_large_after) * DAY,
        )


def is_expired(message: Message, cutoffs: Cutoffs) -> bool:
    """Rules 2 and 3."""
    if message.time < cutoffs.mails:
        return True
    return message.size > LARGE_MESSAGE and message.mdir == "cur" and message.time < cutoffs.large


def may_hold_expired(folder: MessageDir, cutoffs: Cutoffs) -> bool:
    """Whether a directory's summary says rule 2 or 3 applies to one of its messages."""
    oldest = folder.summary.oldest
    return oldest[0] < cutoffs.mails or (folder.mdir == "cur" and oldest[LARGE_FLOOR] < cutoffs.large)


def may_be_due(recap: Recap, cutoffs: Cutoffs) -> bool:
    """Whether a rule may apply to the mailbox whose last look ``recap`` keeps; if not,
    nobody needs to look at it now (mailstore.Recap says why the figures still hold).
    A message saved since the look may become due as soon as ``seen`` passes a cutoff."""
    return (
        recap.oldest < cutoffs.mails
        or recap.oldest_large < cutoffs.large
        or recap.seen < max(cutoffs.mails, cutoffs.large)
        or recap.last_login < cutoffs.inactive
    )


def is_inactive(mailbox: Mailbox, cutoffs: Cutoffs) -> bool:
    """Rule 1; a mailbox without password file is never inactive."""
    return mailbox.last_login is not None and mailbox.last_login < cutoffs.inactive


@dataclass
class ExpireStats:
    dry_run: bool
    now: str
    mailboxes_examined: int = 0
    mailboxes_not_due: int = 0  # ... of them taken from their recap in the store index, unread
    mailboxes_removed: int = 0
    empty_mailboxes_removed: int = 0
    files_examined: int = 0
    files_removed: int = 0
    files_in_removed_mailboxes: int = 0
    bytes_freed: int = 0
    dirs_listed: int = 0  # message directories read
    dirs_from_index: int = 0  # ... summarized from the store index instead
    errors: int = 0
    duration_s: float = 0.0

    def summary(self) -> str:
        verb = "Would remove" if self.dry_run else "Removed"
        return (
            f"{verb} {self.mailboxes_removed} of {self.mailboxes_examined} mailboxes "
            f"(+{self.empty_mailboxes_removed} empty) and {self.files_removed} of "
            f"{self.files_examined} message files, {self.bytes_freed} bytes, "
            f"in {self.duration_s:.2f} seconds"
        )


def _day(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


class Expirer:
    """Applies the rules to one mailbox at a time and counts what it did."""

    def __init__(self, cutoffs: Cutoffs, remove: bool, log: Callable[[str], None] | None):
        self.cutoffs = cutoffs
        self.remove = remove
        self.log = log
        self.stats = ExpireStats(dry_run=not remove, now=datetime.fromtimestamp(cutoffs.now, timezone.utc).isoformat())

    def _note(self, text: str) -> None:
        if self.log is not None:
            self.log(text)

    def process(self, mailbox: Mailbox) -> None:
        stats = self.stats
        stats.mailboxes_examined += 1
        stats.files_examined += mailbox.count
        if mailbox.recap is not None:
            stats.mailboxes_not_due += 1
            return
        if is_inactive(mailbox, self.cutoffs):
            self._remove_mailbox(mailbox)
            self._count_listings(mailbox)
            return
        if mailbox.last_login is None and not mailbox.count:
            self._remove_if_empty(mailbox)
            self._count_listings(mailbox)
            return
        if self.log is not None:
            login = _day(mailbox.last_login) if mailbox.last_login is not None else "no login"
            self._note(f"checking mailbox {login} {mailbox.name}")
        removed_any = False
        for folder in mailbox.dirs:
            if not may_hold_expired(folder, self.cutoffs):
                continue  # the summary (perhaps from the store index) says so: no listing
            for message in folder.messages():
                if is_expired(message, self.cutoffs):
                    removed_any |= self._remove_message(message)
        self._count_listings(mailbox)
        if removed_any and self.remove:
            try:
                os.unlink(os.path.join(mailbox.path, "maildirsize"))
            except FileNotFoundError:
                pass

    def _count_listings(self, mailbox: Mailbox) -> None:
        listed = sum(folder.listed for folder in mailbox.dirs)
        self.stats.dirs_listed += listed
        self.stats.dirs_from_index += len(mailbox.dirs) - listed

    def _remove_message(self, message: Message) -> bool:
        if self.log is not None:
            self.log(f"removing {_day(message.time)} {message.size} {message.path}")
        if self.remove:
            try:
                os.unlink(message.path)
            except FileNotFoundError:
                self._note(f"vanished {message.path}")
                return False
            except OSError as exc:
                self.stats.errors += 1
                self._note(f"error removing {message.path}: {exc}")
                return False
        self.stats.files_removed += 1
        self.stats.bytes_freed += message.size
        return True

    def _remove_mailbox(self, mailbox: Mailbox) -> None:
        if self.log is not None:
            self.log(f"removing inactive mailbox (last login {_day(mailbox.last_login)}) {mailbox.path}")
        if self.remove:
            try:
                shutil.rmtree(mailbox.path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                self.stats.errors += 1
                self._note(f"error removing {mailbox.path}: {exc}")
                return
        self.stats.mailboxes_removed += 1
        self.stats.files_in_removed_mailboxes += mailbox.count
        self.stats.bytes_freed += mailbox.size

    def _remove_if_empty(self, mailbox: Mailbox) -> None:
        """A password-less mailbox directory with no entries at all."""
        try:
            # the real clock, not one moved ahead by --days: the race is real
            newest_allowed = min(self.cutoffs.now, time.time()) - EMPTY_MAILBOX_GRACE
            if os.stat(mailbox.path).st_mtime >= newest_allowed:
                return
            with os.scandir(mailbox.path) as entries:
                if next(entries, None) is not None:
                    return
        except FileNotFoundError:
            return
        self._note(f"removing empty mailbox {mailbox.path}")
        if self.remove:
            try:
                os.rmdir(mailbox.path)
            except OSError:  # filled or removed meanwhile: leave it
                return
        self.stats.empty_mailboxes_removed += 1


def expire_mailboxes(
    mailboxes: Iterable[Mailbox], cutoffs: Cutoffs, remove: bool, log: Callable[[str], None] | None = None
) -> ExpireStats:
    expirer = Expirer(cutoffs, remove, log)
    for mailbox in mailboxes:
        expirer.process(mailbox)
    return expirer.stats


def run_expire(
    config: Config,
    remove: bool = False,
    days: float = 0,
    maxnum: int | None = None,
    log: Callable[[str], None] | None = None,
    now: datetime | None = None,
    rescan: bool = False,
) -> dict:
    """Apply the expiry rules to the mailbox store of ``config``.

    ``days`` pretends the clock is that many days later; ``now`` (aware
    datetime) replaces the clock altogether (tests).  ``log`` receives one
    line per mailbox and per removal.  ``rescan`` lists every directory
    instead of trusting the store index (which it then rewrites).  Returns
    the counts as a dict.
    """
    started = time.monotonic()
    cutoffs = Cutoffs.from_config(config, reference_time(days, now).timestamp())
    index = StoreIndex.load(config.mailboxes_dir, rescan)
    try:
        mailboxes = iter_mailboxes(config.mailboxes_dir, maxnum, index=index, skip=lambda r: not may_be_due(r, cutoffs))
        stats = expire_mailboxes(mailboxes, cutoffs, remove, log)
        # skipped mailboxes keep their entries; what a removal left behind goes at the next
        # complete walk (fsreport's daily run, or an expire run that skips nothing)
        index.save(complete=maxnum is None and not stats.mailboxes_not_due)
    except FileNotFoundError:
        if config.mailboxes_dir.exists():
            raise
        if log is not None:
            log(f"no mailboxes found at {config.mailboxes_dir}")
        stats = Expirer(cutoffs, remove, None).stats
    stats.duration_s = round(time.monotonic() - started, 3)
    result = asdict(stats)
    result["mailboxes_dir"] = str(config.mailboxes_dir)
    return result


def expire_to_target(
    config: Config,
    address: str,
    target_percent: float,
    remove: bool = False,
    log: Callable[[str], None] | None = None,
    now: float | None = None,
) -> dict:
    """Remove the oldest messages of one mailbox until it holds at most
    ``target_percent`` of ``max_mailbox_size`` (see the module docstring).

    Counts what Dovecot's maildir quota counts: the messages in cur/ and
    new/ of every folder, by their ``,S=`` size.  ``now`` (a timestamp)
    replaces the clock (tests).
    """
    if now is None:
        now = time.time()
    target = int(size_bytes(config.max_mailbox_size) * target_percent / 100)
    path = os.path.join(config.mailboxes_dir, address)
    messages = sorted((m for m in scan_mailbox(path).messages if m.mdir != "tmp"), key=lambda m: (m.time, m.path))
    size = sum(m.size for m in messages)
    result = {"mailbox": path, "target_bytes": target, "bytes_before": size}
    expirer = Expirer(Cutoffs(now, now, now, now), remove, log)
    for message in messages:
        if size <= target or message.time > now - QUOTA_KEEP_RECENT:
            break
        if expirer._remove_message(message):
            size -= message.size
    if expirer.stats.files_removed and remove:
        try:
            os.unlink(os.path.join(path, "maildirsize"))
        except FileNotFoundError:
            pass
    result.update(bytes_after=size, files_removed=expirer.stats.files_removed, errors=expirer.stats.errors)
    return result


def mailbox_address(text: str) -> str:
    """argparse type of --mailbox: one entry of the mailbox directory."""
    if "@" not in text or "/" in text or text.startswith("."):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a mailbox address such as user@example.org")
    return text


def target_percent(text: str) -> float:
    """argparse type of --target-percent."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a percentage between 0 and 100")
    return value


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatmail-expire", description=__doc__.split("\n")[0])
    parser.add_argument("ini", help="chatmail.ini (the units pass the relay's)")
    parser.add_argument("--days", type=float, default=0, help="pretend the clock is DAYS days later")
    parser.add_argument("--maxnum", type=int, default=None, help="examine at most N mailboxes")
    parser.add_argument("--remove", action="store_true", help="really remove (default: dry run)")
    parser.add_argument("-v", dest="verbose", action="store_true", help="log every mailbox and removal to stderr")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    parser.add_argument("--rescan", action="store_true", help="list every directory, ignoring the store index")
    parser.add_argument(
        "--mailbox", type=mailbox_address, metavar="ADDR", help="only shrink this mailbox to --target-percent"
    )
    parser.add_argument(
        "--target-percent", type=target_percent, default=70, metavar="P", help="of max_mailbox_size (default 70)"
    )
    args = parser.parse_args(argv)
    config = read_config(args.ini)
    log = _stderr if args.verbose else None
    if args.mailbox is not None:
        result = expire_to_target(config, args.mailbox, args.target_percent, remove=args.remove, log=log)
        if args.json:
            print(json.dumps(result))
        else:  # to stderr, which is Dovecot's log when Dovecot runs it; stdout is its socket
            verb = "Removed" if args.remove else "Would remove"
            _stderr(
                f"{verb} {result['files_removed']} message files of {result['mailbox']}: "
                f"{result['bytes_before']} -> {result['bytes_after']} bytes (target {result['target_bytes']})"
            )
        return 1 if result["errors"] else 0
    result = run_expire(config, remove=args.remove, days=args.days, maxnum=args.maxnum, log=log, rescan=args.rescan)
    if args.json:
        print(json.dumps(result))
    else:
        fields = {k: v for k, v in result.items() if k in ExpireStats.__dataclass_fields__}
        print(ExpireStats(**fields).summary())
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
