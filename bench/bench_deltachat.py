#!/usr/bin/env python3
"""Delta Chat send -> IncomingMsg at the peer, one relay and across two, per ``dovecot_source``.

Boots a federated pair of relays for each Dovecot asked for (``debian``:
Debian's packages; ``rebuilt``: Debian's source with the IDLE notify delay
removed, test/harness/dovecotbuild.py, used only when its build is cached,
or built first with ``--build``), then has the real Delta Chat core
(deltachat-rpc-server, in a network namespace on the lab's bridge) send
12 messages 1 s apart per path after a warm-up (support/dclatency.py, the
same measurement test/system/test_dovecot_rebuilt.py asserts).

Needs root (containers).  About 2 minutes per pair on two cores.

usage: scripts/bench deltachat [--sources debian,rebuilt] [--samples 12] [--build]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from harness import Lab
from harness.dovecotbuild import rebuilt_debs
from reference import TABLE
from support.dclatency import SAMPLES, PairLatency, measure_pair, serve_rebuilt
from support.postfixlog import delivery_delays
from support.relays import apply_all, federate

TAGS = {"debian": "5", "rebuilt": "6"}


def pair_latency(lab: Lab, source: str, samples: int = SAMPLES, build: bool = False) -> PairLatency | str:
    """The latencies on a fresh federated pair with ``source``; a string says why there are none."""
    debs = None
    if source == "rebuilt":
        try:
            debs = rebuilt_debs("12", log=lab.log, build=build)
        except LookupError as missing:
            return str(missing)
    boxes = []
    for i in (1, 2):
        name = f"dc{source[:3]}{i}"
        box = lab.boot(name)
        box.pillar = lab.default_pillar(name, **({"dovecot_source": "rebuilt"} if debs else {}))
        if debs:
            serve_rebuilt(box, debs)
        boxes.append(box)
    started = time.monotonic()
    failures = apply_all(boxes)
    if any(failures.values()):
        return f"the {source} relays did not converge: {failures}"
    lab.log(f"{source}: 2 relays applied in {time.monotonic() - started:.0f} s")
    federate(lab, boxes)
    try:
        result = measure_pair(lab, boxes[0], boxes[1], source, TAGS[source], samples)
        print(f"{source}: {postfix_delays(boxes[0])}", file=sys.stderr)
        print(f"{source}: {submission_connections(boxes[0], 2 * (samples + 1))}", file=sys.stderr)
        return result
    finally:
        for box in boxes:
            lab.discard(box)


def postfix_delays(box) -> str:
    """Median seconds per stage of the first relay's deliveries, by next hop (where the time goes)."""
    parts = []
    for hop, rows in sorted(delivery_delays(box).items()):
        medians = "/".join(f"{statistics.median(col):.2f}" for col in zip(*rows))
        parts.append(f"{hop} n={len(rows)} delays a/b/c/d {medians} s")
    return "postfix stages (median): " + ("; ".join(parts) or "none logged")


def submission_connections(box, messages: int) -> str:
    """How many SMTP connections the client opened to the first relay for its ``messages``: a new
    connection pays TCP and TLS set-up (and the greeting) before the message."""
    log = box.run(["journalctl", "-q", "-o", "cat", "-t", "postfix/smtps/smtpd"], check=False).stdout
    opened = sum(1 for line in log.splitlines() if line.startswith("connect from"))
    return f"submission: {opened} connections for {messages} messages sent"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sources", default="debian,rebuilt")
    parser.add_argument("--samples", type=int, default=SAMPLES)
    parser.add_argument("--build", action="store_true", help="build the rebuilt Dovecot if it is not cached")
    args = parser.parse_args()
    lab = Lab(log=lambda m: print(m, file=sys.stderr)).start()
    try:
        results = {source: pair_latency(lab, source, args.samples, args.build) for source in args.sources.split(",")}
    finally:
        lab.stop()
    print()
    for source, result in results.items():
        text = result.summary() if isinstance(result, PairLatency) else f"not measured: {result}"
        print(f"dovecot_source {source:8} send -> IncomingMsg {text}")
    print(f"upstream with Debian 12's Dovecot, 2 s apart: p50 {TABLE['deltachat p50'][0]}; the goal is 150 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
