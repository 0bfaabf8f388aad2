"""Hand an accepted message back to Postfix, and say what to tell the client.

The filter sits inside Postfix's before-queue proxy: whatever it answers
reaches the submitting client (or the remote MTA) directly.  So the answer
must be truthful about the fate of the message:

* 250 only after Postfix's reinjection smtpd accepted the message for every
  recipient (then it is in Postfix's queue and will not be lost);
* a temporary failure behind the filter (Postfix answers 4xx, e.g. 451 when
  the OpenDKIM milter is down, or it cannot be reached at all) becomes a 4xx
  so the client tries again later;
* a permanent refusal by Postfix (5xx) is passed on as it is.

Delivery is all-or-nothing: if Postfix refuses some recipients the
transaction is reset and nothing is queued, so a retry by the client
cannot duplicate the message for the recipients that were accepted.

The message bytes are sent unchanged (only SMTP dot-stuffing is applied).
Postfix distinguishes signing from verifying by the port (the reinjection
smtpd for outgoing mail sets the ORIGINATING daemon name).  Within the
outgoing port the client address says whether to sign at all: mail that
stays on the relay is reinjected from ``source`` (127.0.0.2), for which
that smtpd runs no milter (see filtermail's ``LOCAL_SOURCE``).

Connections are kept open between messages (a few idle ones, for a short
while), which saves the connect/EHLO/QUIT round trips per message, and
MAIL, RCPT and DATA go in one write when Postfix offers PIPELINING.  If a
kept connection turns out to be closed before the message was handed over
(Postfix restarted or timed it out), all kept connections are dropped and
the message is tried once more on a fresh one.  If the connection breaks
after the data was sent, the client gets a 4xx and retries: at worst a
duplicate, never a loss.

Reaching Postfix (connect, banner, EHLO) has its own short timeout and is
tried a few times: while Postfix restarts, a connection can land in the
backlog of a listener whose processes are dying and never be answered;
the next attempt reaches the new one.  Waiting the full data timeout there
would turn a one-second restart into a minute of 451s.

Only a connection whose every transaction succeeded is kept.  After any
refusal the connection is closed: once a milter fails in an SMTP session,
Postfix applies the milter's default action (451) to every later
transaction of that session, so a kept connection that saw one 451 would
refuse every message it is given until Postfix's error limit closes it.
A fault behind the filter then costs only the messages in flight.
"""

from __future__ import annotations

import logging
import smtplib
import threading
import time
from dataclasses import dataclass

__all__ = ["Reinjector", "Reply", "TRY_AGAIN"]

log = logging.getLogger(__name__)

# Our own answer when Postfix cannot be reached or the conversation breaks.
TRY_AGAIN = "451 4.3.0 Mail queue temporarily unavailable, try again later"
ACCEPTED = "250 OK"


@dataclass(frozen=True)
class Reply:
    """An SMTP reply from Postfix that ends the transaction."""

    code: int
    text: str

    def for_client(self) -> str:
        """The reply to give the client: Postfix's own 4xx/5xx, anything else as try-again."""
        if 400 <= self.code < 600:
            text = " ".join(self.text.split()) or "Error"
            return f"{self.code} {text}"
        return TRY_AGAIN


class _Refused(Exception):
    """Postfix refused the message (the connection is not used again)."""

    def __init__(self, reply: Reply):
        super().__init__(reply)
        self.reply = reply


class _Broken(Exception):
    """The connection failed; ``handed_over`` if the data may already be queued,
    ``connecting`` if Postfix was never reached (no greeting or EHLO answer)."""

    def __init__(self, cause: BaseException, handed_over: bool, connecting: bool = False):
        super().__init__(cause)
        self.cause = cause
        self.handed_over = handed_over
        self.connecting = connecting


