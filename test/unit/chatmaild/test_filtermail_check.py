"""filtermail's rules without SMTP: FilterPolicy on the generated MIME corpus.

Also a differential test: the fast MIME walk of ``chatmaild.mimecheck``
must agree with a straightforward reading of design.md §5.6 on top of a full
:mod:`email` parse, on the corpus and on mangled variants of it.
"""

from __future__ import annotations

import random

import pytest

from chatmaild.config import read_config
from chatmaild.filtermail import ENCRYPTION_NEEDED, MODES, FilterPolicy
from chatmaild.mimecheck import Mail, is_encrypted, is_securejoin_request
from chatmaild.ratelimit import SendRateLimiter
from support import mailcorpus as mc
from support.filtermail import write_ini
from support.mimereference import reference_is_encrypted, reference_is_securejoin

ALICE = "alice@example.org"
BOB = "bob@example.org"
CAROL = "carol@example.org"
REMOTE = "remote@elsewhere.net"


@pytest.fixture
def config(tmp_path):
    ini = write_ini(
        tmp_path,
        passthrough_senders=["news@example.org"],
        passthrough_recipients=["echo@example.org", "@open.example"],
        max_user_send_per_minute=5,
        max_user_send_burst_size=3,
    )
    return read_config(ini)


@pytest.fixture
def outgoing(config):
    return FilterPolicy(config, MODES["outgoing"])


@pytest.fixture
def incoming(config):
    return FilterPolicy(config, MODES["incoming"])


def protect(config, addr):
    user_dir = config.get_user_dir(addr)
    user_dir.mkdir(parents=True, exist_ok=True)
    (user_dir / "enforceE2EEincoming").touch()


RNG = __import__("random").Random(5)
PARTIAL = mc.pkesk(RNG) + mc.packet(mc.TAG_SEIPD, mc.seipd_body(RNG, 9000), partial=[12, 11])
LITERAL = mc.packet(mc.TAG_LITERAL, mc.literal_body(b"not encrypted at all"))
ARMORED = mc.armor(mc.encrypted_packets(1500, seed=9))

ENC = mc.encrypted(ALICE, [BOB])
SJ = mc.securejoin(ALICE, BOB)
FIRST_DELIMITER = b"\r\n\r\n--b00000000_encrypted\r\n"
CLOSE = b"--b00000000_encrypted--\r\n"


def with_preamble(data: bytes, text: bytes, first: bytes = FIRST_DELIMITER) -> bytes:
    return data.replace(first, b"\r\n\r\n" + text + first[2:], 1)


