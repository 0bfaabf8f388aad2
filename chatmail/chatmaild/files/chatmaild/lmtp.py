"""Deliver mail for this relay's own mailboxes to Dovecot's LMTP directly.

A message between two accounts of the relay, and every message another
server sends to one, ends in a mailbox here.  Through Postfix it would be
reinjected, cleaned, queued (a file written and fsynced), picked up by the
queue manager and handed to Dovecot's LMTP by Postfix's lmtp client: five
processes and two fsyncs before the message is stored.  The filter hands
it to LMTP itself instead, and the client gets its 250 only after Dovecot
answered 250 for every recipient, which Dovecot gives once the message is
in the mailbox (fsynced).  So a 250 still means the message is kept, and
the client's 250 comes when the message can already be read.

Postfix's queue stays the fallback.  Whatever LMTP does not take, because
Dovecot is down or restarting, times out, refuses a recipient (a full
mailbox, an unknown account) or breaks the connection, is reinjected into
Postfix as before, for the recipients it did not reach, and Postfix
retries, defers or bounces as it always did.  If the connection breaks
after the data was sent, Dovecot may have stored the message already:
then Postfix delivers it again (a duplicate, which Delta Chat drops by
its Message-ID), never a loss.

The connection handling (a few kept connections, pipelining, retry on a
stale one) is :class:`chatmaild.reinject.Reinjector`'s; only the dialogue
differs: LHLO over a unix socket, and one reply per recipient after the
data (RFC 2033).
"""

from __future__ import annotations

import smtplib

from .reinject import Reinjector, _expect

__all__ = ["LocalDelivery", "SOCKET_ENV"]

# the unit's environment variable with Dovecot's LMTP socket for the filter
# (dovecot.lmtp_socket in chatmail/parameters/defaults.yaml)
SOCKET_ENV = "CHATMAIL_LMTP_SOCKET"


class LocalDelivery(Reinjector):
    """LMTP client for Dovecot's filter socket, safe to use from many threads."""

    what = "local delivery"

    def __init__(self, socket_path: str, timeout: float = 30.0, connect_attempts: int = 1, **kwargs):
        # One connection attempt: when Dovecot is away the fallback
        # (Postfix's queue) takes the message at once.
        super().__init__(port=0, host=socket_path, timeout=timeout, connect_attempts=connect_attempts, **kwargs)

    def deliver(self, mail_from: str, rcpt_tos: list[str], data: bytes) -> list[str]:
        """Store one message for ``rcpt_tos``: the recipients it was not stored for."""
        return self.transfer(mail_from, rcpt_tos, data)[1]

    def _open(self) -> smtplib.SMTP:
        return smtplib.LMTP(self.host, local_hostname="localhost", timeout=self.connect_timeout)

    def _after_data(self, conn: smtplib.SMTP, rcpt_tos: list[str]) -> list[str]:
        """LMTP: a reply per recipient, in the order of the RCPT commands."""
        missed = []
        for rcpt in rcpt_tos:
            reply = conn.getreply()
            if reply[0] == 421 or not 200 <= reply[0] < 600:
                _expect(reply, 250)  # the connection is lost: raises
            if reply[0] != 250:
                missed.append(rcpt)
        return missed
