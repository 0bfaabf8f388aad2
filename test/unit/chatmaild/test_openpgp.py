"""The OpenPGP packet and armor checks on hand-built packet streams."""

from __future__ import annotations

import random
import shutil
import subprocess

import pytest

from chatmaild.openpgp import check_armored, check_packets
from support.mailcorpus import (
    TAG_COMPRESSED,
    TAG_LITERAL,
    TAG_ONEPASS,
    TAG_PKESK,
    TAG_SEIPD,
    TAG_SIG,
    armor,
    crc24,
    encrypted_packets,
    literal_body,
    old_packet,
    packet,
    pkesk,
    seipd_body,
    skesk,
)

RNG = random.Random(7)
KEY = pkesk(RNG)
SKEY = skesk(RNG)
SEIPD = packet(TAG_SEIPD, seipd_body(RNG, 500))

PACKET_STREAMS = {
    # name: (bytes, expected)
    "pkesk+seipd": (KEY + SEIPD, True),
    "two pkesk+seipd": (KEY + KEY + SEIPD, True),
    "skesk+seipd": (SKEY + SEIPD, True),
    "pkesk+skesk+seipd": (KEY + SKEY + SEIPD, True),
    "seipd alone": (SEIPD, True),
    "seipd v2": (KEY + packet(TAG_SEIPD, seipd_body(RNG, 300, version=2)), True),
    "seipd v5": (KEY + packet(TAG_SEIPD, seipd_body(RNG, 300, version=5)), False),
    "seipd empty body": (KEY + packet(TAG_SEIPD, b""), False),
    "one-octet length": (KEY + packet(TAG_SEIPD, seipd_body(RNG, 100), form=1), True),
    "two-octet length": (KEY + packet(TAG_SEIPD, seipd_body(RNG, 5000), form=2), True),
    "two-octet length max": (KEY + packet(TAG_SEIPD, seipd_body(RNG, 8383), form=2), True),
    "five-octet length": (KEY + packet(TAG_SEIPD, seipd_body(RNG, 100), form=5), True),
    "partial lengths": (KEY + packet(TAG_SEIPD, seipd_body(RNG, 5000), partial=[10, 9, 9]), True),
    "partial then zero": (KEY + packet(TAG_SEIPD, seipd_body(RNG, 1024), partial=[9, 9]), True),
    "partial 1-byte chunks": (KEY + packet(TAG_SEIPD, seipd_body(RNG, 40), partial=[0, 0, 0, 3]), True),
    "empty": (b"", False),
    "pkesk only": (KEY, False),
    "skesk only": (SKEY, False),
    "seipd then pkesk": (SEIPD + KEY, False),
    "two seipd": (KEY + SEIPD + SEIPD, False),
    "trailing byte": (KEY + SEIPD + b"\x00", False),
    "truncated seipd": ((KEY + SEIPD)[:-1], False),
    "truncated two-octet length": (KEY + b"\xd2\xc5", False),
    "truncated five-octet length": (KEY + b"\xd2\xff\x00\x00", False),
    "truncated partial chunk": ((KEY + packet(TAG_SEIPD, seipd_body(RNG, 2000), partial=[10]))[:600], False),
    "partial without final length": (KEY + b"\xd2\xe1\x01\x02", False),
    "literal only": (packet(TAG_LITERAL, literal_body(b"hello")), False),
    "pkesk+literal": (KEY + packet(TAG_LITERAL, literal_body(b"hello")), False),
    "literal before seipd": (packet(TAG_LITERAL, literal_body(b"x")) + SEIPD, False),
    "signed only": (
        packet(TAG_ONEPASS, bytes(13)) + packet(TAG_LITERAL, literal_body(b"x")) + packet(TAG_SIG, bytes(40)),
        False,
    ),
    "compressed": (packet(TAG_COMPRESSED, b"\x01" + bytes(50)), False),
    "pkesk tag as last": (SEIPD[:0] + KEY + packet(TAG_PKESK, bytes(30)), False),
    "old-format pkesk": (old_packet(TAG_PKESK, KEY[2:]) + SEIPD, False),
    "old-format seipd": (KEY + old_packet(TAG_SEIPD, seipd_body(RNG, 300)), False),
    "not a packet": (b"hello world", False),
}


@pytest.mark.parametrize("name", PACKET_STREAMS)
def test_packet_stream(name):
    data, expected = PACKET_STREAMS[name]
    assert check_packets(data) is expected


def test_crc24_known_value():
    # RFC 4880's reference implementation gives 0xB704CE for empty input
    # and this value for "123456789" (CRC-24/OPENPGP check value).
    assert crc24(b"") == 0xB704CE
    assert crc24(b"123456789") == 0x21CF02


