"""Mail load against relays in containers, and faults injected while it runs.

Used by the reliability system test (test_reliability.py) and by
bench/bench_reliability.py, so both count the same way:

* a *sender* is one authenticated SMTP connection on 465 that submits its
  messages one after another; a connection that breaks (a daemon was
  killed) is opened again for the next message;
* every message gets one attempt: *accepted* (250, with the time), or
  *refused* by class: ``4xx``, ``5xx``, or ``conn`` (no SMTP answer at all:
  connection refused or broken; a client treats that like a 4xx);
* a :class:`MaildirWatcher` notes when each accepted message first shows up
  in a recipient's ``new/`` folder, read through the container's overlay
  from the host (no network); *lost* = accepted but never stored.
"""

from __future__ import annotations

import os
import re
import smtplib
import ssl
import statistics
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from . import mailclient as mc

MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.M | re.I)


class MaildirWatcher(threading.Thread):
    """Notes when each message first appears in the watched ``new/`` folders (by Message-ID)."""

    def __init__(self, folders: list[Path], interval: float = 0.002):
        super().__init__(daemon=True)
        self.folders = folders
        self.interval = interval
        self.seen: dict[bytes, float] = {}
        self._names: set[str] = set()
        self._halt = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self._halt.is_set():
            self.scan()
            time.sleep(self.interval)

    def scan(self) -> None:
        now = time.monotonic()
        for folder in self.folders:
            try:
                names = os.listdir(folder)
            except FileNotFoundError:
                continue
            for name in names:
                key = f"{folder}/{name}"
                if key in self._names:
                    continue
                try:
                    head = read_head(folder / name)
                except FileNotFoundError:  # moved to cur/ meanwhile
                    continue
                self._names.add(key)
                match = MESSAGE_ID.search(head)
                if match:
                    with self.lock:
                        self.seen.setdefault(match.group(1), now)

    def wait_for(self, ids: set[bytes], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if ids <= self.seen.keys():
                    return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def read_head(path: Path, size: int = 16384) -> bytes:
    """The first bytes of a stored message (Dovecot saves with zlib_save = gz)."""
    with open(path, "rb") as f:
        raw = f.read(size)
    if raw[:2] == b"\x1f\x8b":
        return zlib.decompressobj(wbits=31).decompress(raw, size)
    return raw


def maildir_new(box, addr: str) -> Path:
    domain = addr.rpartition("@")[2]
    return box.root / f"home/vmail/mail/{domain}/{addr}/new"


def message(sender: str, recipient: str, seed: int, size: int = 2000) -> tuple[bytes, bytes]:
    data = mc.encrypted(sender, [recipient], size=size, seed=seed)
    return data, MESSAGE_ID.search(data).group(1)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def latency_line(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"p50 {percentile(ms, 50):.0f} ms, p99 {percentile(ms, 99):.0f} ms, "
        f"min {min(ms):.0f} ms, max {max(ms):.0f} ms, mean {statistics.mean(ms):.0f} ms"
    )


def refusal_class(exc: BaseException) -> str:
    code = getattr(exc, "smtp_code", None)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code = next(iter(exc.recipients.values()))[0]
    if isinstance(code, int) and 400 <= code < 500:
        return "4xx"
    if isinstance(code, int) and 500 <= code < 600:
        return "5xx"
    return "conn"


@dataclass
class LoadResult:
    attempted: int = 0
    accepted: dict[bytes, float] = field(default_factory=dict)  # Message-ID -> time of the 250
    submitted: dict[bytes, float] = field(default_factory=dict)  # Message-ID -> when its MAIL FROM went out
    refused: Counter = field(default_factory=Counter)  # "4xx" / "5xx" / "conn"
    refusal_texts: Counter = field(default_factory=Counter)
    started: float = 0.0
    sending_s: float = 0.0
    stored: dict[bytes, float] = field(default_factory=dict)

    @property
    def lost(self) -> list[bytes]:
        return [mid for mid in self.accepted if mid not in self.stored]

    @property
    def latencies(self) -> list[float]:
        """The 250 until stored: negative where the relay stores before it answers."""
        return [self.stored[mid] - t for mid, t in self.accepted.items() if mid in self.stored]

    @property
    def send_to_stored(self) -> list[float]:
        """The client starting the transaction until stored: what a sender waits, submission included."""
        return [self.stored[mid] - self.submitted[mid] for mid in self.accepted if mid in self.stored]


class Load:
    """``senders`` accounts on ``sender_box`` each submit ``per_sender`` messages, round-robin to
    ``recipients`` (accounts on any relay); :meth:`run` blocks until all are sent and stored."""

    def __init__(
        self,
        sender_box,
        senders: list,
        recipients: list,
        per_sender: int,
        recipient_boxes: dict,
        seed: int = 1,
        pause: float = 0.0,
    ):
        self.box = sender_box
        self.senders = senders
        self.recipients = recipients
        self.per_sender = per_sender
        self.pause = pause
        folders = [maildir_new(recipient_boxes[r.addr], r.addr) for r in recipients]
        self.watcher = MaildirWatcher(folders)
        seeds = iter(range(seed * 10**6, (seed + 1) * 10**6))
        self.work = [
            [
                (
                    message(s.addr, recipients[(i + n) % len(recipients)].addr, next(seeds)),
                    recipients[(i + n) % len(recipients)].addr,
                )
                for n in range(per_sender)
            ]
            for i, s in enumerate(senders)
        ]
        self.result = LoadResult(attempted=len(senders) * per_sender)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> Load:
        for r in self.recipients:
            mc.fetch_all(r)  # the maildir exists before the first delivery
        self.watcher.start()
        gate = threading.Barrier(len(self.senders) + 1)
        self._threads = [
            threading.Thread(target=self._send, args=(s, items, gate), daemon=True)
            for s, items in zip(self.senders, self.work)
        ]
        for t in self._threads:
            t.start()
        gate.wait()
        self.result.started = time.monotonic()
        return self

    def wait(self, deliver_timeout: float = 60.0) -> LoadResult:
        for t in self._threads:
            t.join(600)
        self.result.sending_s = time.monotonic() - self.result.started
        self.watcher.wait_for(set(self.result.accepted), deliver_timeout)
        self.watcher.stop()
        with self.watcher.lock:
            self.result.stored = {
                mid: self.watcher.seen[mid] for mid in self.result.accepted if mid in self.watcher.seen
            }
        return self.result

    def run(self, deliver_timeout: float = 60.0) -> LoadResult:
        return self.start().wait(deliver_timeout)

    def _send(self, account, items, gate) -> None:
        conn = None
        try:
            conn = account.smtp()
        except (OSError, smtplib.SMTPException, ssl.SSLError):
            conn = None
        gate.wait()
        for (data, mid), rcpt in items:
            try:
                if conn is None:
                    conn = account.smtp()
                started = time.monotonic()
                conn.sendmail(account.addr, [rcpt], data)
                with self._lock:
                    self.result.accepted[mid] = time.monotonic()
                    self.result.submitted[mid] = started
            except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
                kind = refusal_class(exc)
                with self._lock:
                    self.result.refused[kind] += 1
                    self.result.refusal_texts[f"{kind}: {str(exc)[:120]}"] += 1
                if kind == "conn" or isinstance(exc, smtplib.SMTPServerDisconnected):
                    _close(conn)
                    conn = None
            if self.pause:
                time.sleep(self.pause)
        _close(conn)


def _close(conn) -> None:
    if conn is None:
        return
    try:
        conn.quit()
    except (OSError, smtplib.SMTPException, ssl.SSLError):
        try:
            conn.close()
        except OSError:
            pass


# -- faults -----------------------------------------------------------------------------

# What a fault kills: a label, the unit that must come back, and how to find the process.
# The Postfix master is found by its pid file (the unit's main process is the start-fg
# wrapper); all others are their unit's main process.
DAEMONS: dict[str, tuple[str, str]] = {
    "postfix master": ("postfix@-", "sed -n 1p /var/spool/postfix/pid/master.pid"),
    "dovecot master": ("dovecot", "systemctl show -p MainPID --value dovecot"),
    "filtermail": ("filtermail", "systemctl show -p MainPID --value filtermail"),
    "dict services": ("chatmail-dicts", "systemctl show -p MainPID --value chatmail-dicts"),
    "opendkim": ("opendkim", "systemctl show -p MainPID --value opendkim"),
    "unbound": ("unbound", "systemctl show -p MainPID --value unbound"),
}


def main_pid(box, daemon: str) -> int:
    out = box.run(["sh", "-c", DAEMONS[daemon][1]], check=False).stdout.strip()
    return int(out) if out.isdigit() else 0


def kill_and_wait_back(box, daemon: str, timeout: float = 60.0) -> tuple[float, float]:
    """SIGKILL ``daemon``'s process on ``box``; (time of the kill, seconds until its unit is active
    again with a new process)."""
    unit = DAEMONS[daemon][0]
    old = main_pid(box, daemon)
    assert old > 1, f"{daemon} on {box.name} has no process"
    killed = time.monotonic()
    box.run(["kill", "-9", str(old)])
    while True:
        pid = main_pid(box, daemon)
        active = box.run(["systemctl", "is-active", "--quiet", unit], check=False).returncode == 0
        if active and pid > 1 and pid != old:
            return killed, time.monotonic() - killed
        if time.monotonic() - killed > timeout:
            return killed, float("inf")
        time.sleep(0.05)


def restarts_in_journal(box, since_usec: int) -> int:
    """Unit restarts and crashes logged since ``since_usec`` (CLOCK_REALTIME, microseconds)."""
    # (the journal also holds this very command line: systemd logs each run-uN unit it starts)
    out = box.run(
        [
            "sh",
            "-c",
            f"journalctl --no-pager -o cat --since @{since_usec / 1e6:.6f} | grep -v run-u | "
            "grep -cE 'Scheduled restart job|Main process exited, code=(killed|dumped)|segfault' || true",
        ],
        check=False,
    ).stdout.strip()
    return int(out or 0)


def journal_now(box) -> int:
    return int(box.run(["date", "+%s%6N"]).stdout.strip())
