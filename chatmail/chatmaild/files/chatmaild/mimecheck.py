"""The MIME shapes the filter lets through, checked without a full MIME parse.

A full :mod:`email` parse of a message walks every body line in Python;
for a 300 kB encrypted message that is most of the filter's time.  The
rules only need the top-level headers, the headers of the direct subparts
and the raw bodies of those subparts, so this module

* reads header blocks with the same semantics as :mod:`email`'s parser
  (compat32), leaving parameter parsing to :mod:`email` itself, and
* finds the multipart delimiter lines with ``bytes.find`` over the body
  bytes (RFC 2046: ``--boundary`` at the start of
  a line, ``--boundary--`` closes, trailing blanks allowed; the line break
  before a delimiter belongs to the delimiter).

A part body is the raw bytes between its header block and the next
delimiter (no transfer decoding), as ``Message.get_payload()`` gives it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from email.utils import parseaddr
from functools import cached_property

from .openpgp import check_armored

__all__ = [
    "Headers",
    "parse_head",
    "Part",
    "Mail",
    "split_parts",
    "is_encrypted",
    "is_securejoin_request",
    "is_autocrypt_setup_message",
    "is_mailer_daemon_report",
    "is_ambiguous",
    "only_fixed_text",
]

# A line that continues the header block (as email.feedparser.headerRE).
_HEADER_LINE = re.compile(rb"From |[\041-\071\073-\176]*:|[\t ]")
_BLANK_LINES = (b"\r\n", b"\n", b"\r")


class Headers:
    """The header block of a message or part, with the meaning :mod:`email` gives it.

    Field values are kept raw as the compat32 policy keeps them (unfolded
    only by joining lines); the first occurrence of a field counts, and
    the names of fields that occur more than once are kept in
    ``repeated`` (a reader may take the last one instead).
    ``Content-Type`` is interpreted by :class:`email.message.Message`
    itself, so parameters (quoting, RFC 2231) mean exactly the same.
    """

    __slots__ = ("fields", "repeated", "_content")

    def __init__(self, fields: dict[str, str], repeated: frozenset[str] = frozenset()):
        self.fields = fields
        self.repeated = repeated
        self._content: Message | None = None

    def get(self, name: str) -> str | None:
        return self.fields.get(name.lower())

    def occurs_more_than_once(self, name: str) -> bool:
        return name.lower() in self.repeated

    @property
    def content_type_is_ambiguous(self) -> bool:
        """Two Content-Type fields, or a parameter (e.g. ``boundary``) given twice.

        Readers disagree on which one counts, so a message framed one way
        for the filter can be framed another way for a client.
        """
        if self.occurs_more_than_once("content-type"):
            return True
        names = [name.lower() for name, _ in (self.content.get_params() or [])[1:]]
        return len(names) != len(set(names))

    @property
    def content(self) -> Message:
        if self._content is None:
            self._content = Message()
            value = self.fields.get("content-type")
            if value is not None:
                self._content.set_raw("Content-Type", value)
        return self._content

    @property
    def content_type(self) -> str:
        return self.content.get_content_type()

    @property
    def content_maintype(self) -> str:
        return self.content.get_content_maintype()

    @property
    def boundary(self) -> str | None:
        return self.content.get_boundary()


def parse_head(data: bytes, start: int, end: int) -> tuple[Headers, int]:
    """The headers of ``data[start:end]`` and the offset where its body starts.

    Same result as :mod:`email.feedparser`: the header block ends at an
    empty line (dropped) or before the first line that cannot be a header
    line; line ends are CRLF, CR or LF.  The lines are split in C
    (``bytes.splitlines``) up to the first CRLF blank line, which always
    ends the block, so a message body is never split into lines.
    """
    stop = data.find(b"\r\n\r\n", start, end)
    region_end = end if stop < 0 else stop + 4
    pos = start
    lines: list[bytes] = []
    for line in data[start:region_end].splitlines(True):
        if line in _BLANK_LINES:
            pos += len(line)
            break
        if not _HEADER_LINE.match(line):
            break  # the first body line
        lines.append(line)
        pos += len(line)
    fields, repeated, pushed_back = _header_fields(lines)
    if pushed_back:
        pos = start + sum(len(line) for line in lines[:-1])
    return Headers(fields, repeated), pos


def _header_fields(lines: list[bytes]) -> tuple[dict[str, str], frozenset[str], bool]:
    """Fields of header lines as email.feedparser and compat32 read them.

    Returns the fields (first occurrence per lower-cased name), the names
    that occur more than once, and whether the last line is given back to
    the body (a late ``From `` line).
    """
    fields: dict[str, str] = {}
    repeated: set[str] = set()
    name = None
    value: list[str] = []
    last = len(lines) - 1
    for number, raw in enumerate(lines):
        line = raw.decode("ascii", "surrogateescape")
        if line[0] in " \t":
            if name is not None:
                value.append(line)
            continue  # a continuation without a field is ignored
        if name is not None:
            _add_field(fields, repeated, name, value)
            name = None
        if line.startswith("From "):
            if number == last and number != 0:
                return fields, frozenset(repeated), True  # most likely the first body line
            continue  # an mbox envelope line
        colon = line.find(":")
        if colon == 0:
            continue  # no field name
        name, value = line[:colon], [line[colon + 1 :]]
    if name is not None:
        _add_field(fields, repeated, name, value)
    return fields, frozenset(repeated), False


def _add_field(fields: dict[str, str], repeated: set[str], name: str, value: list[str]) -> None:
    # compat32: value = first line without leading blanks + continuation
    # lines as they are, without the final line break.
    key = name.lower()
    if key in fields:
        repeated.add(key)
    else:
        value[0] = value[0].lstrip(" \t")
        fields[key] = "".join(value).rstrip("\r\n")


@dataclass
class Part:
    """One direct subpart of a multipart message: its headers and raw body."""

    headers: Headers
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.content_type


# an address whose domain is an IPv4 literal, as an IP-only relay's: user@[192.0.2.7]
_LITERAL_ADDRESS = re.compile(r"[a-zA-Z0-9._+=-]+@\[[0-9]{1,3}(?:\.[0-9]{1,3}){3}\]")


def header_address(value: str) -> str:
    """The one address of a From: header value, or "".

    The stdlib's strict parser (the default since the fix of CVE-2023-27043)
    refuses domain literals, so ``user@[192.0.2.7]`` (RFC 5321 4.1.3, an
    IP-only relay's address) comes back empty.  Only then, and only for a
    value with one @ whose loose parse is exactly such an address, the loose
    parse counts: the ambiguities strict parsing guards against need a
    second address.
    """
    address = parseaddr(value)[1]
    if address or "[" not in value or value.count("@") != 1:
        return address
    try:
        loose = parseaddr(value, strict=False)[1]
    except TypeError:  # a Python without the strict parameter never refused it
        return ""
    return loose if _LITERAL_ADDRESS.fullmatch(loose) else ""


class Mail:
    """A message as the filter sees it: top-level headers, direct subparts on demand."""

    def __init__(self, data: bytes):
        self.data = data
        self.headers, self._body_start = parse_head(data, 0, len(data))

    @cached_property
    def content_type(self) -> str:
        return self.headers.content_type

    @cached_property
    def from_address(self) -> str:
        """The address of the ``From:`` header ("" if missing or not one address)."""
        value = self.headers.get("From")
        if value is None:
            return ""
        return header_address(value)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def parts(self) -> list[Part] | None:
        """Direct subparts, or None if this is not a multipart message.

        A multipart type whose boundary never occurs as a delimiter line is
        not multipart (as for :mod:`email`): its body is plain text.
        """
        return self._multipart[0]

    @property
    def outside_text(self) -> tuple[bytes, bytes]:
        """The preamble and epilogue of a multipart message (empty if none)."""
        return self._multipart[1]

    @cached_property
    def _multipart(self) -> tuple[list[Part] | None, tuple[bytes, bytes]]:
        if self.headers.content_maintype != "multipart":
            return None, (b"", b"")
        boundary = self.headers.boundary
        if not boundary:
            return None, (b"", b"")
        return _split(self.data, self._body_start, boundary)


def split_parts(data: bytes, start: int, boundary: str) -> list[Part] | None:
    """The subparts of the multipart body ``data[start:]`` delimited by ``boundary``."""
    return _split(data, start, boundary)[0]


def _split(data: bytes, start: int, boundary: str) -> tuple[list[Part] | None, tuple[bytes, bytes]]:
    """Subparts (None if there are none), preamble and epilogue of a multipart body.

    A boundary that is not ASCII (e.g. decoded from RFC 2231 ``boundary*=``
    or 8-bit bytes read as U+FFFD) never occurs in the body as
    :mod:`email` reads it: no parts (found by fuzzing; it used to raise).
    """
    try:
        dash_boundary = boundary.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return None, (b"", b"")
    parts: list[Part] = []
    part_start = None
    preamble = b""
    for line_start, line_end, close in _delimiters(data, start, dash_boundary):
        if part_start is not None:
            parts.append(_make_part(data, part_start, _line_break_before(data, line_start)))
        else:
            preamble = data[start : _line_break_before(data, line_start)] if line_start > start else b""
        if close:  # the rest is epilogue
            return (parts or None), (preamble, data[line_end:])
        part_start = line_end
    if part_start is not None:  # no close delimiter: the last part runs to the end
        parts.append(_make_part(data, part_start, len(data)))
    return (parts or None), (preamble, b"")


_DELIMITER_TAIL = re.compile(rb"(--)?[ \t]*(\r\n|\r|\n|\Z)")


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
        if found != start and data[found - 1] not in b"\r\n":  # not at a line start
            continue
        tail = _DELIMITER_TAIL.match(data, pos)
        if tail is None:
            continue
        yield found, tail.end(), tail.group(1) is not None
        pos = tail.end()


def _line_break_before(data: bytes, pos: int) -> int:
    if data.endswith(b"\r\n", 0, pos):
        return pos - 2
    if data.endswith((b"\n", b"\r"), 0, pos):
        return pos - 1
    return pos


def _make_part(data: bytes, start: int, end: int) -> Part:
    headers, body_start = parse_head(data, start, end)
    return Part(headers, data[body_start:end])


# -- the shapes ----------------------------------------------------------------

# RFC 3156 section 4: the two parts of an encrypted message, in order.
ENCRYPTED_TYPE = "multipart/encrypted"
CONTROL_TYPE = "application/pgp-encrypted"
CONTROL_BODY = b"Version: 1"
PAYLOAD_TYPE = "application/octet-stream"

# The only text a preamble or epilogue may hold besides blank lines: what
# common OpenPGP/MIME clients write for readers without MIME support.
# Anything else there would be cleartext the recipient's client may show.
FIXED_OUTSIDE_LINES = frozenset(
    {
        b"This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)",  # Thunderbird, Enigmail
        b"This is an OpenPGP/MIME encrypted message (RFC 2440 and 3156)",  # older Enigmail
        b"This is an OpenPGP/MIME encrypted message",
        b"This is a multi-part message in MIME format.",
        b"This is a MIME-formatted message.",
    }
)

SECUREJOIN_REQUESTS = ("vc-request", "vg-request")
SECUREJOIN_BODIES = tuple(b"secure-join: " + r.encode() for r in SECUREJOIN_REQUESTS)


def only_fixed_text(text: bytes) -> bool:
    """``text`` holds nothing but blank lines and FIXED_OUTSIDE_LINES."""
    return all(not line.strip() or line.strip() in FIXED_OUTSIDE_LINES for line in text.splitlines())


def is_ambiguous(mail: Mail) -> bool:
    """The MIME structure could be read another way by a client (see docs/security.md).

    Cleartext in the preamble or epilogue, or a Content-Type (or one of
    its parameters) given twice at the top or in a direct subpart.
    """
    if mail.headers.content_type_is_ambiguous:
        return True
    if any(part.headers.content_type_is_ambiguous for part in mail.parts or ()):
        return True
    return not all(only_fixed_text(text) for text in mail.outside_text)


def is_encrypted(mail: Mail, *, incoming: bool) -> bool:
    """An RFC 3156 encrypted message with exactly two parts and an encrypted payload."""
    if mail.content_type != ENCRYPTED_TYPE:
        return False
    parts = mail.parts
    if parts is None or len(parts) != 2 or is_ambiguous(mail):
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
    if parts is None or len(parts) != 1 or is_ambiguous(mail):
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
