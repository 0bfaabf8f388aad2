#!/usr/bin/env python3
"""Benchmark the whole relay in a systemd container: deploy time, delivery latency, throughput.

Boots one container on a private bridge (test/harness), applies the
formula and prints:

* the time of the first ``state.apply chatmail`` on a fresh container and
  of a re-apply that changes nothing;
* latency from "submission accepted" (the SMTP 250 after DATA on 465) to
  "message file in the recipient's maildir ``new/``", p50 and p99 over
  ``--messages`` encrypted messages sent one after another;
* sustained throughput with ``--senders`` concurrent senders (one SMTP
  connection each, ``--per-sender`` messages each, to ``--recipients``
  recipients on the relay): accepted messages per second, latency under
  load, refusals by code, and delivered = accepted (nothing lost).

The maildirs are watched from the host through the container's overlay
mount (a file-system read, no network); messages are matched by their
Message-ID.  At the end it prints upstream's figures for the same runs
(bench/reference.py: where and how they were measured).

Needs root (systemd-nspawn).  Run: ``scripts/bench relay`` (``--release 13``: a Debian 13 relay).
"""

from __future__ import annotations

import argparse
import smtplib
import sys
import threading
import time
from collections import Counter

from harness import Lab, changed_states, failed_states
from reference import print_reference
from support import mailclient as mc
from support.loadgen import MaildirWatcher, latency_line, maildir_new, message


def sequential_latency(box, domain: str, count: int, seeds) -> list[float]:
    sender, recipient = mc.created_account(box.address, domain), mc.created_account(box.address, domain)
    mc.fetch_all(recipient)  # create the maildir
    watcher = MaildirWatcher([maildir_new(box, recipient.addr)])
    watcher.start()
    latencies = []
    try:
        with sender.smtp() as conn:
            for _ in range(count):
                data, mid = message(sender.addr, recipient.addr, next(seeds))
                conn.sendmail(sender.addr, [recipient.addr], data)
                accepted = time.monotonic()
                if not watcher.wait_for({mid}, 30):
                    raise RuntimeError(f"message {mid!r} not stored within 30 s")
                latencies.append(watcher.seen[mid] - accepted)
    finally:
        watcher.stop()
    return latencies


def load(box, domain: str, senders: int, per_sender: int, recipients: int, seeds) -> dict:
    accounts = [mc.created_account(box.address, domain) for _ in range(senders)]
    rcpts = [mc.created_account(box.address, domain) for _ in range(recipients)]
    for r in rcpts:
        mc.fetch_all(r)
    watcher = MaildirWatcher([maildir_new(box, r.addr) for r in rcpts])
    watcher.start()
    lock = threading.Lock()
    accepted: dict[bytes, float] = {}
    refused: Counter = Counter()
    work = [
        [
            message(a.addr, rcpts[(i + n) % recipients].addr, next(seeds)) + (rcpts[(i + n) % recipients].addr,)
            for n in range(per_sender)
        ]
        for i, a in enumerate(accounts)
    ]
    start_gate = threading.Barrier(senders + 1)

    def send(account, items):
        conn = account.smtp()
        start_gate.wait()
        try:
            for data, mid, rcpt in items:
                try:
                    conn.sendmail(account.addr, [rcpt], data)
                    with lock:
                        accepted[mid] = time.monotonic()
                except smtplib.SMTPResponseException as exc:
                    with lock:
                        refused[exc.smtp_code] += 1
                except smtplib.SMTPRecipientsRefused as exc:
                    with lock:
                        refused[next(iter(exc.recipients.values()))[0]] += 1
        finally:
            conn.quit()

    threads = [threading.Thread(target=send, args=(a, items)) for a, items in zip(accounts, work)]
    for t in threads:
        t.start()
    start_gate.wait()
    started = time.monotonic()
    for t in threads:
        t.join(300)
    sending = time.monotonic() - started
    complete = watcher.wait_for(set(accepted), 60)
    watcher.stop()
    delivered = [mid for mid in accepted if mid in watcher.seen]
    last_stored = max((watcher.seen[mid] for mid in delivered), default=started)
    return {
        "attempted": senders * per_sender,
        "accepted": len(accepted),
        "refused": dict(refused),
        "delivered": len(delivered),
        "complete": complete,
        "accepted_per_s": len(accepted) / sending,
        "delivered_per_s": len(delivered) / (last_stored - started),
        "latencies": [watcher.seen[mid] - accepted[mid] for mid in delivered],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200, help="sequential messages for the latency figure")
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--per-sender", type=int, default=10)
    parser.add_argument("--recipients", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1, help="load rounds (each with fresh accounts)")
    parser.add_argument(
        "--forward-zones",
        action="store_true",
        help="keep the test zone forwarded (as the system tests do) instead of a public-DNS setup",
    )
    parser.add_argument("--release", default="12", choices=("12", "13"), help="the relay container's Debian release")
    args = parser.parse_args()

    lab = Lab(log=lambda m: print(m, file=sys.stderr)).start()
    try:
        box = lab.boot("bench1", release=args.release)
        print(f"Debian {args.release} relay: {box.read_file('/etc/debian_version').strip()}")
        # no rate limit in the way: the load run sends many messages per sender per minute,
        # and every account of every round comes from this host's one address
        pillar = lab.default_pillar(
            "bench1", max_user_send_per_minute=100000, max_user_send_burst_size=100000, account_creations_per_hour=0
        )
        if not args.forward_zones:
            # a relay on public DNS has no forwarded zones (and nothing here needs the test zone)
            pillar.pop("dns_forward_zones", None)
        domain = pillar["mail_domain"]

        t0 = time.monotonic()
        first = box.apply(pillar)
        t1 = time.monotonic()
        if failed_states(first) or first.retcode:
            print("first apply failed:\n" + "\n".join(failed_states(first)))
            return 1
        again = box.apply(pillar)
        t2 = time.monotonic()
        print(f"container boot: {box.timings['boot']:.1f} s")
        print(f"first apply (fresh container): {t1 - t0:.1f} s, {len(changed_states(first))} states changed")
        print(f"re-apply (no change): {t2 - t1:.1f} s, {len(changed_states(again))} states changed")

        seeds = iter(range(1, 10**9))
        latencies = sequential_latency(box, domain, args.messages, seeds)
        print(f"submission accepted -> stored, {len(latencies)} messages one at a time: {latency_line(latencies)}")

        for n in range(args.rounds):
            r = load(box, domain, args.senders, args.per_sender, args.recipients, seeds)
            lost = r["accepted"] - r["delivered"]
            print(
                f"load round {n + 1}: {args.senders} senders x {args.per_sender} messages -> {args.recipients} recipients: "
                f"accepted {r['accepted']}/{r['attempted']}, refused {r['refused'] or 'none'}, "
                f"delivered {r['delivered']} (lost {lost}), "
                f"{r['accepted_per_s']:.0f} accepted msg/s, {r['delivered_per_s']:.0f} delivered msg/s"
            )
            if r["latencies"]:
                print(f"  accepted -> stored under load: {latency_line(r['latencies'])}")
        crashes = box.run(
            "journalctl --no-pager -o short-monotonic | grep -v run-u | grep -iE "
            "'segfault|dumped core|status=11/SEGV|Main process exited, code=(killed|dumped)' || true"
        ).stdout
        print(f"daemon crashes in the journal: {len(crashes.splitlines())}")
        for line in crashes.splitlines()[:10]:
            print("  " + line)
        print_reference("relay")
        return 0
    finally:
        lab.stop()


if __name__ == "__main__":
    sys.exit(main())
