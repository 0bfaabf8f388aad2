"""chatmail.formula_version: which revision of this formula configures the relay.

The text goes to /etc/chatmail-version (chatmail.version), whose first
line is the revision and whose further lines, if any, are local changes
(``chatmail.status`` reads it that way).  The formula may come as a git
checkout, as a release tarball or from a salt-master's file_roots; each
gives an answer without an error line, first match wins:

1. ``salt://chatmail/VERSION``, when the served tree has one (a deploy
   step such as scripts/install-relay writes it into the copy it places);
2. git, when the minion serves itself (``file_client: local``) from a
   checkout: ``git rev-parse HEAD``, then ``git diff HEAD``;
3. ``salt://FORMULA``'s version and release (a tarball, a master);
4. "unknown".

Presence is asked with ``cp.hash_file``, which answers "no such file"
quietly; ``cp.get_file_str`` on a missing file logs ERROR.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

__virtualname__ = "chatmail"

FORMULA_NAME = "chatmail"
STATE_TREE_MARK = "chatmail/init.sls"  # the file root holding this is the formula's


def __virtual__():
    return __virtualname__


def _served(path: str, saltenv: str) -> str | None:
    """Text of ``salt://path``, or None when the fileserver has no such file."""
    if not __salt__["cp.hash_file"](f"salt://{path}", saltenv):
        return None
    text = __salt__["cp.get_file_str"](f"salt://{path}", saltenv=saltenv)
    return text if isinstance(text, str) else None


def _formula_root(saltenv: str) -> str | None:
    """The local file root serving the state tree (the first one, as Salt picks)."""
    if __opts__.get("file_client") != "local":
        return None
    for root in (__opts__.get("file_roots") or {}).get(saltenv, []):
        if os.path.isfile(os.path.join(root, STATE_TREE_MARK)):
            return root
    return None


def _git(root: str, *args: str) -> str | None:
    # safe.directory: root reads a checkout another user owns (a clone in a home directory)
    cmd = ["git", "-c", "safe.directory=*", "-C", root, *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def _from_git(root: str) -> str | None:
    head = _git(root, "rev-parse", "HEAD")
    if not head or not head.strip():
        return None
    return head.strip() + "\n" + (_git(root, "diff", "HEAD") or "")


def _from_formula_file(text: str | None) -> str | None:
    """ "<version>-<release> (FORMULA)" from FORMULA's text, if it is this formula's."""
    if not text:
        return None
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and not line.startswith((" ", "\t")):
            fields[key.strip()] = value.strip().strip("'\"")
    if fields.get("name") != FORMULA_NAME or not fields.get("version"):
        return None  # another formula's FORMULA earlier in file_roots
    release = f"-{fields['release']}" if fields.get("release") else ""
    return f"{fields['version']}{release} (FORMULA, no git revision)\n"


def formula_version(root: str | None = None, saltenv: str = "base") -> str:
    """The text of /etc/chatmail-version: this formula's revision, never an error.

    ``root``: read a formula directory instead of what the fileserver
    serves (scripts/install-relay asks its source checkout before it
    places a copy without ``.git``).

    CLI Example::

        salt-call --out=newline_values_only chatmail.formula_version
    """
    if root is not None:
        formula = Path(root, "FORMULA")
        text = formula.read_text(encoding="utf-8") if formula.is_file() else None
        return _from_git(root) or _from_formula_file(text) or "unknown\n"
    served = _served("chatmail/VERSION", saltenv)
    if served and served.strip():
        return served if served.endswith("\n") else served + "\n"
    local_root = _formula_root(saltenv)
    return (
        (_from_git(local_root) if local_root else None)
        or _from_formula_file(_served("FORMULA", saltenv))
        or "unknown\n"
    )
