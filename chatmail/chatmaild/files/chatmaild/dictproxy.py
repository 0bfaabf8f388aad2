"""A Dovecot dict-protocol server on a unix stream socket.

Dovecot talks to doveauth, lastlogin and chatmail-metadata through its
"proxy" dict client.  This module implements the server side once; each
service subclasses :class:`DictProxy` and overrides ``lookup``,
``iterate`` and ``set``.

Why a single-threaded ``selectors`` loop instead of one thread per
connection (upstream): every request is a few microseconds of Python work
plus small file reads, so threads only add GIL contention (upstream drops
from 3,500 to 1,300 lookups/s going from 1 to 16 clients).  One loop
serving all connections keeps the per-request cost flat.  Handlers must
therefore not block for long; the slowest one (SHA512-CRYPT on account
creation) takes about a millisecond.

Protocol facts (Dovecot 2.3 ``dict-client``/``dict-connection-cmd``):

* one LF-terminated line per request, first byte = command, fields
  separated by TAB, fields tab-escaped (``\\x01`` + ``1 t r n 0``);
* ``L`` gets exactly one reply line (``O<value>``, ``N``, ``F``);
* ``I`` gets ``O<key>\\t<value>`` rows and always an empty line at the end;
* ``B``/``S``/``U``/``R`` get no reply; ``C<id>`` gets ``O<id>``/``F<id>``
  and the async commit ``D<id>`` gets ``AO<id>``/``AF<id>``;
* transaction ids are per connection (Dovecot reuses ``1`` everywhere).

Malformed input never stops the server: the offending line is logged, a
command that Dovecot waits on still gets a (failure) reply, and only a
connection that overflows the line limit is closed.
"""

from __future__ import annotations

import logging
import os
import re
import selectors
import socket
import stat
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Config

log = logging.getLogger(__name__)

MAX_LINE = 256 * 1024  # Dovecot's own client limit is 64 KiB per line
MAX_PENDING_OUTPUT = 4 * 1024 * 1024  # stop reading from a client that does not read
LISTEN_BACKLOG = 1000

_UNESCAPE = {"1": "\x01", "t": "\t", "r": "\r", "n": "\n", "0": "\x00"}
_ESCAPE = str.maketrans({"\x01": "\x011", "\t": "\x01t", "\r": "\x01r", "\n": "\x01n", "\x00": "\x010"})


def tab_unescape(field: str) -> str:
    """Undo Dovecot's str_tabescape(); fields without \\x01 pass unchanged."""
    if "\x01" not in field:
        return field
    out = []
    chars = iter(field)
    for ch in chars:
        if ch == "\x01":
            nxt = next(chars, "")
            out.append(_UNESCAPE.get(nxt, nxt))
        else:
            out.append(ch)
    return "".join(out)


_NEEDS_ESCAPE = re.compile("[\x00\x01\t\r\n]")


def tab_escape(value: str) -> str:
    return value.translate(_ESCAPE) if _NEEDS_ESCAPE.search(value) else value


class LookupFailed(Exception):
    """Raised by a lookup handler to answer ``F`` (temporary failure)."""


@dataclass
class Transaction:
    """One dict transaction: the user from ``B`` and whether every set succeeded."""

    txid: str
    user: str
    ok: bool = True


class _Connection:
    __slots__ = ("sock", "inbuf", "outbuf", "transactions", "events", "closing")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.transactions: dict[str, Transaction] = {}
        self.events = selectors.EVENT_READ
        self.closing = False  # the client closed its side; close once the answers are out


