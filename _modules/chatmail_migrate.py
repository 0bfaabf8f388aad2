"""chatmail.migrate_*: the parts of a move between relays that the orchestration adds to migrate_copy/adopt.

``chatmail.orch.migrate`` (runner ``chatmail_orch``) copies minion to
minion with rsync over SSH, as ``chatmail.migrate_copy`` does for a
masterless operator, but with a key made for the move only:

* :func:`migrate_key` on the old relay makes a key pair in
  :data:`KEY_DIR` (``/root/.ssh/chatmail-migrate``) and returns the
  public half;
* :func:`migrate_authorize` on the new relay puts it in root's
  ``authorized_keys``, restricted (``restrict``: no forwarding, no pty)
  and marked with :data:`MARK`, and returns the new relay's host keys;
* :func:`migrate_trust` on the old relay writes those host keys into
  the key's own known_hosts, so the first connection is verified too;
* :func:`migrate_forget` on either side removes all of it again (the
  orchestration's last step, also after a failure).

:func:`migrate_inventory` is the check both sides answer the same way:
messages per mailbox folder and a digest of every other item, so the
orchestration can compare the old relay with the new one.
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import shutil
from typing import Any

from salt.exceptions import CommandExecutionError

__virtualname__ = "chatmail"

KEY_DIR = "/root/.ssh/chatmail-migrate"
KEY = os.path.join(KEY_DIR, "id_ed25519")
KNOWN_HOSTS = os.path.join(KEY_DIR, "known_hosts")
AUTHORIZED_KEYS = "/root/.ssh/authorized_keys"
MARK = "chatmail-migrate"  # the comment of the key's line in authorized_keys
HOST_KEYS = ("/etc/ssh/ssh_host_ed25519_key.pub", "/etc/ssh/ssh_host_ecdsa_key.pub", "/etc/ssh/ssh_host_rsa_key.pub")
SSH_PACKAGES = {"old": ("rsync", "openssh-client"), "new": ("rsync", "openssh-server")}


def __virtual__():
    return __virtualname__


def ssh_command() -> str:
    """The ``rsync -e`` command that uses the move's key and host keys only (no agent, no prompt)."""
    return (
        f"ssh -o BatchMode=yes -o IdentitiesOnly=yes -i {KEY} "
        f"-o UserKnownHostsFile={KNOWN_HOSTS} -o StrictHostKeyChecking=yes"
    )


def migrate_tools(side: str) -> dict[str, Any]:
    """Install what one side of the move needs (rsync, and ssh client or server); sshd running on the new side."""
    if side not in SSH_PACKAGES:
        raise CommandExecutionError(f"side {side!r}: expected 'old' or 'new'")
    missing = [p for p in SSH_PACKAGES[side] if not __salt__["pkg.version"](p)]
    if missing:
        __salt__["pkg.install"](pkgs=missing)
    if side == "new":
        __salt__["service.start"]("ssh")
    return {"installed": missing}


def migrate_key() -> str:
    """A key pair for the move (made if absent); its public half."""
    if not os.path.exists(KEY):
        os.makedirs(KEY_DIR, mode=0o700, exist_ok=True)
        ret = __salt__["cmd.run_all"](
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", MARK, "-f", KEY], python_shell=False
        )
        if ret["retcode"] != 0:
            raise CommandExecutionError(f"ssh-keygen failed: {ret['stderr'].strip()}")
    with open(KEY + ".pub", encoding="utf-8") as fh:
        return fh.read().strip()


def migrate_authorize(pubkey: str) -> list[str]:
    """Let ``pubkey`` (from migrate_key) in as root, restricted; this host's public keys."""
    parts = pubkey.split()
    if len(parts) < 2 or not parts[0].startswith("ssh-"):
        raise CommandExecutionError(f"not an OpenSSH public key: {pubkey[:40]!r}")
    line = f"restrict {parts[0]} {parts[1]} {MARK}\n"
    os.makedirs(os.path.dirname(AUTHORIZED_KEYS), mode=0o700, exist_ok=True)
    lines = _lines(AUTHORIZED_KEYS)
    if line not in lines:
        _write_lines(AUTHORIZED_KEYS, [*lines, line])
    keys = []
    for path in HOST_KEYS:
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                keys.append(" ".join(fh.read().split()[:2]))
    if not keys:
        raise CommandExecutionError("no SSH host key on this relay (is openssh-server installed?)")
    return keys


