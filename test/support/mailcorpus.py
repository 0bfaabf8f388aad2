"""Deterministic test mail for filtermail: real MIME, real OpenPGP packet framing.

The OpenPGP messages are built packet by packet (RFC 9580 section 4): a
PKESK or SKESK packet with plausible fields, then a SEIPD packet whose body
is seeded random bytes standing in for ciphertext.  The filter only checks
framing, so random ciphertext is as good as real ciphertext; what must be
right (and is built here by the book) is the packet headers, lengths
(one-, two- and five-octet and partial body lengths), base64 armor and its
CRC-24 checksum, and the RFC 3156 MIME structure around it.

Every builder takes a ``seed`` so the corpus is the same on every run.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field

CRLF = "\r\n"

# -- OpenPGP framing -----------------------------------------------------------

TAG_PKESK, TAG_SIG, TAG_SKESK, TAG_ONEPASS, TAG_COMPRESSED, TAG_LITERAL, TAG_SEIPD = 1, 2, 3, 4, 8, 11, 18


def _crc24_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
        table.append(crc & 0xFFFFFF)
    return table


_CRC24_TABLE = _crc24_table()


def crc24(data: bytes) -> int:
    """The armor checksum (RFC 9580 section 6.1), one table lookup per byte."""
    crc = 0xB704CE
    table = _CRC24_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFF) ^ table[(crc >> 16) ^ byte]
    return crc


def new_length(n: int, form: int | None = None) -> bytes:
    """A new-format body length; ``form`` forces 1, 2 or 5 octets."""
    form = form or (1 if n < 192 else 2 if n < 8384 else 5)
    if form == 1:
        assert n < 192
        return bytes([n])
    if form == 2:
        assert 192 <= n < 8384
        n -= 192
        return bytes([(n >> 8) + 192, n & 0xFF])
    return b"\xff" + n.to_bytes(4, "big")


def packet(tag: int, body: bytes, *, form: int | None = None, partial: list[int] | None = None) -> bytes:
    """A new-format packet; ``partial`` lists exponents of partial body chunks."""
    header = bytes([0xC0 | tag])
    if not partial:
        return header + new_length(len(body), form) + body
    out = [header]
    pos = 0
    for exponent in partial:
        size = 1 << exponent
        assert pos + size <= len(body), "partial chunks longer than the body"
        out.append(bytes([224 + exponent]) + body[pos : pos + size])
        pos += size
    out.append(new_length(len(body) - pos, form) + body[pos:])
    return b"".join(out)


def old_packet(tag: int, body: bytes) -> bytes:
    """An old-format packet (RFC 4880 4.2.1), as GnuPG 2.2 writes for PKESK."""
    if len(body) < 256:
        return bytes([0x80 | (tag << 2) | 0, len(body)]) + body
    return bytes([0x80 | (tag << 2) | 1]) + len(body).to_bytes(2, "big") + body


def pkesk(rng: random.Random, version: int = 3) -> bytes:
    """A v3 PKESK for an X25519 (ECDH, algorithm 18) key: key id, ephemeral point, wrapped key."""
    key_id = rng.randbytes(8)
    point = b"\x40" + rng.randbytes(32)
    wrapped = rng.randbytes(48)
    body = bytes([version]) + key_id + bytes([18]) + (263).to_bytes(2, "big") + point + bytes([len(wrapped)]) + wrapped
    return packet(TAG_PKESK, body)


def skesk(rng: random.Random) -> bytes:
    """A v4 SKESK: AES-256, iterated and salted S2K."""
    body = bytes([4, 9, 3, 8]) + rng.randbytes(8) + bytes([0xFF]) + rng.randbytes(32)
    return packet(TAG_SKESK, body)


def seipd_body(rng: random.Random, size: int, version: int = 1) -> bytes:
    if version == 2:  # cipher, AEAD mode, chunk size, 32-octet salt
        return bytes([2, 9, 2, 10]) + rng.randbytes(32) + rng.randbytes(max(size - 36, 0))
    return bytes([version]) + rng.randbytes(max(size - 1, 0))


def literal_body(text: bytes) -> bytes:
    return b"b" + bytes([0]) + (0).to_bytes(4, "big") + text


def encrypted_packets(
    size: int = 2000,
    *,
    seed: int = 0,
    recipients: int = 2,
    version: int = 1,
    partial: list[int] | None = None,
    form: int | None = None,
) -> bytes:
    """PKESK per recipient + one SEIPD of about ``size`` bytes."""
    rng = random.Random(seed)
    keys = b"".join(pkesk(rng) for _ in range(recipients))
    return keys + packet(TAG_SEIPD, seipd_body(rng, size, version), partial=partial, form=form)


def armor(data: bytes, *, headers: list[str] = (), crc: bool = True, width: int = 76, eol: str = CRLF) -> str:
    """ASCII armor (RFC 9580 section 6.2) with CRLF line ends."""
    b64 = base64.b64encode(data).decode()
    lines = ["-----BEGIN PGP MESSAGE-----", *headers, ""]
    lines += [b64[i : i + width] for i in range(0, len(b64), width)]
    if crc:
        lines.append("=" + base64.b64encode(crc24(data).to_bytes(3, "big")).decode())
    lines.append("-----END PGP MESSAGE-----")
    return eol.join(lines) + eol


# -- MIME ----------------------------------------------------------------------


def _autocrypt_header(addr: str, rng: random.Random) -> str:
    """A folded Autocrypt header as Delta Chat sends it (~600 bytes of key data)."""
    key = base64.b64encode(rng.randbytes(450)).decode()
    folded = "\r\n ".join(key[i : i + 76] for i in range(0, len(key), 76))
    return f"Autocrypt: addr={addr}; prefer-encrypt=mutual; keydata=\r\n {folded}"


@dataclass
class Envelope:
    """A message with the envelope it is sent under."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    kind: str = ""
    extra: dict = field(default_factory=dict)


