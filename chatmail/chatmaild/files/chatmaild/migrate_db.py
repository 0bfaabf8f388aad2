"""One-time move of accounts from the legacy SQLite passdb into MB/<addr>/.

Relays from before the file-based account store kept passwords in
``passdb_path`` (default /home/vmail/passdb.sqlite).  doveauth runs this at
start; once done, the database is renamed to ``<name>.old`` so it never
runs again.  Test accounts (``ci-``/``ac_`` prefixes) are not carried over.
An account that already has a password file keeps it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

from .config import Config
from .dictproxy_fs import write_atomic
from .hashing import SCHEME

log = logging.getLogger(__name__)

SKIP_PREFIXES = ("ci-", "ac_")
PROGRESS_EVERY = 10000


def _rows(db_path: Path):
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(users)")}
        last = "last_login" if "last_login" in columns else "NULL"
        yield from conn.execute(f"SELECT addr, password, {last} FROM users")
    finally:
        conn.close()


def migrate_passdb(config: Config) -> int:
    """Migrate if the legacy database exists; returns the number of accounts written."""
    db_path = Path(config.passdb_path)
    if not db_path.is_file():
        return 0
    log.info("migrating accounts from %s", db_path)
    written = 0
    for number, (addr, hashed, last_login) in enumerate(_rows(db_path), 1):
        if number % PROGRESS_EVERY == 0:
            log.info("migration: %d accounts read", number)
        if not addr or not hashed or addr.startswith(SKIP_PREFIXES):
            continue
        try:
            userdir = config.get_user_dir(addr)
        except ValueError:
            log.warning("migration: skipping invalid address %r", addr)
            continue
        if not hashed.startswith("{"):
            hashed = SCHEME + hashed
        userdir.mkdir(parents=True, exist_ok=True)
        password = userdir / "password"
        if password.exists() and password.stat().st_size:
            continue
        write_atomic(password, hashed)
        if last_login:
            day = int(last_login) // 86400 * 86400
            os.utime(password, (day, day))
        written += 1
    db_path.rename(db_path.with_name(db_path.name + ".old"))
    for sibling in db_path.parent.glob(db_path.name + "-*"):
        sibling.unlink()
    log.info("migration finished: %d accounts written, database renamed to %s.old", written, db_path.name)
    return written
