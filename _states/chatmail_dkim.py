"""chatmail_dkim.key_present: the relay's DKIM signing key, made once and kept.

The public half of this key is published in DNS
(``opendkim._domainkey.<domain>``), so replacing the key silently breaks
every signature until DNS is updated.  This state therefore only ever
generates a key when none exists, with Debian's ``opendkim-genkey`` run as
the ``opendkim`` user (RSA 2048, like upstream), and otherwise only fixes
ownership and permissions.  Under ``test=True`` it reports what it would
do and changes nothing.

Example::

    chatmail-opendkim-signing-key-present:
      chatmail_dkim.key_present:
        - name: opendkim
        - domain: chat.example.org
        - keydir: {{ params.opendkim.keydir }}
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from typing import Any

__virtualname__ = "chatmail_dkim"


def __virtual__():
    return __virtualname__


# file suffix -> mode the generated file must have
_MODES = {".private": 0o600, ".txt": 0o644}


def _wanted_fixes(path: str, uid: int, gid: int, mode: int) -> list[str]:
    """What differs between ``path`` and the wanted owner/mode, in words."""
    st = os.stat(path)
    fixes = []
    if (st.st_uid, st.st_gid) != (uid, gid):
        fixes.append("owner")
    if stat.S_IMODE(st.st_mode) != mode:
        fixes.append(f"mode {oct(mode)[2:].zfill(4)}")
    return fixes


def key_present(
    name: str,
    domain: str,
    keydir: str,
    user: str = "opendkim",
    group: str = "opendkim",
) -> dict[str, Any]:
    """Ensure ``<keydir>/<name>.private`` exists; never replace an existing key.

    name
        the DKIM selector (chatmail uses ``opendkim``)
    domain
        the signing domain (``mail_domain``)
    keydir
        directory for ``<name>.private`` and ``<name>.txt``
    user / group
        owner of the key files; ``opendkim-genkey`` runs as ``user``
    """
    ret: dict[str, Any] = {"name": name, "result": True, "changes": {}, "comment": ""}
    private = os.path.join(keydir, name + ".private")
    try:
        uid = pwd.getpwnam(user).pw_uid
        gid = grp.getgrnam(group).gr_gid
    except KeyError as exc:
        ret["result"] = False
        ret["comment"] = f"user or group missing: {exc}"
        return ret

    if os.path.exists(private):
        files = [p for p in (os.path.join(keydir, name + s) for s in _MODES) if os.path.exists(p)]
        fixes = {p: _wanted_fixes(p, uid, gid, _MODES[os.path.splitext(p)[1]]) for p in files}
        fixes = {p: f for p, f in fixes.items() if f}
        if not fixes:
            ret["comment"] = f"DKIM key {private} exists (kept)"
            return ret
        ret["changes"] = {"permissions": {p: ", ".join(f) for p, f in fixes.items()}}
        if __opts__["test"]:
            ret["result"] = None
            ret["comment"] = f"DKIM key {private} exists; would fix {', '.join(fixes)}"
            return ret
        for path in fixes:
            os.chown(path, uid, gid)
            os.chmod(path, _MODES[os.path.splitext(path)[1]])
        ret["comment"] = f"DKIM key {private} exists (kept); fixed owner/permissions"
        return ret

    ret["changes"] = {"generated": private}
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"DKIM key {private} would be generated for {domain}"
        return ret

    if not os.path.isdir(keydir):
        os.makedirs(keydir, mode=0o700)
        os.chown(keydir, uid, gid)
    # runuser (util-linux) switches user without a login shell; the
    # opendkim account has /usr/sbin/nologin.
    cmd = ["runuser", "-u", user, "--", "opendkim-genkey", "-D", keydir, "-d", domain, "-s", name]
    out = __salt__["cmd.run_all"](cmd, python_shell=False, cwd=keydir)
    if out["retcode"] != 0 or not os.path.exists(private):
        ret["changes"] = {}
        ret["result"] = False
        ret["comment"] = f"opendkim-genkey failed ({out['retcode']}): {out['stderr'] or out['stdout']}"
        return ret
    for suffix, mode in _MODES.items():
        path = os.path.join(keydir, name + suffix)
        if os.path.exists(path):
            os.chown(path, uid, gid)
            os.chmod(path, mode)
    ret["comment"] = f"DKIM key {private} generated for {domain}; publish it: salt-call chatmail.dkim_record"
    return ret
