"""What a new account's address and password must be, and what can never be an account.

doveauth creates an account from whatever a first login sends, so these
rules are all that stands between a hostile login and a mailbox.  They
are pure functions (no I/O) so they can be tested and fuzzed alone.

* The local part is a lower-case RFC 5321 dot-atom: atoms of
  ``a-z 0-9 _ -`` joined by single dots, no leading or trailing dot, at
  most 64 octets (RFC 5321 4.5.3.1.1).  ``xxx..xxx`` or ``xxx.`` would
  need quoting on the wire, and mail from other servers to them is not
  delivered reliably.
* A password holds no control characters.  Dovecot's IMAP ``LOGIN``
  passes a password only up to its first NUL (and legitimate clients
  never send control bytes), so a password with one cannot mean what the
  client meant.
"""

from __future__ import annotations

import re

from .config import MAX_LOCAL_PART

__all__ = ["MAX_LOCAL_PART", "address_refusal", "password_refusal", "impossible_address"]

MAX_PATH_COMPONENT = 255  # a mailbox directory name (NAME_MAX on Linux)
_DOT_ATOM = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def address_refusal(addr: str, domain: str, min_length: int, max_length: int) -> str | None:
    """Why ``addr`` may not become a new account of ``domain``, or None."""
    local, at, rest = addr.partition("@")
    if not at or "@" in rest:
        return "address must have exactly one @"
    if rest != domain:
        return f"address must end in @{domain}"
    if not min_length <= len(local) <= max_length:
        return f"local part length not within {min_length}..{max_length}"
    if len(local.encode("utf-8", "surrogatepass")) > MAX_LOCAL_PART:
        return f"local part longer than {MAX_LOCAL_PART} octets (RFC 5321)"
    if not _DOT_ATOM.fullmatch(local):
        return "local part must be a-z 0-9 _ - joined by single dots, not starting or ending with a dot"
    return None


def password_refusal(password: str, min_length: int) -> str | None:
    """Why ``password`` may not be the password of a new account, or None."""
    if _CONTROL.search(password):
        return "password contains a control character"
    if len(password) < min_length:
        return f"password shorter than {min_length}"
    return None


def impossible_address(addr: str) -> bool:
    """True if no account can exist under ``addr``, whatever rules created it.

    Such a lookup is answered "unknown user" (permanent) instead of
    reaching the file system and failing there (a temporary error that
    makes clients retry forever).
    """
    local, _, _ = addr.partition("@")
    return (
        len(local.encode("utf-8", "surrogatepass")) > MAX_LOCAL_PART
        or len(addr.encode("utf-8", "surrogatepass")) > MAX_PATH_COMPONENT
        or "\x00" in addr
    )