class DictProxy:
    """Base dict server; subclasses answer lookups, iterations and sets.

    The defaults answer like an empty dictionary that refuses writes.
    """

    name = "dictproxy"

    # -- service hooks -------------------------------------------------------

    def lookup(self, key: str, user: str) -> str | None:
        """Value for ``key`` (``O``), or None (``N``); raise LookupFailed for ``F``."""
        log.warning("%s: lookup of unknown key %r", self.name, key)
        return None

    def iterate(self, flags: int, max_rows: int, path: str, user: str) -> Iterable[tuple[str, str]]:
        """Rows (key, value) below ``path``; the server adds the terminator."""
        return ()

    def set(self, tx: Transaction, key: str, value: str) -> bool:
        """Apply one set; False makes the whole transaction answer ``F``."""
        log.warning("%s: set of unknown key %r", self.name, key)
        return False

    def undecodable(self, cmd: str, line: bytes) -> str | None:
        """The reply to a request that is not UTF-8 (default: a failure)."""
        log.warning("%s: request %r is not UTF-8; answered as failure", self.name, line[:80])
        return _FAILURE_REPLY.get(cmd)

    # -- protocol --------------------------------------------------------------

    def handle_line(self, line: bytes, transactions: dict[str, Transaction]) -> str | None:
        """The reply (without LF) to one request line, or None for no reply."""
        if not line:
            return None
        cmd = chr(line[0])
        try:
            text = line[1:].decode("utf-8")
        except UnicodeDecodeError:
            return self.undecodable(cmd, line)
        handler = _COMMANDS.get(cmd)
        if handler is None:
            if cmd not in _IGNORED:
                log.warning("%s: unknown command %r in %r", self.name, cmd, line[:80])
            return None
        fields = [tab_unescape(f) for f in text.split("\t")]
        try:
            return handler(self, fields, transactions)
        except Exception:
            log.exception("%s: handler failed on %r", self.name, line[:200])
            return _FAILURE_REPLY.get(cmd)

    def _cmd_lookup(self, fields: list[str], _tx) -> str:
        key = fields[0]
        user = fields[1] if len(fields) > 1 else ""
        try:
            value = self.lookup(key, user)
        except LookupFailed as exc:
            log.warning("%s: lookup %r failed: %s", self.name, key, exc)
            return "F"
        return "N" if value is None else "O" + tab_escape(value)

    def _cmd_iterate(self, fields: list[str], _tx) -> str:
        if len(fields) < 3 or not fields[0].isdigit() or not fields[1].isdigit():
            log.warning("%s: malformed iterate %r", self.name, fields)
            return ""
        flags, max_rows, path = int(fields[0]), int(fields[1]), fields[2]
        user = fields[3] if len(fields) > 3 else ""
        rows = []
        for key, value in self.iterate(flags, max_rows, path, user):
            rows.append(f"O{tab_escape(key)}\t{tab_escape(value)}\n")
            if max_rows and len(rows) >= max_rows:
                break
        # The terminator (empty line) is the LF added after the last row.
        return "".join(rows)

    def _cmd_begin(self, fields: list[str], transactions) -> None:
        txid = fields[0]
        if not txid:
            log.warning("%s: begin without transaction id", self.name)
            return None
        if txid in transactions:
            log.warning("%s: transaction %s begun twice; restarting it", self.name, txid)
        transactions[txid] = Transaction(txid, fields[1] if len(fields) > 1 else "")
        return None

    def _cmd_set(self, fields: list[str], transactions) -> None:
        tx = transactions.get(fields[0])
        if tx is None or len(fields) < 2:
            log.warning("%s: set outside a transaction or without key: %r", self.name, fields)
            return None
        value = fields[2] if len(fields) > 2 else ""
        try:
            ok = self.set(tx, fields[1], value)
        except Exception:
            log.exception("%s: set %r failed", self.name, fields[1])
            ok = False
        if not ok:
            log.error("%s: set %r for %r failed; transaction %s fails", self.name, fields[1], tx.user, tx.txid)
            tx.ok = False
        return None

    def _commit(self, fields: list[str], transactions, prefix: str) -> str:
        txid = fields[0]
        tx = transactions.pop(txid, None)
        if tx is None:
            log.warning("%s: commit of unknown transaction %r", self.name, txid)
            return f"{prefix}F{txid}"
        return f"{prefix}{'O' if tx.ok else 'F'}{txid}"

    def _cmd_commit(self, fields, transactions) -> str:
        return self._commit(fields, transactions, "")

    def _cmd_commit_async(self, fields, transactions) -> str:
        return self._commit(fields, transactions, "A")

    def _cmd_rollback(self, fields, transactions) -> None:
        transactions.pop(fields[0], None)
        return None

    def _cmd_unsupported(self, fields, transactions) -> None:
        log.warning("%s: unsupported write command ignored: %r", self.name, fields[:2])
        return None


_COMMANDS = {
    "L": DictProxy._cmd_lookup,
    "I": DictProxy._cmd_iterate,
    "B": DictProxy._cmd_begin,
    "S": DictProxy._cmd_set,
    "C": DictProxy._cmd_commit,
    "D": DictProxy._cmd_commit_async,
    "R": DictProxy._cmd_rollback,
    "U": DictProxy._cmd_unsupported,  # unset
    "A": DictProxy._cmd_unsupported,  # atomic increment
    "P": DictProxy._cmd_unsupported,  # append
}
# Commands that need no answer and carry nothing we use.
_IGNORED = {"H", "T", "V", "E"}  # hello, timestamp, hide-log-values, set-expire
# What Dovecot must still get when a request it waits on is malformed.
_FAILURE_REPLY = {"L": "F", "I": "", "C": "F", "D": "AF"}


