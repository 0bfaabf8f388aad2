"""Orchestrations on a lab fleet: a master serving a copy of the state tree, a sender, the DNS operator.

What test/system/test_orch.py and bench/bench_migrate.py share: the
migration scenario (:func:`migrate_with_live_mail`) with a sender that
keeps submitting through the move and a thread that does the operator's
part of the DNS step, and ``salt-run state.orchestrate`` with its JSON
result by state id.
"""

from __future__ import annotations

import json
import shutil
import smtplib
import threading
import time
from pathlib import Path

from support import mailclient as mc
from support.fleet import REPO, SaltMaster, apply_all, failures, join


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
