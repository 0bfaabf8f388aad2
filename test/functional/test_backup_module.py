"""chatmail.backup / chatmail.restore through Salt's loader, with a real restic.

A relay's files (mailboxes with accounts and messages, the DKIM key, the
TURN secret, TLS files, a Postfix queue file) are laid out under a tmp
root (minion option ``chatmail.backup_root``); a backup goes into a real
restic repository in tmp, and is restored under a second, empty root:
the fresh relay.  This host has no systemd: the pause reports that the
daemons do not run, which is what a backup of a stopped relay sees.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from support.relayfiles import DOMAIN, MAILBOXES, PILLAR, put, seed, tree

pytestmark = pytest.mark.skipif(shutil.which("restic") is None, reason="restic not installed (apt-get install restic)")


@pytest.fixture
def relays(tmp_path):
    """(old relay root, fresh relay root, repository, password file path on the relay)."""
    old, new = tmp_path / "old", tmp_path / "new"
    seed(old)
    new.mkdir()
    return old, new, str(tmp_path / "repo"), "/etc/chatmail-backup/password"


@pytest.fixture
def chatmail(salt_loaders):
    yield salt_loaders.modules.chatmail
    salt_loaders.opts.pop("chatmail.backup_root", None)


def on(salt_loaders, root: Path) -> None:
    salt_loaders.opts["chatmail.backup_root"] = str(root)


def carry_password(old: Path, new: Path, password_file: str) -> None:
    """What the operator does: the old relay's backup password goes to the new relay."""
    put(new, password_file, (old / password_file.lstrip("/")).read_bytes(), 0o600)


def test_backup_then_restore_onto_a_fresh_relay(chatmail, salt_loaders, relays):
    old, new, repo, password_file = relays
    put(old, f"{MAILBOXES}/.chatmail-store-index", b"inode numbers of this file system", 0o600)
    on(salt_loaders, old)
    report = chatmail.backup(repository=repo, pillar=PILLAR)
    print(
        f"\nbackup: {report['size_bytes']} bytes read, {report['added_bytes']} added, "
        f"{report['duration_s']} s (staging {report['stage_s']} s)"
    )
    assert report["password_file_created"] is True and report["repository_created"] is True
    assert (old / password_file.lstrip("/")).stat().st_mode & 0o777 == 0o600
    assert report["accounts"] == 2 and report["messages"] == 6
    assert report["pause"] == "none (not running)"
    assert set(report["items"]) == {"mailboxes", "dkim", "turn", "tls/cert", "tls/key", "postfix-queue/deferred"}
    assert len(chatmail.backups(repository=repo, password_file=password_file, pillar=PILLAR)) == 1
    assert not any(
        p.name.startswith(".chatmail-backup-staging") and p.is_dir() for p in (old / "home/vmail/mail").iterdir()
    ), "the staging copy is removed"

    carry_password(old, new, password_file)
    on(salt_loaders, new)
    restored = chatmail.restore(repository=repo, pillar=PILLAR, install=False)
    assert restored["accounts"] == 2 and restored["messages"] == 6
    expected = {
        path: value
        for path, value in tree(old).items()
        if "/tmp/" not in path and not path.startswith("etc/chatmail-backup") and "store-index" not in path
    }
    got = {path: value for path, value in tree(new).items() if not path.startswith("etc/chatmail-backup")}
    # same bytes, same modes; half-delivered tmp files and the storage jobs' index are not kept
    assert got == expected


def test_second_backup_adds_only_what_changed_and_keep_prunes(chatmail, salt_loaders, relays):
    old, _, repo, password_file = relays
    on(salt_loaders, old)
    first = chatmail.backup(repository=repo, pillar=PILLAR, keep=2)
    put(old, f"{MAILBOXES}/alice0001@{DOMAIN}/new/18000000.M1P1.relay,S=50000", os.urandom(50000))
    second = chatmail.backup(repository=repo, pillar=PILLAR, keep=2)
    assert second["messages"] == first["messages"] + 1
    assert 50000 <= second["added_bytes"] < first["added_bytes"] + 50000
    chatmail.backup(repository=repo, pillar=PILLAR, keep=2)
    snaps = chatmail.backups(repository=repo, password_file=password_file, pillar=PILLAR)
    assert len(snaps) == 2 and second["snapshot"] in [s["id"] for s in snaps]


def test_restore_refuses_before_changing_anything(chatmail, salt_loaders, relays):
    from salt.exceptions import CommandExecutionError

    old, new, repo, password_file = relays
    on(salt_loaders, old)
    chatmail.backup(repository=repo, pillar=PILLAR)

    on(salt_loaders, new)
    with pytest.raises(CommandExecutionError, match="no password file"):
        chatmail.restore(repository=repo, pillar=PILLAR, install=False)

    put(new, password_file, "not the password\n", 0o600)
    with pytest.raises(CommandExecutionError, match="wrong password"):
        chatmail.restore(repository=repo, pillar=PILLAR, install=False)

    carry_password(old, new, password_file)
    with pytest.raises(
        CommandExecutionError, match="the backup is of chat.example.org.*set pillar chatmail:mail_domain"
    ):
        chatmail.restore(repository=repo, pillar={**PILLAR, "mail_domain": "other.example.org"}, install=False)

    put(new, f"{MAILBOXES}/carol0003@{DOMAIN}/password", "x", 0o600)
    before = tree(new)
    with pytest.raises(CommandExecutionError, match="has 1 accounts already.*force=True"):
        chatmail.restore(repository=repo, pillar=PILLAR, install=False)
    assert tree(new) == before
    chatmail.restore(repository=repo, pillar=PILLAR, install=False, force=True)
    assert (new / MAILBOXES.lstrip("/") / f"alice0001@{DOMAIN}" / "password").exists()
    assert (new / MAILBOXES.lstrip("/") / f"carol0003@{DOMAIN}" / "password").exists()


def test_backup_without_a_repository_names_the_setting(chatmail, salt_loaders, relays):
    from salt.exceptions import CommandExecutionError

    on(salt_loaders, relays[0])
    with pytest.raises(CommandExecutionError, match="chatmail:backup_repository"):
        chatmail.backup(pillar=PILLAR)


def test_docs_carry_cli_examples(salt_loaders):
    docs = salt_loaders.modules.sys.doc("chatmail.backup", "chatmail.restore")
    assert "salt-call chatmail.backup" in docs["chatmail.backup"]
    assert "salt-call chatmail.restore" in docs["chatmail.restore"]
