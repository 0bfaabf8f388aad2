#!/usr/bin/env python3
"""The relay's figures beside upstream's, as one table: throughput, latency, CPU and memory.

Boots one relay in a systemd container (test/harness) as bench_relay.py
does (no rate limits, no forwarded zones: a relay on public DNS), applies
the formula twice (the second apply: time of a no-change re-apply), and
then, for each sender count (default 5, 20, 40), N authenticated senders
submit 10 OpenPGP-shaped messages each over 465 to 5 recipients on the
relay (test/support/loadgen.py), ``--rounds`` times with fresh accounts:

* delivered msg/s: delivered / (last message stored - first submission);
* p50 latency: the client's 250 until the file is in the recipient's
  ``new/`` (upstream's ends at IMAP visibility, one IMAP poll later).
  Mail for local recipients is stored before the 250 (design.md §0.6), so
  this is at most the watcher's poll; the next row counts the whole wait:
* p50 send -> stored: the client's MAIL FROM until the file is there
  (the submission's own time included);
* relay CPU per delivered message: all of the container's CPU during the
  round (cgroup ``cpu.stat``, every process of the relay, logins and
  connection setup included) / messages delivered; and the same per unit
  and process (test/support/relaycpu.py), printed below the table;
* idle memory: PSS of every process of the relay, ``--settle`` seconds
  after the last round;
* Delta Chat send -> incoming: then the relay goes and a federated pair
  takes the machine (bench_deltachat.py), with the rebuilt Dovecot when
  its build is cached, else Debian's (the row says which).

The reference column is upstream's figure from one side-by-side sitting
(bench/reference.py says where and how).  CPU per message is the figure
that survives a busy machine; throughput and latency move with whatever
else runs, so the load average is printed with each round.

Needs root (systemd-nspawn).  Run: ``scripts/bench table``
(``--senders 5,20,40 --rounds 3``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict

from bench_deltachat import PairLatency, pair_latency
from harness import Lab, changed_states, failed_states
from reference import SIDE_BY_SIDE_TABLE, TABLE
from support import mailclient as mc
from support.loadgen import Load, percentile
from support.relaycpu import CpuWindow, loadavg, pss_kib

PER_SENDER = 10
RECIPIENTS = 5


def one_round(box, senders: int, seed: int) -> dict:
    domain = box.pillar["mail_domain"]
    accounts = [mc.created_account(box.address, domain) for _ in range(senders)]
    rcpts = [mc.created_account(box.address, domain) for _ in range(RECIPIENTS)]
    load = Load(box, accounts, rcpts, PER_SENDER, {r.addr: box for r in rcpts}, seed=seed)
    cpu = CpuWindow(box.init_pid).start()
    r = load.run(deliver_timeout=120)
    cpu.stop()
    delivered = len(r.stored)
    last = max(r.stored.values(), default=r.started)
    return {
        "accepted": len(r.accepted),
        "refused": sum(r.refused.values()),
        "lost": len(r.lost),
        "delivered": delivered,
        "delivered_per_s": delivered / max(last - r.started, 1e-9),
        "p50_ms": percentile(r.latencies, 50) * 1000 if r.latencies else float("nan"),
        "send_p50_ms": percentile(r.send_to_stored, 50) * 1000 if r.latencies else float("nan"),
        "cpu_ms": cpu.total * 1000 / max(delivered, 1),
        "cpu": cpu,
        "load": loadavg(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--senders", default="5,20,40")
    parser.add_argument("--rounds", type=int, default=1, help="rounds per sender count (the median is shown)")
    parser.add_argument(
        "--settle",
        type=float,
        default=110.0,
        help="seconds idle before memory is read (Postfix ends idle processes after 100 s, Dovecot after 60 s)",
    )
    parser.add_argument("--release", default=None, help="Debian release of the container (default: the harness's)")
    parser.add_argument(
        "--no-deltachat", action="store_true", help="skip the Delta Chat row (two more relays, about 3 minutes)"
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.senders.split(",")]

    lab = Lab(log=lambda m: print(m, file=sys.stderr)).start()
    try:
        box = lab.boot("table1", **({"release": args.release} if args.release else {}))
        pillar = lab.default_pillar(
            "table1", max_user_send_per_minute=100000, max_user_send_burst_size=100000, account_creations_per_hour=0
        )
        pillar.pop("dns_forward_zones", None)
        first = box.apply(pillar)
        if failed_states(first) or first.retcode:
            print("first apply failed:\n" + "\n".join(failed_states(first)))
            return 1
        t0 = time.monotonic()
        again = box.apply(pillar)
        reapply = f"{time.monotonic() - t0:.2f} s, {len(changed_states(again))} changes"
        box.pillar = pillar

        one_round(box, 5, seed=1)  # warm-up, not counted: first connections, caches, Python imports
        rounds: dict[int, list[dict]] = defaultdict(list)
        for n in range(args.rounds):
            for senders in counts:
                r = one_round(box, senders, seed=1000 * (n + 1) + senders)
                rounds[senders].append(r)
                print(
                    f"round {n + 1}, {senders:2} senders: accepted {r['accepted']}, refused {r['refused']}, "
                    f"lost {r['lost']}, {r['delivered_per_s']:.1f} delivered/s, p50 {r['p50_ms']:.0f} ms, "
                    f"send -> stored p50 {r['send_p50_ms']:.0f} ms, "
                    f"CPU {r['cpu_ms']:.1f} ms/msg, load average {r['load']}",
                    flush=True,
                )
        time.sleep(args.settle)
        pss = pss_kib(box.init_pid)
        deltachat = "skipped (--no-deltachat)"
        if not args.no_deltachat:
            lab.discard(box)  # the pair gets the machine to itself
            measured = pair_latency(lab, "rebuilt")
            if not isinstance(measured, PairLatency):  # no cached build: Debian's Dovecot
                print(f"Delta Chat with dovecot_source rebuilt: {measured}", file=sys.stderr)
                source, measured = "debian", pair_latency(lab, "debian")
            else:
                source = "rebuilt"
            deltachat = (
                f"{measured.p50_one:.0f} / {measured.p50_two:.0f} ms ({source})"
                if isinstance(measured, PairLatency)
                else measured
            )
    finally:
        lab.stop()

    def med(senders: int, key: str) -> float:
        return statistics.median(r[key] for r in rounds[senders])

    rows: list[tuple[str, str, str]] = []
    if all(n in rounds for n in (5, 20, 40)):
        rows.append(
            (
                "delivered msg/s, 5 / 20 / 40 senders",
                " / ".join(f"{med(n, 'delivered_per_s'):.1f}" for n in (5, 20, 40)),
                " / ".join(TABLE[f"delivered/s {n}"][0] for n in (5, 20, 40)),
            )
        )
        rows.append(
            (
                "p50 latency, 5 / 20 / 40 senders",
                " / ".join(f"{med(n, 'p50_ms'):.0f}" for n in (5, 20, 40)) + " ms",
                " / ".join(TABLE[f"p50 {n}"][0].removesuffix(" ms") for n in (5, 20, 40)) + " ms",
            )
        )
        rows.append(
            (
                "p50 send -> stored, 5 / 20 / 40 senders",
                " / ".join(f"{med(n, 'send_p50_ms'):.0f}" for n in (5, 20, 40)) + " ms",
                "-",
            )
        )
    for n in counts:
        rows.append(
            (
                f"relay CPU per delivered message ({n} senders)",
                f"{med(n, 'cpu_ms'):.1f} ms",
                TABLE["cpu/msg 20"][0] if n == 20 else "-",
            )
        )
    refused = sum(r["refused"] for rs in rounds.values() for r in rs)
    lost = sum(r["lost"] for rs in rounds.values() for r in rs)
    rows.append(("refused / lost (all rounds)", f"{refused} / {lost}", "-"))
    rows.append(
        ("idle memory (PSS, all processes, after load)", f"{sum(pss.values()) / 1024:.0f} MB", TABLE["idle pss"][0])
    )
    rows.append(("no-change re-apply", reapply, TABLE["re-apply"][0]))
    rows.append(("Delta Chat send -> incoming, p50, one / two relays", deltachat, TABLE["deltachat p50"][0]))

    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'':{width}} | {'this relay':24} | upstream [1]")
    for what, ours, theirs in rows:
        print(f"{what:{width}} | {ours:24} | {theirs}")
    print(f"[1] {SIDE_BY_SIDE_TABLE}")
    print(f"this relay: median of {args.rounds} round(s), {PER_SENDER} messages per sender, {RECIPIENTS} recipients")

    for n in counts:
        r = min(rounds[n], key=lambda x: abs(x["cpu_ms"] - med(n, "cpu_ms")))
        cpu: CpuWindow = r["cpu"]
        per = r["delivered"] or 1
        print(
            f"\nCPU per delivered message, {n} senders ({r['delivered']} delivered, {cpu.total:.2f} s CPU in {cpu.wall:.1f} s):"
        )
        by_unit: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for (unit, name), sec in cpu.processes.items():
            by_unit[unit].append((name, sec))
        for unit, sec in sorted(cpu.units.items(), key=lambda kv: -kv[1]):
            if sec * 1000 / per < 0.05:
                continue
            parts = ", ".join(f"{name} {s * 1000 / per:.2f}" for name, s in sorted(by_unit[unit], key=lambda x: -x[1]))
            print(f"  {sec * 1000 / per:6.2f} ms  {unit}: {parts}")

    print("\nidle memory, PSS by unit:")
    units: dict[str, int] = defaultdict(int)
    for (unit, _), kib in pss.items():
        units[unit] += kib
    for unit, kib in sorted(units.items(), key=lambda kv: -kv[1]):
        if kib >= 1024:
            parts = ", ".join(
                f"{name} {k / 1024:.1f}" for (u, name), k in sorted(pss.items(), key=lambda x: -x[1]) if u == unit
            )
            print(f"  {kib / 1024:6.1f} MB  {unit}: {parts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
