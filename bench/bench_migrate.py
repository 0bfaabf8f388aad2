#!/usr/bin/env python3
"""chatmail.orch.migrate under live mail: time per step and mail downtime.

Builds a lab (bridge, test DNS, proxy; test/harness), a salt-master on
the host bound to the bridge address and two relay containers with a
salt-minion each (test/system/test_orch.py's scenario): mv1 is applied
and gets accounts and a sender that keeps submitting messages, mv2 is a
fresh machine; then ``salt-run state.orchestrate chatmail.orch.migrate``
moves mv1 to mv2, and a thread does the operator's DNS part when the run
asks for it.  Printed:

* the duration of each step of the orchestration;
* mail downtime as the run measures it: from the start of the mail-off
  step on the old relay to the new relay's activation checked
  (``chatmail.status`` clean);
* mail downtime as the sender saw it: from its last 250 on the old relay
  to its first 250 on the new one (it retries every 0.5 s);
* how many messages got a 250, and whether every one of them is in its
  mailbox on the new relay.

Everything stays on the lab's bridge.  Takes about 10-15 minutes on two
cores (applying a fresh relay twice dominates); root only (containers).

usage: scripts/bench migrate [--accounts 4]
"""

from __future__ import annotations

import argparse
import sys
import time

from harness import Lab
from support import mailclient as mc
from support.orch import FormulaMaster, message_ids, migrate_with_live_mail, step_report

STEPS = ("connect", "precopy", "install", "mail_off", "final_sync", "dns", "activate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=4)
    args = parser.parse_args()

    lab = Lab(log=lambda msg: print(msg, file=sys.stderr)).start()
    master = FormulaMaster(lab.bridge.address).start()

    def relay(name: str, **pillar):
        box = lab.boot(name)
        box.pillar = lab.default_pillar(name, **pillar)
        return box

    try:
        run = migrate_with_live_mail(lab, relay, master, accounts_n=args.accounts)
        states = run["states"]
        bad = {sid: s.get("comment") for sid, s in states.items() if s.get("result") is not True}
        if bad:
            raise SystemExit(f"the migration failed: {bad}\n{run['output'][-4000:]}")
        steps = step_report(states)
        print(f"apply of the old relay before the move: {run['apply_old_s']:6.1f} s")
        for name in STEPS:
            print(f"step {name:<11} {steps.get(name, {}).get('duration_s') or 0:8.1f} s")
        print(f"whole orchestration:   {run['run_s']:8.1f} s")
        print(f"mail downtime (run: mail off -> new relay active):     {steps['activate']['downtime_s']:6.1f} s")
        sender, flipped = run["sender"], run["operator"].flipped_at
        last_old = max(t for _, _, t in sender.accepted if t < flipped)
        first_new = min(t for _, _, t in sender.accepted if t > flipped)
        print(f"mail downtime (sender: last 250 on old -> first on new): {first_new - last_old:6.1f} s")
        want = {(addr, message_id) for addr, message_id, _ in sender.accepted}
        deadline = time.monotonic() + 90
        while True:
            have = set()
            for a in run["accounts"]:
                have |= {(a.addr, m) for m in message_ids(mc.Account(run["new"].address, a.addr, a.password))}
            if want <= have or time.monotonic() > deadline:
                break
            time.sleep(2)
        print(
            f"sender: {len(sender.accepted)} messages got 250 ({len(sender.refused)} attempts refused); "
            f"on the new relay: {len(want & have)} of them, missing {len(want - have)}"
        )
    finally:
        master.stop()
        lab.stop()


if __name__ == "__main__":
    main()
