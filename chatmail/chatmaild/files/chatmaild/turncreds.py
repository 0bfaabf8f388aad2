"""Time-limited TURN credentials (the "TURN REST API" scheme coturn checks).

The relay runs Debian's coturn with ``use-auth-secret`` and
``static-auth-secret``.  With that scheme nothing is stored per user: the
username is the expiry time (unix seconds) and the password is
``base64(HMAC-SHA1(secret, username))``, which coturn recomputes.  The
username deliberately carries no ``:<id>`` suffix (which coturn would also
accept): Delta Chat reads the metadata value as ``host:port:user:password``
and a colon inside the username would shift the fields.

The secret is one line in a root:vmail 0640 file whose path the formula
passes to chatmail-metadata (``CHATMAIL_TURN_SECRET`` in its unit, from the
parameters table); coturn's ``static-auth-secret`` gets the same value.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from pathlib import Path

TURN_PORT = 3478
VALIDITY = 5 * 86400  # as long as chatmail-turn's credentials


def read_secret(path: Path) -> bytes:
    secret = Path(path).read_bytes().strip()
    if not secret:
        raise ValueError(f"{path} is empty")
    return secret


def credentials(secret: bytes, now: float | None = None, validity: int = VALIDITY) -> tuple[str, str]:
    """(username, password) valid until ``now + validity``."""
    username = str(int(time.time() if now is None else now) + validity)
    digest = hmac.new(secret, username.encode("ascii"), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def turn_value(domain: str, secret_path: Path, now: float | None = None) -> str:
    """The metadata value ``<domain>:3478:<username>:<password>``."""
    username, password = credentials(read_secret(secret_path), now)
    return f"{domain}:{TURN_PORT}:{username}:{password}"
