"""chatmail.settings / chatmail.params / chatmail.init_ini / chatmail.ini_to_pillar.

The formula's settings live in pillar ``chatmail``; their keys, types and
defaults come from one table (``_utils/chatmail_config.py``: the relay's
keys from chatmaild/config.py, the table its services use, then the keys
only the formula reads).  ``chatmail.settings`` is what ``map.jinja``
calls: it validates the pillar and raises before any state runs, so a bad
value never reaches a config file.
"""

from __future__ import annotations

import os
from typing import Any

from salt.exceptions import CommandExecutionError

__virtualname__ = "chatmail"


def __virtual__():
    return __virtualname__


def settings(pillar: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validated settings from pillar ``chatmail`` (or ``pillar``), with derived values.

    Raises CommandExecutionError naming every bad key, its value and the
    expected form.

    CLI Example::

        salt-call chatmail.settings
    """
    if pillar is None:
        pillar = __pillar__.get("chatmail", {})
    try:
        values = __utils__["chatmail_config.validate"](pillar, "pillar chatmail")
    except ValueError as exc:
        raise CommandExecutionError(str(exc)) from None
    values.update(__utils__["chatmail_config.derived"](values))
    values["ini"] = __utils__["chatmail_config.render_ini"](values)
    return values


def params(osfinger: str | None = None) -> dict[str, Any]:
    """The formula's constants for this minion's Debian release (or ``osfinger``).

    chatmail/parameters/defaults.yaml with osfinger/<grains.osfinger>.yaml
    merged over it (recursively; a list replaces a list), template-formula
    style.  map.jinja takes its ``params`` from here, and so do execution
    modules that need a per-release value (chatmail.status: which unit runs
    Postfix's master), so both read one table.  An unsupported release
    gets the defaults (chatmail.preflight stops a run there).

    CLI Example::

        salt-call chatmail.params
    """
    import salt.utils.yaml

    def load(name: str) -> dict[str, Any]:
        text = __salt__["cp.get_file_str"](f"salt://chatmail/parameters/{name}")
        return (salt.utils.yaml.safe_load(text) or {}) if text else {}

    defaults = load("defaults.yaml")
    if not defaults:
        raise CommandExecutionError("salt://chatmail/parameters/defaults.yaml is missing: the formula is not served")
    release = __grains__.get("osfinger", "") if osfinger is None else osfinger
    per_release = load(f"osfinger/{release}.yaml") if release in defaults.get("releases", {}) else {}
    return __salt__["slsutil.merge"](defaults, per_release, strategy="recurse")


def init_ini(mail_domain: str, path: str = "chatmail.ini", force: bool = False) -> dict[str, Any]:
    """Write a fresh chatmail.ini for ``mail_domain`` (like ``cmdeploy init``).

    Refuses to overwrite an existing file unless ``force=True``.

    CLI Example::

        salt-call chatmail.init_ini chat.example.org path=/root/chatmail.ini
    """
    path = os.path.abspath(path)
    if os.path.exists(path) and not force:
        raise CommandExecutionError(f"{path} exists; pass force=True to replace it")
    values = settings({"mail_domain": mail_domain})
    text = __utils__["chatmail_config.render_ini"](values)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return {"path": path, "mail_domain": mail_domain, "written": True}


def ini_to_pillar(path: str = "chatmail.ini") -> str:
    """The pillar YAML (``chatmail:`` ...) equivalent to an existing chatmail.ini.

    Values are validated and typed, so the result is what the formula will use.

    CLI Example::

        salt-call --out=txt chatmail.ini_to_pillar /root/chatmail.ini
    """
    import salt.utils.yaml

    try:
        raw = __utils__["chatmail_config.read_ini"](path)
        __utils__["chatmail_config.validate"](raw, path)
    except (OSError, ValueError) as exc:
        raise CommandExecutionError(str(exc)) from None
    return salt.utils.yaml.safe_dump({"chatmail": raw}, default_flow_style=False)
