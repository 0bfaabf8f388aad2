#!/usr/bin/env python3
"""Lookups per second of doveauth over its unix socket, 1 and 16 clients.

Starts ``python3 -m chatmaild.doveauth`` as its own process on a temporary
mailbox root with existing accounts, then runs client processes that each
send passdb and userdb lookups one at a time (as Dovecot's auth workers
do) for a fixed time, then upstream's figures (bench/reference.py).

``--baseline`` also runs the same AuthDict handlers behind a
thread-per-connection server (upstream's model, built here only for the
comparison) so both figures come from the same, possibly busy, machine.

usage: scripts/bench doveauth [--seconds 10] [--clients 1,16] [--accounts 200] [--baseline]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chatmaild.config import render_ini, validate
from chatmaild.hashing import hash_password
from reference import print_reference
from support import chatmaild_env

DOMAIN = "chat.example.org"
PASSWORD = "benchmark-password"


BASELINE = """
import socketserver, sys
from pathlib import Path
from chatmaild.config import read_config
from chatmaild.doveauth import AuthDict

proxy = AuthDict(read_config(sys.argv[2]))

class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        transactions = {}
        for line in self.rfile:
            reply = proxy.handle_line(line.rstrip(b"\\n"), transactions)
            if reply is not None:
                self.wfile.write((reply + "\\n").encode())

class Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    request_queue_size = 1000

Server(sys.argv[1], Handler).serve_forever()
"""


def make_accounts(mailboxes: Path, count: int) -> list[str]:
    hashed = hash_password(PASSWORD)  # one hash for all: creation is not measured
    addrs = []
    for i in range(count):
        addr = f"bench{i:04d}@{DOMAIN}"
        d = mailboxes / addr
        d.mkdir(parents=True)
        (d / "password").write_text(hashed)
        addrs.append(addr)
    return addrs


def connect(path: Path) -> socket.socket:
    for _ in range(200):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(path))
            return s
        except OSError:
            s.close()
            time.sleep(0.05)
    raise SystemExit("doveauth did not come up")


def client(path: Path, addrs: list[str], start_at: float, seconds: float, results) -> None:
    s = connect(path)
    f = s.makefile("rb")
    s.sendall(b"H3\t2\t0\t\tauth\n")
    requests = []
    for addr in addrs:
        requests.append(f'Lshared/passdb/{PASSWORD}"{addr}\t{addr}\n'.encode())
        requests.append(f"Lshared/userdb/{addr}\t{addr}\n".encode())
    done = 0
    while time.time() < start_at:
        time.sleep(0.001)
    end = start_at + seconds
    n = len(requests)
    while True:
        s.sendall(requests[done % n])
        line = f.readline()
        if not line.startswith(b"O"):
            raise SystemExit(f"unexpected reply {line[:60]!r}")
        done += 1
        if done % 64 == 0 and time.time() >= end:
            break
    results.put((done, time.time() - start_at))
    s.close()


def run(path: Path, addrs: list[str], clients: int, seconds: float) -> float:
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    start_at = time.time() + 0.5
    procs = [ctx.Process(target=client, args=(path, addrs, start_at, seconds, results)) for _ in range(clients)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join()
    total = sum(done for done, _ in outcomes)
    elapsed = max(t for _, t in outcomes)
    return total / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", default="1,16")
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--baseline", action="store_true", help="also measure a thread-per-connection server")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-doveauth-"))
    try:
        mailboxes = work / "mail"
        addrs = make_accounts(mailboxes, args.accounts)
        settings = validate(
            {"mail_domain": DOMAIN, "mailboxes_dir": str(mailboxes), "passdb_path": str(work / "passdb.sqlite")}
        )
        ini = work / "chatmail.ini"
        ini.write_text(render_ini(settings))
        env = chatmaild_env()
        print(
            f"doveauth bench: {args.accounts} accounts, passdb+userdb lookups, {args.seconds:.0f} s per run, "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
        )
        servers = {"chatmaild.doveauth (selectors loop)": ["-m", "chatmaild.doveauth"]}
        if args.baseline:
            servers["baseline: thread per connection"] = ["-c", BASELINE]
        for label, command in servers.items():
            sock = work / "doveauth.socket"
            server = subprocess.Popen(
                [sys.executable, *command, str(sock), str(ini)], env=env, stderr=subprocess.DEVNULL
            )
            try:
                connect(sock).close()
                print(label)
                for n in (int(x) for x in args.clients.split(",")):
                    rate = run(sock, addrs, n, args.seconds)
                    print(f"  {n:3d} client(s): {rate:10,.0f} lookups/s")
            finally:
                server.terminate()
                server.wait(10)
                sock.unlink(missing_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_reference("doveauth")
    return 0


if __name__ == "__main__":
    sys.exit(main())
