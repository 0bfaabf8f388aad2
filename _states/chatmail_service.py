"""chatmail_service.restarted_if_stale: restart a daemon that runs older config than is on disk.

Services restart through ``watch`` on their config SLS, which only sees
changes made in the same run.  When a relay is moved (docs/migration.md)
the configure stage runs alone first and the activate stage later; in
between, daemons that Debian started at package install or at boot keep
running with the config they read then, and a later run (activate-only
or all stages) finds nothing changed for ``watch`` to see.  So every run
that activates has this state beside ``watch``: the daemon is restarted
when it is active and any of its config files (or, for a directory, any
file below it) was modified after the unit last became active (systemd
first re-reads a unit file or drop-in that changed on disk, else the
restart would use the old one).  A daemon that is not running
is left to ``service.running``, which starts it with the current files; a
freshly restarted daemon is newer than its files, so a second run changes
nothing.  Under ``test=True`` it reports what it would do.

Example::

    chatmail-postfix-stale-restarted:
      chatmail_service.restarted_if_stale:
        - name: postfix
        - unit: postfix@-          # the unit that runs the daemon: timed and restarted
        - configs: [/etc/postfix/main.cf, /etc/postfix/master.cf]
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

__virtualname__ = "chatmail_service"

# written by Python at run time beside the code; never configuration
_SKIPPED_DIRS = {"__pycache__"}
_SKIPPED_SUFFIXES = (".pyc",)


def __virtual__():
    return __virtualname__


def _systemctl(*args: str) -> dict:
    return __salt__["cmd.run_all"](["systemctl", *args], python_shell=False, ignore_retcode=True)


def _active_since(unit: str) -> float | None:
    """When ``unit`` last became active (epoch seconds, microsecond precision), or None if it is not active."""
    if _systemctl("is-active", "--quiet", unit)["retcode"] != 0:
        return None
    out = _systemctl("show", "--timestamp=us+utc", "-p", "ActiveEnterTimestamp", "--value", unit)
    return _parse_timestamp(out["stdout"].strip())


def _parse_timestamp(text: str) -> float | None:
    """``Wed 2026-11-25 19:40:05.123456 UTC`` (systemctl --timestamp=us+utc) -> epoch seconds."""
    if not text or text == "n/a":
        return None
    parts = text.split()
    stamp = " ".join(parts[1:3]) if len(parts) >= 3 else text
    when = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f")
    return when.replace(tzinfo=timezone.utc).timestamp()


def _newer_files(paths: Iterable[str], since: float) -> list[str]:
    """The files among ``paths`` (directories walked) modified after ``since``; missing paths are skipped."""
    newer = []
    for path in paths:
        for file in _files(path):
            try:
                if os.stat(file).st_mtime > since:
                    newer.append(file)
            except FileNotFoundError:
                continue
    return newer


def _files(path: str) -> Iterable[str]:
    if not os.path.isdir(path):
        yield path
        return
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if d not in _SKIPPED_DIRS]
        for name in filenames:
            if not name.endswith(_SKIPPED_SUFFIXES):
                yield os.path.join(dirpath, name)


def restarted_if_stale(name: str, configs: list[str], unit: str | None = None) -> dict[str, Any]:
    """Restart ``unit`` (default: ``name``) if it is active and any of ``configs`` is newer than its start."""
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    unit = unit or name
    since = _active_since(unit)
    if since is None:
        ret["comment"] = f"{unit} is not running (or its start time is unknown): nothing to restart"
        return ret
    newer = _newer_files(configs, since)
    if not newer:
        ret["comment"] = f"{unit} runs with its current config"
        return ret
    shown = ", ".join(newer[:5]) + (f" and {len(newer) - 5} more" if len(newer) > 5 else "")
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"{unit} would be restarted: changed since it started: {shown}"
        ret["changes"] = {"restarted": unit, "newer": newer}
        return ret
    if _systemctl("show", "-p", "NeedDaemonReload", "--value", unit)["stdout"].strip() == "yes":
        _systemctl("daemon-reload")
    out = _systemctl("restart", unit)
    if out["retcode"] != 0:
        ret["result"] = False
        ret["comment"] = f"restarting {unit} failed: {out['stderr'] or out['stdout']}"
        return ret
    ret["comment"] = f"{unit} restarted: changed since it started: {shown}"
    ret["changes"] = {"restarted": unit, "newer": newer}
    return ret
