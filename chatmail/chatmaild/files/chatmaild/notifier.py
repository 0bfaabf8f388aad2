"""Push notifications for new messages, with a persistent retry queue.

When Dovecot delivers a message, chatmail-metadata asks the notifier to
wake each of the recipient's devices.  Each (token, message) pair becomes
a file in ``MB/pending_notifications/`` holding ``<addr>\\n<start>\\n<token>``
so pushes survive restarts.  Delivery is retried with growing delays
(0, 8, 64, 512, 4096 s) and given up five hours after the message arrived:
a push that late is useless.  HTTP 410 means the device token is dead and
removes it from the account.

Each retry level has its own queue and worker threads, so a backlog of
slow retries never delays fresh notifications.  Each worker keeps one
HTTP connection open (the standard library's ``http.client``, verifying
TLS against the system's CAs); it is opened again after any failure.
``requests`` did the same at 6 MB more memory for a POST of a token.
"""

from __future__ import annotations

import functools
import heapq
import http.client
import itertools
import logging
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .dictproxy_fs import write_atomic
from .metadata_tokens import TokenStore

log = logging.getLogger(__name__)

NOTIFY_URL = "https://notifications.delta.chat/notify"
DELAYS = (0, 8, 64, 512, 4096)  # seconds before attempt at each level
DROP_DEADLINE = 5 * 3600
WORKERS = (4, 2, 2, 2, 2)  # threads per level
HTTP_TIMEOUT = 60


@dataclass(order=True)
class PendingPush:
    due: float
    seq: int
    path: Path = field(compare=False)
    addr: str = field(compare=False)
    start: float = field(compare=False)
    token: str = field(compare=False)
    level: int = field(compare=False, default=0)


class _LevelQueue:
    """Items of one retry level, earliest due first."""

    def __init__(self):
        self.heap: list[PendingPush] = []
        self.cond = threading.Condition()

    def put(self, item: PendingPush) -> None:
        with self.cond:
            heapq.heappush(self.heap, item)
            self.cond.notify()

    def take(self, stopping: threading.Event) -> PendingPush | None:
        """Wait for the earliest item to fall due; None once stopping."""
        with self.cond:
            while not stopping.is_set():
                if not self.heap:
                    self.cond.wait()
                    continue
                wait = self.heap[0].due - time.time()
                if wait <= 0:
                    return heapq.heappop(self.heap)
                self.cond.wait(wait)
            return None


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The system's CAs, loaded once for all workers and only when a push goes out (about 1 MB each)."""
    return ssl.create_default_context()


