"""The push notifier against a local HTTP server (fake of the public push service)."""

from __future__ import annotations

import time

import pytest

from chatmaild.metadata_tokens import TokenStore
from chatmaild.notifier import Notifier
from support.dicts import PushServer

ADDR = "abcdefghi@chat.example.org"
FAST = (0, 0.05, 0.1, 0.15, 0.2)


def wait_until(predicate, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def tokens(config):
    (config.mailboxes_dir / ADDR).mkdir()
    store = TokenStore(config)
    store.add(ADDR, "tok-a")
    store.add(ADDR, "tok-b")
    return store


@pytest.fixture
def make_notifier(config, tokens, push_server):
    made = []

    def make(**kw):
        kw.setdefault("delays", FAST)
        kw.setdefault("workers", (1, 1, 1, 1, 1))
        kw.setdefault("timeout", 5)
        n = Notifier(config.mailboxes_dir / "pending_notifications", tokens, url=push_server.url, **kw)
        n.queue_dir.mkdir(exist_ok=True)
        made.append(n)
        return n

    yield make
    for n in made:
        n.stop()


def queue_files(notifier):
    return sorted(p for p in notifier.queue_dir.iterdir())


def test_push_delivered_and_queue_emptied(make_notifier, push_server, tokens):
    n = make_notifier()
    n.notify(ADDR, tokens.get(ADDR))
    files = queue_files(n)
    assert len(files) == 2
    addr, start, token = files[0].read_text().split("\n")
    assert addr == ADDR and abs(float(start) - time.time()) < 5 and token in {"tok-a", "tok-b"}
    n.start()
    got = push_server.wait_for(2)
    assert sorted(body for _, body in got) == [b"tok-a", b"tok-b"]
    assert {path for path, _ in got} == {"/notify"}
    assert wait_until(lambda: queue_files(n) == [])


def test_410_removes_token(make_notifier, push_server, tokens):
    push_server.statuses[b"tok-a"] = [410]
    n = make_notifier()
    n.start()
    n.notify(ADDR, tokens.get(ADDR))
    push_server.wait_for(2)
    assert wait_until(lambda: tokens.get(ADDR) == ["tok-b"])
    assert wait_until(lambda: queue_files(n) == [])


def test_failure_is_retried_then_delivered(make_notifier, push_server):
    push_server.statuses[b"tok-a"] = [500, 503]
    n = make_notifier()
    n.start()
    n.notify(ADDR, ["tok-a"])
    got = push_server.wait_for(3)
    assert [body for _, body in got] == [b"tok-a"] * 3
    assert wait_until(lambda: queue_files(n) == [])


def test_connection_error_is_retried(make_notifier, push_server, config, tokens):
    import socket

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connection refused
    n = Notifier(
        config.mailboxes_dir / "pending_notifications",
        tokens,
        url=f"http://127.0.0.1:{closed.getsockname()[1]}/notify",
        delays=FAST,
        workers=(1, 1, 1, 1, 1),
        timeout=2,
    )
    n.queue_dir.mkdir(exist_ok=True)
    n.start()
    try:
        n.notify(ADDR, ["tok-a"])
        # all five attempts fail, then the push is dropped
        assert wait_until(lambda: queue_files(n) == [], timeout=15)
    finally:
        n.stop()
        closed.close()


def test_gives_up_after_last_level(make_notifier, push_server):
    push_server.statuses[b"tok-a"] = [500] * 10
    n = make_notifier()
    n.start()
    n.notify(ADDR, ["tok-a"])
    assert wait_until(lambda: queue_files(n) == [])
    time.sleep(0.3)
    assert len(push_server.requests) == len(FAST)


def test_gives_up_after_deadline(make_notifier, push_server):
    push_server.statuses[b"tok-a"] = [500] * 10
    n = make_notifier(delays=(0, 0.05, 5, 5, 5), deadline=1)
    n.start()
    n.notify(ADDR, ["tok-a"])
    # attempts at 0 and 0.05 s; the next would be due after the 1 s deadline
    assert wait_until(lambda: queue_files(n) == [])
    assert len(push_server.requests) == 2


def test_persisted_queue_is_reloaded(make_notifier, push_server, config):
    n1 = make_notifier()
    n1.notify(ADDR, ["tok-a", "tok-b"])  # never started: as if the process died
    qdir = n1.queue_dir
    (qdir / "abc.tmp").write_text("half")
    (qdir / "broken").write_text("no newlines")
    n2 = make_notifier()
    assert n2.load() == 2
    assert not (qdir / "abc.tmp").exists() and not (qdir / "broken").exists()
    n2.start()
    got = push_server.wait_for(2)
    assert sorted(body for _, body in got) == [b"tok-a", b"tok-b"]
    assert wait_until(lambda: queue_files(n2) == [])


def test_pushes_share_a_kept_connection_and_survive_its_closing(config, tokens):
    """One connection per worker while the service keeps it open; when the service closes it,
    the next push goes out at once on a new one (not a retry level later)."""
    server = PushServer(keep_alive=True)
    n = Notifier(
        config.mailboxes_dir / "pending_notifications",
        tokens,
        url=server.url,
        delays=(0, 30, 30, 30, 30),  # a retry would take 30 s
        workers=(1, 1, 1, 1, 1),
        timeout=5,
    )
    n.queue_dir.mkdir(exist_ok=True)
    n.start()
    try:
        n.notify(ADDR, ["tok-a", "tok-b"])
        assert len(server.wait_for(2)) == 2
        assert server.connections == 1
        server.drop_connections()
        time.sleep(0.2)
        started = time.monotonic()
        n.notify(ADDR, ["tok-a"])
        assert len(server.wait_for(3, timeout=5)) == 3
        assert time.monotonic() - started < 5 and server.connections == 2
        assert wait_until(lambda: queue_files(n) == [])
    finally:
        n.stop()
        server.close()