class DictServer:
    """Serves one DictProxy on a unix socket with a single selectors loop."""

    def __init__(self, proxy: DictProxy, socket_path: str | os.PathLike):
        self.proxy = proxy
        self.socket_path = Path(socket_path)
        self._selector = selectors.DefaultSelector()
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = False
        self.ready = threading.Event()

    def bind(self) -> None:
        """Bind the socket, replacing a stale one left by a previous run."""
        path = self.socket_path
        try:
            if stat.S_ISSOCK(path.lstat().st_mode):
                path.unlink()
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        listener.listen(LISTEN_BACKLOG)
        listener.setblocking(False)
        self._listener = listener
        self._selector.register(listener, selectors.EVENT_READ, None)
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")

    def serve_forever(self) -> None:
        if self._listener is None:
            self.bind()
        log.info("%s: serving on %s", self.proxy.name, self.socket_path)
        self.ready.set()
        select = self._selector.select
        try:
            while not self._stopping:
                for key, mask in select():
                    data = key.data
                    if data is None:
                        self._accept()
                    elif data == "wake":
                        self._wake_r.recv(64)
                    else:
                        if mask & selectors.EVENT_WRITE:
                            self._flush(data)
                        if mask & selectors.EVENT_READ and data.sock.fileno() >= 0:
                            self._read(data)
        finally:
            self._close_all()

    def shutdown(self) -> None:
        """Stop serve_forever from another thread."""
        self._stopping = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    # -- internals -------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE: keep serving the others
                log.error("%s: accept failed: %s", self.proxy.name, exc)
                return
            sock.setblocking(False)
            self._selector.register(sock, selectors.EVENT_READ, _Connection(sock))

    def _read(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            if conn.outbuf:  # answers still queued (found by fuzzing: they were dropped)
                conn.closing = True
                self._flush(conn)
            else:
                self._close(conn)
            return
        buf = conn.inbuf
        buf += data
        if b"\n" not in data:
            if len(buf) > MAX_LINE:
                log.warning("%s: request line longer than %d bytes; closing connection", self.proxy.name, MAX_LINE)
                self._close(conn)
            return
        *lines, rest = bytes(buf).split(b"\n")
        conn.inbuf = bytearray(rest)
        handle = self.proxy.handle_line
        out = []
        for line in lines:
            if len(line) > MAX_LINE:
                log.warning("%s: request line longer than %d bytes ignored", self.proxy.name, MAX_LINE)
                reply = _FAILURE_REPLY.get(chr(line[0]))
            else:
                reply = handle(line, conn.transactions)
            if reply is not None:
                out.append(reply)
                out.append("\n")
        if out:
            conn.outbuf += "".join(out).encode("utf-8", "surrogateescape")
            self._flush(conn)

    def _flush(self, conn: _Connection) -> None:
        if conn.outbuf:
            try:
                sent = conn.sock.send(conn.outbuf)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._close(conn)
                return
            del conn.outbuf[:sent]
        want = selectors.EVENT_WRITE if conn.outbuf else 0
        if conn.closing:
            if not want:
                self._close(conn)
                return
        elif len(conn.outbuf) < MAX_PENDING_OUTPUT:
            want |= selectors.EVENT_READ
        if want != conn.events:
            conn.events = want
            self._selector.modify(conn.sock, want, conn)

    def _close(self, conn: _Connection) -> None:
        try:
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    def _close_all(self) -> None:
        for key in list(self._selector.get_map().values()):
            if isinstance(key.data, _Connection):
                self._close(key.data)
        if self._listener is not None:
            self._listener.close()
        self._selector.close()


def run_service(module: str, argv: list[str] | None, make: Callable[[Config], DictProxy | None]) -> int:
    """The ``main`` of every dict service: ``<socket> <chatmail.ini>``, logging, then serve what
    ``make`` builds from the config (``None``: it could not start and has logged why)."""
    from .config import read_config

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(f"usage: python3 -m chatmaild.{module} <socket> <chatmail.ini>", file=sys.stderr)
        return 2
    setup_logging()
    proxy = make(read_config(args[1]))
    if proxy is None:
        return 1
    serve(proxy, args[0])
    return 0


def serve(proxy: DictProxy, socket_path: str | os.PathLike) -> None:
    """Run ``proxy`` on ``socket_path`` until the process ends."""
    DictServer(proxy, socket_path).serve_forever()


def setup_logging() -> None:
    """Log lines to stderr (the journal adds time and unit name)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
