"""The formula's constants (chatmail/parameters/) for the execution and state modules.

The SLS files read one table, ``chatmail/parameters/defaults.yaml`` merged
with ``osfinger/<grains.osfinger>.yaml``, as ``params`` (chatmail/map.jinja).
A module that needs a path the states write (the DKIM key directory,
acmetool's state, chatmaild's directory) reads the same files here, so
each path is written once.  They come through the minion's file client
(``salt://chatmail/parameters/...``), as the states get them; the merge is
map.jinja's: a release file's key replaces the default's, recursively.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import salt.utils.dictupdate
import salt.utils.yaml

BASE = "salt://chatmail/parameters/"


def merged(defaults: Mapping[str, Any], per_release: Mapping[str, Any]) -> dict[str, Any]:
    """``per_release`` over ``defaults``, recursively (lists replaced): map.jinja's slsutil.merge."""
    return salt.utils.dictupdate.merge(dict(defaults), dict(per_release), strategy="recurse")


def load(funcs: Mapping[str, Callable[..., Any]], grains: Mapping[str, Any]) -> dict[str, Any]:
    """The merged table for this minion's release, read through ``funcs["cp.get_file_str"]`` (``__salt__``).

    Raises RuntimeError naming the file when the formula's tree is not on the
    minion's file roots (then no state of the formula would render either).
    """

    def read(name: str) -> dict[str, Any]:
        text = funcs["cp.get_file_str"](BASE + name)
        if text is False or text is None:
            raise RuntimeError(f"{BASE}{name} not found: the chatmail formula is not on this minion's file_roots")
        return salt.utils.yaml.safe_load(text) or {}

    defaults = read("defaults.yaml")
    release = grains.get("osfinger", "")
    per_release = read(f"osfinger/{release}.yaml") if release in defaults.get("releases", {}) else {}
    return merged(defaults, per_release)
