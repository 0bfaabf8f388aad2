"""Free loopback ports for test servers, one implementation for every test.

Picking ports one at a time (bind to 0, close, repeat) lets the kernel hand
the same port out twice; ``free_ports`` holds every socket until all are
picked, so the ports it returns are distinct.
"""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def _bound(kind: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    sock.bind((LOOPBACK, 0))
    return sock


def free_ports(count: int, kind: int = socket.SOCK_STREAM) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 for ``kind`` sockets."""
    socks = [_bound(kind) for _ in range(count)]
    try:
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """One port free on 127.0.0.1 for ``kind`` sockets."""
    return free_ports(1, kind)[0]


def free_tcp_udp_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (a DNS server's)."""
    while True:
        with _bound(socket.SOCK_STREAM) as tcp:
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((LOOPBACK, port))
                except OSError:
                    continue
            return port