# name: (mail_from, rcpt_tos, data, outgoing verdict, incoming verdict with every recipient protected)
# verdict None means accepted; otherwise the reply starts with it.
# a table: one row per line: not reformatted
# fmt: off
CASES = {
    "encrypted": (ALICE, [BOB], mc.encrypted(ALICE, [BOB]), None, None),
    "encrypted 300k": (ALICE, [BOB], mc.encrypted(ALICE, [BOB], size=300_000), None, None),
    "encrypted many recipients": (ALICE, [BOB, CAROL, REMOTE], mc.encrypted(ALICE, [BOB, CAROL, REMOTE]), None, None),
    "encrypted From with name": (ALICE, [BOB], mc.encrypted(ALICE, [BOB], from_header=f"From: Alice <{ALICE}>"), None, None),
    "encrypted From upper case": (ALICE, [BOB], mc.encrypted(ALICE, [BOB], from_header="From: <Alice@Example.org>"), None, None),
    "encrypted From other local user": (ALICE, [BOB], mc.encrypted(ALICE, [BOB], from_header=f"From: <{CAROL}>"), "500 Invalid FROM <'carol@example.org'> for <'alice@example.org'>", None),
    "encrypted From foreign": (ALICE, [BOB], mc.encrypted(ALICE, [BOB], from_header="From: someone@example.net"), "500 Invalid FROM", None),
    "encrypted two From addresses": (ALICE, [BOB], mc.encrypted(ALICE, [BOB], from_header=f"From: {ALICE}, {CAROL}"), "500 Invalid FROM", None),
    "no From": (ALICE, [BOB], mc.encrypted(ALICE, [BOB], from_header="X-No-From: 1"), "500 Invalid FROM <''> for <'alice@example.org'>", None),
    "partial body lengths": (ALICE, [BOB], mc.encrypted(ALICE, [BOB], payload=PARTIAL), None, None),
    "ProtonMail Version armor header": (ALICE, [BOB], mc.encrypted(ALICE, [BOB], armor_headers=["Version: ProtonMail"]), "523", None),
    "literal packet": (ALICE, [BOB], mc.encrypted(ALICE, [BOB], payload=LITERAL), "523", "523"),
    "one part only (#8)": (ALICE, [BOB], mc.encrypted(ALICE, [BOB], parts=[("Content-Type: application/pgp-encrypted", "Version: 1")]), "523", "523"),
    "three parts": (ALICE, [BOB], mc.encrypted(ALICE, [BOB], parts=[("Content-Type: application/pgp-encrypted", "Version: 1"), ("Content-Type: application/octet-stream", ARMORED), ("Content-Type: text/plain", "hi")]), "523", "523"),
    "parts swapped": (ALICE, [BOB], mc.encrypted(ALICE, [BOB], parts=[("Content-Type: application/octet-stream", ARMORED), ("Content-Type: application/pgp-encrypted", "Version: 1")]), "523", "523"),
    "control Version 2": (ALICE, [BOB], mc.encrypted(ALICE, [BOB], control="Version: 2"), "523", "523"),
    "payload text/plain": (ALICE, [BOB], mc.encrypted(ALICE, [BOB], parts=[("Content-Type: application/pgp-encrypted", "Version: 1"), ("Content-Type: text/plain", ARMORED)]), "523", "523"),
    "payload base64 encoded": (ALICE, [BOB], mc.encrypted(ALICE, [BOB], parts=[("Content-Type: application/pgp-encrypted", "Version: 1"), ("Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64", __import__("base64").encodebytes(ARMORED.encode()).decode().replace("\n", "\r\n"))]), "523", "523"),
    "nested multipart payload": (ALICE, [BOB], mc.encrypted(ALICE, [BOB], parts=[("Content-Type: application/pgp-encrypted", "Version: 1"), ('Content-Type: multipart/mixed; boundary="inner"', "--inner\r\nContent-Type: application/octet-stream\r\n\r\n" + ARMORED + "--inner--")]), "523", "523"),
    "multipart/mixed around good parts": (ALICE, [BOB], mc.encrypted(ALICE, [BOB], content_type='multipart/mixed; boundary="b00000000_encrypted"'), "523", "523"),
    "encrypted without boundary": (ALICE, [BOB], mc.encrypted(ALICE, [BOB], content_type="multipart/encrypted"), "523", "523"),
    "plain": (ALICE, [BOB], mc.plain(ALICE, [BOB]), "523", "523"),
    "plain to remote": (ALICE, [REMOTE], mc.plain(ALICE, [REMOTE]), "523", "523"),
    "plain from passthrough sender": ("news@example.org", [BOB], mc.plain("news@example.org", [BOB]), None, "523"),
    "plain to passthrough recipient": (ALICE, ["echo@example.org"], mc.plain(ALICE, ["echo@example.org"]), None, "523"),
    "plain to passthrough domain": (ALICE, ["x@open.example", "Y@OPEN.example"], mc.plain(ALICE, ["x@open.example"]), None, "523"),
    "plain to passthrough and other": (ALICE, ["echo@example.org", BOB], mc.plain(ALICE, ["echo@example.org", BOB]), "523", "523"),
    "plain to subdomain of passthrough domain": (ALICE, ["x@sub.open.example"], mc.plain(ALICE, ["x@sub.open.example"]), "523", "523"),
    "securejoin vc-request": (ALICE, [BOB], mc.securejoin(ALICE, BOB), None, None),
    "securejoin vg-request": (ALICE, [BOB], mc.securejoin(ALICE, BOB, step="vg-request"), None, None),
    "securejoin body upper case": (ALICE, [BOB], mc.securejoin(ALICE, BOB, body="SECURE-JOIN: VC-REQUEST  "), None, None),
    "securejoin vc-auth-required": (ALICE, [BOB], mc.securejoin(ALICE, BOB, step="vc-auth-required"), "523", "523"),
    "securejoin header/body differ": (ALICE, [BOB], mc.securejoin(ALICE, BOB, header="vc-request", body="Secure-Join: vc-request-with-auth"), "523", "523"),
    "securejoin header upper case": (ALICE, [BOB], mc.securejoin(ALICE, BOB, header="VC-REQUEST"), "523", "523"),
    "securejoin extra text": (ALICE, [BOB], mc.securejoin(ALICE, BOB, body="Secure-Join: vc-request\r\nand a secret"), "523", "523"),
    "securejoin two parts": (ALICE, [BOB], mc.securejoin(ALICE, BOB, extra_parts=1), "523", "523"),
    "securejoin not multipart": (ALICE, [BOB], mc.plain(ALICE, [BOB], body="Secure-Join: vc-request").replace(b"MIME-Version", b"Secure-Join: vc-request\r\nMIME-Version"), "523", "523"),
    "Autocrypt Setup Message": (ALICE, [ALICE], mc.autocrypt_setup(ALICE), None, "523"),
    "Autocrypt Setup Message to other": (ALICE, [BOB], mc.autocrypt_setup(ALICE), "523", "523"),
    "Autocrypt Setup Message two recipients": (ALICE, [ALICE, BOB], mc.autocrypt_setup(ALICE), "523", "523"),
    "Autocrypt Setup Message wrong subject": (ALICE, [ALICE], mc.autocrypt_setup(ALICE, subject="Backup"), "523", "523"),
    "Autocrypt Setup Message not mixed": (ALICE, [ALICE], mc.autocrypt_setup(ALICE, content_type="multipart/alternative"), "523", "523"),
    "mailer-daemon report": ("", [ALICE], mc.report(), "500 Invalid FROM", None),
    "report without Auto-Submitted": ("", [ALICE], mc.report(auto_submitted=False), "500 Invalid FROM", "523"),
    "report from a user": (REMOTE, [ALICE], mc.report(REMOTE), "523", "523"),
    "unencrypted MDN": (ALICE, [BOB], mc.report(ALICE, BOB, kind="disposition-notification", auto_submitted=False), "523", "523"),
    "garbage": (ALICE, [BOB], bytes(range(256)) * 10, "500 Invalid FROM", "523"),
    "garbage with From": (ALICE, [BOB], b"From: alice@example.org\r\n\r\n" + bytes(range(256)) * 10, "523", "523"),
    "empty": (ALICE, [BOB], b"", "500 Invalid FROM", "523"),
    "headers only": (ALICE, [BOB], b"From: alice@example.org\r\nContent-Type: multipart/encrypted; boundary=x", "523", "523"),
    # issue 13, 3: the filter checked only the first From
    "two From headers": (ALICE, [BOB], ENC.replace(b"To: ", f"From: <{CAROL}>\r\nTo: ".encode(), 1), "550 5.7.1 More than one From header", None),
    "two From headers, both the sender": (ALICE, [BOB], ENC.replace(b"To: ", f"FROM: {ALICE}\r\nTo: ".encode(), 1), "550 5.7.1", None),
    # issue 13, 4: cleartext around or beside the encrypted parts
    "preamble text": (ALICE, [BOB], with_preamble(ENC, b"meet me at noon"), "523", "523"),
    "preamble Thunderbird line": (ALICE, [BOB], with_preamble(ENC, b"This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n"), None, None),
    "preamble blank lines": (ALICE, [BOB], with_preamble(ENC, b" \r\n\t\r\n"), None, None),
    "preamble fixed line and text": (ALICE, [BOB], with_preamble(ENC, b"This is an OpenPGP/MIME encrypted message\r\nsecret"), "523", "523"),
    "epilogue text": (ALICE, [BOB], ENC + b"meet me at noon\r\n", "523", "523"),
    "epilogue blank": (ALICE, [BOB], ENC + b"\r\n\r\n", None, None),
    "second boundary parameter": (ALICE, [BOB], ENC.replace(b'boundary="b00000000_encrypted"', b'boundary="b00000000_encrypted"; boundary="evil"', 1), "523", "523"),
    "boundary parameter twice, other case": (ALICE, [BOB], ENC.replace(b'boundary="b00000000_encrypted"', b'boundary="b00000000_encrypted"; BOUNDARY=evil', 1), "523", "523"),
    "two Content-Type headers": (ALICE, [BOB], ENC.replace(b"MIME-Version", b'Content-Type: multipart/mixed; boundary="evil"\r\nMIME-Version', 1), "523", "523"),
    "part Content-Type twice": (ALICE, [BOB], ENC.replace(b"Content-Type: application/pgp-encrypted", b"Content-Type: application/pgp-encrypted\r\nContent-Type: text/plain", 1), "523", "523"),
    "securejoin preamble text": (ALICE, [BOB], with_preamble(SJ, b"secret", b"\r\n\r\n--sj000000\r\n"), "523", "523"),
    "securejoin epilogue text": (ALICE, [BOB], SJ + b"secret\r\n", "523", "523"),
    "securejoin second boundary": (ALICE, [BOB], SJ.replace(b'boundary="sj000000"', b'boundary="sj000000"; boundary="x"'), "523", "523"),
    # found by bench/fuzz.py: a boundary that is not ASCII made the filter raise (451 forever)
    "boundary not ASCII (RFC 2231)": (ALICE, [BOB], ENC.replace(b'boundary="b00000000_encrypted"', b"boundary*=utf-8''b%C3%A9", 1), "523", "523"),
    "boundary with 8-bit bytes": (ALICE, [BOB], ENC.replace(b'boundary="b00000000_encrypted"', b'boundary="b\xff\xfe"', 1), "523", "523"),
    "broken MIME boundary": (ALICE, [BOB], mc.encrypted(ALICE, [BOB]).replace(b"--b00000000_encrypted\r\n", b"--b0000000_encrypted\r\n"), "523", "523"),
}
# fmt: on


