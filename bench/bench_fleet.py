#!/usr/bin/env python3
"""A salt-master and a fleet of relays: apply time for 1 vs 2 relays, cross-relay mail latency.

Builds a lab (bridge, test DNS, proxy; test/harness), a salt-master on the
host bound to the bridge address and three relay containers with a
salt-minion daemon each (test/system/test_fleet.py's helpers).  Then:

* ``salt -L bench1 state.apply chatmail`` on a fresh relay: time for 1;
* ``salt -L bench2,bench3 state.apply chatmail`` on two fresh relays at
  once: time for 2 (same master, same machine: the relays compete for its
  cores, which is the point of the figure);
* bench2 -> bench3 delivery latency over N encrypted messages, one at a
  time: from the end of the SMTP submission on bench2 to the message being
  in bench3's INBOX (polled over one IMAP connection), DKIM-signed out and
  verified in.  p50, p99, max.

Everything stays on the lab's bridge.  Takes about 5-10 minutes on two
cores; root only (containers).

usage: scripts/bench fleet [--messages 100] [--skip-apply-compare]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from harness import Lab
from reference import print_reference
from support import mailclient as mc
from support.fleet import SaltMaster, apply_all, failures, join, publish_dkim
from support.relays import trust_each_other


def timed_apply(master: SaltMaster, names: list[str]) -> float:
    started = time.monotonic()
    result = apply_all(master, names)
    seconds = time.monotonic() - started
    for name in names:
        bad = failures(result.get(name))
        if bad:
            raise SystemExit(f"{name} did not converge:\n" + "\n".join(bad[:10]))
    return seconds


def inbox_count(conn) -> int:
    typ, data = conn.select("INBOX", readonly=True)
    assert typ == "OK", data
    return int(data[0])


def latencies(sender: mc.Account, recipient: mc.Account, count: int, timeout: float = 60) -> list[float]:
    imap = recipient.imap()
    out = []
    try:
        seen = inbox_count(imap)
        with sender.smtp() as smtp:
            for _ in range(count):
                smtp.sendmail(sender.addr, [recipient.addr], mc.encrypted(sender.addr, [recipient.addr]))
                sent = time.monotonic()
                while inbox_count(imap) <= seen:
                    if time.monotonic() - sent > timeout:
                        raise SystemExit(f"message {len(out) + 1} not delivered within {timeout} s")
                    time.sleep(0.01)
                out.append(time.monotonic() - sent)
                seen += 1
    finally:
        imap.logout()
    return out


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--skip-apply-compare", action="store_true", help="boot two relays only, apply both at once")
    args = parser.parse_args()

    lab = Lab(log=lambda msg: print(msg, file=sys.stderr)).start()
    master = SaltMaster(lab.bridge.address).start()
    try:
        names = ["bench2", "bench3"] if args.skip_apply_compare else ["bench1", "bench2", "bench3"]
        boxes = {}
        for name in names:
            boxes[name] = lab.boot(name)
            # enough sends per minute for the latency run (the default limit is 60)
            boxes[name].pillar = lab.default_pillar(
                name,
                selfheal="master",
                max_user_send_per_minute=max(60, 2 * args.messages),
                max_user_send_burst_size=max(60, 2 * args.messages),
            )
        master.set_pillar({name: box.pillar for name, box in boxes.items()})
        for box in boxes.values():
            join(box, master)
        print(f"minions answer after {master.wait_for(names):.1f} s")

        if not args.skip_apply_compare:
            one = timed_apply(master, ["bench1"])
            print(f"state.apply chatmail, 1 relay:  {one:6.1f} s")
            lab.discard(boxes.pop("bench1"))
        two = timed_apply(master, ["bench2", "bench3"])
        print(f"state.apply chatmail, 2 relays: {two:6.1f} s")

        publish_dkim(lab, master, ["bench2", "bench3"])
        trust_each_other([boxes["bench2"], boxes["bench3"]])
        sender = mc.created_account(boxes["bench2"].address, "bench2.test")
        recipient = mc.created_account(boxes["bench3"].address, "bench3.test")
        latencies(sender, recipient, 1)  # first connection, DNS and TLS session caches warm
        values = latencies(sender, recipient, args.messages)
        print(
            f"bench2 -> bench3 delivery over {len(values)} messages: p50 {percentile(values, 50) * 1000:.0f} ms, "
            f"p99 {percentile(values, 99) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms, "
            f"mean {statistics.mean(values) * 1000:.0f} ms"
        )
        print_reference("fleet")
    finally:
        master.stop()
        lab.stop()


if __name__ == "__main__":
    main()
