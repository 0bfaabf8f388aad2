"""filtermail over real SMTP: smtplib client -> filter -> aiosmtpd sink (Postfix's reinjection port)."""

from __future__ import annotations

import smtplib
import socket
import subprocess
import sys
import threading
import time

import pytest

from chatmaild.reinject import Reinjector
from support import chatmaild_env
from support import mailcorpus as mc
from support.dkim import KeyTable, sign
from support.filtermail import LOOPBACK, RunningFilter, Sink, send, write_ini
from support.freeports import free_port

ALICE = "alice@example.org"
BOB = "bob@example.org"
REMOTE = "remote@elsewhere.net"


@pytest.fixture
def setup(tmp_path):
    """Factory: (filter, sink) for a mode, with extra chatmail.ini settings."""
    started = []

    def make(mode="outgoing", dkim_lookup=None, **settings):
        ini = write_ini(tmp_path, **settings)
        filt = RunningFilter(ini, mode, dkim_lookup)
        sink = Sink(filt.reinject_port).start()
        started.append(sink)
        filt.start()
        started.append(filt)
        return filt, sink

    yield make
    for thing in reversed(started):
        thing.stop()


def test_encrypted_reinjected_unchanged(setup):
    filt, sink = setup()
    data = mc.encrypted(ALICE, [BOB, REMOTE], size=40_000)
    assert send(filt.port, ALICE, [BOB, REMOTE], data)[0] == 250
    (got,) = sink.received
    assert (got.mail_from, got.rcpt_tos, got.data) == (ALICE, [BOB, REMOTE], data)
    assert got.peer == "127.0.0.1"  # no 127.0.0.2 source address (design.md §2.2)


def test_dot_lines_survive(setup):
    filt, sink = setup(passthrough_recipients=["echo@example.org"])
    data = mc.plain(ALICE, ["echo@example.org"], body=".\r\n..\r\n.leading dot\r\nend.")
    assert send(filt.port, ALICE, ["echo@example.org"], data)[0] == 250
    assert sink.received[0].data == data


def test_esmtp_parameters_ignored(setup):
    filt, sink = setup()
    data = mc.encrypted(ALICE, [BOB])
    code, _ = send(
        filt.port,
        ALICE,
        [BOB],
        data,
        mail_options=["SIZE=99999", "BODY=8BITMIME"],
        rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;bob@example.org"],
    )
    assert code == 250
    assert sink.received[0].rcpt_tos == [BOB]


@pytest.mark.parametrize(
    "mail_from, data, code, text",
    [
        (ALICE, mc.plain(ALICE, [BOB]), 523, "Encryption Needed: Invalid Unencrypted Mail"),
        (
            ALICE,
            mc.encrypted(ALICE, [BOB], from_header="From: <mallory@example.org>"),
            500,
            "Invalid FROM <'mallory@example.org'> for <'alice@example.org'>",
        ),
        (
            ALICE,
            mc.encrypted(ALICE, [BOB], payload=mc.packet(mc.TAG_LITERAL, mc.literal_body(b"hi"))),
            523,
            "Encryption Needed",
        ),
        ("alice", mc.encrypted(ALICE, [BOB]), 500, "Invalid from address <'alice'>"),
    ],
    ids=["plain", "From mismatch (AC-15)", "literal packet", "bad envelope sender"],
)
def test_refusals(setup, mail_from, data, code, text):
    filt, sink = setup()
    reply = send(filt.port, mail_from, [BOB], data)
    assert reply[0] == code and text in reply[1]
    assert sink.received == []


def test_rate_limit(setup):
    """AC-19: the first max_user_send_burst_size pass at once, then 450 4.7.1."""
    limit = 4
    filt, sink = setup(max_user_send_per_minute=60, max_user_send_burst_size=limit)
    data = mc.encrypted(ALICE, [BOB])
    replies = [send(filt.port, ALICE, [BOB], data) for _ in range(limit + 2)]
    assert [r[0] for r in replies[:limit]] == [250] * limit
    assert replies[limit][0] == 450 and replies[limit][1].startswith("4.7.1: Too much mail from " + ALICE)
    assert len(sink.received) == limit
    assert send(filt.port, BOB, [ALICE], mc.encrypted(BOB, [ALICE]))[0] == 250  # per sender