def verdict_matches(reply, expected):
    if expected is None:
        return reply is None
    return reply is not None and reply.startswith(expected)


@pytest.mark.parametrize("name", CASES)
def test_outgoing_rules(outgoing, name):
    mail_from, rcpt_tos, data, expected, _ = CASES[name]
    reply = outgoing.check_message(mail_from, rcpt_tos, data)
    assert verdict_matches(reply, expected), reply


@pytest.mark.parametrize("name", CASES)
def test_incoming_rules_protected_recipients(config, incoming, name):
    mail_from, rcpt_tos, data, _, expected = CASES[name]
    for rcpt in rcpt_tos:
        protect(config, rcpt)
    reply = incoming.check_content(mail_from, rcpt_tos, Mail(data))  # DKIM: test_dkimcheck.py
    assert verdict_matches(reply, expected), reply


def test_incoming_cleartext_only_for_unprotected(config, incoming):
    mail = Mail(mc.plain(REMOTE, [ALICE, BOB]))
    assert incoming.check_content(REMOTE, [ALICE, BOB], mail) is None  # no markers, unknown users
    protect(config, BOB)
    assert incoming.check_content(REMOTE, [ALICE, BOB], mail) == ENCRYPTION_NEEDED
    assert incoming.check_content(REMOTE, [ALICE], mail) is None
    assert incoming.check_content(REMOTE, ["../x@example.org"], mail) is None  # not a mailbox


