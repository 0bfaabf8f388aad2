"""Is an ASCII-armored payload an OpenPGP *encrypted* message?

The relay only forwards mail whose content it cannot read.  It does not
decrypt anything; it checks the shape of the OpenPGP packet stream instead:
zero or more session-key packets (PKESK, tag 1; SKESK, tag 3) and then
exactly one symmetrically encrypted and integrity protected data packet
(SEIPD, tag 18, version 1 or 2) that ends exactly at the end of the data.
Anything else (a literal data packet, a signed-only message, trailing
bytes, a truncated packet) is not an encrypted message.

Only new-format packet headers (both top bits of the header octet set) are
accepted, as by the reference relay; every OpenPGP implementation that
Delta Chat clients use writes them.  Partial body lengths (as written by
GopenPGP for long streams) are followed chunk by chunk.

Everything here is pure computation on bytes so that the filter can run it
in a worker thread; the base64 decoding is done by the C implementation in
:mod:`binascii` and the packet walk only touches packet headers, so the
cost is dominated by one linear decode of the payload.
"""

from __future__ import annotations

import binascii
import re

__all__ = ["TAG_PKESK", "TAG_SKESK", "TAG_SEIPD", "check_packets", "check_armored"]

TAG_PKESK = 1
TAG_SKESK = 3
TAG_SEIPD = 18

# Packets that may precede the encrypted data packet.
SESSION_KEY_TAGS = frozenset({TAG_PKESK, TAG_SKESK})
# SEIPD versions: 1 (RFC 4880, MDC) and 2 (RFC 9580, AEAD).
SEIPD_VERSIONS = frozenset({1, 2})

ARMOR_BEGIN = b"-----BEGIN PGP MESSAGE-----\r\n"
ARMOR_END = b"-----END PGP MESSAGE-----"
ARMOR_VERSION = b"Version: "
CRLF = b"\r\n"
BASE64_LINES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n"
_CHECKSUM_LINE = re.compile(rb"=[A-Za-z0-9+/]{4}\r\n")


def check_packets(data: bytes) -> bool:
    """True if ``data`` is session-key packets followed by exactly one SEIPD."""
    size = len(data)
    pos = 0
    while pos < size:
        header = data[pos]
        if header & 0xC0 != 0xC0:
            return False  # old-format header or not a packet at all
        tag = header & 0x3F
        pos += 1
        length_at = pos
        # Partial body lengths: each octet 224..254 announces a chunk of
        # 2**(octet & 31) bytes; the sequence ends with a normal length.
        while pos < size and 224 <= data[pos] < 255:
            pos += 1 + (1 << (data[pos] & 31))
        if pos >= size:
            return False
        first = data[pos]
        if first < 192:
            pos += 1 + first
        elif first < 224:
            if pos + 1 >= size:
                return False
            pos += 2 + ((first - 192) << 8) + data[pos + 1] + 192
        elif first == 255:
            if pos + 5 > size:
                return False
            pos += 5 + int.from_bytes(data[pos + 1 : pos + 5], "big")
        else:  # pragma: no cover - 224..254 were consumed by the loop above
            return False
        if pos == size:
            if tag != TAG_SEIPD:
                return False
            # The first body octet is the SEIPD version.
            version_at = _first_body_octet(data, length_at)
            return version_at < size and data[version_at] in SEIPD_VERSIONS
        if pos > size or tag not in SESSION_KEY_TAGS:
            return False
    return False


def _first_body_octet(data: bytes, length_at: int) -> int:
    """Offset of the first body octet of a packet whose length field starts at ``length_at``.

    With partial body lengths the body starts right after the first
    length octet (the first chunk).
    """
    first = data[length_at]
    if first < 192 or 224 <= first < 255:
        return length_at + 1
    if first < 224:
        return length_at + 2
    return length_at + 5


def check_armored(payload: bytes, *, incoming: bool) -> bool:
    """True if ``payload`` is an ASCII-armored encrypted OpenPGP message.

    CRLF line endings are expected (the payload is a MIME part as it came
    over SMTP).  An armor header ``Version: ...`` right after the BEGIN line
    is refused on outgoing mail (our clients never write it) and skipped on
    incoming mail (ProtonMail writes it).  The checksum line ``=XXXX`` is cut
    off at the last ``=``; a payload without it does not decode.  Between
    the armor lines only base64 and line breaks may stand.
    """
    if not payload.startswith(ARMOR_BEGIN):
        return False
    start = len(ARMOR_BEGIN)
    end = len(payload)
    while end - start >= 2 and payload.endswith(CRLF, start, end):
        end -= 2
    if not payload.endswith(ARMOR_END, start, end):
        return False
    end -= len(ARMOR_END)
    if payload.startswith(ARMOR_VERSION, start, end):
        if not incoming:
            return False
        newline = payload.find(CRLF, start, end)
        if newline < 0:
            return False
        start = newline + 2
    while payload.startswith(CRLF, start, end):
        start += 2
    checksum = payload.rfind(b"=", start, end)
    if checksum < 0:
        return False
    # Nothing but base64 may stand in the armor: binascii skips any other
    # byte, so 8-bit text or punctuation between the lines, or text after
    # the checksum, would travel as cleartext inside an "encrypted" message.
    if payload[start:checksum].translate(None, BASE64_LINES) or not _CHECKSUM_LINE.fullmatch(payload, checksum, end):
        return False
    try:
        packets = binascii.a2b_base64(payload[start:checksum])
    except binascii.Error:
        return False
    return check_packets(packets)
