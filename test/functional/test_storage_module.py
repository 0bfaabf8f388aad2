"""chatmail.expire / chatmail.fsreport through Salt's loader, on a seeded store.

The module runs the real chatmaild CLI of this repo (``chatmail.chatmaild_dir``)
as a subprocess, exactly as on a relay; only the paths are pointed at tmp.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from support.storeseed import all_files

REPO = Path(__file__).resolve().parents[2]
DAY = 86400
DOMAIN = "chat.example.org"


def put(path: Path, size: int, age_days: float, now: float) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"m" * size)
    os.utime(path, (now - age_days * DAY,) * 2)
    return str(path)


def name(now: float, age_days: float, seq: int, size: int, seen: bool) -> str:
    base = f"{int(now - age_days * DAY)}.M{seq}P77.relay,S={size},W={size + 3}"
    return base + ":2,S" if seen else base


@pytest.fixture
def relay_store(tmp_path):
    """Seed relative to the real clock; return (ini, root, files expected to go with days=10)."""
    now = datetime.now(timezone.utc).timestamp()
    root = tmp_path / "mail" / DOMAIN
    box = root / f"user1@{DOMAIN}"
    put(box / "password", 8, 1, now)
    put(box / "maildirsize", 20, 1, now)
    dc = box / ".DeltaChat"
    # (path, size, name age, mtime age, goes with a 10-day offset)
    rows = [
        (box / "cur", 100, 5, 5, False),
        (box / "cur", 110, 15, 15, True),
        (box / "new", 120, 12, 12, True),
        (box / "cur", 300000, 1, 1, True),  # large and seen: 11 days > 7
        (box / "new", 300000, 1, 1, False),  # large but unseen
        (dc / "cur", 130, 1, 15, True),  # moved message: mtime is its received date
        (dc / "cur", 140, 1, 1, False),
        (dc / "new", 150, 11, 11, True),
        (dc / "cur", 250000, 2, 2, True),
    ]
    going = {str(box / "maildirsize")}
    for seq, (folder, size, name_age, mtime_age, goes) in enumerate(rows):
        path = put(folder / name(now, name_age, seq, size, folder.name == "cur"), size, mtime_age, now)
        if goes:
            going.add(path)
    put(dc / "dovecot-uidlist", 30, 1, now)
    old = root / f"user2@{DOMAIN}"
    put(old / "password", 8, 85, now)  # 95 days with the offset > 90
    put(old / "cur" / name(now, 1, 99, 10, True), 10, 1, now)
    going |= {str(p) for p in old.rglob("*") if p.is_file()}
    ini = tmp_path / "chatmail.ini"
    ini.write_text(f"[params]\nmail_domain = {DOMAIN}\nmailboxes_dir = {root}\n")
    return ini, root, going


@pytest.fixture
def chatmail(salt_loaders, relay_store):
    ini, _, _ = relay_store
    salt_loaders.opts["chatmail.chatmaild_dir"] = str(REPO / "chatmail" / "chatmaild" / "files")
    salt_loaders.opts["chatmail.ini_path"] = str(ini)
    return salt_loaders.modules.chatmail


def test_dry_run_removes_nothing(chatmail, relay_store):
    _, root, going = relay_store
    before = all_files(root)
    result = chatmail.expire(days=10)
    assert all_files(root) == before
    assert result["dry_run"] is True
    assert result["mailboxes_examined"] == 2 and result["mailboxes_removed"] == 1
    assert result["files_examined"] == 10
    assert result["files_removed"] == 6  # user1's expired messages
    assert chatmail.expire()["files_removed"] == 0  # today nothing is due


def test_remove_with_offset_takes_exactly_the_expected_files(chatmail, relay_store):
    _, root, going = relay_store
    before = all_files(root)
    result = chatmail.expire(remove=True, days=10)
    assert before - all_files(root) == going
    assert result["dry_run"] is False and result["errors"] == 0
    assert not (root / f"user2@{DOMAIN}").exists()
    assert (root / f"user1@{DOMAIN}" / ".DeltaChat" / "dovecot-uidlist").exists()


def test_fsreport_returns_structured_data(chatmail, relay_store):
    _, root, _ = relay_store
    report = chatmail.fsreport(mdir="cur")
    assert report["mailboxes"] == 2 and report["messages"] == 10
    assert report["size_messages"] == 100 + 110 + 120 + 300000 * 2 + 130 + 140 + 150 + 250000 + 10
    assert report["mdir"] == "cur" and report["logins"]["all"] == 2


def test_bad_ini_raises(chatmail, salt_loaders, tmp_path):
    from salt.exceptions import CommandExecutionError

    salt_loaders.opts["chatmail.ini_path"] = str(tmp_path / "absent.ini")
    with pytest.raises(CommandExecutionError, match="chatmaild.expire failed"):
        chatmail.expire()


def test_docs_carry_cli_examples(salt_loaders):
    docs = salt_loaders.modules.sys.doc("chatmail.expire", "chatmail.fsreport")
    assert "salt-call chatmail.expire remove=True" in docs["chatmail.expire"]
    assert "CLI Example" in docs["chatmail.fsreport"]
