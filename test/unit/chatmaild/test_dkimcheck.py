"""Inbound DKIM in the incoming filter: the rules of chatmaild.dkimcheck on real signatures."""

from __future__ import annotations

import time

import dns.resolver
import pytest

from chatmaild.dkimcheck import LOOKUP_TIMEOUT, DkimCheck, KeyLookupFailed, dns_txt_lookup
from support import mailcorpus as mc
from support.dkim import KeyTable, sign
from support.freeports import LOOPBACK, free_port

REMOTE = "remote@elsewhere.net"
BOB = "bob@example.org"


@pytest.fixture
def keys():
    table = KeyTable()
    table.publish("elsewhere.net")
    table.publish("other.example")
    return table


@pytest.fixture
def check(keys):
    return DkimCheck(keys)


def test_valid_signature_of_the_from_domain_accepted(check):
    assert check.refusal(sign(mc.encrypted(REMOTE, [BOB]), "elsewhere.net"), "elsewhere.net") is None


def test_domain_compares_case_insensitively(check, keys):
    data = sign(mc.encrypted(REMOTE, [BOB]), "elsewhere.net")
    assert (
        check.refusal(data.replace(b"d=elsewhere.net", b"d=ElseWhere.NET", 1), "elsewhere.net") is not None
    )  # signed header changed
    assert check.refusal(data, "ELSEWHERE.net") is None


def test_missing_signature_refused(check):
    reply = check.refusal(mc.encrypted(REMOTE, [BOB]), "elsewhere.net")
    assert reply.startswith("554 5.7.1 ") and "elsewhere.net" in reply


def test_an_8bit_from_domain_gets_a_sendable_refusal(check):
    """Found by fuzzing: a From: domain with 8-bit bytes (surrogate-escaped) made the reply unencodable,
    so the client got 451 "internal error" for ever instead of 554."""
    domain = b"mx\xed\xa0\x80.example.net".decode("utf-8", "surrogateescape")
    reply = check.refusal(mc.encrypted(REMOTE, [BOB]), domain)
    assert reply.startswith("554 5.7.1") and "mx???.example.net" in reply
    reply.encode("ascii")


def test_signature_of_another_domain_does_not_count(check):
    reply = check.refusal(sign(mc.encrypted(REMOTE, [BOB]), "other.example"), "elsewhere.net")
    assert reply.startswith("554 5.7.1 No valid DKIM signature found")


def test_tampered_body_refused_with_the_dkim_error(check):
    data = sign(mc.encrypted(REMOTE, [BOB]), "elsewhere.net")
    tampered = data.replace(b"-----END PGP MESSAGE-----", b"x-----END PGP MESSAGE-----")
    reply = check.refusal(tampered, "elsewhere.net")
    assert reply.startswith("554 5.7.1 ") and "body hash mismatch" in reply


def test_signature_with_a_wrong_key_refused(check):
    forged = sign(mc.encrypted(REMOTE, [BOB]), "elsewhere.net", key="attacker")
    reply = check.refusal(forged, "elsewhere.net")
    assert reply.startswith("554 5.7.1 ") and "does not verify" in reply


def test_unpublished_key_refused(check):
    reply = check.refusal(sign(mc.encrypted(REMOTE, [BOB]), "elsewhere.net", selector="gone"), "elsewhere.net")
    assert reply.startswith("554 5.7.1 ") and "missing public key" in reply


def test_one_valid_aligned_signature_is_enough(check):
    data = sign(mc.encrypted(REMOTE, [BOB]), "elsewhere.net")
    broken_foreign = sign(data, "other.example", key="attacker")  # a bad signature of another domain
    assert check.refusal(broken_foreign, "elsewhere.net") is None
    second_bad = sign(data, "elsewhere.net", key="attacker")  # a bad one of the same domain on top
    assert check.refusal(second_bad, "elsewhere.net") is None


def test_transient_lookup_failure_is_temporary(keys, check):
    keys.records["sel._domainkey.elsewhere.net."] = KeyLookupFailed("SERVFAIL")
    reply = check.refusal(sign(mc.encrypted(REMOTE, [BOB]), "elsewhere.net"), "elsewhere.net")
    assert reply.startswith("451 4.4.3 ")


def test_garbage_signature_header_refused_not_crashed(check):
    data = b"DKIM-Signature: v=1; d=elsewhere.net; s=sel; b=!!!; bh=; h=from\r\n" + mc.encrypted(REMOTE, [BOB])
    assert check.refusal(data, "elsewhere.net").startswith("554 5.7.1 ")
    data = b"DKIM-Signature: \x00\xff;;==\r\n" + mc.encrypted(REMOTE, [BOB])
    assert check.refusal(data, "elsewhere.net").startswith("554 5.7.1 ")


def test_reply_text_is_one_printable_line(check):
    data = sign(mc.encrypted(REMOTE, [BOB]), "elsewhere.net", selector="gone")
    reply = check.refusal(data, "elsewhere.net")
    assert "\r" not in reply and "\n" not in reply and len(reply) < 300


def test_resolver_down_is_a_temporary_failure():
    """No resolver answering (unbound restarting, stopped): 451 after a few retries, never 554."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [LOOPBACK]
    resolver.port = free_port()  # nothing listens there
    check = DkimCheck(dns_txt_lookup(resolver))
    started = time.monotonic()
    reply = check.refusal(sign(mc.encrypted(REMOTE, [BOB]), "elsewhere.net"), "elsewhere.net")
    assert reply.startswith("451 4.4.3 "), reply
    assert time.monotonic() - started < LOOKUP_TIMEOUT + 2


def test_malformed_signed_headers_are_a_permanent_refusal(check):
    """dkimpy raises IndexError & co. on some malformed mail: still a 554, never an internal error."""
    data = sign(mc.encrypted(REMOTE, [BOB]), "elsewhere.net")
    for broken in (
        data.replace(b"\r\nFrom:", b"\r\nFrom", 1),
        data.replace(b"; h=", b"; h=:", 1),
        data.replace(b"\r\n\r\n", b"\r\n", 1),
        data.replace(b"DKIM-Signature: ", b"DKIM-Signature:\r\n ", 1),
    ):
        reply = check.refusal(broken, "elsewhere.net")
        assert reply is None or reply.startswith("554 5.7.1 "), reply
