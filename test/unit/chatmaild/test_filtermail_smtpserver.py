"""FilterSMTP's bulk DATA reading answers exactly like stock aiosmtpd.

Both servers run for real on loopback ports; the same raw SMTP sessions,
cut into pieces at awkward places, go to each, and the replies and the
received bytes must be identical.
"""

from __future__ import annotations

import random
import socket
import time

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from chatmaild.smtpserver import FilterSMTP
from support.filtermail import LOOPBACK, free_port

LIMIT = 20_000


class Recorder:
    def __init__(self):
        self.contents = []

    async def handle_DATA(self, server, session, envelope):
        self.contents.append(envelope.original_content)
        return "250 got it"


class ServerController(Controller):
    def __init__(self, cls, handler, port):
        self.cls = cls
        super().__init__(handler, hostname=LOOPBACK, port=port)

    def factory(self):
        return self.cls(self.handler, data_size_limit=LIMIT, hostname="test")


@pytest.fixture(scope="module")
def servers():
    started = []
    for cls in (SMTP, FilterSMTP):
        recorder = Recorder()
        controller = ServerController(cls, recorder, free_port())
        controller.start()
        started.append((controller, recorder))
    yield started
    for controller, _ in started:
        controller.stop()


def session(port: int, data: bytes, rng: random.Random) -> list[bytes]:
    """EHLO/MAIL/RCPT/DATA, then ``data`` in random pieces, then NOOP; all replies."""
    with socket.create_connection((LOOPBACK, port), timeout=20) as sock:
        reader = sock.makefile("rb")
        replies = [reader.readline()]
        for command in (b"EHLO t\r\n", b"MAIL FROM:<a@b.c>\r\n", b"RCPT TO:<d@e.f>\r\n", b"DATA\r\n"):
            sock.sendall(command)
            replies.append(_reply(reader))
        pos = 0
        while pos < len(data):
            step = rng.choice([1, 2, 3, 5, 64, 1500, 70_000])
            sock.sendall(data[pos : pos + step])
            pos += step
            if step < 10:
                time.sleep(0.0005)  # let the server see the short piece alone
        replies.append(_reply(reader))
        sock.sendall(b"NOOP\r\n")
        replies.append(_reply(reader))
        return [r for r in replies if not r.startswith(b"220") and not r.startswith(b"250-")]


def _reply(reader) -> bytes:
    reply = b""
    while True:
        line = reader.readline()
        reply += line
        if len(line) < 4 or line[3:4] != b"-":
            return reply


BODIES = {
    "empty": b".\r\n",
    "one line": b"hello\r\n.\r\n",
    "dot lines": b"..\r\n...x\r\n.x\r\nend.\r\n.\r\n",
    "dot at end of lines": b"a.\r\nb.\r\n.\r\n",
    "lone dot stuffed": b"..\r\n.\r\n",
    "bare LF dot": b"x\n.\nstill data\r\n.\r\n",
    "CR dot": b"x\r.\r\nmore\r\n.\r\n",
    "line 999": b"a" * 999 + b"\r\n.\r\n",
    "line 1000": b"a" * 1000 + b"\r\n.\r\n",
    "long line": b"x\r\n" + b"a" * 5000 + b"\r\nafter\r\n.\r\n",
    "at size limit": b"a" * 98 + b"\r\n" + (b"b" * 98 + b"\r\n") * (LIMIT // 100 - 1) + b".\r\n",
    "over size limit": (b"b" * 98 + b"\r\n") * (LIMIT // 100 + 1) + b".\r\n",
    "far over size limit": (b"c" * 998 + b"\r\n") * 100 + b".\r\n",
    "binary": bytes(b for b in range(256) if b not in b"\r\n") * 3 + b"\r\n.\r\n",
}


@pytest.mark.parametrize("name", BODIES)
def test_same_as_aiosmtpd(servers, name):
    results = []
    for controller, recorder in servers:
        before = len(recorder.contents)
        replies = session(controller.port, BODIES[name], random.Random(name))
        results.append((replies, recorder.contents[before:]))
    stock, ours = results
    assert ours == stock
    assert stock[0][-1].startswith(b"250")  # the session is still usable


def test_pipelined_commands_after_data(servers):
    """Commands sent right behind the end of data are not swallowed."""
    for controller, recorder in servers:
        with socket.create_connection((LOOPBACK, controller.port), timeout=20) as sock:
            reader = sock.makefile("rb")
            reader.readline()
            sock.sendall(b"EHLO t\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n")
            replies = [_reply(reader) for _ in range(4)]
            sock.sendall(b"x\r\n.\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\ny\r\n.\r\nQUIT\r\n")
            replies += [_reply(reader) for _ in range(6)]
        assert [r[:3] for r in replies] == [
            b"250",
            b"250",
            b"250",
            b"354",
            b"250",
            b"250",
            b"250",
            b"354",
            b"250",
            b"221",
        ]
        assert recorder.contents[-2:] == [b"x\r\n", b"y\r\n"]


@pytest.mark.parametrize(
    "command",
    [
        b"MAIL FROM:<bob@",
        b"RCPT TO:<bob@",
        b"MAIL FROM:<@",
        b"MAIL FROM:<alice@[example.org> SIZE=100",
        b"RCPT TO:<bob@[example.org>",
    ],
)
def test_addresses_that_crash_the_stdlib_parser_are_malformed(servers, command):
    """Found by bench/fuzz.py: stock aiosmtpd raises IndexError/AttributeError here (500 "Error: (...)")."""
    _, (controller, _recorder) = servers
    with socket.create_connection((LOOPBACK, controller.port), timeout=20) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        first = b"MAIL FROM:<a@b.c>\r\n" if command.startswith(b"RCPT") else b""
        sock.sendall(b"EHLO t\r\n" + first + command + b"\r\nNOOP\r\n")
        replies = [_reply(reader) for _ in range(4 if first else 3)]
    reply = replies[-2]
    assert reply[:1] == b"5" and b"Error: (" not in reply, reply
    assert replies[-1].startswith(b"250")  # the session goes on
