"""lastlogin: records the login day as the mtime of MB/<addr>/password.

Dovecot's ``last_login`` plugin writes ``shared/last-login/<addr>`` with the
login time in seconds.  Only the day is kept (the time is floored to UTC
midnight), and the file is touched at most once per day: that is all
chatmail-expire needs to remove inactive accounts, and it stores as little
about users' activity as possible.

Run as ``python3 -m chatmaild.lastlogin <socket> <chatmail.ini>``.
"""

from __future__ import annotations

import logging
import os
import sys
import time

from .accountrules import impossible_address
from .config import Config
from .dictproxy import DictProxy, Transaction, run_service

log = logging.getLogger(__name__)

KEY_PREFIX = "shared/last-login/"
DAY = 86400


class LastLoginDict(DictProxy):
    name = "lastlogin"

    def __init__(self, config: Config):
        self.config = config

    def lookup(self, key: str, user: str) -> str | None:
        return None

    def set(self, tx: Transaction, key: str, value: str) -> bool:
        if not key.startswith(KEY_PREFIX):
            log.warning("lastlogin: refusing set of %r", key)
            return False
        addr = key[len(KEY_PREFIX) :]
        if "@" not in addr:
            return True  # not an account (e.g. a master user); nothing to track
        try:
            day = int(value) // DAY * DAY
            time.gmtime(day)  # a time_t (found by fuzzing: utime() raised OverflowError)
        except (ValueError, OverflowError, OSError):
            log.warning("lastlogin: login time %r of %s is not a time", value[:40], addr)
            return False
        try:
            if impossible_address(addr):  # e.g. too long for a file name: no such account
                raise ValueError(addr)
            password = self.config.get_user_dir(addr) / "password"
        except ValueError:
            log.warning("lastlogin: invalid address %r", addr[:300])
            return False
        try:
            if int(password.stat().st_mtime) != day:
                os.utime(password, (day, day))
        except FileNotFoundError:
            log.error("lastlogin: %s has no password file", addr)
        return True


def main(argv: list[str] | None = None) -> int:
    return run_service("lastlogin", argv, LastLoginDict)


if __name__ == "__main__":
    sys.exit(main())
