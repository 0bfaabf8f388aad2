"""Test helpers for the dict services: a real server thread and a real client.

Each test starts the service's DictServer on a unix socket of its own and
talks the Dovecot dict protocol to it over that socket.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from chatmaild.config import Config, validate
from chatmaild.dictproxy import DictServer, tab_escape


def make_config(tmp_path: Path, **extra) -> Config:
    # no system limits unless a test sets them: this host's load is not the test's
    settings = {
        "mail_domain": "chat.example.org",
        "mailboxes_dir": str(tmp_path / "mail"),
        "max_load_1m": 1e6,
        "min_available_memory": "0",
        "min_free_disk_space": "0",
    }
    settings.update(extra)
    return Config(validate(settings))


@contextlib.contextmanager
def running(proxy):
    """Serve ``proxy`` in a thread on a fresh socket; yields the socket path."""
    # unix socket paths are limited to 108 bytes; pytest's tmp_path can be longer
    sockdir = Path(tempfile.mkdtemp(prefix="dict-"))
    path = sockdir / "dict.socket"
    server = DictServer(proxy, path)
    server.bind()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.ready.wait(5)
    try:
        yield path
    finally:
        server.shutdown()
        thread.join(5)
        shutil.rmtree(sockdir, ignore_errors=True)
        assert not thread.is_alive(), "server thread did not stop"


class DictClient:
    """A minimal Dovecot dict client: send request lines, read reply lines."""

    def __init__(self, path: Path, timeout: float = 5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buf = b""

    def send(self, line: str | bytes) -> None:
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.sock.sendall(line + b"\n")

    def readline(self) -> str:
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode("utf-8")

    def request(self, line: str | bytes) -> str:
        self.send(line)
        return self.readline()

    def hello(self, dict_name: str = "auth") -> None:
        self.send(f"H3\t2\t0\t\t{dict_name}")

    def lookup(self, key: str, user: str = "") -> str:
        """L request with fields tab-escaped as Dovecot's client does."""
        key, user = tab_escape(key), tab_escape(user)
        return self.request(f"L{key}\t{user}" if user else f"L{key}")

    def iterate(self, path: str, flags: int = 0, max_rows: int = 0) -> list[str]:
        self.send(f"I{flags}\t{max_rows}\t{path}")
        rows = []
        while (line := self.readline()) != "":
            rows.append(line)
        return rows

    def transaction(self, txid: str, user: str, sets: list[tuple[str, str]], commit: str = "C") -> str:
        self.send(f"B{txid}\t{user}")
        for key, value in sets:
            self.send(f"S{txid}\t{key}\t{value}")
        return self.request(f"{commit}{txid}")

    def close(self) -> None:
        self.sock.close()


def wait_connect(path: Path, timeout: float = 10.0) -> DictClient:
    """Connect once a server process has bound and listens on ``path``."""
    import time

    end = time.time() + timeout
    while True:
        try:
            return DictClient(path)
        except OSError:
            if time.time() > end:
                raise
            time.sleep(0.05)


# (request line, the replies it may get; None: no reply expected)
LOOKUP_ANSWER = {"F", "N"}
GARBAGE = [
    (b"\x00\xff\xfe garbage", None),
    (b"Z unknown command", None),
    (b"L", LOOKUP_ANSWER),
    (b"I", {""}),
    (b"Ifoo\tbar", {""}),
    (b"I0\t0", {""}),
    (b"S", None),
    (b"S99\tno-such-tx\tvalue", None),
    (b"C", {"F"}),
    (b"C12345", {"F12345"}),
    (b"D7", {"AF7"}),
    (b"B", None),
    (b"Lshared/\xff\xfe\tnot-utf8", LOOKUP_ANSWER),
    (b"Lshared/passdb/abc\\", LOOKUP_ANSWER),
    (b"Lpriv/\x01\x01\x01", LOOKUP_ANSWER),
    (b"\r", None),
    (b"\t\t\t", None),
    ("L\u2603\u2603".encode(), LOOKUP_ANSWER),
    (b"U1\tkey", None),
    (b"R1", None),
]


def assert_survives_garbage(path: Path, probe) -> None:
    """Send malformed input, then check the server still answers ``probe``.

    ``probe(client)`` makes one well-formed request and asserts its answer.
    """
    client = DictClient(path)
    for line, _ in GARBAGE:
        client.send(line)
    # Each request Dovecot would wait on got exactly one answer, in order.
    for line, allowed in GARBAGE:
        if allowed is not None:
            reply = client.readline()
            assert reply in allowed, (line, reply)
    probe(client)
    client.close()
    # an overlong line closes only that connection
    big = DictClient(path)
    with pytest.raises((ConnectionError, OSError)):
        big.sock.sendall(b"L" + b"x" * (300 * 1024))
        big.readline()
    big.close()
    fresh = DictClient(path)
    probe(fresh)
    fresh.close()


class PushServer:
    """A local stand-in for notifications.delta.chat on 127.0.0.1.

    FAKE: the public push service cannot be reached from tests; this HTTP
    server records each POSTed token and answers with the next status from
    ``statuses`` (200 once they run out).
    """

    def __init__(self, keep_alive: bool = False):
        import http.server

        self.requests: list[tuple[str, bytes]] = []
        self.connections = 0  # accepted
        self.open: list = []  # the sockets of kept connections (keep_alive)
        self.statuses: dict[bytes, list[int]] = {}
        self.received = threading.Condition()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def setup(self):
                super().setup()
                with outer.received:
                    outer.connections += 1
                    outer.open.append(self.connection)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                plan = outer.statuses.get(body, [])
                status = plan.pop(0) if plan else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with outer.received:
                    outer.requests.append((self.path, body))
                    outer.received.notify_all()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/notify"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def drop_connections(self) -> None:
        """Close every kept connection from the server's side (as an idle timeout does)."""
        import socket

        with self.received:
            conns, self.open = self.open, []
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def wait_for(self, count: int, timeout: float = 10) -> list[tuple[str, bytes]]:
        with self.received:
            self.received.wait_for(lambda: len(self.requests) >= count, timeout)
            return list(self.requests)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# -- doveauth: one account and its lookups --------------------------------------

ADDR = "abcdefghi@chat.example.org"
PASSWORD = "secret-password-1"


def esc(text: str) -> str:
    """Dovecot's %E: backslash before \\ " and '."""
    return "".join("\\" + c if c in "\\\"'" else c for c in text)


def passdb(client: DictClient, addr: str, password: str) -> str:
    return client.lookup(f'shared/passdb/{esc(password)}"{esc(addr)}', addr)


def entry(reply: str) -> dict:
    assert reply.startswith("O"), reply
    return json.loads(reply[1:])


# -- chatmail-metadata: TURN credentials, computed independently -------------------


def openssl_hmac_sha1_base64(secret: str, message: str) -> str:
    """Independent computation of base64(HMAC-SHA1(secret, message))."""
    digest = subprocess.run(
        ["openssl", "dgst", "-sha1", "-hmac", secret, "-binary"],
        input=message.encode(),
        capture_output=True,
        check=True,
    ).stdout
    return (
        subprocess.run(["openssl", "base64", "-A"], input=digest, capture_output=True, check=True)
        .stdout.decode()
        .strip()
    )
