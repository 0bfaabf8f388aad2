"""chatmail.settings / chatmail.params / chatmail.stale_paths / chatmail.init_ini / chatmail.ini_to_pillar.

The formula's settings live in pillar ``chatmail``; their keys, types and
defaults come from one table (``_utils/chatmail_config.py``: the relay's
keys from chatmaild/config.py, the table its services use, then the keys
only the formula reads).  ``chatmail.settings`` is what ``map.jinja``
calls: it validates the pillar and raises before any state runs, so a bad
value never reaches a config file.
"""

from __future__ import annotations

import copy
import json
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
    # every SLS file of a run imports map.jinja: validate each pillar once per run
    key = "chatmail.settings:" + json.dumps(pillar, sort_keys=True, default=str)
    if key not in __context__:
        try:
            values = __utils__["chatmail_config.validate"](pillar, "pillar chatmail")
        except ValueError as exc:
            raise CommandExecutionError(str(exc)) from None
        values.update(__utils__["chatmail_config.derived"](values, params()["tls"]))
        values["ini"] = __utils__["chatmail_config.render_ini"](values)
        __context__[key] = values
    return copy.deepcopy(__context__[key])


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


def params() -> dict[str, Any]:
    """The formula's constants for this minion's release: chatmail/parameters/, merged as map.jinja merges it.

    The states read it as ``params``; the modules read it here (paths the
    states write: the DKIM key directory, acmetool's state, ...).

    CLI Example::

        salt-call --out=yaml chatmail.params
    """
    key = "chatmail.params:" + str(__grains__.get("osfinger", ""))
    if key not in __context__:  # read once per run: every SLS file asks (map.jinja)
        __context__[key] = __utils__["chatmail_params.load"](__salt__, __grains__)
    return copy.deepcopy(__context__[key])


def stale_paths(files: list[dict[str, Any]]) -> list[str]:
    """What a daemon reads of a ``files`` table (chatmail/parameters/defaults.yaml), for its stale restart.

    Each file's path, but for a unit drop-in (in a ``*.d`` directory) the
    directory, so an operator's own drop-ins count too; entries with
    ``stale: false`` are left out.  The ``service()`` macro
    (chatmail/service.jinja) calls it: a loop in Jinja would be compiled
    again by every SLS file that imports the macro.

    CLI Example::

        salt-call chatmail.stale_paths '[{"path": "/etc/x.conf"}]'
    """
    paths = []
    for file in files:
        if not file.get("stale", True):
            continue
        parent = os.path.dirname(file["path"])
        paths.append(parent if file.get("unit_file") and parent.endswith(".d") else file["path"])
    return paths
