#!/usr/bin/env python3
"""Relay-to-relay delivery: SMTP (what the formula's Postfix does) against an HTTPS POST (upstream's /mxdeliv).

A protocol prototype, not the relays: one sender and one receiver on
127.0.0.1 (nothing leaves the host), with a delaying TCP proxy between
them that adds a round-trip time like that between two relays: the
connection counts as open one RTT after the client connects (the TCP
handshake), and every chunk reaches the other side RTT/2 after it was sent
(this kernel has no netem).
Both receivers are Python (aiosmtpd with STARTTLS; http.server over TLS,
HTTP/1.1 keep-alive) and answer 250 / 200 without storing anything, so
the figures compare the transport hop only: what happens after it (the
incoming filter, Postfix's queue, Dovecot) is the same work on either path,
because upstream's /mxdeliv receiver hands the message to the same
Postfix reinject port.

Modes, one message of --size bytes each time:
  smtp-new        TCP + banner + EHLO + STARTTLS + EHLO + MAIL/RCPT/DATA + QUIT,
                  a full TLS handshake each time
  smtp-resumed    the same, resuming the previous TLS session (Postfix's
                  smtp_tls_session_cache does this between relays)
  smtp-reused     one SMTP session, one transaction per message (Postfix's
                  connection cache when a peer has a backlog)
  https-new       TCP + TLS + one POST, a new connection each time
  https-reused    one kept-alive HTTPS connection, one POST per message

Prints p50 / p99 latency per message and the CPU time per message of sender
and receiver (user + system; the proxy's own CPU is not counted) for each
round-trip time.

usage: scripts/bench mxdeliv [--messages 100] [--rtt-ms 0,20,80] [--size 6000]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import multiprocessing
import os
import smtplib
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from support.freeports import free_ports

HOST = "127.0.0.1"
SMTP_PORT, HTTPS_PORT, SMTP_VIA, HTTPS_VIA = free_ports(4)
MODES = ("smtp-new", "smtp-resumed", "smtp-reused", "https-new", "https-reused")


def delaying_proxy(rtt: float, ready) -> None:
    """Forward SMTP_VIA -> SMTP_PORT and HTTPS_VIA -> HTTPS_PORT with ``rtt`` seconds of round trip."""
    import asyncio

    half = rtt / 2

    async def pipe(reader, writer, opened: float, first_at: float):
        # chunks keep their order; each leaves rtt/2 after it came (not before the handshake is done)
        try:
            while data := await reader.read(65536):
                due = max(time.monotonic(), first_at) + half
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def handler(port: int):
        async def handle(client_r, client_w):
            opened = time.monotonic()
            server_r, server_w = await asyncio.open_connection(HOST, port)
            # client data cannot leave before SYN/SYN-ACK (one RTT); the server only
            # accepts (and may speak first) when the client's ACK arrives, RTT/2 later
            await asyncio.gather(
                pipe(client_r, server_w, opened, opened + rtt),
                pipe(server_r, client_w, opened, opened + rtt + half),
            )

        return handle

    async def main():
        await asyncio.start_server(handler(SMTP_PORT), HOST, SMTP_VIA)
        await asyncio.start_server(handler(HTTPS_PORT), HOST, HTTPS_VIA)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def make_cert(tmp: Path) -> tuple[str, str]:
    cert, key = str(tmp / "cert.pem"), str(tmp / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", "/CN=relay.bench", "-keyout", key, "-out", cert],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def serve(cert: str, key: str, ready) -> None:
    """Both receivers in one process (its CPU time is the receiver's)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from aiosmtpd.controller import Controller

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    class Accept:
        async def handle_DATA(self, server, session, envelope):
            return "250 2.0.0 Ok: queued"

    smtp = Controller(Accept(), hostname=HOST, port=SMTP_PORT, tls_context=ctx, require_starttls=True)
    smtp.start()

    class MxDeliv(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer((HOST, HTTPS_PORT), MxDeliv)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    ready.set()
    while True:
        time.sleep(3600)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client_context(state: dict, resume: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # a self-signed test certificate; the handshake costs the same
    original = ctx.wrap_socket

    def wrap_socket(sock, *args, **kwargs):
        if resume and state.get("session") is not None:
            kwargs["session"] = state["session"]
        wrapped = original(sock, *args, **kwargs)
        state["wrapped"] = wrapped
        return wrapped

    ctx.wrap_socket = wrap_socket
    return ctx


def message(size: int) -> bytes:
    body = base64.encodebytes(os.urandom(size * 3 // 4)).decode().replace("\n", "\r\n")
    return (
        "From: a@sender.bench\r\nTo: b@relay.bench\r\nSubject: [...]\r\nContent-Type: multipart/encrypted\r\n\r\n"
        f"-----BEGIN PGP MESSAGE-----\r\n{body}-----END PGP MESSAGE-----\r\n"
    ).encode()


def run_mode(mode: str, count: int, data: bytes) -> list[float]:
    """Latencies (s) of ``count`` deliveries."""
    state: dict = {}
    times = []
    if mode.startswith("smtp"):
        ctx = client_context(state, resume=mode == "smtp-resumed")
        session = None
        for _ in range(count):
            started = time.perf_counter()
            if session is None:
                session = smtplib.SMTP(HOST, SMTP_VIA, local_hostname="sender.bench")
                session.starttls(context=ctx)
                session.ehlo("sender.bench")
            session.sendmail("a@sender.bench", ["b@relay.bench"], data)
            if mode != "smtp-reused":
                state["session"] = state["wrapped"].session
                session.quit()
                session = None
            times.append(time.perf_counter() - started)
        if session is not None:
            session.quit()
    else:
        ctx = client_context(state, resume=False)
        conn = None
        headers = {"Content-Type": "message/rfc822", "X-Mail-From": "a@sender.bench", "X-Rcpt-To": "b@relay.bench"}
        for _ in range(count):
            started = time.perf_counter()
            if conn is None:
                conn = http.client.HTTPSConnection(HOST, HTTPS_VIA, context=ctx)
            conn.request("POST", "/mxdeliv", body=data, headers=headers)
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            if mode == "https-new":
                conn.close()
                conn = None
            times.append(time.perf_counter() - started)
        if conn is not None:
            conn.close()
    return times


def measure(args) -> list[dict]:
    """The receivers, then every mode at every round-trip time (a fresh proxy for each)."""
    data = message(args.size)
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = make_cert(Path(tmp))
        ready = multiprocessing.Event()
        server = multiprocessing.Process(target=serve, args=(cert, key, ready), daemon=True)
        server.start()
        ready.wait(30)
        results = []
        try:
            for rtt in args.rtt_ms:
                proxy_ready = multiprocessing.Event()
                proxy = multiprocessing.Process(target=delaying_proxy, args=(rtt / 1000, proxy_ready), daemon=True)
                proxy.start()
                proxy_ready.wait(30)
                for mode in MODES:
                    run_mode(mode, 5, data)  # warm up
                    server_cpu, client_cpu = cpu_seconds(server.pid), time.process_time()
                    times = run_mode(mode, args.messages, data)
                    client_cpu = time.process_time() - client_cpu
                    server_cpu = cpu_seconds(server.pid) - server_cpu
                    times.sort()
                    results.append(
                        {
                            "rtt_ms": rtt,
                            "mode": mode,
                            "p50_ms": statistics.median(times) * 1000,
                            "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))] * 1000,
                            "sender_cpu_ms": client_cpu / args.messages * 1000,
                            "receiver_cpu_ms": server_cpu / args.messages * 1000,
                        }
                    )
                proxy.kill()
        finally:
            server.kill()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--rtt-ms", type=lambda s: [float(x) for x in s.split(",")], default=[0.0, 20.0, 80.0])
    parser.add_argument("--size", type=int, default=6000, help="message size in bytes (a chat message: a few KB)")
    args = parser.parse_args()
    rows = measure(args)
    print(f"{args.messages} messages of {args.size} bytes per mode, one at a time, over 127.0.0.1 and a delaying proxy")
    print(f"{'RTT ms':>6} {'mode':<13} {'p50 ms':>8} {'p99 ms':>8} {'sender CPU ms':>14} {'receiver CPU ms':>16}")
    for r in rows:
        print(
            f"{r['rtt_ms']:>6.0f} {r['mode']:<13} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
            f"{r['sender_cpu_ms']:>14.2f} {r['receiver_cpu_ms']:>16.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
