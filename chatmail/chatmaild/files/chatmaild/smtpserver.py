"""aiosmtpd's SMTP server, adjusted for a filter behind Postfix.

Three changes to :class:`aiosmtpd.smtp.SMTP`:

* ESMTP parameters on ``MAIL FROM`` and ``RCPT TO`` (``SIZE``, ``BODY``,
  ``ORCPT``, ``NOTIFY``, ...) are dropped instead of refused with 555:
  some MTAs send them unasked, and the filter has no use for them.
* ``DATA`` is read in large pieces instead of line by line.  aiosmtpd
  awaits every line of the message separately; for a 300 kB message that
  is ~5,000 trips through the event loop and most of the filter's time.
  Here the stream is searched for the end-of-data line with
  ``StreamReader.readuntil`` (a C-level search over whatever has
  arrived), and transparency dots are removed with one ``bytes.replace``.
  The replies are aiosmtpd's: 552 if the message exceeds
  ``data_size_limit``, 500 if a line exceeds ``line_length_limit``
  (both only after the whole message was received, RFC 5321 4.2.5).
* An address that makes the standard library's address parser crash is
  answered like any malformed address (553), not as an internal error.
"""

from __future__ import annotations

import asyncio
import re

from aiosmtpd.smtp import MISSING, SMTP, syntax

__all__ = ["FilterSMTP", "read_data"]

# <addr> without quotes, brackets or blanks inside, then parameters (or nothing).
_SIMPLE_PATH = re.compile(r"<([^<>\"\s\\]*)>(?:\s.*)?$")
END_OF_DATA = b"\r\n.\r\n"
DOT_LINE = b".\r\n"


class DataTooBig(Exception):
    """The message exceeds the size limit (it was read to its end and dropped)."""


async def read_data(reader: asyncio.StreamReader, size_limit: int | None) -> bytes:
    """The raw bytes after ``DATA`` up to and without the final ``CRLF.CRLF``'s ``.CRLF``.

    The result still has its transparency dots and ends with CRLF (or is
    empty).  Raises :class:`DataTooBig` after the end was read if more
    than ``size_limit`` bytes came.
    """
    chunks: list[bytes] = []
    size = 0
    too_big = False
    tail = b"\r\n"  # the DATA command line ended with CRLF: the data starts at a line start
    while True:
        try:
            piece = await reader.readuntil(DOT_LINE)
        except asyncio.LimitOverrunError as overrun:
            # No ".\r\n" within the reader's limit: take what surely
            # precedes it and search on.
            piece = await reader.read(overrun.consumed)
        if not piece:
            raise asyncio.IncompleteReadError(b"", None)
        # Is this ".\r\n" a line of its own?  What precedes it may be in
        # the previous piece.
        last = piece.endswith(DOT_LINE) and (tail + piece[-5:]).endswith(END_OF_DATA)
        if last:
            piece = piece[:-3]
        size += len(piece)
        if size_limit and size > size_limit:
            too_big = True
            chunks.clear()
        elif not too_big:
            chunks.append(piece)
        if last:
            break
        tail = (tail + piece[-4:])[-4:]
    if too_big:
        raise DataTooBig()
    return b"".join(chunks)


def longest_line(data: bytes) -> int:
    """Length of the longest CRLF-terminated line, with its CRLF."""
    return max(map(len, data.split(b"\r\n"))) + 2 if data else 0


def without_dots(data: bytes) -> bytes:
    """Undo SMTP transparency (RFC 5321 4.5.2): a leading dot of a line is dropped."""
    data = data.replace(b"\r\n.", b"\r\n")
    return data[1:] if data.startswith(b".") else data


class FilterSMTP(SMTP):
    """aiosmtpd's server without ESMTP parameters on MAIL/RCPT and with bulk DATA reading."""

    async def smtp_MAIL(self, arg: str) -> None:
        await super().smtp_MAIL(self._without_parameters(arg, "FROM:"))

    async def smtp_XFORWARD(self, arg: str) -> None:
        """Postfix's XFORWARD (www.postfix.org/XFORWARD_README.html): the real client, for the filter.

        Only ADDR is kept (``session.xforward_addr``; ``[UNAVAILABLE]`` and
        an IPv6 address's ``IPV6:`` prefix handled); the other attributes
        are accepted and ignored.
        """
        if not arg:
            await self.push("501 5.5.4 Syntax: XFORWARD attribute=value...")
            return
        for item in arg.split():
            name, _, value = item.partition("=")
            if name.upper() == "ADDR" and value and value.upper() not in ("[UNAVAILABLE]", "[TEMPUNAVAIL]"):
                self.session.xforward_addr = value[5:] if value.upper().startswith("IPV6:") else value
        await self.push("250 2.0.0 Ok")

    async def smtp_RCPT(self, arg: str) -> None:
        await super().smtp_RCPT(self._without_parameters(arg, "TO:"))

    def _without_parameters(self, arg: str | None, keyword: str) -> str | None:
        rest = self._strip_command_keyword(keyword, arg) if arg else None
        if rest is None:
            return arg  # let aiosmtpd answer the syntax error
        simple = _SIMPLE_PATH.match(rest)
        if simple:  # the usual <local@domain> PARAM=...: no full address parse needed
            return f"{keyword}<{simple.group(1)}>"
        address, _params = self._getaddr(rest)
        if address is None:
            return arg  # malformed address: aiosmtpd's own answer
        if address == "<>":
            address = ""
        return f"{keyword}<{address}>"

    def _getaddr(self, arg: str):
        """aiosmtpd's, but an address the stdlib parser trips over is malformed, not a crash.

        ``email._header_value_parser`` raises IndexError on ``<bob@`` and
        AttributeError on ``<bob@[example.org>`` (found by fuzzing), which
        aiosmtpd does not catch; the client then got 451 "internal error"
        and retried forever instead of 553.
        """
        try:
            return super()._getaddr(arg)
        except (IndexError, AttributeError, ValueError):
            return None, None

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            raw = await read_data(self._reader, self.data_size_limit)
        except DataTooBig:
            self._set_post_data_state()
            await self.push("552 Error: Too much mail data")
            return
        except asyncio.IncompleteReadError:
            return  # the client went away; connection_lost cleans up
        if longest_line(raw) > self.line_length_limit:
            self._set_post_data_state()
            await self.push("500 Line too long (see RFC5321 4.5.3.1.6)")
            return
        content = without_dots(raw)
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)