def _headers(
    sender: str, recipients: list[str], subject: str, content_type: str, extra: list[str], seed: int
) -> list[str]:
    rng = random.Random(seed)
    return [
        f"From: <{sender}>",
        "To: " + ", ".join(f"<{r}>" for r in recipients),
        f"Subject: {subject}",
        "Date: Tue, 25 Nov 2026 18:00:00 +0000",
        f"Message-ID: <Mr.{rng.randrange(10**12)}@{sender.rpartition('@')[2]}>",
        "Chat-Version: 1.0",
        _autocrypt_header(sender, rng),
        "MIME-Version: 1.0",
        *extra,
        f"Content-Type: {content_type}",
    ]


def encrypted(
    sender: str = "alice@example.org",
    recipients: list[str] = ("bob@example.org",),
    *,
    size: int = 2000,
    seed: int = 0,
    payload: bytes | None = None,
    armor_headers: list[str] = (),
    armored: str | None = None,
    control: str = "Version: 1",
    parts: list[tuple[str, str]] | None = None,
    content_type: str | None = None,
    from_header: str | None = None,
    subject: str = "[...]",
) -> bytes:
    """An RFC 3156 encrypted message as Delta Chat writes it; every piece can be replaced."""
    recipients = list(recipients)
    if payload is None:
        payload = encrypted_packets(size, seed=seed, recipients=len(recipients))
    if armored is None:
        armored = armor(payload, headers=list(armor_headers))
    boundary = f"b{seed:08x}_encrypted"
    if parts is None:
        parts = [
            (
                "Content-Type: application/pgp-encrypted\r\nContent-Description: PGP/MIME version identification",
                control + CRLF,
            ),
            (
                'Content-Type: application/octet-stream; name="encrypted.asc"\r\n'
                "Content-Description: OpenPGP encrypted message\r\n"
                'Content-Disposition: inline; filename="encrypted.asc";',
                armored,
            ),
        ]
    content_type = (
        content_type or f'multipart/encrypted; protocol="application/pgp-encrypted";\r\n\tboundary="{boundary}"'
    )
    head = _headers(sender, recipients, subject, content_type, [], seed)
    if from_header is not None:
        head[0] = from_header
    return _multipart(head, boundary, parts)


def _multipart(head: list[str], boundary: str, parts: list[tuple[str, str]]) -> bytes:
    body = [CRLF.join(head), ""]
    for part_head, part_body in parts:
        body.append(f"--{boundary}")
        body.append(part_head)
        body.append("")
        body.append(part_body.removesuffix(CRLF))
    body.append(f"--{boundary}--")
    return (CRLF.join(body) + CRLF).encode("utf-8")