@pytest.mark.parametrize(
    "stage, postfix_reply, client_code",
    [
        ("DATA", "451 4.7.1 Service unavailable - try again later", 451),
        ("MAIL", "421 4.3.2 Service shutting down", 451),
        ("RCPT", "452 4.5.3 Too many recipients", 452),
        ("DATA", "550 5.7.1 Message rejected", 550),
        ("RCPT", "554 5.7.1 Relay access denied", 554),
    ],
)
def test_postfix_replies_reach_client(setup, stage, postfix_reply, client_code):
    """Temporary trouble behind the filter stays temporary; permanent refusals stay permanent."""
    filt, sink = setup()
    sink.handler.replies[stage] = postfix_reply
    code, text = send(filt.port, ALICE, [BOB], mc.encrypted(ALICE, [BOB]))
    assert code == client_code
    del sink.handler.replies[stage]
    assert send(filt.port, ALICE, [BOB], mc.encrypted(ALICE, [BOB]))[0] == 250  # still serving


def test_internal_failure_is_temporary(setup):
    """A failure inside the filter (here: its worker pool is gone) is a 4xx, never a 5xx."""
    filt, sink = setup()
    filt.server.filtermail_handler.executor.shutdown()
    code, text = send(filt.port, ALICE, [BOB], mc.encrypted(ALICE, [BOB]))
    assert code == 451 and text.startswith("4.3.0")
    assert sink.received == []


@pytest.mark.parametrize("pipelining", [True, False])
def test_partial_recipient_refusal_queues_nothing(setup, pipelining):
    filt, sink = setup()
    sink.handler.pipelining = pipelining
    sink.handler.refuse_rcpt[REMOTE] = "450 4.2.0 Mailbox busy"
    code, _ = send(filt.port, ALICE, [BOB, REMOTE], mc.encrypted(ALICE, [BOB, REMOTE]))
    assert code == 450  # the client retries the whole message ...
    assert sink.received == []  # ... and nobody gets it twice
    del sink.handler.refuse_rcpt[REMOTE]
    assert send(filt.port, ALICE, [BOB, REMOTE], mc.encrypted(ALICE, [BOB, REMOTE]))[0] == 250
    assert [r.rcpt_tos for r in sink.received] == [[BOB, REMOTE]]


def test_postfix_down_is_temporary(setup):
    filt, sink = setup()
    sink.stop()
    code, text = send(filt.port, ALICE, [BOB], mc.encrypted(ALICE, [BOB]))
    assert code == 451 and text.startswith("4.")
    sink.restart()  # Postfix is back
    assert send(filt.port, ALICE, [BOB], mc.encrypted(ALICE, [BOB]))[0] == 250


def test_only_mail_leaving_the_relay_takes_the_signing_path(setup):
    """Local-only mail comes from 127.0.0.2 (Postfix runs no milter for it); any remote
    recipient makes the message come from 127.0.0.1, where OpenDKIM signs it."""
    filt, sink = setup()
    assert send(filt.port, ALICE, [BOB], mc.encrypted(ALICE, [BOB]))[0] == 250
    assert send(filt.port, ALICE, [BOB.upper()], mc.encrypted(ALICE, [BOB.upper()], seed=2))[0] == 250
    assert send(filt.port, ALICE, [BOB, REMOTE], mc.encrypted(ALICE, [BOB, REMOTE], seed=3))[0] == 250
    assert send(filt.port, ALICE, [REMOTE], mc.encrypted(ALICE, [REMOTE], seed=4))[0] == 250
    assert [r.peer for r in sink.received] == ["127.0.0.2", "127.0.0.2", "127.0.0.1", "127.0.0.1"]


