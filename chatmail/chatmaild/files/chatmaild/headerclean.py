"""The header fields a stored message loses, for mail the filter delivers itself.

Mail that goes through Postfix's queue is cleaned by Postfix's cleanup
service: its ``header_checks`` tables (``submission_header_cleanup`` for
outgoing mail, ``incoming_header_cleanup`` for incoming mail) and its
default ``message_drop_headers``.  Mail for this relay's own mailboxes is
handed by filtermail to Dovecot's LMTP directly (:mod:`chatmaild.lmtp`),
so this module applies the same rules to it.  ``RULES`` is the one table
of them; a unit test checks that the Postfix tables say the same.

Only the message's own header block is read, as Postfix reads it with
``disable_mime_input_processing = yes``: a field with its continuation
lines is one logical line, and a rule matches the field name without
regard to case.
"""

from __future__ import annotations

import re

__all__ = ["DROP", "RULES", "POSTFIX_DROPPED", "clean"]

DROP = None  # the field is removed (Postfix: IGNORE)

# mode -> field name (lower case) -> DROP, or the line that replaces it (REPLACE)
RULES: dict[str, dict[str, str | None]] = {
    # the client's address and software; a cleartext subject never leaves the client
    "outgoing": {
        "received": DROP,
        "x-originating-ip": DROP,
        "x-mailer": DROP,
        "user-agent": DROP,
        "subject": "Subject: [...]",
    },
    # verified already, of no use in a mailbox; the sender's servers and addresses
    "incoming": {
        "dkim-signature": DROP,
        "authentication-results": DROP,
        "received": DROP,
    },
}

# Postfix's message_drop_headers default, applied to every message
POSTFIX_DROPPED = frozenset({"bcc", "content-length", "resent-bcc", "return-path"})

# a header field's first line: a name (printable, no colon) and a colon
_FIELD = re.compile(rb"([\041-\071\073-\176]+)[\t ]*:")


def clean(data: bytes, mode: str) -> bytes:
    """``data`` with the header fields of ``mode``'s rules dropped or replaced; the body as it is."""
    rules = RULES[mode]
    head_end = data.find(b"\r\n\r\n")
    head_end = len(data) if head_end < 0 else head_end + 2
    out: list[bytes] = []
    action: str | None | bool = False  # of the current field: False keeps it
    pos = 0
    for line in data[:head_end].splitlines(True):
        if line[:1] in (b" ", b"\t"):
            if action is False:
                out.append(line)
            pos += len(line)
            continue
        field = _FIELD.match(line)
        if field is None:
            break  # not a header line: the body starts here (as in Postfix)
        name = field.group(1).decode("ascii").lower()
        if name in POSTFIX_DROPPED:
            action = DROP
        else:
            action = rules.get(name, False)
        if action is False:
            out.append(line)
        elif action is not DROP:
            out.append(action.encode("ascii") + b"\r\n")
        pos += len(line)
    return b"".join(out) + data[pos:]
