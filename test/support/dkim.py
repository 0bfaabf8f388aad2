"""Real DKIM signatures for tests: RSA keys made by openssl, signed with dkimpy.

The key table stands in for DNS (what ``DkimCheck`` would resolve through
the relay's unbound); the system tests use real DNS between relays.
"""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass, field
from functools import cache

import dkim


@cache
def rsa_key(name: str, bits: int = 2048) -> tuple[bytes, bytes]:
    """(private PEM, public DER) of a test key, one per name and session."""
    private = subprocess.run(["openssl", "genrsa", str(bits)], check=True, capture_output=True).stdout
    public = subprocess.run(
        ["openssl", "rsa", "-pubout", "-outform", "DER"], input=private, check=True, capture_output=True
    ).stdout
    return private, public


@dataclass
class KeyTable:
    """TXT records of ``selector._domainkey.domain.``; a name mapped to an exception raises it."""

    records: dict[str, object] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)

    def publish(self, domain: str, selector: str = "sel", key: str | None = None) -> None:
        _, public = rsa_key(key or domain)
        self.records[f"{selector}._domainkey.{domain}."] = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def __call__(self, name: str) -> bytes | None:
        self.lookups.append(name)
        value = self.records.get(name.lower())
        if isinstance(value, BaseException):
            raise value
        return value


def sign(data: bytes, domain: str, selector: str = "sel", key: str | None = None) -> bytes:
    """``data`` with a DKIM-Signature of ``domain`` prepended (relaxed/simple, as OpenDKIM signs)."""
    private, _ = rsa_key(key or domain)
    header = dkim.sign(
        data,
        selector.encode(),
        domain.encode(),
        private,
        canonicalize=(b"relaxed", b"simple"),
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id", b"content-type"],
    )
    return header + data
