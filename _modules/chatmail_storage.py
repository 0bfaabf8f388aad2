"""chatmail.expire / chatmail.fsreport: the relay's storage jobs, on demand.

They run the same chatmaild code as the daily timers, on the minion, with
the relay's own Python (``/usr/bin/python3 -m chatmaild.expire INI --json``),
as user ``vmail`` (the owner of the mailboxes) when Salt runs as root, and
return its JSON, so ``salt-call --out=json chatmail.expire`` gives
structured data.  Nothing of chatmaild is imported into Salt's process: the
relay's install is what gets exercised.

Minion options (for tests or unusual layouts):

* ``chatmail.chatmaild_dir`` - directory holding the ``chatmaild`` package
  (default: where the states put it, ``chatmaild.lib`` in
  chatmail/parameters/defaults.yaml)
* ``chatmail.ini_path`` - the rendered chatmail.ini
  (default ``<that directory>/chatmail.ini``)
* ``chatmail.python`` - interpreter (default ``/usr/bin/python3``)
"""

from __future__ import annotations

import json
import os
import pwd
from typing import Any

from salt.exceptions import CommandExecutionError

__virtualname__ = "chatmail"

DEFAULTS = {"chatmail.python": "/usr/bin/python3"}
MAILBOX_OWNER = "vmail"


def __virtual__():
    return __virtualname__


def _opt(key: str) -> str:
    """A minion option, else its default (the chatmaild paths: from the formula's table)."""
    if __opts__.get(key):
        return __opts__[key]
    if key in DEFAULTS:
        return DEFAULTS[key]
    lib = __salt__["chatmail.params"]()["chatmaild"]["lib"]
    return {"chatmail.chatmaild_dir": lib, "chatmail.ini_path": lib + "/chatmail.ini"}[key]


def _runas() -> str | None:
    """vmail when we are root and vmail exists; else whoever we are."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(MAILBOX_OWNER)
    except KeyError:
        return None
    return MAILBOX_OWNER


def _run_json(module: str, args: list[str]) -> dict[str, Any]:
    cmd = [_opt("chatmail.python"), "-m", f"chatmaild.{module}", _opt("chatmail.ini_path"), "--json", *args]
    ret = __salt__["cmd.run_all"](
        cmd,
        env={"PYTHONPATH": _opt("chatmail.chatmaild_dir")},
        runas=_runas(),
        python_shell=False,
        ignore_retcode=True,
    )
    try:
        data = json.loads(ret["stdout"])
    except ValueError:
        raise CommandExecutionError(
            f"chatmaild.{module} failed (exit {ret['retcode']}): {ret['stderr'].strip() or ret['stdout'].strip()}"
        ) from None
    if ret["retcode"] != 0:
        __context__["retcode"] = ret["retcode"]
        data["stderr"] = ret["stderr"]
    return data


def _optional(flag: str, value: Any) -> list[str]:
    return [] if value in (None, "", 0) else [flag, str(value)]


def _flag(flag: str, on: bool) -> list[str]:
    return [flag] if on else []


def expire(remove: bool = False, days: float = 0, maxnum: int | None = None, rescan: bool = False) -> dict[str, Any]:
    """Expire old messages and inactive accounts (what the daily timer does).

    A dry run unless ``remove=True``: the counts say what would go.

    remove
        really remove the files and mailboxes
    days
        pretend the clock is this many days later (preview a later run)
    maxnum
        examine at most this many mailboxes
    rescan
        read every directory instead of trusting the store index (which
        keeps what unchanged directories hold, docs/design.md 5.8)

    Returns mailboxes_examined, mailboxes_not_due (not read: their recap in
    the index says no rule applies yet), mailboxes_removed, empty_mailboxes_removed,
    files_examined, files_removed, files_in_removed_mailboxes, bytes_freed,
    dirs_listed, dirs_from_index, errors, duration_s, dry_run, now, mailboxes_dir.

    CLI Example::

        salt-call chatmail.expire
        salt-call --out=json chatmail.expire days=7
        salt-call chatmail.expire remove=True
    """
    args = _flag("--remove", remove) + _flag("--rescan", rescan)
    return _run_json("expire", args + _optional("--days", days) + _optional("--maxnum", maxnum))


def fsreport(
    days: float = 0, min_login_age: int = 0, mdir: str | None = None, maxnum: int | None = None, rescan: bool = False
) -> dict[str, Any]:
    """Storage and login report of all mailboxes (read-only).

    days
        pretend the clock is this many days later
    min_login_age
        size buckets only count mailboxes whose last login is this many days old
    mdir
        size buckets only count messages in ``cur``, ``new`` or ``tmp``
    maxnum
        examine at most this many mailboxes
    rescan
        read every directory instead of trusting the store index

    CLI Example::

        salt-call chatmail.fsreport
        salt-call --out=json chatmail.fsreport mdir=cur min_login_age=30
    """
    args = _optional("--days", days) + _optional("--min-login-age", min_login_age)
    args += _optional("--mdir", mdir) + _optional("--maxnum", maxnum) + _flag("--rescan", rescan)
    return _run_json("fsreport", args)
