"""One-time migration of the legacy SQLite passdb into password files."""

from __future__ import annotations

import sqlite3

from chatmaild.migrate_db import migrate_passdb
from support.dicts import make_config


def test_migrates_accounts_once(tmp_path):
    db = tmp_path / "passdb.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE users (addr TEXT PRIMARY KEY, password TEXT, last_login INTEGER)")
    rows = [
        ("alice1234@chat.example.org", "{SHA512-CRYPT}$6$a$alicehash", 1_700_000_123),
        ("bobbob123@chat.example.org", "$6$b$bobhash", None),
        ("ci-abcdef@chat.example.org", "{SHA512-CRYPT}$6$c$ci", 1),
        ("ac_abcdef@chat.example.org", "{SHA512-CRYPT}$6$c$ac", 1),
        ("keepme123@chat.example.org", "{SHA512-CRYPT}$6$d$fromdb", None),
    ]
    conn.executemany("INSERT INTO users VALUES (?, ?, ?)", rows)
    conn.commit()
    conn.close()
    (tmp_path / "passdb.sqlite-wal").write_text("")
    cfg = make_config(tmp_path, passdb_path=str(db))
    keep = cfg.mailboxes_dir / "keepme123@chat.example.org"
    keep.mkdir(parents=True)
    (keep / "password").write_text("{SHA512-CRYPT}$6$e$newer")

    assert migrate_passdb(cfg) == 2
    mb = cfg.mailboxes_dir
    alice = mb / "alice1234@chat.example.org" / "password"
    assert alice.read_text() == "{SHA512-CRYPT}$6$a$alicehash"
    assert alice.stat().st_mtime == 1_699_920_000  # login day
    assert (mb / "bobbob123@chat.example.org" / "password").read_text() == "{SHA512-CRYPT}$6$b$bobhash"
    assert not (mb / "ci-abcdef@chat.example.org").exists()
    assert not (mb / "ac_abcdef@chat.example.org").exists()
    assert (keep / "password").read_text() == "{SHA512-CRYPT}$6$e$newer"
    assert not db.exists() and (tmp_path / "passdb.sqlite.old").exists()
    assert not (tmp_path / "passdb.sqlite-wal").exists()
    assert migrate_passdb(cfg) == 0  # nothing left to do


def test_no_database_no_work(tmp_path):
    assert migrate_passdb(make_config(tmp_path, passdb_path=str(tmp_path / "none.sqlite"))) == 0