def test_log_lines(outgoing, incoming, caplog):
    """mtail counts these exact lines (design.md §5.13)."""
    caplog.set_level("INFO", logger="filtermail")
    outgoing.check_message(ALICE, [BOB], mc.encrypted(ALICE, [BOB]))
    outgoing.check_message(ALICE, [BOB], mc.plain(ALICE, [BOB]))
    incoming.check_message(REMOTE, [BOB], mc.encrypted(REMOTE, [BOB]))
    incoming.check_message(REMOTE, [BOB], mc.plain(REMOTE, [BOB]))
    lines = [r.getMessage() for r in caplog.records]
    for expected in (
        "Outgoing: Filtering encrypted mail.",
        "Outgoing: Filtering unencrypted mail.",
        "Rejected unencrypted mail.",
        "Incoming: Filtering encrypted mail.",
        "Incoming: Filtering unencrypted mail.",
    ):
        assert expected in lines


# -- MAIL FROM: sender form and rate limit --------------------------------------


def test_sender_form(outgoing, incoming):
    assert outgoing.check_sender(ALICE) is None
    assert outgoing.check_sender("alice") == "500 Invalid from address <'alice'>"
    assert outgoing.check_sender("a@b@c") == "500 Invalid from address <'a@b@c'>"
    assert incoming.check_sender("alice") is None  # incoming: any sender, also <>


def test_rate_limit_per_sender(outgoing):
    replies = [outgoing.check_sender(ALICE) for _ in range(5)]
    assert replies[:3] == [None] * 3  # max_user_send_burst_size = 3
    assert replies[3] == replies[4] == f"450 4.7.1: Too much mail from {ALICE}"
    assert outgoing.check_sender(BOB) is None
    assert outgoing.check_sender("ALICE@example.org").startswith("450 4.7.1")


