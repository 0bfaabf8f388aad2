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
import smtplib
import threading
import time
from pathlib import Path

import pytest

import mailclient as mc
from relays import trust_each_other
from test_fleet import REPO, SaltMaster, apply_all, failures, join, publish_dkim

pytestmark = pytest.mark.system

MARK = "chatmail-migrate"


class FormulaMaster(SaltMaster):
    """A SaltMaster whose state tree is a copy: a test can change the revision it serves."""

    def start(self) -> FormulaMaster:
        super().start()
        served = self.workdir / "roots" / "chatmail"
        served.unlink()
        shutil.copytree(REPO / "chatmail", served, symlinks=True)
        return self

    def publish_revision(self, revision: str) -> None:
        (self.workdir / "roots" / "chatmail" / "VERSION").write_text(revision + "\n")

    @property
    def cachedir(self) -> Path:
        return self.workdir / "root" / "var" / "cache" / "salt" / "master"


def orchestrate(master: SaltMaster, sls: str, pillar: dict, timeout: int = 3600) -> tuple[dict, str]:
    """``salt-run state.orchestrate SLS pillar=...``: the states by id, and everything it printed."""
    proc = master.salt_run("--out=json", "state.orchestrate", sls, "pillar=" + json.dumps(pillar), timeout=timeout)
    text = proc.stdout
    start = text.find("\n{")
    data = json.loads(text[start + 1 :] if start >= 0 else text[text.find("{") :])
    states = {}
    for per_minion in (data.get("data") or data).values():
        if isinstance(per_minion, dict):
            for state in per_minion.values():
                if isinstance(state, dict) and "__id__" in state:
                    states[state["__id__"]] = state
    return states, text + proc.stderr


def converged(master, names: list[str]) -> None:
    result = apply_all(master, names)
    bad = {name: failures(result.get(name)) for name in names if failures(result.get(name))}
    assert not bad, bad


# -- a sender that keeps sending -----------------------------------------------


class Sender(threading.Thread):
    """Submits messages from the accounts to each other, round robin, to whatever ``target`` holds.

    A message counts as sent when the relay said 250 (sendmail returned
    without an exception); anything refused or failed is retried later as a
    new message, as a client would.
    """

    def __init__(self, accounts: list[mc.Account], target: dict[str, str]):
        super().__init__(daemon=True)
        self.accounts = accounts
        self.target = target
        self.stopping = threading.Event()
        self.accepted: list[tuple[str, str, float]] = []  # (recipient, Message-ID, when)
        self.refused: list[tuple[float, str]] = []

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            sender = self.accounts[n % len(self.accounts)]
            recipient = self.accounts[(n + 1) % len(self.accounts)]
            data = mc.encrypted(sender.addr, [recipient.addr])
            message_id = mc.parse(data)["Message-ID"]
            try:
                with mc.smtp(self.target["address"], 465) as conn:
                    conn.login(sender.addr, sender.password)
                    conn.sendmail(sender.addr, [recipient.addr], data)
                self.accepted.append((recipient.addr, message_id, time.monotonic()))
                n += 1
            except (OSError, smtplib.SMTPException) as exc:
                self.refused.append((time.monotonic(), repr(exc)[:120]))
                time.sleep(0.5)
                continue
            time.sleep(0.2)

    def stop(self) -> None:
        self.stopping.set()
        self.join(60)


def message_ids(account: mc.Account) -> set[str]:
    """The Message-IDs in the INBOX (the relay replaces every submitted Subject with "[...]")."""
    return {mc.parse(m)["Message-ID"] for m in mc.fetch_all(account)}


class DnsOperator(threading.Thread):
    """Does the operator's part of the DNS step: re-points the domain, then touches the confirmation file."""

    def __init__(self, lab, master: FormulaMaster, old, new, name: str, target: dict[str, str]):
        super().__init__(daemon=True)
        self.lab, self.master, self.new, self.name, self.target = lab, master, new, name, target
        self.pending = master.cachedir / "chatmail-migrate" / f"{old.name}--{new.name}.dns"
        self.flipped_at: float | None = None
        self.change: dict | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.pending.exists():
            if self.stopping.wait(0.5):
                return
        time.sleep(0.2)  # the run writes the file, then waits
        self.change = json.loads(self.pending.read_text())
        self.lab.dns.remove(self.name, "A")
        self.lab.dns.a(self.name, self.change["value"])
        self.target["address"] = self.change["value"]
        self.flipped_at = time.monotonic()
        Path(str(self.pending) + ".confirmed").touch()


def migrate_with_live_mail(lab, relay, master: FormulaMaster, accounts_n: int = 4) -> dict:
    """The migration scenario (test and bench): mv1 with live accounts and a sender, moved to mv2.

    Returns what happened: the orchestration's states and output, the
    sender, the accounts, the relays and times.
    """
    limits = {"max_user_send_per_minute": 600, "max_user_send_burst_size": 600}
    old, new = relay("mv1", **limits), relay("mv2")
    new.pillar = dict(old.pillar)  # the operator gives the new minion the old relay's pillar
    master.set_pillar({old.name: old.pillar, new.name: old.pillar})
    for box in (old, new):
        join(box, master)
    master.wait_for([old.name, new.name])
    t0 = time.monotonic()
    converged(master, [old.name])
    apply_old_s = time.monotonic() - t0
    domain = old.pillar["mail_domain"]
    accounts = [mc.created_account(old.address, domain) for _ in range(accounts_n)]
    before = set()
    for a in accounts:  # some mail before the move
        data = mc.encrypted(a.addr, [accounts[0].addr])
        assert a.send([accounts[0].addr], data) == {}
        before.add(mc.parse(data)["Message-ID"])

    target = {"address": old.address}
    sender = Sender(accounts, target)
    operator = DnsOperator(lab, master, old, new, old.name, target)
    sender.start()
    operator.start()
    started = time.monotonic()
    try:
        states, output = orchestrate(
            master, "chatmail.orch.migrate", {"chatmail_migrate": {"from": "mv1", "to": "mv2", "confirm_timeout": 900}}
        )
        run_s = time.monotonic() - started
        time.sleep(5)  # a few messages to the new relay after the move
    finally:
        operator.stopping.set()
        sender.stop()
    return {
        "old": old,
        "new": new,
        "domain": domain,
        "accounts": accounts,
        "sender": sender,
        "operator": operator,
        "states": states,
        "output": output,
        "run_s": run_s,
        "apply_old_s": apply_old_s,
        "before": before,
    }


def step_report(states: dict) -> dict[str, dict]:
    return {
        sid.removeprefix("chatmail-migrate-"): (state.get("changes") or {}).get("return") or {}
        for sid, state in states.items()
    }


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
