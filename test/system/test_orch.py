"""chatmail.orch.migrate and chatmail.orch.upgrade, run by a salt-master over relay containers.

Part of the default system run: each test takes 4-6 minutes on two
cores (fresh relays are applied from scratch).  The master is the one of
test_fleet.py (on the host, bound to the lab bridge), serving a copy of
the formula's state tree so that a test can publish a "new revision"
(``chatmail/VERSION``, what ``chatmail.formula_version`` reads first).

* migration: mv1 has live accounts and a sender that keeps submitting
  during the whole run, retrying whatever is refused; the DNS step is
  confirmed by a thread that re-points the domain in the test DNS (the
  operator's part) and touches the confirmation file the run waits for.
  Every message that got a 250 is in its recipient's mailbox on mv2, and
  every account logs in there with its old password.
* rolling upgrade over up1, up2, up3, where up2 cannot send to other
  relays (its trust in their certificates is gone, so its Postfix defers
  them): the run stops at up2, says why, and up3 still has the old revision.

Run with ``-s`` to see the step times and the mail downtime.
"""

from __future__ import annotations

import json
import shutil
import time

import pytest

from support import mailclient as mc
from support.fleet import join, publish_dkim
from support.orch import FormulaMaster, converged, message_ids, migrate_with_live_mail, orchestrate, step_report
from support.relays import trust_each_other

pytestmark = pytest.mark.system

MARK = "chatmail-migrate"


# -- tests ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def master(lab):
    master = FormulaMaster(lab.bridge.address).start()
    master.publish_revision("rev-1")
    yield master
    master.stop()
    shutil.rmtree(master.workdir, ignore_errors=True)


def test_migration_under_live_mail_loses_nothing(lab, relay, master):
    run = migrate_with_live_mail(lab, relay, master)
    states, output, sender = run["states"], run["output"], run["sender"]
    failed = {sid: s.get("comment") for sid, s in states.items() if s.get("result") is not True}
    if failed:
        diagnosis = (
            run["new"]
            .run("systemctl --no-pager status nginx postfix@- dovecot | tail -40; ss -ltnp", check=False)
            .stdout
        )
        pytest.fail(f"{failed}\n{output[-4000:]}\n--- new relay:\n{diagnosis}")
    steps = step_report(states)
    for name in ("connect", "precopy", "install", "mail_off", "final_sync", "dns", "activate"):
        print(f"step {name}: {steps[name].get('duration_s')} s")
    downtime = steps["activate"]["downtime_s"]
    print(
        f"migration run {run['run_s']:.1f} s; mail off on the old relay until the new one took mail: {downtime} s; "
        f"sender: {len(sender.accepted)} messages got 250, {len(sender.refused)} attempts refused"
    )
    assert steps["final_sync"]["accounts"] == len(run["accounts"])
    assert run["operator"].change == {"domain": run["domain"], "type": "A", "value": run["new"].address}

    new, old = run["new"], run["old"]
    after_flip = [a for a in sender.accepted if a[2] > run["operator"].flipped_at]
    before_off = [a for a in sender.accepted if a[2] < run["operator"].flipped_at]
    assert after_flip and before_off, (len(after_flip), len(before_off))  # mail flowed on both sides of the move
    want: dict[str, set[str]] = {}
    for addr, message_id, _ in sender.accepted:
        want.setdefault(addr, set()).add(message_id)
    on_new = {a.addr: mc.Account(new.address, a.addr, a.password) for a in run["accounts"]}
    deadline = time.monotonic() + 90
    while True:  # the last ones may still be in the new relay's queue
        missing = {addr: want[addr] - message_ids(on_new[addr]) for addr in want}
        missing = {addr: s for addr, s in missing.items() if s}
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert not missing, (missing, new.run("postqueue -p", check=False).stdout)
    first = run["accounts"][0]
    assert run["before"] <= message_ids(on_new[first.addr])
    with pytest.raises(mc.imaplib.IMAP4.error):
        mc.Account(new.address, first.addr, "not-" + first.password).imap()

    # the old relay takes no mail; the move's key is gone from both relays
    assert old.run(["systemctl", "is-active", "postfix@-", "dovecot"], check=False).stdout.split() != ["active"] * 2
    for box in (old, new):
        assert not box.exists("/root/.ssh/chatmail-migrate")
        keys = box.run(["cat", "/root/.ssh/authorized_keys"], check=False).stdout
        assert MARK not in keys, box.name


def test_rolling_upgrade_stops_at_the_relay_that_fails_its_health_check(lab, relay, master):
    boxes = [relay(name) for name in ("up1", "up2", "up3")]
    names = [box.name for box in boxes]
    master.set_pillar({box.name: box.pillar for box in boxes})
    for box in boxes:
        join(box, master)
    master.wait_for(names)
    converged(master, names)
    publish_dkim(lab, master, names)
    trust_each_other(boxes)
    revisions = {box.name: box.read_file("/etc/chatmail-version").splitlines()[0] for box in boxes}
    assert set(revisions.values()) == {"rev-1"}, revisions

    # up2 can no longer verify the other relays' certificates: its mail to them is deferred
    up2 = boxes[1]
    up2.run("rm -f /usr/local/share/ca-certificates/chatmail-test-*.crt && update-ca-certificates --fresh")
    up2.run(["systemctl", "restart", "postfix@-"])
    master.publish_revision("rev-2")
    started = time.monotonic()
    states, output = orchestrate(
        master, "chatmail.orch.upgrade", {"chatmail_upgrade": {"target": "up*", "batch": 1, "bound": 30}}
    )
    print(f"upgrade run {time.monotonic() - started:.1f} s")
    run = states["chatmail-upgrade"]
    report = run["changes"]["return"]
    assert run["result"] is False, output[-4000:]
    assert report["upgraded"] == ["up1"], json.dumps(report, indent=1)[-3000:]
    assert list(report["failed"]) == ["up2"], report
    assert "probe from up2 to up1" in report["failed"]["up2"] and "did not arrive" in report["failed"]["up2"]
    assert report["untouched"] == ["up3"]
    assert report["health"]["up1"]["probe_arrived_s"].keys() == {"up1", "up2"}
    print(f"up1 healthy: {report['health']['up1']}; up2: {report['failed']['up2']}")
    revisions = {box.name: box.read_file("/etc/chatmail-version").splitlines()[0] for box in boxes}
    assert revisions == {"up1": "rev-2", "up2": "rev-2", "up3": "rev-1"}, revisions
    # no probe account is left behind on the relays the run touched
    for box in boxes[:2]:
        left = box.run(f"ls /home/vmail/mail/{box.pillar['mail_domain']}", check=False).stdout.split()
        assert not [entry for entry in left if entry.startswith("probe")], (box.name, left)
