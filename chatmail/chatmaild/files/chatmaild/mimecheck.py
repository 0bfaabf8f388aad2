"""The MIME shapes the filter lets through, checked without a full MIME parse.

A full :mod:`email` parse of a message walks every body line in Python;
for a 300 kB encrypted message that is most of the filter's time.  The
rules only need the top-level headers, the headers of the direct subparts
and the raw bodies of those subparts, so this module

* parses header blocks with :mod:`email` (the same header semantics as a
  full parse: folding, quoting, parameters), and
* finds the multipart delimiter lines with one compiled regular
  expression over the body bytes (RFC 2046: ``--boundary`` at the start of
  a line, ``--boundary--`` closes, trailing blanks allowed; the line break
  before a delimiter belongs to the delimiter).

A part body is the raw bytes between its header block and the next
delimiter (no transfer decoding), as ``Message.get_payload()`` gives it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from email.utils import parseaddr
from functools import cached_property

from .openpgp import check_armored

__all__ = [
    "Part",
    "Mail",
    "split_parts",
    "is_encrypted",
    "is_securejoin_request",
    "is_autocrypt_setup_message",
    "is_mailer_daemon_report",
]

_HEADER_PARSER = BytesParser(policy=compat32)
# End of a header block: a line break followed by an empty line.
_BLANK_LINE = re.compile(rb"\r?\n(\r?\n)")
_LEADING_BLANK_LINE = re.compile(rb"\r?\n")


def _parse_headers(block: bytes) -> Message:
    return _HEADER_PARSER.parsebytes(block, headersonly=True)


def _split_head(data: bytes, start: int, end: int) -> tuple[bytes, int]:
    """Header block of ``data[start:end]`` and the offset where its body starts."""
    lead = _LEADING_BLANK_LINE.match(data, start, end)
    if lead:
        return b"", lead.end()
    blank = _BLANK_LINE.search(data, start, end)
    if blank is None:
        return data[start:end], end
    return data[start : blank.start(1)], blank.end()


@dataclass
class Part:
    """One direct subpart of a multipart message: its headers and raw body."""

    headers: Message
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get_content_type()


class Mail:
    """A message as the filter sees it: top-level headers, direct subparts on demand."""

    def __init__(self, data: bytes):
        self.data = data
        head, self._body_start = _split_head(data, 0, len(data))
        self.headers = _parse_headers(head)

    @cached_property
    def content_type(self) -> str:
        return self.headers.get_content_type()

    @cached_property
    def from_address(self) -> str:
        """The address of the ``From:`` header ("" if missing or not one address)."""
        value = self.headers.get("From")
        if value is None:
            return ""
        return parseaddr(str(value))[1]

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return None if value is None else str(value)

    @cached_property
    def parts(self) -> list[Part] | None:
        """Direct subparts, or None if this is not a multipart message.

        A multipart type whose boundary never occurs as a delimiter line is
        not multipart (as for :mod:`email`): its body is plain text.
        """
        if self.headers.get_content_maintype() != "multipart":
            return None
        boundary = self.headers.get_boundary()
        if not boundary:
            return None
        return split_parts(self.data, self._body_start, boundary)


def split_parts(data: bytes, start: int, boundary: str) -> list[Part] | None:
    """The subparts of the multipart body ``data[start:]`` delimited by ``boundary``."""
    parts: list[Part] = []
    part_start = None
    for line_start, line_end, close in _delimiters(data, start, boundary.encode("ascii", "surrogateescape")):
        if part_start is not None:
            parts.append(_make_part(data, part_start, _line_break_before(data, line_start)))
        if close:  # the rest is epilogue
            return parts or None
        part_start = line_end
    if part_start is not None:  # no close delimiter: the last part runs to the end
        parts.append(_make_part(data, part_start, len(data)))
    return parts or None


_DELIMITER_TAIL = re.compile(rb"(--)?[ \t]*(\r?\n|\Z)")


def _delimiters(data: bytes, start: int, boundary: bytes):
    """(line start, start of the next line, is close delimiter) of each delimiter line.

    ``bytes.find`` for the literal dash-boundary is much faster than a
    regular expression anchored at every line start.
    """
    dash_boundary = b"--" + boundary
    pos = start
    while True:
        found = data.find(dash_boundary, pos)
        if found < 0:
            return
        pos = found + len(dash_boundary)
        if found != start and data[found - 1] != 0x0A:  # not at a line start
            continue
        tail = _DELIMITER_TAIL.match(data, pos)
        if tail is None:
            continue
        yield found, tail.end(), tail.group(1) is not None
        pos = tail.end()


def _line_break_before(data: bytes, pos: int) -> int:
    if data.endswith(b"\r\n", 0, pos):
        return pos - 2
    if data.endswith(b"\n", 0, pos):
        return pos - 1
    return pos


def _make_part(data: bytes, start: int, end: int) -> Part:
    head, body_start = _split_head(data, start, end)
    return Part(_parse_headers(head), data[body_start:end])


# -- the shapes ----------------------------------------------------------------

# RFC 3156 section 4: the two parts of an encrypted message, in order.
ENCRYPTED_TYPE = "multipart/encrypted"
CONTROL_TYPE = "application/pgp-encrypted"
CONTROL_BODY = b"Version: 1"
PAYLOAD_TYPE = "application/octet-stream"

SECUREJOIN_REQUESTS = ("vc-request", "vg-request")
SECUREJOIN_BODIES = tuple(b"secure-join: " + r.encode() for r in SECUREJOIN_REQUESTS)


def is_encrypted(mail: Mail, *, incoming: bool) -> bool:
    """An RFC 3156 encrypted message with exactly two parts and an encrypted payload."""
    if mail.content_type != ENCRYPTED_TYPE:
        return False
    parts = mail.parts
    if parts is None or len(parts) != 2:
        return False
    control, payload = parts
    return (
        control.content_type == CONTROL_TYPE
        and control.body.strip() == CONTROL_BODY
        and payload.content_type == PAYLOAD_TYPE
        and check_armored(payload.body, incoming=incoming)
    )


def is_securejoin_request(mail: Mail) -> bool:
    """The first, necessarily cleartext, Secure-Join message (vc-/vg-request)."""
    if mail.header("Secure-Join") not in SECUREJOIN_REQUESTS:
        return False
    parts = mail.parts
    if parts is None or len(parts) != 1:
        return False
    (part,) = parts
    return part.content_type == "text/plain" and part.body.strip().lower() in SECUREJOIN_BODIES


def is_autocrypt_setup_message(mail: Mail, recipients: list[str]) -> bool:
    """A self-sent Autocrypt Setup Message (key backup, already encrypted by the client)."""
    sender = mail.from_address.lower()
    return (
        len(recipients) == 1
        and recipients[0].lower() == sender
        and mail.header("Subject") == "Autocrypt Setup Message"
        and mail.content_type == "multipart/mixed"
    )


def is_mailer_daemon_report(mail: Mail) -> bool:
    """A delivery status report from a mail server (bounce, DSN)."""
    return (
        mail.header("Auto-Submitted") is not None
        and mail.from_address.lower().startswith("mailer-daemon@")
        and mail.content_type == "multipart/report"
    )
