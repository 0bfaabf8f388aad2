"""filtermail's direct path: mail for the relay's own mailboxes goes to LMTP, Postfix is the fallback.

smtplib client -> filter -> LMTP sink on a unix socket (Dovecot's stand-in)
and the SMTP sink (Postfix's reinjection port).  The system tests run the
same path against the relay's real Dovecot and Postfix (test_relay.py,
test_reliability.py).
"""

from __future__ import annotations

import time

import pytest

from chatmaild.reinject import Reinjector
from support import mailcorpus as mc
from support.dkim import KeyTable, sign
from support.filtermail import LmtpSink, RunningFilter, Sink, send, write_ini

ALICE = "alice@example.org"
BOB = "bob@example.org"
CAROL = "carol@example.org"
REMOTE = "remote@elsewhere.net"


@pytest.fixture
def setup(tmp_path):
    """Factory: (filter, lmtp sink, postfix sink) for a mode; ``lmtp=False``: no Dovecot listening."""
    started = []

    def make(mode="outgoing", dkim_lookup=None, lmtp=True, **settings):
        ini = write_ini(tmp_path, **settings)
        socket_path = tmp_path / "lmtp.sock"
        lmtp_sink = LmtpSink(socket_path)
        if lmtp:
            lmtp_sink.start()
            started.append(lmtp_sink)
        filt = RunningFilter(ini, mode, dkim_lookup, lmtp_socket=str(socket_path))
        postfix = Sink(filt.reinject_port).start()
        started.append(postfix)
        filt.start()
        started.append(filt)
        return filt, lmtp_sink, postfix

    yield make
    for thing in reversed(started):
        thing.stop()


def test_local_mail_is_stored_through_lmtp_with_postfixs_header_rules(setup):
    filt, lmtp, postfix = setup()
    data = mc.encrypted(ALICE, [BOB, CAROL], subject="Unencrypted subject")
    data = data.replace(b"From: ", b"Received: from client (1.2.3.4)\r\n\tby relay\r\nBcc: <x@y.org>\r\nFrom: ", 1)
    assert send(filt.port, ALICE, [BOB, CAROL], data)[0] == 250
    assert postfix.received == []
    (got,) = lmtp.received
    assert (got.mail_from, got.rcpt_tos) == (ALICE, [BOB, CAROL])
    head, _, body = got.data.partition(b"\r\n\r\n")
    assert b"Subject: [...]\r\n" in head and b"Unencrypted subject" not in got.data
    assert b"Received" not in head and b"1.2.3.4" not in head and b"Bcc" not in head
    assert body == data.partition(b"\r\n\r\n")[2]  # the encrypted body as sent


def test_mail_that_leaves_the_relay_goes_to_postfix(setup):
    filt, lmtp, postfix = setup()
    data = mc.encrypted(ALICE, [BOB, REMOTE])
    assert send(filt.port, ALICE, [BOB, REMOTE], data)[0] == 250
    assert lmtp.received == []
    (got,) = postfix.received
    assert (got.rcpt_tos, got.data, got.peer) == ([BOB, REMOTE], data, "127.0.0.1")  # signed path, unchanged


def test_without_dovecot_local_mail_is_queued_by_postfix(setup):
    filt, _, postfix = setup(lmtp=False)
    data = mc.encrypted(ALICE, [BOB])
    t0 = time.monotonic()
    assert send(filt.port, ALICE, [BOB], data)[0] == 250
    assert time.monotonic() - t0 < 2  # no retries against a socket nobody listens on
    (got,) = postfix.received
    assert (got.rcpt_tos, got.data, got.peer) == ([BOB], data, "127.0.0.2")  # the unsigned local path


def test_a_recipient_lmtp_does_not_take_goes_to_postfix_alone(setup):
    filt, lmtp, postfix = setup()
    lmtp.handler.after_data[CAROL] = "452 4.2.2 Mailbox is full"
    data = mc.encrypted(ALICE, [BOB, CAROL])
    assert send(filt.port, ALICE, [BOB, CAROL], data)[0] == 250
    assert [r.rcpt_tos for r in lmtp.received] == [[BOB]]
    (got,) = postfix.received
    assert got.rcpt_tos == [CAROL]  # Postfix retries or bounces it, as before


def test_a_refused_recipient_sends_the_whole_message_to_postfix(setup):
    filt, lmtp, postfix = setup()
    lmtp.handler.refuse_rcpt[CAROL] = "550 5.1.1 User doesn't exist"
    data = mc.encrypted(ALICE, [BOB, CAROL])
    assert send(filt.port, ALICE, [BOB, CAROL], data)[0] == 250
    assert lmtp.received == []  # RCPT refused: nothing was stored
    assert [r.rcpt_tos for r in postfix.received] == [[BOB, CAROL]]


def test_when_neither_takes_it_the_client_is_told_to_try_again(setup):
    filt, lmtp, postfix = setup()
    lmtp.handler.replies["DATA"] = "451 4.3.0 Temporary failure"
    postfix.handler.replies["DATA"] = "451 4.7.1 Service unavailable - try again later"
    code, text = send(filt.port, ALICE, [BOB], mc.encrypted(ALICE, [BOB]))
    assert code == 451 and lmtp.received == [] and postfix.received == []


def test_incoming_mail_loses_its_signature_and_trail_before_it_is_stored(setup):
    keys = KeyTable()
    keys.publish("elsewhere.net")
    filt, lmtp, postfix = setup("incoming", dkim_lookup=keys)
    data = sign(mc.encrypted(REMOTE, [BOB]), "elsewhere.net")
    data = b"Received: from mx.elsewhere.net (5.6.7.8)\r\nAuthentication-Results: x; dkim=pass\r\n" + data
    assert send(filt.port, REMOTE, [BOB], data)[0] == 250
    assert postfix.received == []
    (got,) = lmtp.received
    head = got.data.partition(b"\r\n\r\n")[0]
    assert b"DKIM-Signature" not in head and b"Authentication-Results" not in head and b"5.6.7.8" not in head
    assert b"Subject: [...]" in head  # incoming mail keeps its (already hidden) subject as it came
    # a refused signature still refuses, before anything is stored
    assert send(filt.port, REMOTE, [BOB], mc.encrypted(REMOTE, [BOB]))[0] == 554
    assert len(lmtp.received) == 1


def test_kept_connections_are_closed_once_idle():
    """A burst must not leave a reinjection smtpd process behind each kept connection."""
    sink = Sink().start()
    try:
        reinjector = Reinjector(sink.port, idle_seconds=0.3)
        assert reinjector.send(ALICE, [BOB], mc.encrypted(ALICE, [BOB])) == "250 OK"
        assert len(reinjector._idle) == 1
        time.sleep(0.8)
        assert reinjector._idle == []
        # and the pool works on after the reaper ran
        assert reinjector.send(ALICE, [BOB], mc.encrypted(ALICE, [BOB])) == "250 OK"
        assert len(sink.received) == 2
        reinjector.close()
    finally:
        sink.stop()