def test_kept_connections_replaced_after_postfix_restart(setup):
    filt, sink = setup()
    threads = [
        threading.Thread(target=send, args=(filt.port, ALICE, [BOB], mc.encrypted(ALICE, [BOB], seed=i)))
        for i in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kept = len(filt.server.filtermail_handler.reinjector_for([BOB])._idle)
    assert len(sink.received) == 6 and kept >= 1
    sink.restart()  # closes every connection the filter kept open
    assert send(filt.port, ALICE, [BOB], mc.encrypted(ALICE, [BOB], seed=7))[0] == 250
    assert send(filt.port, ALICE, [BOB], mc.encrypted(ALICE, [BOB], seed=8))[0] == 250
    assert len(sink.received) == 8


def test_milter_failure_costs_only_the_messages_in_flight(setup):
    """A 451 from Postfix (its milter died) closes that kept connection: later messages pass.

    The sink answers like Postfix after a milter failure: the failing
    session refuses every later transaction too, so a reused connection
    would turn one fault into a refusal of everything sent over it.
    """
    filt, sink = setup()
    sink.handler.poison_after_4xx = True
    assert send(filt.port, ALICE, [BOB], mc.encrypted(ALICE, [BOB], seed=1))[0] == 250
    sink.handler.replies["DATA"] = "451 4.7.1 Service unavailable - try again later"
    assert send(filt.port, ALICE, [BOB], mc.encrypted(ALICE, [BOB], seed=2))[0] == 451  # in flight
    del sink.handler.replies["DATA"]  # the milter is back
    codes = [send(filt.port, ALICE, [BOB], mc.encrypted(ALICE, [BOB], seed=3 + i))[0] for i in range(5)]
    assert codes == [250] * 5
    assert len(sink.received) == 6


def test_reinjector_gets_past_a_listener_that_never_answers():
    """Postfix restarting: the port accepts connections into the backlog of a dying listener that
    never greets; a moment later the new Postfix listens.  The message goes through, in seconds."""
    port = free_port()
    dying = socket.socket()
    dying.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    dying.bind((LOOPBACK, port))
    dying.listen(16)  # never accepts, never answers
    sink = Sink(port)
    reinjector = Reinjector(port, connect_timeout=1.0)

    def restart_postfix():
        time.sleep(1.5)
        dying.close()
        sink.start()

    threading.Thread(target=restart_postfix, daemon=True).start()
    try:
        started = time.monotonic()
        assert reinjector.send(ALICE, [BOB], b"Subject: x\r\n\r\nx\r\n") == "250 OK"
        assert time.monotonic() - started < 10
        assert len(sink.received) == 1
    finally:
        reinjector.close()
        sink.stop()


def test_reinjector_with_several_stale_connections():
    sink = Sink().start()
    reinjector = Reinjector(sink.port)
    try:
        kept = [reinjector._connect() for _ in range(3)]
        for conn in kept:
            reinjector._give_back(conn)
        sink.restart()
        assert reinjector.send(ALICE, [BOB], b"Subject: x\r\n\r\nx\r\n") == "250 OK"
        assert len(sink.received) == 1
    finally:
        reinjector.close()
        sink.stop()


def test_many_messages_one_connection(setup):
    filt, sink = setup()
    client = smtplib.SMTP(LOOPBACK, filt.port, timeout=30)
    client.ehlo("client.test")
    replies = [send(filt.port, ALICE, [BOB], mc.encrypted(ALICE, [BOB], seed=i), conn=client)[0] for i in range(3)]
    replies.append(send(filt.port, ALICE, [BOB], mc.plain(ALICE, [BOB]), conn=client)[0])
    replies.append(send(filt.port, ALICE, [BOB], mc.encrypted(ALICE, [BOB], seed=9), conn=client)[0])
    client.quit()
    assert replies == [250, 250, 250, 523, 250]
    assert [r.data for r in sink.received][-1] == mc.encrypted(ALICE, [BOB], seed=9)


def test_parallel_clients(setup):
    filt, sink = setup(max_user_send_per_minute=1000)
    results = []

    def client(n):
        for i in range(5):
            sender = f"user{n}@example.org"
            results.append(send(filt.port, sender, [BOB], mc.encrypted(sender, [BOB], seed=i, size=5000 * (i + 1)))[0])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [250] * 40
    assert len(sink.received) == 40


# -- malformed input --------------------------------------------------------------


def raw_session(port, lines: list[bytes]) -> list[bytes]:
    """Speak SMTP by hand (for input smtplib refuses to produce); the replies."""
    with socket.create_connection((LOOPBACK, port), timeout=30) as sock:
        reader = sock.makefile("rb")
        replies = [reader.readline()]
        for chunk in lines:  # each chunk is answered by one reply
            sock.sendall(chunk)
            replies.append(_reply(reader))
        return replies


def _reply(reader) -> bytes:
    reply = b""
    while True:
        line = reader.readline()
        reply += line
        if len(line) < 4 or line[3:4] != b"-":
            return reply


def test_garbage_data_refused_then_serving(setup):
    filt, sink = setup()
    garbage = bytes(b for b in range(256) if b not in b"\r\n") * 3
    replies = raw_session(
        filt.port,
        [
            b"EHLO client.test\r\n",
            b"MAIL FROM:<alice@example.org>\r\n",
            b"RCPT TO:<bob@example.org>\r\n",
            b"DATA\r\n",
            b"From: alice@example.org\r\n\r\n" + garbage[:900] + b"\r\n.\r\n",
            b"RSET\r\n",
            b"MAIL FROM:<alice@example.org>\r\n",
            b"RCPT TO:<bob@example.org>\r\n",
            b"DATA\r\n",
            mc.encrypted(ALICE, [BOB]) + b".\r\n",
            b"QUIT\r\n",
        ],
    )
    codes = [r[:3] for r in replies]
    assert codes == [b"220", b"250", b"250", b"250", b"354", b"523", b"250", b"250", b"250", b"354", b"250", b"221"]
    assert len(sink.received) == 1


def test_huge_header_line_refused(setup):
    filt, sink = setup()
    data = b"From: alice@example.org\r\nX-Long: " + b"a" * 5000 + b"\r\n\r\nbody\r\n"
    assert send(filt.port, ALICE, [BOB], data)[0] == 500  # line too long
    assert send(filt.port, ALICE, [BOB], mc.encrypted(ALICE, [BOB]))[0] == 250


def test_message_size_limit(setup):
    filt, sink = setup(max_message_size=100_000)
    assert send(filt.port, ALICE, [BOB], mc.encrypted(ALICE, [BOB], size=150_000))[0] == 552
    assert send(filt.port, ALICE, [BOB], mc.encrypted(ALICE, [BOB], size=50_000))[0] == 250


# -- incoming -----------------------------------------------------------------------


def test_incoming(setup, tmp_path):
    keys = KeyTable()
    keys.publish("elsewhere.net")
    keys.publish("mx.example.net")
    filt, sink = setup("incoming", dkim_lookup=keys, max_user_send_per_minute=1)
    protected = filt.config.get_user_dir(BOB)
    protected.mkdir(parents=True)
    (protected / "enforceE2EEincoming").touch()
    signed = lambda data: sign(data, "elsewhere.net")  # noqa: E731
    cases = [
        (REMOTE, [BOB], signed(mc.encrypted(REMOTE, [BOB])), 250),
        (REMOTE, [BOB], signed(mc.encrypted(REMOTE, [BOB], armor_headers=["Version: ProtonMail"])), 250),
        (REMOTE, [BOB], signed(mc.plain(REMOTE, [BOB])), 523),
        (REMOTE, [ALICE], signed(mc.plain(REMOTE, [ALICE])), 250),  # no marker
        ("", [BOB], sign(mc.report(recipient=BOB), "mx.example.net"), 250),  # a bounce, null sender
        (REMOTE, [BOB], signed(mc.securejoin(REMOTE, BOB)), 250),
        # no From check and no rate limit on incoming mail
        (REMOTE, [BOB], signed(mc.encrypted(REMOTE, [BOB], from_header="From: <other@elsewhere.net>")), 250),
        # DKIM: unsigned, or signed by another domain than From:'s
        (REMOTE, [BOB], mc.encrypted(REMOTE, [BOB]), 554),
        (REMOTE, [BOB], sign(mc.encrypted(REMOTE, [BOB]), "elsewhere.net", key="attacker"), 554),
    ]
    codes = [send(filt.port, *case[:3])[0] for case in cases]
    assert codes == [case[3] for case in cases]
    assert [r.mail_from for r in sink.received] == [REMOTE, REMOTE, REMOTE, "<>", REMOTE, REMOTE]
    assert sink.received[0].data == cases[0][2]  # passed on unchanged: Postfix strips the headers


def test_incoming_dkim_reply_names_the_error(setup):
    keys = KeyTable()
    keys.publish("elsewhere.net")
    filt, sink = setup("incoming", dkim_lookup=keys)
    code, text = send(filt.port, REMOTE, [BOB], mc.encrypted(REMOTE, [BOB]))
    assert (code, text.split(" ", 1)[0]) == (554, "5.7.1") and "DKIM" in text
    assert sink.received == []


# -- the command line -------------------------------------------------------------


def test_command_line_runs_both_filters_in_one_process(tmp_path):
    ini = write_ini(tmp_path)
    filt = RunningFilter(ini, "outgoing")  # only for the ports; not started
    incoming_port = RunningFilter(ini, "incoming").port
    protected = filt.config.get_user_dir(BOB)
    protected.mkdir(parents=True)
    (protected / "enforceE2EEincoming").touch()
    sink = Sink(filt.reinject_port).start()
    env = chatmaild_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatmaild.filtermail", str(ini), "outgoing", "incoming"],
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 20
        for port in (filt.port, incoming_port):
            while True:
                try:
                    socket.create_connection((LOOPBACK, port), timeout=1).close()
                    break
                except OSError:
                    assert proc.poll() is None and time.monotonic() < deadline, "filtermail did not start"
                    time.sleep(0.05)
        assert send(filt.port, ALICE, [BOB], mc.encrypted(ALICE, [BOB]))[0] == 250
        assert send(filt.port, ALICE, [BOB], mc.plain(ALICE, [BOB]))[0] == 523
        # the incoming rules on the other port (refused before any DKIM lookup: no DNS here)
        assert send(incoming_port, REMOTE, [BOB], mc.plain(REMOTE, [BOB]))[0] == 523
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
        sink.stop()
    log = err.decode()
    assert "Outgoing: Filtering encrypted mail." in log and "Incoming: Filtering unencrypted mail." in log
    assert "Rejected unencrypted mail." in log
    assert len(sink.received) == 1


@pytest.mark.parametrize("modes", [["sideways"], [], ["incoming", "incoming"], ["outgoing", "sideways"]])
def test_usage_error(modes):
    proc = subprocess.run(
        [sys.executable, "-m", "chatmaild.filtermail", "x.ini", *modes],
        capture_output=True,
        env=chatmaild_env(),
    )
    assert proc.returncode == 2 and b"usage" in proc.stderr


def test_the_service_process_does_not_load_requests():
    """dnspython 2.3 would import requests (DNS over HTTPS) into the filter: 6.6 MB it never uses."""
    importable = subprocess.run([sys.executable, "-c", "import requests"], env=chatmaild_env())
    assert importable.returncode == 0, "the check needs requests installed, as Debian 12's relay has it"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "chatmaild.filtermail", "x.ini"],
        capture_output=True,
        env=chatmaild_env(),
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.decode().splitlines() if "|" in line}
    assert proc.returncode == 2 and "dns.resolver" in imported and "dkim" in imported
    # (importtime lists the refused "requests" itself, but nothing it would have pulled in)
    loaded = {name for name in imported if name.startswith("requests.") or name.split(".")[0] in ("urllib3", "chardet")}
    assert not loaded