def securejoin(
    sender: str = "alice@example.org",
    recipient: str = "bob@example.org",
    *,
    step: str = "vc-request",
    body: str | None = None,
    header: str | None = None,
    extra_parts: int = 0,
    seed: int = 0,
) -> bytes:
    """The cleartext first message of a Secure-Join handshake."""
    boundary = f"sj{seed:06x}"
    body = f"Secure-Join: {step}" if body is None else body
    head = _headers(
        sender,
        [recipient],
        "Secure-Join",
        f'multipart/mixed; boundary="{boundary}"',
        [f"Secure-Join: {step if header is None else header}", "Secure-Join-Invitenumber: abcdefgh12345678"],
        seed,
    )
    parts = [("Content-Type: text/plain; charset=utf-8", body + CRLF)]
    parts += [("Content-Type: text/plain", "more" + CRLF)] * extra_parts
    return _multipart(head, boundary, parts)


def plain(
    sender: str = "alice@example.org",
    recipients: list[str] = ("bob@example.org",),
    *,
    body: str = "Hello!",
    seed: int = 0,
    subject: str = "Hi",
    from_header: str | None = None,
) -> bytes:
    head = _headers(sender, list(recipients), subject, "text/plain; charset=utf-8", [], seed)
    if from_header is not None:
        head[0] = from_header
    return (CRLF.join(head) + CRLF + CRLF + body + CRLF).encode("utf-8")


def autocrypt_setup(
    addr: str = "alice@example.org",
    *,
    seed: int = 0,
    subject: str = "Autocrypt Setup Message",
    content_type: str = "multipart/mixed",
) -> bytes:
    """A self-sent key backup (Autocrypt Level 1, section 4.4), cleartext MIME around an SKESK message."""
    boundary = f"asm{seed:06x}"
    rng = random.Random(seed)
    setup = armor(skesk(rng) + packet(TAG_SEIPD, seipd_body(rng, 800)), headers=["Passphrase-Format: numeric9x4"])
    head = _headers(
        addr, [addr], subject, f'{content_type}; boundary="{boundary}"', ["Autocrypt-Setup-Message: v1"], seed
    )
    parts = [
        ("Content-Type: text/plain", "This is the Autocrypt Setup Message." + CRLF),
        (
            'Content-Type: application/autocrypt-setup\r\nContent-Disposition: attachment; filename="autocrypt-setup-message.html"',
            "<html><body><pre>" + CRLF + setup + "</pre></body></html>" + CRLF,
        ),
    ]
    return _multipart(head, boundary, parts)


def report(
    sender: str = "MAILER-DAEMON@mx.example.net",
    recipient: str = "alice@example.org",
    *,
    seed: int = 0,
    auto_submitted: bool = True,
    kind: str = "delivery-status",
) -> bytes:
    """A delivery status notification (RFC 3464) or, with ``kind='disposition-notification'``, an MDN."""
    boundary = f"rep{seed:06x}"
    extra = ["Auto-Submitted: auto-replied"] if auto_submitted else []
    head = _headers(
        sender,
        [recipient],
        "Undelivered Mail Returned to Sender",
        f'multipart/report; report-type={kind};\r\n\tboundary="{boundary}"',
        extra,
        seed,
    )
    parts = [
        ("Content-Type: text/plain", "The mail system could not deliver your message." + CRLF),
        (
            f"Content-Type: message/{kind}",
            "Reporting-MTA: dns; mx.example.net" + CRLF + CRLF + "Final-Recipient: rfc822; x@example.net" + CRLF,
        ),
    ]
    return _multipart(head, boundary, parts)


def mixed_corpus(n: int, sender: str, recipient: str, seed: int = 1) -> list[Envelope]:
    """The benchmark mix: 70 % encrypted 1-60 kB, 10 % 300 kB encrypted, 10 % Secure-Join, 10 % plain."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        slot = i % 10
        if slot < 7:
            data, kind = encrypted(sender, [recipient], size=rng.randrange(1000, 60000), seed=i), "encrypted"
        elif slot == 7:
            data, kind = encrypted(sender, [recipient], size=300_000, seed=i), "large"
        elif slot == 8:
            data, kind = securejoin(sender, recipient, seed=i), "securejoin"
        else:
            data, kind = plain(sender, [recipient], seed=i), "plain"
        out.append(Envelope(sender, [recipient], data, kind))
    return out