class PushConnection:
    """One kept HTTP(S) connection to the push service; POSTs a token, gives the status."""

    def __init__(self, url: str, timeout: float):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"push URL must be http(s)://host/path, not {url!r}")
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname, parts.port
        self.path = parts.path or "/"
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def post(self, body: bytes) -> int:
        """The HTTP status of one POST; OSError or http.client.HTTPException if there is none.

        A kept connection the server has closed meanwhile fails at once;
        then the POST is made once more on a fresh one (a token pushed
        twice wakes a device twice, no harm).
        """
        reused = self._conn is not None
        try:
            return self._post(body)
        except (OSError, http.client.HTTPException):
            if not reused:
                raise
            return self._post(body)

    def _post(self, body: bytes) -> int:
        if self._conn is None:
            if self.https:
                self._conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout, context=tls_context()
                )
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self._conn.request("POST", self.path, body=body)
            response = self._conn.getresponse()
            response.read()
            if response.will_close:
                self.close()
            return response.status
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class Notifier:
    def __init__(
        self,
        queue_dir: Path,
        tokens: TokenStore,
        url: str = NOTIFY_URL,
        delays: tuple[float, ...] = DELAYS,
        deadline: float = DROP_DEADLINE,
        workers: tuple[int, ...] = WORKERS,
        timeout: float = HTTP_TIMEOUT,
    ):
        self.queue_dir = Path(queue_dir)
        self.tokens = tokens
        self.url = url
        self.delays = delays
        self.deadline = deadline
        self.workers = workers
        self.timeout = timeout
        self.levels = [_LevelQueue() for _ in delays]
        self._seq = itertools.count()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- producers -------------------------------------------------------------

    def notify(self, addr: str, tokens: list[str]) -> None:
        """Queue one push per token, persisted before this returns."""
        now = time.time()
        for token in tokens:
            path = self.queue_dir / uuid.uuid4().hex
            write_atomic(path, f"{addr}\n{now}\n{token}")
            self._queue(PendingPush(now, next(self._seq), path, addr, now, token, 0))

    def load(self) -> int:
        """Re-queue persisted pushes at level 0; returns how many."""
        self.queue_dir.mkdir(parents=True, exist_ok=True)
        count = 0
        for path in sorted(self.queue_dir.iterdir()):
            if ".tmp" in path.name:
                log.warning("notifier: removing unfinished queue file %s", path.name)
                path.unlink(missing_ok=True)
                continue
            try:
                addr, start, token = path.read_text("utf-8").split("\n", 2)
                start_ts = float(start)
                if not addr or not token:
                    raise ValueError("empty field")
            except (ValueError, OSError) as exc:
                log.warning("notifier: removing unparsable queue file %s: %s", path.name, exc)
                path.unlink(missing_ok=True)
                continue
            self._queue(PendingPush(time.time(), next(self._seq), path, addr, start_ts, token, 0))
            count += 1
        return count

    def _queue(self, item: PendingPush) -> None:
        self.levels[item.level].put(item)

    def _retry(self, item: PendingPush) -> None:
        level = item.level + 1
        if level >= len(self.delays):
            self._drop(item)
            return
        due = time.time() + self.delays[level]
        if due > item.start + self.deadline:
            self._drop(item)
            return
        self._queue(PendingPush(due, next(self._seq), item.path, item.addr, item.start, item.token, level))

    def _drop(self, item: PendingPush) -> None:
        log.error("notifier: push for %s exceeded deadline; dropped", item.addr)
        item.path.unlink(missing_ok=True)

    # -- workers ---------------------------------------------------------------

    def start(self) -> None:
        for level, count in enumerate(self.workers[: len(self.levels)]):
            for n in range(count):
                t = threading.Thread(target=self._work, args=(level,), name=f"notify-{level}-{n}", daemon=True)
                t.start()
                self._threads.append(t)

    def stop(self) -> None:
        self._stopping.set()
        for q in self.levels:
            with q.cond:
                q.cond.notify_all()
        for t in self._threads:
            t.join(self.timeout + 5)

    def _work(self, level: int) -> None:
        connection = PushConnection(self.url, self.timeout)  # no proxies from the environment
        queue = self.levels[level]
        try:
            while (item := queue.take(self._stopping)) is not None:
                try:
                    self._deliver(connection, item)
                except Exception:
                    log.exception("notifier: unexpected failure; retrying later")
                    connection.close()
                    self._retry(item)
        finally:
            connection.close()

    def _deliver(self, connection: PushConnection, item: PendingPush) -> None:
        try:
            status = connection.post(item.token.encode("utf-8"))
        except (OSError, http.client.HTTPException) as exc:
            log.warning("notifier: push for %s failed: %s", item.addr, exc)
            self._retry(item)
            return
        if status == 200:
            item.path.unlink(missing_ok=True)
        elif status == 410:
            log.info("notifier: token of %s expired; removing it", item.addr)
            try:
                self.tokens.remove(item.addr, item.token)
            except (OSError, ValueError) as exc:
                log.warning("notifier: could not remove token of %s: %s", item.addr, exc)
            item.path.unlink(missing_ok=True)
        else:
            log.warning("notifier: push for %s got HTTP %d; retrying later", item.addr, status)
            self._retry(item)
