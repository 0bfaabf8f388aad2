"""A relay's files under a tmp root, as a backup sees them: accounts, messages, DKIM key, TURN secret, TLS, queue.

For the backup, restore and migration modules' tests (minion option
``chatmail.backup_root`` points Salt's modules at the root).
"""

from __future__ import annotations

import os
from pathlib import Path

DOMAIN = "chat.example.org"
MAILBOXES = f"/home/vmail/mail/{DOMAIN}"
PILLAR = {
    "mail_domain": DOMAIN,
    "tls_mode": "external",
    "tls_cert_file": "/etc/chatmail-tls/fullchain.pem",
    "tls_key_file": "/etc/chatmail-tls/privkey.pem",
}


def put(root: Path, path: str, data: bytes | str, mode: int = 0o644) -> Path:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data.encode() if isinstance(data, str) else data)
    target.chmod(mode)
    return target


def seed(root: Path) -> None:
    """A relay with two accounts, their messages, and every other item of a backup."""
    for user, messages in (("alice0001", 3), ("bob000002", 1)):
        box = f"{MAILBOXES}/{user}@{DOMAIN}"
        put(root, f"{box}/password", "{SHA512-CRYPT}$6$salt$hash-of-" + user, 0o600)
        put(root, f"{box}/dovecot.index.log", b"\x01index")
        for n in range(messages):
            folder = "cur" if n % 2 else "new"
            put(
                root,
                f"{box}/{folder}/17000000{n}.M{n}P1.relay,S=900:2,S",
                b"-----BEGIN PGP MESSAGE-----" + os.urandom(900),
            )
        put(root, f"{box}/.DeltaChat/cur/17000001.M9P1.relay,S=10:2,S", b"in a folder")
        put(root, f"{box}/tmp/17000009.M0P2.relay", b"half-delivered")
    put(root, "/etc/dkimkeys/opendkim.private", "-----BEGIN PRIVATE KEY-----\nMIIdkim\n", 0o600)
    put(root, "/etc/dkimkeys/KeyTable", "opendkim._domainkey.x x:opendkim:/etc/dkimkeys/opendkim.private\n")
    put(root, "/etc/chatmail-turn/secret", "f00dfeed" * 8 + "\n", 0o640)
    put(root, PILLAR["tls_cert_file"], "-----BEGIN CERTIFICATE-----\n")
    put(root, PILLAR["tls_key_file"], "-----BEGIN EC PRIVATE KEY-----\n", 0o600)
    put(root, "/var/spool/postfix/deferred/A/A1B2C3D4E5", b"queue file", 0o700)


def tree(root: Path, under: str = "/") -> dict[str, tuple[bytes, int]]:
    base = root / under.lstrip("/")
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mode & 0o7777)
        for p in base.rglob("*")
        if p.is_file() and not p.relative_to(root).parts[0] == "run"
    }
