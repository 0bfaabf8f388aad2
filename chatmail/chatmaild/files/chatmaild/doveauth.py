"""doveauth: Dovecot's passdb/userdb, creating accounts on first login.

Dovecot's dict passdb sends the cleartext password inside the lookup key
(``shared/passdb/<password>"<user>``).  That is what makes registration-free
accounts possible: an unknown address that satisfies the creation rules
gets an account whose password is the one of this first login.  doveauth
never compares passwords itself; it returns the stored hash and Dovecot
checks it, so a wrong password on an existing account simply fails.
While the relay is short of CPU, memory or disk (:mod:`chatmaild.syslimits`)
no account is created; existing ones are served as always.

Run as ``python3 -m chatmaild.doveauth <socket> <chatmail.ini>``.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from .accountrules import address_refusal, impossible_address, password_refusal
from .config import Config
from .dictproxy import DictProxy, LookupFailed, run_service
from .dictproxy_fs import locked, write_atomic
from .hashing import hash_password
from .ratelimit import WindowLimit
from .syslimits import SystemLimits

log = logging.getLogger(__name__)

NOCREATE_PATH = Path("/etc/chatmail-nocreate")
CREATION_WINDOW = 3600.0  # seconds: account_creations_per_hour
USERDB_PREFIX = "shared/userdb/"
_json_string = json.encoder.encode_basestring_ascii


def split_key_fields(text: str) -> list[str]:
    """Fields of a passdb/userdb key: split on unescaped ``"``, ``\\`` escapes.

    Dovecot's ``%E`` modifier backslash-escapes ``"``, ``'`` and ``\\``, so a
    password may contain the separator.  A trailing lone backslash cannot
    come from Dovecot and is rejected.
    """
    if "\\" not in text:
        return text.split('"')
    fields, current = [], []
    chars = iter(text)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, None)
            if nxt is None:
                raise ValueError("trailing backslash")
            current.append(nxt)
        elif ch == '"':
            fields.append("".join(current))
            current = []
        else:
            current.append(ch)
    fields.append("".join(current))
    return fields


class AuthDict(DictProxy):
    """passdb/userdb lookups and the userdb iteration for ``doveadm``."""

    name = "doveauth"

    def __init__(self, config: Config, nocreate_path: Path = NOCREATE_PATH, limits: SystemLimits | None = None):
        self.config = config
        self.nocreate_path = Path(nocreate_path)
        # load, memory and disk: new accounts wait while one is short
        self.limits = limits or SystemLimits(config)
        self.domain_suffix = "@" + config.mail_domain_address
        # Path building and validation cost more than the lookup itself, and
        # the same addresses come back on every login: remember them.
        self._user_dir = functools.lru_cache(maxsize=65536)(self._user_dir_uncached)
        self.creations = WindowLimit(config.account_creations_per_hour, window=CREATION_WINDOW)

    # -- dict hooks ------------------------------------------------------------

    def lookup(self, key: str, user: str) -> str | None:
        # Only the key counts: Dovecot < 2.3.17 sends no user field.
        namespace, _, rest = key.partition("/")
        kind, _, rest = rest.partition("/")
        if namespace != "shared" or kind not in ("passdb", "userdb"):
            raise LookupFailed(f"unknown key {key[:80]!r}")
        try:
            fields = split_key_fields(rest)
        except ValueError as exc:
            raise LookupFailed(f"malformed {kind} key: {exc}") from None
        if kind == "userdb":
            if len(fields) != 1:
                raise LookupFailed("userdb key needs exactly one field")
            return self.userdb(fields[0])
        if len(fields) not in (2, 3):
            raise LookupFailed("passdb key needs password, user and optionally the client address")
        return self.passdb(fields[1], fields[0], fields[2] if len(fields) == 3 else "")

    def undecodable(self, cmd: str, line: bytes) -> str | None:
        # Addresses are ASCII and no account was ever created with a
        # password that is not UTF-8: such a lookup is "unknown user"
        # (a permanent refusal), not a temporary failure to retry.
        if cmd == "L":
            log.warning("%s: lookup that is not UTF-8 answered as unknown user", self.name)
            return "N"
        return super().undecodable(cmd, line)

    def iterate(self, flags: int, max_rows: int, path: str, user: str) -> Iterable[tuple[str, str]]:
        if path != USERDB_PREFIX:
            return ()
        return ((USERDB_PREFIX + addr, "") for addr in self.addresses())

    # -- accounts --------------------------------------------------------------

    def addresses(self) -> list[str]:
        """Every account directory name (entries of MB containing ``@``)."""
        try:
            return sorted(e.name for e in os.scandir(self.config.mailboxes_dir) if "@" in e.name)
        except FileNotFoundError:
            return []

    def user_dir(self, addr: str) -> Path | None:
        """MB/<addr> for an address of our domain, else None."""
        return self._user_dir(addr)

    def _user_dir_uncached(self, addr: str) -> Path | None:
        if not addr.endswith(self.domain_suffix) or addr.count("@") != 1 or impossible_address(addr):
            return None
        try:
            return self.config.get_user_dir(addr)
        except ValueError:
            return None

    def read_password(self, userdir: Path) -> str | None:
        try:
            fd = os.open(f"{userdir}/password", os.O_RDONLY)
            try:
                hashed = os.read(fd, 4096).decode("ascii").strip()
            finally:
                os.close(fd)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise LookupFailed(f"cannot read password of {userdir.name}: {exc}") from None
        if not hashed:
            log.error("empty password file for %s; treated as no account", userdir.name)
            return None
        return hashed

    def entry(self, addr: str, userdir: Path, hashed: str) -> str:
        """The passdb/userdb JSON object (same text json.dumps would give)."""
        q = _json_string
        return (
            f'{{"addr": {q(addr)}, "home": {q(str(userdir))}, "uid": "vmail", "gid": "vmail", "password": {q(hashed)}}}'
        )

    def userdb(self, addr: str) -> str | None:
        userdir = self.user_dir(addr)
        if userdir is None:
            return None
        hashed = self.read_password(userdir)
        return None if hashed is None else self.entry(addr, userdir, hashed)

    def passdb(self, addr: str, password: str, source: str = "") -> str | None:
        userdir = self.user_dir(addr)
        if userdir is None:
            return None
        hashed = self.read_password(userdir) or self.create(addr, userdir, password, source)
        return None if hashed is None else self.entry(addr, userdir, hashed)

    def refusal(self, addr: str, password: str) -> str | None:
        """Why ``addr`` may not be created with ``password``, or None."""
        cfg = self.config
        if self.nocreate_path.exists():
            return f"{self.nocreate_path} exists"
        return password_refusal(password, cfg.password_min_length) or address_refusal(
            addr, cfg.mail_domain_address, cfg.username_min_length, cfg.username_max_length
        )

    def create(self, addr: str, userdir: Path, password: str, source: str = "") -> str | None:
        """Create the account and return its hash; None if refused or failed.

        The per-address lock makes two simultaneous first logins produce one
        account: the second one finds the first one's hash and Dovecot then
        accepts it only if its password is the same.
        """
        reason = self.refusal(addr, password) or self.limits.shortage()
        if reason:
            log.warning("not creating %s: %s", addr, reason)
            return None
        self.spend_creation_budget(source)
        try:
            userdir.mkdir(parents=True, exist_ok=True)
            with locked(userdir / "password.lock"):
                existing = self.read_password(userdir)
                if existing:
                    return existing
                hashed = hash_password(password)
                write_atomic(userdir / "password", hashed)
                (userdir / "enforceE2EEincoming").touch()
        except (OSError, ValueError) as exc:
            log.warning("could not create %s: %s", addr, exc)
            return None
        log.info("Created address: %s", addr)
        return hashed

    # -- account creation budget per client address ----------------------------

    def spend_creation_budget(self, source: str) -> None:
        """Count one creation for ``source``; LookupFailed (temporary) once it is spent.

        Temporary on purpose: the same login works again within the hour,
        and a client that retries later is what a real user behind a busy
        NAT needs.  Logins without a usable address are not counted.
        """
        key = source_key(source)
        if key and not self.creations.allow(key):
            raise LookupFailed(f"{key} created {self.config.account_creations_per_hour} accounts within the last hour")


def source_key(address: str) -> str:
    """The bucket of a client address: the address for IPv4, its /64 for IPv6.

    One IPv6 host usually holds a whole /64, so counting single addresses
    would not limit it at all.  "" for anything that is not an address.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return ""
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def start(config: Config) -> AuthDict:
    from .migrate_db import migrate_passdb

    migrate_passdb(config)
    return AuthDict(config)


def main(argv: list[str] | None = None) -> int:
    return run_service("doveauth", argv, start)


if __name__ == "__main__":
    sys.exit(main())
