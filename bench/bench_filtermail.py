#!/usr/bin/env python3
"""How fast filtermail checks and passes mail on; prints figures, runs ~30 s.

(a) the check alone: FilterPolicy.check_message on a mixed corpus
    (70 % encrypted 1-60 kB, 10 % encrypted 300 kB, 10 % Secure-Join,
    10 % cleartext refused with 523), messages per second in one thread,
    and for comparison the same rules on a full ``email`` parse;
(b) SMTP in and out: the outgoing filter as its own process
    (``python3 -m chatmaild.filtermail <ini> outgoing``), smtplib clients
    over 1 and over 8 connections, reinjection to a sink in another
    process standing in for Postfix (see SINKS); accepted + refused per
    second.  The filter keeps its reinjection connections between the two
    sink runs only if the sink kept them; a restarted sink is reconnected.

At the end it prints upstream's figures for the same run (bench/reference.py).

Usage: scripts/bench filtermail [seconds per figure, default 5]  (about 6 x that in total)
All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import os
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from chatmaild.config import read_config
from chatmaild.filtermail import MODES, FilterPolicy
from reference import print_reference
from support import chatmaild_env, mailcorpus
from support.mimereference import reference_is_encrypted, reference_is_securejoin

HOST = "127.0.0.1"
# The stand-in for Postfix's reinjection smtpd: stock aiosmtpd (reads DATA
# line by line, slower than Postfix) and one reading DATA in bulk as
# chatmaild.smtpserver does (closer to Postfix, which is C).
SINKS = ("aiosmtpd", "bulk")
SENDER = "bench{}@example.org"
RECIPIENT = "peer@example.org"

SINK = """
import asyncio, sys
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from chatmaild.smtpserver import FilterSMTP
class Sink(Controller):
    def factory(self):
        cls = FilterSMTP if sys.argv[2] == "bulk" else SMTP
        return cls(self.handler, hostname="sink", data_size_limit=None)
class Count:
    n = 0
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        responses.insert(-1, "250-PIPELINING")  # as Postfix
        return responses
    async def handle_DATA(self, server, session, envelope):
        Count.n += 1
        return "250 OK"
c = Sink(Count(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
print("ready", flush=True)
sys.stdin.read()
c.stop()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def write_ini(directory: Path) -> Path:
    ini = directory / "chatmail.ini"
    ini.write_text(
        "[params]\nmail_domain = example.org\nmax_user_send_per_minute = 1000000\nmax_user_send_burst_size = 1000000\n"
        f"mailboxes_dir = {directory}/mailboxes\n"
        f"filtermail_smtp_port = {free_port()}\npostfix_reinject_port = {free_port()}\n"
        f"filtermail_smtp_port_incoming = {free_port()}\npostfix_reinject_port_incoming = {free_port()}\n"
    )
    return ini


def corpus(n: int, sender: str) -> list[mailcorpus.Envelope]:
    return mailcorpus.mixed_corpus(n, sender, RECIPIENT)


CORPUS = corpus(100, SENDER.format(0))  # one sender: the rate limit is set out of reach


def bench_check(ini: Path, seconds: float) -> None:
    policy = FilterPolicy(read_config(ini), MODES["outgoing"])
    mails = CORPUS
    by_kind: dict[str, list[float]] = {}
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for env in mails:
            t0 = time.perf_counter()
            policy.check_message(env.mail_from, env.rcpt_tos, env.data)
            by_kind.setdefault(env.kind, []).append(time.perf_counter() - t0)
        count += len(mails)
    elapsed = time.perf_counter() - start
    print(f"(a) check alone: {count / elapsed:,.0f} msg/s ({count} messages in {elapsed:.1f} s)")
    for kind, times in sorted(by_kind.items()):
        times.sort()
        print(
            f"      {kind:<10} median {times[len(times) // 2] * 1e6:7.0f} us  p99 {times[int(len(times) * 0.99)] * 1e6:7.0f} us"
        )


def bench_full_parse(seconds: float) -> None:
    """For comparison: the encryption rules read on a full email.message parse."""
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for env in CORPUS:
            reference_is_encrypted(env.data, False) or reference_is_securejoin(env.data)
        count += len(CORPUS)
    elapsed = time.perf_counter() - start
    print(f"    for comparison, the same rules on a full email.message parse: {count / elapsed:,.0f} msg/s")


def wait_port(port: int, proc: subprocess.Popen, deadline: float) -> None:
    while True:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError as exc:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"port {port} did not open") from exc
            time.sleep(0.05)


def client(port: int, mails: list, stop_at: float, counts: list, index: int) -> None:
    """One SMTP connection sending messages back to back until ``stop_at``."""
    conn = smtplib.SMTP(HOST, port, timeout=60)
    conn.ehlo("bench.test")
    done = 0
    while time.perf_counter() < stop_at:
        env = mails[done % len(mails)]
        try:
            conn.sendmail(env.mail_from, env.rcpt_tos, env.data)
        except smtplib.SMTPDataError as exc:
            if exc.smtp_code != 523:
                counts[index + len(counts) // 2] += 1  # a failure the client would retry
                continue
        done += 1
    conn.quit()
    counts[index] = done


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_smtp(ini: Path, connections: int, seconds: float, sink_kind: str, filter_pid: int) -> float:
    threads, counts = [], [0] * (2 * connections)  # done, then failed, per connection
    mails = [CORPUS] * connections
    config = read_config(ini)
    stop_at = time.perf_counter() + seconds
    for i in range(connections):
        threads.append(
            threading.Thread(target=client, args=(config.filtermail_smtp_port, mails[i], stop_at, counts, i))
        )
    cpu_before = cpu_seconds(filter_pid)
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds(filter_pid) - cpu_before
    done, failed = sum(counts[:connections]), sum(counts[connections:])
    rate = done / elapsed
    per_msg = cpu / max(done, 1)
    print(
        f"(b) SMTP through the outgoing filter, {connections} connection(s), {sink_kind} sink: {rate:,.0f} msg/s "
        f"({done} messages in {elapsed:.1f} s, {failed} temporary failures); "
        f"filter CPU {per_msg * 1e3:.2f} ms/msg = {1 / per_msg:,.0f} msg/s per busy core"
    )
    return rate


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    with tempfile.TemporaryDirectory() as tmp:
        ini = write_ini(Path(tmp))
        config = read_config(ini)
        bench_check(ini, seconds)
        bench_full_parse(seconds / 2)
        env = chatmaild_env()
        filt = subprocess.Popen(
            [sys.executable, "-m", "chatmaild.filtermail", str(ini), "outgoing"], stderr=subprocess.DEVNULL, env=env
        )
        try:
            wait_port(config.filtermail_smtp_port, filt, time.monotonic() + 20)
            for sink_kind in SINKS:
                sink = subprocess.Popen(
                    [sys.executable, "-c", SINK, str(config.postfix_reinject_port), sink_kind],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    env=env,
                )
                try:
                    sink.stdout.readline()
                    bench_smtp(ini, 1, seconds, sink_kind, filt.pid)
                    bench_smtp(ini, 8, seconds, sink_kind, filt.pid)
                finally:
                    sink.stdin.close()
                    sink.wait(10)
        finally:
            filt.terminate()
            filt.wait(10)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"    load average during the run: {load} on {os.cpu_count()} CPUs (other work on the machine skews all figures)"
    )
    print_reference("filtermail")


if __name__ == "__main__":
    main()
