"""The header rules of the direct path are Postfix's own, and they touch the header block only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chatmaild.headerclean import DROP, POSTFIX_DROPPED, RULES, clean

POSTFIX_FILES = Path(__file__).parents[3] / "chatmail" / "postfix" / "files"
TABLES = {"outgoing": "submission_header_cleanup", "incoming": "incoming_header_cleanup"}


def postfix_rules(name: str) -> dict[str, str | None]:
    """A header_checks regexp table as {field name: DROP or the replacement line}."""
    rules: dict[str, str | None] = {}
    for line in (POSTFIX_FILES / name).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        pattern, action = re.fullmatch(r"/\^([\w-]+):/\s+(.*)", line).groups()
        verb, _, text = action.partition(" ")
        assert verb in ("IGNORE", "REPLACE"), line
        rules[pattern.lower()] = DROP if verb == "IGNORE" else text
    return rules


@pytest.mark.parametrize("mode", sorted(TABLES))
def test_the_table_is_what_postfix_applies(mode):
    """Mail through Postfix's queue and mail stored directly lose the same fields."""
    assert postfix_rules(TABLES[mode]) == RULES[mode]


def test_postfix_drops_its_default_fields():
    main_cf = (POSTFIX_FILES / "main.cf.j2").read_text()
    assert "message_drop_headers" not in main_cf  # Postfix's default, as POSTFIX_DROPPED says
    assert POSTFIX_DROPPED == {"bcc", "content-length", "resent-bcc", "return-path"}


def test_folded_fields_go_whole_and_the_body_stays():
    data = (
        b"Received: from a\r\n\tby b\r\n  with c\r\n"
        b"From: <alice@example.org>\r\n"
        b"SUBJECT: secret\r\n plans\r\n"
        b"X-Mailer : Thing 1.0\r\n"
        b"Return-Path: <x@y>\r\n"
        b"To: <bob@example.org>\r\n"
        b"\r\n"
        b"Received: this is body text\r\nSubject: so is this\r\n"
    )
    assert clean(data, "outgoing") == (
        b"From: <alice@example.org>\r\n"
        b"Subject: [...]\r\n"
        b"To: <bob@example.org>\r\n"
        b"\r\n"
        b"Received: this is body text\r\nSubject: so is this\r\n"
    )


def test_incoming_keeps_what_outgoing_hides():
    data = b"Subject: hi\r\nUser-Agent: x\r\nDKIM-Signature: v=1;\r\n b=abc\r\nTo: <b@example.org>\r\n\r\nbody\r\n"
    assert clean(data, "incoming") == b"Subject: hi\r\nUser-Agent: x\r\nTo: <b@example.org>\r\n\r\nbody\r\n"


def test_a_message_without_body_or_with_a_non_header_line():
    assert clean(b"Received: x\r\nTo: <b@example.org>\r\n", "incoming") == b"To: <b@example.org>\r\n"
    # a line that cannot be a header ends the header block, as in Postfix: the rest is body
    data = b"To: <b@example.org>\r\nnot a header\r\nReceived: y\r\n"
    assert clean(data, "incoming") == data
