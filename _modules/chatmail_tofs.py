"""chatmail.files_switch: where a file.managed state finds its template (TOFS, docs/tofs.md).

The macro ``files_switch`` of chatmail/libtofs.jinja calls it.  It is
Python, not Jinja, because Salt compiles an imported Jinja file again for
every SLS file that imports it (a Jinja environment per SLS file): its
loops cost about 13 ms in each of the SLS files that manage templates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__virtualname__ = "chatmail"


def __virtual__():
    return __virtualname__


def _grain_folders(grain: str) -> list[str]:
    """The folder names of one grain: its value, or each item of a list value; none for a mapping or nothing."""
    value = __salt__["grains.get"](grain)
    if isinstance(value, (str, int, float)):
        values = [value]
    elif isinstance(value, Sequence) and not isinstance(value, Mapping):
        values = list(value)
    else:
        values = []
    return [str(item) for item in values if item is not None and str(item)]


def _listing(base: str, saltenv: str | None) -> list[str]:
    """The files under salt://``base`` (paths relative to the roots), listed once per run."""
    key = f"chatmail.files_switch:{saltenv}:{base}"
    if key not in __context__:
        __context__[key] = __salt__["cp.list_master"](saltenv=saltenv, prefix=base)
    return __context__[key]


def files_switch(
    component: str, files: str | list[str], state_id: str, tofs: Mapping[str, Any], saltenv: str | None = None
) -> str:
    """The one template source of state ``state_id``: the first candidate in the file roots, else the formula's.

    ``files``: the formula's file name (or names); ``tofs``: the validated
    pillar chatmail:tofs (path_prefix, files_switch, source_files).  The
    candidates, in order, for each name (source_files[state_id] if given):
    salt://P/C/files/<value of each grain of files_switch>/<name>, then
    salt://P/C/files/default/<name>; the fallback is
    salt://chatmail/C/files/<first of files>.

    CLI Example::

        salt-call chatmail.files_switch postfix main.cf.j2 chatmail-postfix-main-cf-file-managed \
            '{"path_prefix": "chatmail", "files_switch": ["id"], "source_files": {}}'
    """
    defaults = [files] if isinstance(files, str) else list(files)
    names = tofs["source_files"].get(state_id, defaults)
    folders = [folder for grain in tofs["files_switch"] for folder in _grain_folders(grain)] + ["default"]
    base = f"{tofs['path_prefix']}/{component}/files/"
    listing = _listing(base, saltenv)
    for folder in folders:
        for name in names:
            if f"{base}{folder}/{name}" in listing:
                return f"salt://{base}{folder}/{name}"
    return f"salt://chatmail/{component}/files/{defaults[0]}"
