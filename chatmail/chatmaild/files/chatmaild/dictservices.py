"""doveauth, lastlogin and chatmail-metadata in one process: Dovecot's three dict services.

Usage: ``python3 -m chatmaild.dictservices <chatmail.ini> NAME=SOCKET...``
(NAME: ``doveauth``, ``lastlogin``, ``metadata``).  The relay runs all
three in ``chatmail-dicts.service``.

Each service keeps its own socket, its own :class:`DictServer` loop (a
thread each) and its own state, exactly as when it ran alone
(``python3 -m chatmaild.doveauth`` etc. still do).  What they share is the
interpreter: one Python process instead of three is about 18 MB less idle
memory.  They were never isolated from each other in what matters for
security: all run as vmail over the same mailboxes.  What one process
costs is availability: if any server loop ends, the process exits (code
1) and systemd starts all three again, within a second.

Every socket is bound before any is served, so the unit's start-up hook
(Postfix's queue flush, once the doveauth socket answers) sees them all.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable

from . import doveauth, lastlogin, metadata
from .config import Config, read_config
from .dictproxy import DictProxy, DictServer, setup_logging

__all__ = ["SERVICES", "main"]

log = logging.getLogger("dictservices")

# name -> what builds the service's proxy from the config (None: it could not start and logged why)
SERVICES: dict[str, Callable[[Config], DictProxy | None]] = {
    "doveauth": doveauth.start,
    "lastlogin": lastlogin.LastLoginDict,
    "metadata": metadata.start,
}

USAGE = "usage: python3 -m chatmaild.dictservices <chatmail.ini> NAME=SOCKET... (NAME: doveauth, lastlogin, metadata)"


def parse(args: list[str]) -> tuple[str, dict[str, str]] | None:
    """(chatmail.ini, {name: socket}) of the command line, or None if it is not one."""
    if len(args) < 2:
        return None
    sockets: dict[str, str] = {}
    for arg in args[1:]:
        name, _, path = arg.partition("=")
        if name not in SERVICES or not path or name in sockets:
            return None
        sockets[name] = path
    return args[0], sockets


def run(config: Config, sockets: dict[str, str]) -> int:
    """Serve every named service until one of their loops ends; 1 then (or if one cannot start)."""
    proxies = {name: SERVICES[name](config) for name in sockets}
    if None in proxies.values():
        return 1
    servers = [DictServer(proxies[name], path) for name, path in sockets.items()]
    for server in servers:
        server.bind()
    ended = threading.Event()

    def serve(server: DictServer) -> None:
        try:
            server.serve_forever()
        except Exception:
            log.exception("%s: its server failed", server.proxy.name)
        finally:
            ended.set()

    for server in servers:
        threading.Thread(target=serve, args=(server,), name=server.proxy.name, daemon=True).start()
    ended.wait()
    log.error("a dict service ended; exiting so that systemd starts them all again")
    for server in servers:
        server.shutdown()
    return 1


def main(argv: list[str] | None = None) -> int:
    parsed = parse(sys.argv[1:] if argv is None else argv)
    if parsed is None:
        print(USAGE, file=sys.stderr)
        return 2
    ini, sockets = parsed
    setup_logging()
    return run(read_config(ini), sockets)


if __name__ == "__main__":
    sys.exit(main())