IP_SENDER = "abcdefghi@[192.0.2.7]"


def xforward_send(port, addr: str | None, data: bytes):
    """As Postfix's smtpd proxy does: EHLO, XFORWARD ADDR=<client> when announced, then one message."""
    client = smtplib.SMTP(LOOPBACK, port, timeout=30)
    try:
        client.ehlo("mx.test")
        assert client.has_extn("xforward"), client.esmtp_features
        if addr:
            assert client.docmd("XFORWARD", f"NAME=spike.test ADDR={addr} PROTO=ESMTP")[0] == 250
        return send(port, IP_SENDER, [BOB], data, conn=client)
    finally:
        client.quit()


def test_an_ip_only_relay_is_its_own_signature(setup):
    """From: user@[192.0.2.7] without DKIM is accepted only when 192.0.2.7 itself connects (upstream)."""
    filt, sink = setup("incoming")
    data = mc.encrypted(IP_SENDER, [BOB])
    assert xforward_send(filt.port, "192.0.2.7", data)[0] == 250
    assert [m.mail_from for m in sink.received] == [IP_SENDER]
    for other in ("192.0.2.8", None):  # another host, or Postfix did not say
        code, text = xforward_send(filt.port, other, data)
        assert code == 554 and "DKIM" in text, (code, text)
    assert len(sink.received) == 1
