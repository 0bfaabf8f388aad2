"""The encryption rules of docs/security.md read literally, on a full :mod:`email` parse.

The oracle the fast MIME walk (chatmaild.mimecheck) is checked against: by
test_filtermail_check.py, the mime fuzz target (fuzzing.py) and, for speed,
bench_filtermail.py.  Slow and plain on purpose.
"""

from __future__ import annotations

import email

from chatmaild.mimecheck import only_fixed_text
from chatmaild.openpgp import check_armored


def has_empty_part(data: bytes, boundary: str | None) -> bool:
    """Two delimiter lines in a row: an empty part (RFC 2046), which email drops silently."""
    if not boundary:
        return False
    dash = b"--" + boundary.encode("ascii", "surrogateescape")
    lines = [line.rstrip(b" \t") for line in data.splitlines()]
    return any(a == dash and b in (dash, dash + b"--") for a, b in zip(lines, lines[1:]))


def reference_ambiguous(msg) -> bool:
    """docs/security.md, read literally: cleartext outside the parts, Content-Type given twice."""

    def twice(m):
        names = [n.lower() for n, _ in (m.get_params() or [])[1:]]
        return len(m.get_all("content-type") or []) > 1 or len(names) != len(set(names))

    outside = [msg.preamble or "", msg.epilogue or ""]
    return (
        twice(msg)
        or any(twice(p) for p in msg.get_payload())
        or not all(only_fixed_text(t.encode("ascii", "surrogateescape")) for t in outside)
    )


def reference_is_encrypted(data: bytes, incoming: bool) -> bool:
    """Spec 5.6, read literally on a full email.message parse."""
    msg = email.message_from_bytes(data)
    if not msg.is_multipart() or msg.get_content_type() != "multipart/encrypted":
        return False
    parts = msg.get_payload()
    if len(parts) != 2 or reference_ambiguous(msg) or has_empty_part(data, msg.get_boundary()):
        return False
    control, payload = parts
    if control.is_multipart() or control.get_content_type() != "application/pgp-encrypted":
        return False
    if control.get_payload().strip() != "Version: 1":
        return False
    if payload.is_multipart() or payload.get_content_type() != "application/octet-stream":
        return False
    # the raw payload: get_payload() would turn 8-bit bytes into U+FFFD
    return check_armored(payload._payload.encode("ascii", "surrogateescape"), incoming=incoming)


def reference_is_securejoin(data: bytes) -> bool:
    msg = email.message_from_bytes(data)
    if msg.get("secure-join") not in ("vc-request", "vg-request") or not msg.is_multipart():
        return False
    parts = msg.get_payload()
    if (
        len(parts) != 1
        or reference_ambiguous(msg)
        or has_empty_part(data, msg.get_boundary())
        or parts[0].is_multipart()
        or parts[0].get_content_type() != "text/plain"
    ):
        return False
    return parts[0].get_payload().strip().lower() in ("secure-join: vc-request", "secure-join: vg-request")
