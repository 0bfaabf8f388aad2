"""chatmail.backup / restore / backups / migrate_copy / migrate_adopt: what a relay cannot regenerate.

Everything else on a relay (configuration, packages, units, the website)
comes back from pillar with one ``state.apply chatmail``.  What does not
is listed in one table, :func:`_items`: the mailboxes (messages, the
accounts' password hashes, Dovecot's indexes, the last-login stamps, push
tokens), the DKIM signing key, the TLS material of the chosen tls_mode,
the TURN secret and the Postfix queue.  docs/backup.md says why these and
no others.

A backup is a restic snapshot (encrypted, deduplicated, incremental); the
repository is a local directory or any restic URL (sftp:, rest:, s3:...).
Consistency: Postfix and Dovecot are frozen (``systemctl freeze``: their
processes are suspended, connections stay open) while the items are
staged into one directory next to the mailboxes; message files, which
neither daemon ever changes in place, are hard-linked, everything else
(indexes, queue files, keys) is copied.  The daemons thaw after the
staging, typically well under a second; restic then reads the staged
tree at leisure.  Where freezing is not available the two daemons are
stopped and started instead.

Minion options (for tests or unusual layouts):

* ``chatmail.backup_root`` - prefix for every path of the table (default ``/``)
* ``chatmail.restic`` - the restic program (default ``restic``)
* ``chatmail.rsync`` - the rsync program (default ``rsync``)

``chatmail.migrate_copy`` and ``chatmail.migrate_adopt`` move the same
items from an old relay to a new one with rsync over SSH, for operators
without a Salt master (at the end of this file; docs/migration.md).

A remote repository's credentials (restic's environment variables) go in
``/etc/chatmail-backup/env``, one KEY=VALUE a line, root only.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import grp
import json
import os
import pwd
import secrets
import shutil
import socket
import time
from collections.abc import Iterator
from typing import Any

from salt.exceptions import CommandExecutionError

__virtualname__ = "chatmail"

DEFAULTS = {"chatmail.backup_root": "/", "chatmail.restic": "restic", "chatmail.rsync": "rsync"}
FORMAT = 1
MANIFEST = "manifest.json"
LOCK = "/run/chatmail-backup.lock"  # one backup or restore at a time
# credentials of a remote repository (AWS_ACCESS_KEY_ID=..., RESTIC_REST_USERNAME=...)
ENV_FILE = "/etc/chatmail-backup/env"
# the daemons that write mailboxes and the queue; paused while staging
PAUSED_UNITS = ("dovecot.service", "postfix@-.service")
# the daemons that read restored items; restarted (if running) after a restore
READERS = (
    "opendkim.service",
    "coturn.service",
    "chatmail-dicts.service",  # chatmail-metadata reads the TURN secret
    "dovecot.service",
    "postfix@-.service",
    "nginx.service",
)
# Postfix queue directories that hold mail or its delivery state (Postfix's
# own list for moving a queue); the rest of the spool is made by Postfix.
QUEUE_DIRS = ("maildrop", "incoming", "active", "deferred", "hold", "corrupt", "defer", "bounce", "trace", "flush")
MAILDIR_MESSAGE_DIRS = ("cur", "new")
# the storage jobs' cache of this file system's inodes (chatmaild/storeindex.py): never carried
STORE_INDEX_NAME = ".chatmail-store-index"


def __virtual__():
    return __virtualname__


# -- the table -----------------------------------------------------------------


def _items(s: dict[str, Any]) -> list[dict[str, str]]:
    """What a backup holds: name (its place in the snapshot), path, owner, group, how it is staged.

    ``maildir``: message files hard-linked, the rest copied; ``copy``: copied.
    Owners are names: a fresh relay's uids differ from the old one's.
    The paths are those the states write (chatmail/parameters/defaults.yaml).
    """
    params = __salt__["chatmail.params"]()
    tls = {
        "acme": [("tls/acme", params["tls"]["acme_state"], "root", "root")],
        "self_signed": [
            ("tls/cert", s["tls_cert_path"], "root", "root"),
            ("tls/key", s["tls_key_path"], "root", "root"),
        ],
        "external": [("tls/cert", s["tls_cert_path"], "root", "root"), ("tls/key", s["tls_key_path"], "root", "root")],
    }[s["tls_mode"]]
    rows = [
        ("mailboxes", s["mailboxes_dir"], "vmail", "vmail", "maildir"),
        ("dkim", params["opendkim"]["keydir"], "opendkim", "opendkim", "copy"),
        ("turn", params["turn"]["secret_dir"], "root", "vmail", "copy"),
        *((name, path, user, group, "copy") for name, path, user, group in tls),
        *(
            (
                f"postfix-queue/{d}",
                f"/var/spool/postfix/{d}",
                "postfix",
                "postdrop" if d == "maildrop" else "postfix",
                "copy",
            )
            for d in QUEUE_DIRS
        ),
    ]
    return [{"name": n, "path": p, "user": u, "group": g, "staging": k} for n, p, u, g, k in rows]


def backup_items(pillar: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """The table of what a backup (and a move) holds, for this relay's settings.

    CLI Example::

        salt-call chatmail.backup_items
    """
    return _items(_settings(pillar))


# -- helpers -------------------------------------------------------------------


def _opt(key: str) -> str:
    return __opts__.get(key) or DEFAULTS[key]


def _host_path(path: str) -> str:
    """``path`` of the relay under ``chatmail.backup_root``."""
    return os.path.join(_opt("chatmail.backup_root"), path.lstrip("/"))


def _settings(pillar: dict[str, Any] | None) -> dict[str, Any]:
    return __salt__["chatmail.settings"](pillar)


def _staging_dir(s: dict[str, Any], what: str) -> str:
    """Next to the mailboxes (same filesystem: hard links and renames work), outside any mailbox."""
    return os.path.join(os.path.dirname(_host_path(s["mailboxes_dir"])), f".chatmail-{what}-staging")


def _run(args: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> dict[str, Any]:
    return __salt__["cmd.run_all"](
        args, env=env, cwd=cwd, python_shell=False, ignore_retcode=True, output_loglevel="quiet"
    )


def _restic(repository: str, password_file: str, *args: str, cwd: str | None = None) -> dict[str, Any]:
    if shutil.which(_opt("chatmail.restic")) is None:
        raise CommandExecutionError(
            "restic is not installed: apt-get install restic (the formula installs it "
            "when pillar chatmail:backup_repository is set)"
        )
    env = {**_env_file(), "RESTIC_REPOSITORY": repository, "RESTIC_PASSWORD_FILE": password_file}
    return _run([_opt("chatmail.restic"), *args], env=env, cwd=cwd)


def _restic_ok(repository: str, password_file: str, *args: str, cwd: str | None = None) -> str:
    ret = _restic(repository, password_file, *args, cwd=cwd)
    if ret["retcode"] != 0:
        raise CommandExecutionError(
            f"restic {args[0]} on {repository} failed (exit {ret['retcode']}): "
            f"{(ret['stderr'] or ret['stdout']).strip()}"
        )
    return ret["stdout"]


def _env_file() -> dict[str, str]:
    """KEY=VALUE lines of ENV_FILE (if any), for restic's remote backends."""
    try:
        with open(_host_path(ENV_FILE), encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return {}
    pairs = (line.partition("=") for line in lines if line.strip() and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, sep, value in pairs if sep}


def _target(s: dict[str, Any], repository: str | None, password_file: str | None) -> tuple[str, str]:
    repository = repository or s["backup_repository"]
    if not repository:
        raise CommandExecutionError(
            "no backup repository: set pillar chatmail:backup_repository or pass repository=/path/or/restic-url"
        )
    return repository, _host_path(password_file or s["backup_password_file"])


def _ensure_password(password_file: str) -> bool:
    """Make a random password file if there is none; True when made (the operator must copy it away)."""
    if os.path.exists(password_file):
        return False
    os.makedirs(os.path.dirname(password_file), mode=0o700, exist_ok=True)
    fd = os.open(password_file + ".new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(32) + "\n")
    os.replace(password_file + ".new", password_file)
    return True


def _ensure_repository(repository: str, password_file: str) -> bool:
    """Open the repository, or create it; True when created."""
    ret = _restic(repository, password_file, "cat", "config")
    if ret["retcode"] == 0:
        return False
    if "wrong password" in ret["stderr"]:
        raise CommandExecutionError(f"restic repository {repository}: wrong password in {password_file}")
    _restic_ok(repository, password_file, "init")
    return True


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CommandExecutionError(f"another backup or restore runs (lock {path})") from None
        yield


def _systemctl(*args: str) -> dict[str, Any] | None:
    if shutil.which("systemctl") is None:
        return None
    return _run(["systemctl", *args])


def _active_units(units: tuple[str, ...]) -> list[str]:
    out = _systemctl("is-active", *units)
    if out is None:
        return []
    states = out["stdout"].split()
    return [unit for unit, state in zip(units, states) if state == "active"]


@contextlib.contextmanager
def _paused(report: dict[str, Any]) -> Iterator[None]:
    """Hold Postfix and Dovecot still: freeze them, or stop them where freezing fails."""
    units = _active_units(PAUSED_UNITS)
    started = time.monotonic()
    how = "none (not running)"
    if units:
        frozen = _systemctl("freeze", *units)
        if frozen["retcode"] == 0:
            how = "frozen"
        else:
            _systemctl("thaw", *units)
            _systemctl("stop", *units)
            how = "stopped"
    try:
        yield
    finally:
        if how == "frozen":
            _systemctl("thaw", *units)
        elif how == "stopped":
            _systemctl("start", *reversed(units))
        report.update(pause=how, paused_units=units, pause_s=round(time.monotonic() - started, 3))


def _stage_tree(src: str, dst: str, maildir: bool, counts: dict[str, int]) -> None:
    """Copy ``src`` to ``dst`` keeping modes, times and owners; maildir messages as hard links.

    A maildir's ``tmp`` holds half-delivered files only: not staged; nor is the
    storage jobs' index, whose entries name the old file system's inodes.
    """
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        target = os.path.normpath(os.path.join(dst, rel))
        os.makedirs(target, exist_ok=True)
        _copy_meta(dirpath, target)
        base = os.path.basename(dirpath)
        if maildir and base == "tmp":
            dirnames[:] = []
            continue
        link = maildir and base in MAILDIR_MESSAGE_DIRS
        for name in filenames:
            if maildir and rel == "." and name == STORE_INDEX_NAME:
                continue
            path, out = os.path.join(dirpath, name), os.path.join(target, name)
            if os.path.islink(path):
                os.symlink(os.readlink(path), out)
                continue
            try:
                if not link:
                    raise OSError
                os.link(path, out)
                counts["linked"] += 1
            except FileNotFoundError:
                continue  # expunged between listing and linking (the daemons are paused: rare)
            except OSError:
                try:
                    shutil.copy2(path, out)
                except FileNotFoundError:
                    continue
                _copy_meta(path, out)
                counts["copied"] += 1
            counts["bytes"] += os.lstat(out).st_size
            if link:
                counts["messages"] += 1


def _copy_meta(src: str, dst: str) -> None:
    st = os.lstat(src)
    if os.geteuid() == 0:
        os.lchown(dst, st.st_uid, st.st_gid)
    os.chmod(dst, st.st_mode & 0o7777)


def _stage(s: dict[str, Any], staging: str) -> dict[str, Any]:
    """Put every item present on this relay into ``staging``; the manifest says which."""
    counts = {"linked": 0, "copied": 0, "bytes": 0, "messages": 0}
    staged, absent = [], []
    for item in _items(s):
        src, dst = _host_path(item["path"]), os.path.join(staging, item["name"])
        if not os.path.lexists(src):
            absent.append(item["name"])
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.isdir(src):
            _stage_tree(src, dst, item["staging"] == "maildir", counts)
            item = {**item, "kind": "dir"}
        else:
            shutil.copy2(src, dst)
            _copy_meta(src, dst)
            counts["copied"] += 1
            counts["bytes"] += os.lstat(dst).st_size
            item = {**item, "kind": "file"}
        staged.append(item)
    return {"items": staged, "absent": absent, "counts": counts}


def _accounts(mailboxes: str) -> list[str]:
    try:
        return sorted(e for e in os.listdir(mailboxes) if "@" in e and os.path.isdir(os.path.join(mailboxes, e)))
    except FileNotFoundError:
        return []


def _write_manifest(staging: str, s: dict[str, Any], staged: dict[str, Any]) -> dict[str, Any]:
    manifest = {
        "format": FORMAT,
        "mail_domain": s["mail_domain"],
        "tls_mode": s["tls_mode"],
        "hostname": socket.gethostname(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "items": staged["items"],
        "absent": staged["absent"],
        "accounts": len(_accounts(os.path.join(staging, "mailboxes"))),
        "messages": staged["counts"]["messages"],
    }
    fd = os.open(os.path.join(staging, MANIFEST), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(manifest, fh, indent=1)
    return manifest


def _summary(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("message_type") == "summary":
            return data
    raise CommandExecutionError(f"restic backup gave no summary: {stdout[-500:]}")


def _fresh_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, mode=0o700)
    os.chmod(path, 0o700)


# -- public functions ----------------------------------------------------------


def backup(
    repository: str | None = None,
    password_file: str | None = None,
    keep: int | None = None,
    pillar: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Back up what this relay cannot regenerate into a restic repository (encrypted).

    repository
        a directory or a restic URL (sftp:host:/path, rest:https://..., s3:...);
        default pillar ``chatmail:backup_repository``; made on first use
    password_file
        the repository password; default ``chatmail:backup_password_file``;
        made (random) on first use: copy it off the relay, a restore needs it
    keep
        snapshots to keep after this one (older ones are pruned); 0 keeps
        all; default ``chatmail:backup_keep``
    pillar
        settings instead of pillar ``chatmail`` (what the timer passes)

    Returns the snapshot id, the size read (``size_bytes``) and added to
    the repository (``added_bytes``), accounts and messages, how Postfix
    and Dovecot were paused and for how long, and the duration.

    CLI Example::

        salt-call chatmail.backup
        salt-call --out=json chatmail.backup repository=/srv/backup/chatmail keep=30
    """
    started = time.monotonic()
    s = _settings(pillar)
    repository, password_file = _target(s, repository, password_file)
    keep = s["backup_keep"] if keep is None else int(keep)
    if keep < 0:
        raise CommandExecutionError(f"keep: got {keep}; expected a number of snapshots >= 0 (0 keeps all)")
    staging = _staging_dir(s, "backup")
    report: dict[str, Any] = {"repository": repository, "password_file": password_file}
    with _locked(_host_path(LOCK)):
        report["password_file_created"] = _ensure_password(password_file)
        report["repository_created"] = _ensure_repository(repository, password_file)
        _fresh_dir(staging)
        try:
            t0 = time.monotonic()
            with _paused(report):
                staged = _stage(s, staging)
            report["stage_s"] = round(time.monotonic() - t0, 3)
            manifest = _write_manifest(staging, s, staged)
            t1 = time.monotonic()
            out = _restic_ok(
                repository,
                password_file,
                "backup",
                "--json",
                "--tag",
                "chatmail",
                "--host",
                s["mail_domain"],
                ".",
                cwd=staging,
            )
            summary = _summary(out)
            report["upload_s"] = round(time.monotonic() - t1, 3)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if keep:
            _restic_ok(
                repository,
                password_file,
                "forget",
                "--tag",
                "chatmail",
                "--host",
                s["mail_domain"],
                "--keep-last",
                str(keep),
                "--prune",
            )
    report.update(
        snapshot=summary["snapshot_id"],
        items=[item["name"] for item in manifest["items"]],
        absent=manifest["absent"],
        accounts=manifest["accounts"],
        messages=manifest["messages"],
        files=summary["total_files_processed"],
        size_bytes=summary["total_bytes_processed"],
        added_bytes=summary["data_added"],
        kept=keep or "all",
        duration_s=round(time.monotonic() - started, 3),
    )
    return report


def backups(
    repository: str | None = None, password_file: str | None = None, pillar: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The snapshots in the repository, newest last (id, time, host).

    CLI Example::

        salt-call chatmail.backups
    """
    s = _settings(pillar)
    repository, password_file = _target(s, repository, password_file)
    snapshots = json.loads(_restic_ok(repository, password_file, "snapshots", "--json", "--tag", "chatmail") or "[]")
    return [{"id": snap["short_id"], "time": snap["time"], "host": snap.get("hostname")} for snap in snapshots]


def _owners_missing(items: list[dict[str, str]]) -> list[str]:
    missing = []
    for item in items:
        for name, lookup in ((item["user"], pwd.getpwnam), (item["group"], grp.getgrnam)):
            try:
                lookup(name)
            except KeyError:
                if name not in missing:
                    missing.append(name)
    return missing


def _install_stage() -> None:
    """The formula's install stage: packages and the users that own the data, nothing started."""
    _apply_or_raise({"stages": ["install"]}, "the install stage (which makes the users owning the data) failed")


def _apply_or_raise(pillar: dict[str, Any], what: str, hint: str = "") -> None:
    """``state.apply chatmail`` with ``pillar`` merged in; CommandExecutionError naming the failed states."""
    ret = __salt__["state.apply"]("chatmail", pillar={"chatmail": pillar})
    failed = [
        f"{v.get('__id__', k)}: {v.get('comment')}"
        for k, v in (ret.items() if isinstance(ret, dict) else [])
        if isinstance(v, dict) and v.get("result") is False
    ]
    if failed or not isinstance(ret, dict):
        raise CommandExecutionError(f"{what}: {'; '.join(failed) or ret}{hint}")


def _chown_tree(path: str, user: str, group: str) -> None:
    uid, gid = pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid
    os.lchown(path, uid, gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)


def _put(src: str, dst: str, kind: str) -> int:
    """Move a restored item into place; a directory's entries replace those of the same name."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if kind == "file":
        shutil.move(src, dst)
        return 1
    if not os.path.isdir(dst):
        shutil.move(src, dst)
        return len(os.listdir(dst))
    entries = os.listdir(src)
    for name in entries:
        out = os.path.join(dst, name)
        if os.path.isdir(out) and not os.path.islink(out):
            shutil.rmtree(out)
        elif os.path.lexists(out):
            os.unlink(out)
        shutil.move(os.path.join(src, name), out)
    return len(entries)


def restore(
    repository: str | None = None,
    password_file: str | None = None,
    snapshot: str = "latest",
    force: bool = False,
    install: bool = True,
    pillar: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Put a backup onto this (fresh) relay; then one ``state.apply chatmail`` serves it.

    The snapshot is restored into a staging directory and checked first:
    a backup of another mail_domain, or a relay that has accounts already
    (unless ``force=True``), stops the restore before anything changes.
    Then every item goes to its place, owned by its owner on this relay
    (users by name: uids differ between relays), the Postfix queue is
    renamed to this filesystem (``postsuper -s``), and daemons already
    running that read the items restart.

    repository, password_file
        as for chatmail.backup (the old relay's password file, copied here)
    snapshot
        a snapshot id from chatmail.backups, default the newest
    force
        restore over existing accounts (same names are replaced)
    install
        when the users owning the data do not exist yet (a relay never
        applied), run the formula's install stage first (packages, users,
        nothing started)

    CLI Example::

        salt-call chatmail.restore repository=/srv/backup/chatmail
        salt-call chatmail.restore snapshot=4f2a9c1e force=True
    """
    started = time.monotonic()
    s = _settings(pillar)
    repository, password_file = _target(s, repository, password_file)
    if not os.path.exists(password_file):
        raise CommandExecutionError(
            f"no password file {password_file}: copy the old relay's backup password there (or pass password_file=)"
        )
    _check_fresh(s, force)
    owners = _owners_missing(_items(s))
    report: dict[str, Any] = {"repository": repository, "install_stage": bool(owners and install)}
    if owners and install:
        _install_stage()  # before anything is written: it makes /home/vmail too
        owners = _owners_missing(_items(s))
    report["owners_missing"] = owners
    staging = _staging_dir(s, "restore")
    with _locked(_host_path(LOCK)):
        _fresh_dir(staging)
        try:
            t0 = time.monotonic()
            _restic_ok(repository, password_file, "restore", snapshot, "--target", staging)
            report["download_s"] = round(time.monotonic() - t0, 3)
            manifest = _read_manifest(staging)
            _check_manifest(manifest, s)
            restored = {}
            for item in manifest["items"]:
                src = os.path.join(staging, item["name"])
                if not os.path.lexists(src):
                    raise CommandExecutionError(f"snapshot {snapshot} lacks {item['name']} its manifest lists")
                if item["user"] not in owners and item["group"] not in owners:
                    _chown_tree(src, item["user"], item["group"])
                restored[item["name"]] = _put(src, _host_path(item["path"]), item["kind"])
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    report["queue_fixed"] = _fix_queue(manifest["items"])
    report["restarted"] = _restart_readers()
    report.update(
        snapshot=snapshot,
        mail_domain=manifest["mail_domain"],
        created=manifest["created"],
        items=restored,
        accounts=manifest["accounts"],
        messages=manifest["messages"],
        duration_s=round(time.monotonic() - started, 3),
    )
    return report


def _read_manifest(staging: str) -> dict[str, Any]:
    try:
        with open(os.path.join(staging, MANIFEST), encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (OSError, ValueError) as exc:
        raise CommandExecutionError(f"the snapshot is not a chatmail backup (no readable {MANIFEST}: {exc})") from None
    if manifest.get("format") != FORMAT:
        raise CommandExecutionError(f"backup format {manifest.get('format')!r}; this formula reads format {FORMAT}")
    return manifest


def _check_manifest(manifest: dict[str, Any], s: dict[str, Any]) -> None:
    if manifest["mail_domain"] != s["mail_domain"]:
        raise CommandExecutionError(
            f"the backup is of {manifest['mail_domain']}, this relay's mail_domain is {s['mail_domain']}; "
            "a restore moves a relay's identity: set pillar chatmail:mail_domain to the backup's domain"
        )
    if manifest["tls_mode"] != s["tls_mode"]:
        raise CommandExecutionError(
            f"the backup has tls_mode {manifest['tls_mode']}, this relay's is {s['tls_mode']}; expected the same"
        )


def _check_fresh(s: dict[str, Any], force: bool) -> None:
    existing = _accounts(_host_path(s["mailboxes_dir"]))
    if existing and not force:
        raise CommandExecutionError(
            f"this relay has {len(existing)} accounts already ({', '.join(existing[:3])}...); "
            "expected a fresh relay, or force=True to restore over them"
        )


def _fix_queue(items: list[dict[str, str]]) -> bool | str:
    """Queue files are named after their inode (short queue ids): ``postsuper -s`` renames them."""
    if not any(item["name"].startswith("postfix-queue/") for item in items):
        return False
    if shutil.which("postsuper") is None or _opt("chatmail.backup_root") != "/":
        return "postsuper not run (no Postfix here)"
    ret = _run(["postsuper", "-s"])
    if ret["retcode"] != 0:  # the files are in place: say what to run once Postfix is configured
        return f"postsuper -s failed ({ret['stderr'].strip()}); run it before Postfix starts"
    return "renamed (postsuper -s)"


def _restart_readers() -> list[str]:
    units = _active_units(READERS)
    if units:
        _systemctl("restart", *units)
    return units


# -- moving a relay without a master (docs/migration.md) -------------------------

DEFAULT_SSH = "ssh -o BatchMode=yes"  # root's own key and known_hosts (the masterless steps)
MAIL_ON_AGAIN = 'salt-call state.apply chatmail pillar=\'{"chatmail": {"disable_mail": false}}\''


def _rsync(args: list[str]) -> dict[str, Any]:
    program = _opt("chatmail.rsync")
    if shutil.which(program) is None:
        raise CommandExecutionError("rsync is not installed: apt-get install rsync (on both relays)")
    return __salt__["cmd.run_all"]([program, *args], python_shell=False, ignore_retcode=True, output_loglevel="quiet")


def _destination(to: str, path: str) -> str:
    if to.startswith("/"):
        return os.path.join(to, path.lstrip("/"))
    return f"{to}:{path}"


def _sync(src: str, dst: str, is_dir: bool, check: bool, ssh: str = DEFAULT_SSH) -> list[str]:
    """rsync ``src`` to ``dst`` (a directory's content, deleting what is gone); with ``check`` a dry run.

    Returns the itemized changes (empty: both sides are equal).
    """
    flags = ["-aH", "--numeric-ids", "--delete", "--itemize-changes", "--mkpath"]
    if check:
        flags.append("--dry-run")
    source = src.rstrip("/") + "/" if is_dir else src
    target = dst.rstrip("/") + "/" if is_dir else dst
    if dst.startswith("/") and not is_dir:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
    ret = _rsync([*flags, "-e", ssh, source, target])
    if ret["retcode"] not in (0, 24):  # 24: files vanished while copying (expunged): the next pass has them
        raise CommandExecutionError(f"rsync {src} -> {dst} failed (exit {ret['retcode']}): {ret['stderr'].strip()}")
    return [line for line in ret["stdout"].splitlines() if line.strip()]


def _mail_off(s: dict[str, Any]) -> str:
    """Stop mail on this relay through the formula (disable_mail); how it went."""
    if _opt("chatmail.backup_root") != "/":
        return "skipped (not the live system)"
    _apply_or_raise({"disable_mail": True}, "disabling mail failed", f"; to take mail again: {MAIL_ON_AGAIN}")
    return "disabled"


def migrate_copy(
    to: str,
    final: bool = False,
    pillar: dict[str, Any] | None = None,
    ssh: str = DEFAULT_SSH,
    mail_off: bool = True,
) -> dict[str, Any]:
    """On the OLD relay: copy its data to the new relay ``to`` (``root@host``), verified.

    Without ``final`` only the mailboxes are copied, while mail keeps
    flowing (a pre-copy that makes the final one short).  With
    ``final=True`` mail is turned off here first (``disable_mail``, through
    the formula), then every item of a backup is copied (mailboxes, DKIM
    key, TLS material, TURN secret, Postfix queue) and checked.
    ``mail_off=False`` leaves mail as it is (the orchestration turns it
    off in a step of its own, and checks that).  ``ssh`` is rsync's remote shell (the orchestration passes one with the
    key it made for the move, chatmail.migrate_key).

    CLI Example::

        salt-call chatmail.migrate_copy to=root@new.example.org
        salt-call chatmail.migrate_copy to=root@new.example.org final=True
    """
    started = time.monotonic()
    s = _settings(pillar)
    items = _items(s)
    report: dict[str, Any] = {"to": to, "final": bool(final)}
    if final and mail_off:
        t0 = time.monotonic()
        report["mail"] = _mail_off(s)
        report["mail_off_s"] = round(time.monotonic() - t0, 3)
        report["mail_on_again"] = MAIL_ON_AGAIN
    copied, left = {}, {}
    for item in items:
        if not final and item["staging"] != "maildir":
            continue
        src = _host_path(item["path"])
        if not os.path.lexists(src):
            continue
        is_dir = os.path.isdir(src)
        dst = _destination(to, item["path"])
        try:
            copied[item["name"]] = len(_sync(src, dst, is_dir, check=False, ssh=ssh))
            pending = _sync(src, dst, is_dir, check=True, ssh=ssh)
        except CommandExecutionError as exc:
            if final:
                raise CommandExecutionError(
                    f"{exc}; mail is off on this relay; to take mail again: {MAIL_ON_AGAIN}"
                ) from None
            raise
        if pending and final:
            left[item["name"]] = pending[:5]
    if left:
        raise CommandExecutionError(
            f"the copy differs after the final sync: {left}; "
            f"mail is off on this relay; to take mail again: {MAIL_ON_AGAIN}"
        )
    report.update(items=copied, verified=final, duration_s=round(time.monotonic() - started, 3))
    return report


def migrate_adopt(pillar: dict[str, Any] | None = None) -> dict[str, Any]:
    """On the NEW relay, after the final copy: owners by name, the Postfix queue renamed, readers restarted.

    The daemons already running that read the copied items (nginx, OpenDKIM,
    coturn, ...; Debian starts some at install) are restarted, so that they
    serve the old relay's certificate, key and secret.

    Needs the users (run the install stage first, as the steps say). Then
    ``state.apply chatmail`` activates the relay.

    CLI Example::

        salt-call chatmail.migrate_adopt
    """
    s = _settings(pillar)
    items = _items(s)
    missing = _owners_missing(items)
    if missing:
        raise CommandExecutionError(
            f"users {', '.join(missing)} missing: apply the install stage first "
            '(salt-call state.apply chatmail pillar=\'{"chatmail": {"stages": ["install"]}}\')'
        )
    owned = []
    for item in items:
        path = _host_path(item["path"])
        if os.path.lexists(path):
            _chown_tree(path, item["user"], item["group"])
            owned.append(item["name"])
    queue = _fix_queue(items)
    # daemons Debian started at install read the old relay's key, certificate and secret only
    # when they start again; a later apply's watch sees no config change to restart them for
    restarted = _restart_readers() if _opt("chatmail.backup_root") == "/" else []
    return {
        "owned": owned,
        "accounts": len(_accounts(_host_path(s["mailboxes_dir"]))),
        "queue": queue,
        "restarted": restarted,
    }
