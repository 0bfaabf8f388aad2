"""The dict protocol server itself, with a small test dictionary over a real socket."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from chatmaild.dictproxy import DictProxy, DictServer, LookupFailed, tab_escape, tab_unescape
from support.dicts import DictClient, assert_survives_garbage, running, wait_connect


class MemoryDict(DictProxy):
    """A dictionary in memory: enough to observe every protocol rule."""

    name = "memory"

    def __init__(self):
        self.data: dict[str, str] = {}
        self.sets: list[tuple[str, str, str, str]] = []

    def lookup(self, key, user):
        if key == "fail":
            raise LookupFailed("asked to fail")
        if key == "crash":
            raise RuntimeError("handler bug")
        return self.data.get(key)

    def iterate(self, flags, max_rows, path, user):
        return sorted((k, v) for k, v in self.data.items() if k.startswith(path))

    def set(self, tx, key, value):
        self.sets.append((tx.txid, tx.user, key, value))
        if key == "crash":
            raise RuntimeError("handler bug")
        if key.startswith("ro/"):
            return False
        self.data[key] = value
        return True


@pytest.fixture
def memory():
    return MemoryDict()


@pytest.fixture
def sock(memory):
    with running(memory) as path:
        yield path


def test_lookup_replies(sock, memory):
    memory.data["k"] = "v\twith tab\nand newline \x01"
    c = DictClient(sock)
    c.hello()
    assert c.lookup("k") == "O" + "v\x01twith tab\x01nand newline \x011"
    assert tab_unescape(c.lookup("k")[1:]) == memory.data["k"]
    assert c.lookup("missing") == "N"
    assert c.lookup("fail") == "F"
    assert c.lookup("crash") == "F"  # handler exception: logged, answered, connection kept
    assert c.lookup("missing", "user@x") == "N"


def test_escaped_key_fields(sock, memory):
    memory.data["a\tb"] = "x"
    c = DictClient(sock)
    assert c.lookup("a\tb") == "Ox"  # client escapes the tab, server unescapes


def test_pipelined_requests_answer_in_order(sock, memory):
    memory.data.update({f"k{i}": str(i) for i in range(500)})
    c = DictClient(sock)
    c.sock.sendall(b"".join(f"Lk{i}\n".encode() for i in range(500)))
    assert [c.readline() for _ in range(500)] == [f"O{i}" for i in range(500)]


def test_request_split_across_packets(sock, memory):
    memory.data["split-key"] = "ok"
    c = DictClient(sock)
    for piece in (b"Lspl", b"it-k", b"ey\nLmis", b"sing\n"):
        c.sock.sendall(piece)
        time.sleep(0.01)
    assert [c.readline(), c.readline()] == ["Ook", "N"]


def test_iterate_rows_and_terminator(sock, memory):
    memory.data.update({"p/a": "1", "p/b": "2", "q/c": "3"})
    c = DictClient(sock)
    assert c.iterate("p/") == ["Op/a\t1", "Op/b\t2"]
    assert c.iterate("p/", max_rows=1) == ["Op/a\t1"]
    assert c.iterate("none/") == []


def test_large_iterate_to_slow_reader(sock, memory):
    memory.data.update({f"big/{i:06d}": "v" * 100 for i in range(20000)})
    c = DictClient(sock, timeout=20)
    c.send("I0\t0\tbig/")
    time.sleep(0.2)  # let the server fill the socket buffer and wait
    rows = []
    while (line := c.readline()) != "":
        rows.append(line)
    assert len(rows) == 20000
    assert c.lookup("big/000000") == "O" + "v" * 100


def test_half_closed_client_still_gets_every_answer(sock, memory):
    """Found by bench/fuzz.py: answers still queued when the client shut its side were dropped."""
    memory.data.update({f"big/{i:06d}": "v" * 100 for i in range(20000)})
    c = DictClient(sock, timeout=20)
    c.send("I0\t0\tbig/")
    c.send("Lbig/000001")
    c.sock.shutdown(socket.SHUT_WR)
    time.sleep(0.2)  # the server sees the end of input with most of the answer still queued
    rows = []
    while (line := c.readline()) != "":
        rows.append(line)
    assert len(rows) == 20000
    assert c.readline() == "O" + "v" * 100
    with pytest.raises(ConnectionError):
        c.readline()  # and then the server closes


def test_transactions(sock, memory):
    c = DictClient(sock)
    assert c.transaction("1", "u@x", [("a", "1"), ("b", "")]) == "O1"
    assert memory.data == {"a": "1", "b": ""}
    assert c.transaction("2", "u@x", [("a", "2"), ("ro/x", "1")]) == "F2"
    assert c.transaction("3", "u@x", [("crash", "1")]) == "F3"
    assert c.transaction("4", "u@x", [("c", "1")], commit="D") == "AO4"
    # rollback forgets the transaction; its commit is then unknown
    c.send("B5\tu@x")
    c.send("R5")
    assert c.request("C5") == "F5"
    # value field missing means empty value
    c.send("B6\tu@x")
    c.send("S6\tnovalue")
    assert c.request("C6") == "O6"
    assert memory.data["novalue"] == ""
    assert ("6", "u@x", "novalue", "") in memory.sets


def test_transaction_ids_are_per_connection(sock, memory):
    a, b = DictClient(sock), DictClient(sock)
    a.send("B1\talice@x")
    b.send("B1\tbob@x")
    a.send("S1\tka\t1")
    b.send("S1\tro/kb\t1")
    assert b.request("C1") == "F1"
    assert a.request("C1") == "O1"
    assert ("1", "alice@x", "ka", "1") in memory.sets
    assert ("1", "bob@x", "ro/kb", "1") in memory.sets


def test_many_connections_and_disconnects(sock, memory):
    memory.data["k"] = "v"
    clients = [DictClient(sock) for _ in range(50)]
    for c in clients[::2]:
        c.close()  # abrupt disconnects
    for c in clients[1::2]:
        assert c.lookup("k") == "Ov"


def test_survives_malformed_input(sock, memory):
    memory.data["probe"] = "alive"

    def probe(c):
        assert c.lookup("probe") == "Oalive"

    assert_survives_garbage(sock, probe)


def test_escape_roundtrip():
    for text in ["plain", "\t\n\r\x01", "\x01t", "a\x00b", ""]:
        assert tab_unescape(tab_escape(text)) == text


def test_stale_socket_replaced_but_not_other_files(memory):
    d = Path(tempfile.mkdtemp(prefix="dict-"))
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(d / "s"))
    stale.close()  # the file stays behind, as after a crash
    server = DictServer(memory, d / "s")
    server.bind()
    assert stat.S_ISSOCK((d / "s").lstat().st_mode)
    server._close_all()
    (d / "f").write_text("not a socket")
    with pytest.raises(OSError):
        DictServer(memory, d / "f").bind()
    assert (d / "f").read_text() == "not a socket"


def test_socket_mode_follows_service_umask(config, tmp_path):
    """The units set UMask=0077: the socket is then private to the service user."""
    from chatmaild.config import render_ini

    ini = tmp_path / "chatmail.ini"
    ini.write_text(render_ini(config.settings))
    sockpath = Path(tempfile.mkdtemp(prefix="dict-")) / "lastlogin.socket"
    env = dict(os.environ, PYTHONPATH=str(Path(__import__("chatmaild").__file__).parent.parent))
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatmaild.lastlogin", str(sockpath), str(ini)],
        env=env,
        preexec_fn=lambda: os.umask(0o077),
    )
    try:
        c = wait_connect(sockpath)
        assert stat.S_IMODE(sockpath.stat().st_mode) == 0o700
        assert c.lookup("shared/last-login/x@y") == "N"
        c.close()
    finally:
        proc.terminate()
        proc.wait(5)


def test_random_bytes_fuzz(sock, memory):
    """Seeded random request lines: the connection stays usable afterwards."""
    import random

    rng = random.Random(1234)
    memory.data["marker"] = "alive"
    c = DictClient(sock, timeout=10)
    alphabet = b'LIBSCDRUAH\t\x01\\"/\x00\xff\xc3 abc019'
    for _ in range(2000):
        line = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 40))).replace(b"\n", b"")
        c.sock.sendall(line + b"\n")
    c.send("Lmarker")
    while (reply := c.readline()) != "Oalive":
        assert reply == "" or reply[0] in "ONFA", reply
    fresh = DictClient(sock)
    assert fresh.lookup("marker") == "Oalive"