def clocked(per_minute, burst):
    now = [1000.0]
    return now, SendRateLimiter(per_minute, burst, clock=lambda: now[0])


def test_burst_then_one_per_interval():
    """GCRA as upstream's filtermail: `burst` at once, then one every 60/per_minute s."""
    now, limiter = clocked(60, 10)
    assert [limiter.allow("a") for _ in range(11)] == [True] * 10 + [False]
    now[0] += 0.999  # one interval (1 s) is not over: still nothing
    assert not limiter.allow("a")
    now[0] += 0.001  # exactly one interval: exactly one more
    assert [limiter.allow("a") for _ in range(2)] == [True, False]
    now[0] += 3.0  # three intervals: three more
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b")  # per sender


def test_steady_rate_is_per_minute_and_idle_refills_only_to_burst():
    now, limiter = clocked(60, 10)
    sent = 0
    for i in range(6000):  # ten minutes of trying ten times a second
        now[0] = 1000.0 + i / 10
        sent += limiter.allow("a")
    assert sent == 10 + 599  # the first burst, then one a second (60 a minute)
    now[0] += 3600  # a long pause gives back the burst, not more
    assert [limiter.allow("a") for _ in range(11)] == [True] * 10 + [False]


def test_burst_one_is_a_plain_rate():
    now, limiter = clocked(3, 1)
    assert [limiter.allow("a") for _ in range(2)] == [True, False]
    now[0] += 19.9
    assert not limiter.allow("a")
    now[0] += 0.1
    assert limiter.allow("a")


def test_full_buckets_are_forgotten():
    now, limiter = clocked(3, 2)
    assert limiter.allow("a")
    now[0] += 1000
    assert limiter.allow("b") and list(limiter._tat) == ["b"]


def test_rate_limit_zero_is_unlimited():
    limiter = SendRateLimiter(0)
    assert all(limiter.allow("a") for _ in range(1000))


# -- the fast MIME walk agrees with a full email parse ---------------------------


def mangled(data: bytes, rng: random.Random) -> bytes:
    """One structural change of the kind broken or hostile senders make."""
    lines = data.split(b"\r\n")
    choice = rng.randrange(12)
    i = rng.randrange(len(lines))
    if choice == 0:
        del lines[i]
    elif choice == 1:
        lines.insert(i, lines[rng.randrange(len(lines))])
    elif choice == 2:
        lines[i] = lines[i] + b" \t"
    elif choice == 3:
        return data.replace(b"\r\n", b"\n")
    elif choice == 4:
        lines.insert(i, b"")
    elif choice == 5:
        return data.rstrip(b"\r\n").rsplit(b"\r\n", 1)[0]  # no close delimiter
    elif choice == 6:
        lines.insert(i, b"preamble or epilogue text")
    elif choice == 7:
        lines[i] = lines[i].upper()
    elif choice == 8:
        return data.replace(b"\r\n", b"\r")
    elif choice == 9:
        lines.insert(i, rng.choice([b"From nobody Mon Jan 1", b": no name", b" continued", b"\tcontinued"]))
    elif choice == 10:
        lines.insert(min(i, 3), b"X-Mangled: 1")
    else:
        lines.insert(0, rng.choice([b"From nobody Mon Jan 1", b" continued", b""]))
    return b"\r\n".join(lines)


def corpus():
    yield from (case[2] for case in CASES.values())
    for seed in range(3):
        yield mc.encrypted(size=500 + seed * 3000, seed=seed)
        yield mc.securejoin(seed=seed)


def test_fast_walk_agrees_with_full_parse():
    rng = random.Random(11)
    checked = accepted = 0
    for original in corpus():
        variants = [original] + [mangled(original, rng) for _ in range(20)]
        for data in variants:
            mail = Mail(data)
            for incoming in (False, True):
                expected = reference_is_encrypted(data, incoming)
                assert is_encrypted(Mail(data), incoming=incoming) == expected, data[:3000]
                accepted += expected
            assert is_securejoin_request(mail) == reference_is_securejoin(data), data[:3000]
            checked += 1
    assert checked > 500 and accepted > 50  # the variants exercise both outcomes