class Reinjector:
    """SMTP client for Postfix's reinjection port, safe to use from many threads."""

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        timeout: float = 60.0,
        max_idle: int = 16,
        idle_seconds: float = 20.0,
        connect_timeout: float = 3.0,
        connect_attempts: int = 4,
        source: str | None = None,
    ):
        self.host = host
        self.source = source  # the local address to connect from (None: the kernel's choice)
        self.port = port
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.connect_attempts = connect_attempts
        self.max_idle = max_idle
        self.idle_seconds = idle_seconds
        self._idle: list[tuple[float, smtplib.SMTP]] = []
        self._lock = threading.Lock()
        self._reaper: threading.Timer | None = None

    what = "reinjection"  # for the log

    def _open(self) -> smtplib.SMTP:
        """A connected client, greeted (the server's banner read), before EHLO."""
        return smtplib.SMTP(
            self.host,
            self.port,
            local_hostname="localhost",
            timeout=self.connect_timeout,
            source_address=(self.source, 0) if self.source else None,
        )

    def send(self, mail_from: str, rcpt_tos: list[str], data: bytes) -> str:
        """Reinject one message; the SMTP reply for the client."""
        return self.transfer(mail_from, rcpt_tos, data)[0]

    def transfer(self, mail_from: str, rcpt_tos: list[str], data: bytes) -> tuple[str, list[str]]:
        """Hand one message over: the reply for the client and the recipients it did not reach."""
        fresh = False
        attempts = 0
        while True:
            conn, reused = (None, False) if fresh else self._take()
            try:
                if conn is None:
                    conn = self._connect()
                missed = self._transact(conn, mail_from, rcpt_tos, data)
            except _Refused as refused:
                _close(conn)  # the session may be poisoned (see the module doc); no QUIT: DATA may be open
                log.warning("%s refused: %s %s", self.what, refused.reply.code, refused.reply.text)
                return refused.reply.for_client(), list(rcpt_tos)
            except _Broken as broken:
                _close(conn)
                if reused and not broken.handed_over:
                    # A kept connection went stale (Postfix restarted or timed
                    # it out); the other kept ones likely too.  Once more on
                    # a fresh connection.
                    self.close()
                    fresh = True
                    continue
                attempts += 1
                if broken.connecting and attempts < self.connect_attempts:
                    time.sleep(0.2 * attempts)  # Postfix (re)starting: it listens again within a second
                    fresh = True
                    continue
                log.warning("%s failed: %r", self.what, broken.cause)
                return TRY_AGAIN, list(rcpt_tos)
            self._give_back(conn)
            return ACCEPTED, missed

    def close(self) -> None:
        """Close the kept connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for _, conn in idle:
            _close(conn, quit=True)

    # -- one transaction ---------------------------------------------------

    def _connect(self) -> smtplib.SMTP:
        conn = None
        try:
            conn = self._open()
            code, text = conn.ehlo()
            conn.sock.settimeout(self.timeout)
            conn.timeout = self.timeout
        except (OSError, smtplib.SMTPException, AttributeError) as exc:
            _close(conn)
            raise _Broken(exc, handed_over=False, connecting=True) from exc
        if code != 250:
            _close(conn)
            raise _Refused(Reply(code, _text(text)))
        return conn

    def _transact(self, conn: smtplib.SMTP, mail_from: str, rcpt_tos: list[str], data: bytes) -> list[str]:
        """One transaction on ``conn``: the recipients the message did not reach (none over SMTP)."""
        utf8 = not (mail_from.isascii() and all(r.isascii() for r in rcpt_tos))
        options = ""
        if utf8 and conn.has_extn("smtputf8"):
            options, conn.command_encoding = " SMTPUTF8", "utf-8"
        sender = "" if mail_from == "<>" else mail_from
        commands = [f"MAIL FROM:<{sender}>{options}"] + [f"RCPT TO:<{rcpt}>" for rcpt in rcpt_tos]
        handed_over = False
        try:
            pipelined = conn.has_extn("pipelining")
            if pipelined:
                # RFC 2920: MAIL, every RCPT and DATA in one write, then
                # their replies in order: one round trip instead of 2 + N.
                conn.send("".join(c + "\r\n" for c in commands + ["DATA"]))
                replies = [conn.getreply() for _ in range(len(commands) + 1)]
            else:
                replies = [conn.docmd(c) for c in commands]
            # If a pipelined DATA was accepted while something before it was
            # refused, closing the connection (no final dot) drops it.
            _expect(replies[0], 250)
            refusals = [r for r in replies[1 : len(commands)] if r[0] not in (250, 251)]
            if refusals:  # all or nothing; a temporary refusal wins so the client retries
                _expect(min(refusals, key=lambda r: r[0] >= 500), 250)
            _expect(replies[-1] if pipelined else conn.docmd("DATA"), 354)
            handed_over = True
            conn.send(_dot_stuffed(data))
            return self._after_data(conn, rcpt_tos)
        except _Refused:
            raise
        except (OSError, smtplib.SMTPException, UnicodeError) as exc:
            raise _Broken(exc, handed_over) from exc

    def _after_data(self, conn: smtplib.SMTP, rcpt_tos: list[str]) -> list[str]:
        """SMTP: one reply for the whole message."""
        _expect(conn.getreply(), 250)
        return []

    # -- the pool of open connections ---------------------------------------

    def _take(self) -> tuple[smtplib.SMTP | None, bool]:
        now = time.monotonic()
        stale = []
        conn = None
        with self._lock:
            while self._idle:
                since, candidate = self._idle.pop()
                if now - since < self.idle_seconds:
                    conn = candidate
                    break
                stale.append(candidate)
        for old in stale:
            _close(old, quit=True)
        return conn, conn is not None

    def _give_back(self, conn: smtplib.SMTP) -> None:
        with self._lock:
            if len(self._idle) < self.max_idle:
                self._idle.append((time.monotonic(), conn))
                self._schedule_reap(self.idle_seconds)
                return
        _close(conn, quit=True)

    def _schedule_reap(self, delay: float) -> None:
        """Close idle connections once they are too old (the lock is held).

        Without it a burst would leave its connections open, and a Postfix
        smtpd process (or Dovecot lmtp process) behind each, until the
        server's own timeout: idle memory for nothing.
        """
        if self._reaper is None:
            self._reaper = threading.Timer(delay, self._reap)
            self._reaper.daemon = True
            self._reaper.start()

    def _reap(self) -> None:
        now = time.monotonic()
        with self._lock:
            self._reaper = None
            stale = [conn for since, conn in self._idle if now - since >= self.idle_seconds]
            self._idle = [(since, conn) for since, conn in self._idle if now - since < self.idle_seconds]
            if self._idle:
                self._schedule_reap(self.idle_seconds - (now - self._idle[0][0]))
        for conn in stale:
            _close(conn, quit=True)


def _expect(reply: tuple[int, bytes], code: int) -> None:
    if reply[0] != code:
        # 421: the server is closing the connection (e.g. an idle timeout).
        if reply[0] == 421 or not 200 <= reply[0] < 600:
            raise smtplib.SMTPServerDisconnected(f"unexpected reply {reply!r}")
        raise _Refused(Reply(reply[0], _text(reply[1])))


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def _dot_stuffed(data: bytes) -> bytes:
    """SMTP transparency (RFC 5321 4.5.2) and the end-of-data line."""
    stuffed = data.replace(b"\n.", b"\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


def _close(conn: smtplib.SMTP | None, quit: bool = False) -> None:
    if conn is None:
        return
    try:
        if quit:
            if conn.sock is not None:
                conn.sock.settimeout(1.0)
            conn.quit()
        else:
            conn.close()
    except (OSError, smtplib.SMTPException, AttributeError):
        try:
            conn.close()
        except OSError:
            pass