def migrate_trust(host: str, host_keys: list[str]) -> str:
    """Trust ``host_keys`` (from migrate_authorize) for ``host`` with the move's key only."""
    os.makedirs(KEY_DIR, mode=0o700, exist_ok=True)
    _write_lines(KNOWN_HOSTS, [f"{host} {key}\n" for key in host_keys])
    return KNOWN_HOSTS


def migrate_reach(to: str) -> bool:
    """``ssh to true`` with the move's key: True, or an error saying why not."""
    ret = __salt__["cmd.run_all"](
        [*ssh_command().split(), to, "true"], python_shell=False, ignore_retcode=True, timeout=60
    )
    if ret["retcode"] != 0:
        raise CommandExecutionError(f"ssh {to} with the move's key failed: {ret['stderr'].strip()}")
    return True


def migrate_forget() -> dict[str, bool]:
    """Remove the move's key pair, its known_hosts and its authorized_keys line (whichever this side has)."""
    removed_dir = os.path.isdir(KEY_DIR)
    shutil.rmtree(KEY_DIR, ignore_errors=True)
    lines = _lines(AUTHORIZED_KEYS)
    kept = [line for line in lines if not line.rstrip().endswith(f" {MARK}")]
    if kept != lines:
        _write_lines(AUTHORIZED_KEYS, kept)
    return {"key": removed_dir, "authorized": kept != lines}


def migrate_inventory(pillar: dict[str, Any] | None = None) -> dict[str, Any]:
    """What this relay holds of a backup's items, comparable between two relays.

    ``mailboxes``: messages (files in ``cur``/``new``) per account and
    folder; ``items``: for every other item present, a SHA-256 over its
    files' relative paths and contents, and its owner (user:group by name);
    the Postfix queue by number of files (queue file names follow inodes,
    so they differ after a copy).
    """
    root = __opts__.get("chatmail.backup_root") or "/"
    out: dict[str, Any] = {"mailboxes": {}, "items": {}, "queue_files": 0}
    for item in __salt__["chatmail.backup_items"](pillar):
        path = os.path.join(root, item["path"].lstrip("/"))
        if not os.path.lexists(path):
            continue
        if item["staging"] == "maildir":
            out["mailboxes"] = _message_counts(path)
        elif item["name"].startswith("postfix-queue/"):
            out["queue_files"] += sum(len(files) for _, _, files in os.walk(path))
        else:
            out["items"][item["name"]] = {"sha256": _digest(path), "owner": _owner(path)}
    out["accounts"] = len(out["mailboxes"])
    out["messages"] = sum(sum(folders.values()) for folders in out["mailboxes"].values())
    return out


def _message_counts(mailboxes: str) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for account in sorted(os.listdir(mailboxes)):
        home = os.path.join(mailboxes, account)
        if "@" not in account or not os.path.isdir(home):
            continue
        folders: dict[str, int] = {}
        for dirpath, dirnames, filenames in os.walk(home):
            if os.path.basename(dirpath) in ("cur", "new"):
                folder = os.path.relpath(os.path.dirname(dirpath), home)
                folders[folder] = folders.get(folder, 0) + len(filenames)
                dirnames[:] = []
        counts[account] = folders
    return counts


def _digest(path: str) -> str:
    h = hashlib.sha256()
    if os.path.isfile(path):
        with open(path, "rb") as fh:
            h.update(fh.read())
        return h.hexdigest()
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            h.update(os.path.relpath(full, path).encode() + b"\0")
            if os.path.isfile(full) and not os.path.islink(full):
                with open(full, "rb") as fh:
                    h.update(fh.read())
    return h.hexdigest()


def _owner(path: str) -> str:
    st = os.lstat(path)

    def name(lookup, num):
        try:
            return lookup(num)[0]
        except KeyError:
            return str(num)

    return f"{name(pwd.getpwuid, st.st_uid)}:{name(grp.getgrgid, st.st_gid)}"


def _lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.readlines()
    except FileNotFoundError:
        return []


def _write_lines(path: str, lines: list[str]) -> None:
    fd = os.open(path + ".new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.writelines(line if line.endswith("\n") else line + "\n" for line in lines)
    os.replace(path + ".new", path)
