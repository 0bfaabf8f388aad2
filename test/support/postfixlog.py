"""Where a relay's deliveries spent their time, from Postfix's own log lines.

Postfix logs each delivery with ``relay=<next hop>[...] ... delays=a/b/c/d``:
seconds before the queue manager, in the active queue, connection setup (DNS,
TCP, greeting, EHLO, TLS) and transmission.  Shared by the test that guards
connection setup between relays (test_deltachat.py) and bench_deltachat.py,
which prints the medians.
"""

from __future__ import annotations

import re

_DELAYS = re.compile(r"relay=(\S+?)\[.*delays=([0-9.]+)/([0-9.]+)/([0-9.]+)/([0-9.]+)")


def delivery_delays(box, since: str | None = None) -> dict[str, list[tuple[float, float, float, float]]]:
    """(a, b, c, d) of each smtp and lmtp delivery of ``box`` by next hop, in log order
    (``since``: a ``date +%s`` of the relay, else the whole journal)."""
    cmd = ["journalctl", "-q", "-o", "cat", "-t", "postfix/smtp", "-t", "postfix/lmtp"]
    if since is not None:
        cmd.append(f"--since=@{since}")
    by_hop: dict[str, list[tuple[float, float, float, float]]] = {}
    for found in _DELAYS.finditer(box.run(cmd, check=False).stdout):
        a, b, c, d = (float(v) for v in found.groups()[1:])
        by_hop.setdefault(found.group(1), []).append((a, b, c, d))
    return by_hop