PAYLOAD = encrypted_packets(3000, seed=3)
GOOD = armor(PAYLOAD).encode()


ARMORS = {
    # name: (armored bytes, accepted outgoing, accepted incoming)
    "plain": (GOOD, True, True),
    "64 wide": (armor(PAYLOAD, width=64).encode(), True, True),
    "trailing blank lines": (GOOD + b"\r\n\r\n", True, True),
    "version header": (armor(PAYLOAD, headers=["Version: ProtonMail"]).encode(), False, True),
    "comment header": (armor(PAYLOAD, headers=["Comment: hi"]).encode(), False, False),
    "no crc": (armor(PAYLOAD, crc=False).encode(), False, False),
    "LF line ends": (armor(PAYLOAD, eol="\n").encode(), False, False),
    "no begin": (GOOD.replace(b"-----BEGIN PGP MESSAGE-----\r\n", b""), False, False),
    "text before begin": (b"hi\r\n" + GOOD, False, False),
    "signature block": (GOOD.replace(b"PGP MESSAGE", b"PGP SIGNATURE"), False, False),
    "no end": (GOOD.replace(b"-----END PGP MESSAGE-----", b""), False, False),
    "text after end": (GOOD + b"bye\r\n", False, False),
    "bad base64": (b"-----BEGIN PGP MESSAGE-----\r\n\r\nwV4DA\r\n=AAAA\r\n-----END PGP MESSAGE-----\r\n", False, False),
    "literal inside": (armor(packet(TAG_LITERAL, literal_body(b"secret" * 100))).encode(), False, False),
    "partial lengths": (
        armor(KEY + packet(TAG_SEIPD, seipd_body(RNG, 70000), partial=[15, 13, 9])).encode(),
        True,
        True,
    ),
    "empty": (b"", False, False),
    # issue 13, 4: binascii skips what is not base64, so text could ride along inside the armor
    "8-bit text between lines": (GOOD.replace(b"\r\n", "\r\nПривет, это секрет\r\n".encode(), 3), False, False),
    "punctuation between lines": (GOOD.replace(b"\r\n", b"\r\n!!! ... ??? ;-)\r\n", 3), False, False),
    "text after the checksum": (GOOD.replace(b"\r\n-----END", b"\r\nmeet me at noon\r\n-----END"), False, False),
    "text on the checksum line": (GOOD.replace(b"\r\n-----END", b" secret\r\n-----END"), False, False),
    "tab inside a line": (GOOD.replace(b"\r\n", b"\t\r\n", 4), False, False),
}


@pytest.mark.parametrize("name", ARMORS)
def test_armor(name):
    data, outgoing, incoming = ARMORS[name]
    assert check_armored(data, incoming=False) is outgoing
    assert check_armored(data, incoming=True) is incoming


@pytest.mark.skipif(not shutil.which("gpg"), reason="gpg not installed")
def test_gnupg_symmetric_message(tmp_path):
    """A message written by the real GnuPG is judged by its packet header format.

    GnuPG 2.2 writes its SKESK with an old-format header; design.md §5.6 accepts
    new-format headers only, so such a message is refused (as upstream).
    """
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    try:
        out = subprocess.run(
            [
                "gpg",
                "--homedir",
                str(home),
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "x",
                "--symmetric",
                "--armor",
                "--no-emit-version",
                "--rfc4880",
                "--force-mdc",
            ],
            input=b"hello",
            capture_output=True,
            check=True,
        ).stdout.replace(b"\n", b"\r\n")
    finally:  # gpg leaves an agent running for this home
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)
    packets = __import__("base64").b64decode(b"".join(out.split(b"\r\n")[2:-3]))
    new_format = all(b & 0xC0 == 0xC0 for b in _packet_headers(packets))
    assert check_armored(out, incoming=False) is new_format


def _packet_headers(data: bytes):
    """Header octets of a packet stream (old and new format), for the GnuPG test."""
    pos = 0
    while pos < len(data):
        header = data[pos]
        yield header
        if header & 0x40:  # new format
            first = data[pos + 1]
            if first < 192:
                pos += 2 + first
            elif first < 224:
                pos += 3 + ((first - 192) << 8) + data[pos + 2] + 192
            elif first == 255:
                pos += 6 + int.from_bytes(data[pos + 2 : pos + 6], "big")
            else:
                return  # partial lengths: the rest is one data packet
        else:
            size = [1, 2, 4, 0][header & 3]
            if size == 0:
                return
            pos += 1 + size + int.from_bytes(data[pos + 1 : pos + 1 + size], "big")
