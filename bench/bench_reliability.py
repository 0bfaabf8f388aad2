#!/usr/bin/env python3
"""Load and faults: what a relay refuses, loses and delays, as two tables.

Load table: one relay in a container, N authenticated senders at once
(one connection each, 10 OpenPGP-shaped messages each, to 5 recipients on
the relay), once with ``dns_forward_zones`` (as the demo relay has it) and
once without (a relay on public DNS).  Each cell: accepted, refused (4xx
and 5xx apart, "conn" = no SMTP answer), lost (accepted, never stored)
and daemon restarts or crashes seen in the journal during the run.

Chaos table: two federated relays; 20 senders on the first send to 3 local
and 2 remote recipients.  2.5 s into the run one daemon is killed with
SIGKILL on both relays at once.  Per daemon: refusals, losses, seconds
until the daemon's unit is active again, and the delay: how long after the
daemon was back the last message accepted around the fault arrived.

Reference figures (measured before this version, same machine kind, the
demo relay with forwarded zones): 20 senders x 10 messages lost 0 but
refused 105 and 121 of 200 (451, OpenDKIM crashing); killed doveauth left
65 of 200 accepted messages undelivered after 90 s, a killed Dovecot master
28 and then every message of the next run (deferred for 5 minutes).

Needs root (systemd-nspawn).  Run: ``scripts/bench reliability``
(``--senders 20,40,80``, ``--no-chaos``, ``--no-load``).
"""

from __future__ import annotations

import argparse
import sys
import time

from harness import Lab, failed_states
from support import mailclient as mc
from support.loadgen import DAEMONS, Load, journal_now, kill_and_wait_back, latency_line, restarts_in_journal
from support.relays import federate

PER_SENDER = 10


def applied(box, pillar) -> None:
    result = box.apply(pillar)
    if failed_states(result) or result.retcode:
        raise SystemExit("apply failed:\n" + "\n".join(failed_states(result)))
    box.pillar = pillar


def load_cell(box, senders: int) -> str:
    domain = box.pillar["mail_domain"]
    accounts = [mc.created_account(box.address, domain) for _ in range(senders)]
    rcpts = [mc.created_account(box.address, domain) for _ in range(5)]
    since = journal_now(box)
    r = Load(box, accounts, rcpts, PER_SENDER, {x.addr: box for x in rcpts}, seed=senders).run(deliver_timeout=90)
    restarts = restarts_in_journal(box, since)
    refused = f"4xx {r.refused.get('4xx', 0)} / 5xx {r.refused.get('5xx', 0)} / conn {r.refused.get('conn', 0)}"
    line = (
        f"accepted {len(r.accepted)}/{r.attempted}, refused {refused}, lost {len(r.lost)}, restarts {restarts}, "
        f"{len(r.accepted) / r.sending_s:.0f} accepted msg/s"
    )
    if r.latencies:
        line += f"; {latency_line(r.latencies)}"
    return line


def load_table(lab, counts: list[int]) -> None:
    box = lab.boot("relbench1")
    base = lab.default_pillar("relbench1", max_user_send_per_minute=100000)
    print("== load: N senders x 10 messages -> 5 recipients on the relay")
    for label, pillar in (
        ("dns_forward_zones", base),
        ("public DNS", {k: v for k, v in base.items() if k != "dns_forward_zones"}),
    ):
        applied(box, pillar)
        for n in counts:
            print(f"{label:18} {n:3} senders: {load_cell(box, n)}", flush=True)
    lab.discard(box)


def chaos_table(lab, senders: int) -> None:
    boxes = [lab.boot(name) for name in ("relchaos1", "relchaos2")]
    for box in boxes:
        applied(box, lab.default_pillar(box.name, max_user_send_per_minute=100000))
    federate(lab, boxes)
    first, second = boxes
    print(
        f"== chaos: {senders} senders x {PER_SENDER} on {first.name} -> 3 local + 2 remote recipients; "
        "SIGKILL 2.5 s in, on both relays"
    )
    for daemon in DAEMONS:
        d1, d2 = first.pillar["mail_domain"], second.pillar["mail_domain"]
        accounts = [mc.created_account(first.address, d1) for _ in range(senders)]
        rcpts = [mc.created_account(first.address, d1) for _ in range(3)] + [
            mc.created_account(second.address, d2) for _ in range(2)
        ]
        where = {r.addr: (first if r.addr.endswith("@" + d1) else second) for r in rcpts}
        load = Load(first, accounts, rcpts, PER_SENDER, where, seed=100 + len(daemon), pause=0.25).start()
        time.sleep(2.5)
        faults = [kill_and_wait_back(box, daemon) for box in boxes]
        back_at = max(k + b for k, b in faults)
        r = load.wait(deliver_timeout=90)
        delays = [r.stored[m] - max(t, back_at) for m, t in r.accepted.items() if m in r.stored]
        worst = max(delays, default=0.0)
        print(
            f"{daemon:22} back {max(b for _, b in faults):5.1f} s | accepted {len(r.accepted):3}/{r.attempted} | "
            f"refused 4xx {r.refused.get('4xx', 0)} 5xx {r.refused.get('5xx', 0)} conn {r.refused.get('conn', 0)} | "
            f"lost {len(r.lost)} | last arrival {worst:5.1f} s after the return",
            flush=True,
        )
    for box in boxes:
        lab.discard(box)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--senders", default="20,40,80", help="sender counts of the load table")
    parser.add_argument("--chaos-senders", type=int, default=20)
    parser.add_argument("--no-load", action="store_true")
    parser.add_argument("--no-chaos", action="store_true")
    args = parser.parse_args()
    lab = Lab(log=lambda m: print(m, file=sys.stderr)).start()
    try:
        if not args.no_load:
            load_table(lab, [int(n) for n in args.senders.split(",")])
        if not args.no_chaos:
            chaos_table(lab, args.chaos_senders)
    finally:
        lab.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
