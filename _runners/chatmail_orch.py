"""chatmail_orch: the steps of ``chatmail.orch.migrate`` and ``chatmail.orch.upgrade``, run on the master.

The orchestration SLS files (chatmail/orch/) list the steps; each step is
one function here, called with ``salt.runner``.  A step does its work on
the minions (through the master's LocalClient), then checks the result;
a check that fails returns ``{"Error": ...}``, which fails the step's
state, and the SLS's ``require`` chain skips every later step.

Migration steps share what they learn (the old relay's pillar, the new
relay's address, times) through one JSON file per move in the master's
cache directory (:func:`_state_path`); a step run alone finds it there.
docs/migration.md describes the steps and why the copy runs minion to
minion; docs/fleet.md the upgrade.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from typing import Any

import salt.client

CALL_TIMEOUT = 1800  # a state.apply on a fresh relay takes minutes
QUICK_TIMEOUT = 120
ACTIVE_WITHIN = 60  # s for a relay's status to be clean after its apply


# -- talking to minions -----------------------------------------------------------


class StepFailed(Exception):
    """A step's check failed: the message says what was expected and what was found."""


def _client():
    return salt.client.get_local_client(mopts=__opts__)


def _call(minion: str, fun: str, *args: Any, timeout: int = QUICK_TIMEOUT, **kwargs: Any) -> Any:
    """``fun`` on one minion; its return, or StepFailed naming the minion and the error."""
    ret = _client().cmd(minion, fun, arg=list(args), kwarg=kwargs or None, timeout=timeout, full_return=True)
    if minion not in ret:
        raise StepFailed(f"{minion} did not answer {fun} within {timeout} s")
    answer = ret[minion]
    value = answer.get("ret") if isinstance(answer, dict) else answer
    retcode = answer.get("retcode", 0) if isinstance(answer, dict) else 0
    if retcode or (isinstance(value, str) and value.startswith(("ERROR", "The minion function caused"))):
        raise StepFailed(f"{fun} on {minion} failed: {_tail(value)}")
    return value


def _tail(value: Any, size: int = 1500) -> str:
    """The end of an answer (a traceback says what went wrong in its last lines)."""
    text = str(value)
    return text if len(text) <= size else "..." + text[-size:]


def _apply(minion: str, pillar: dict[str, Any], test: bool = False) -> dict[str, Any]:
    """``state.apply chatmail`` on ``minion`` with pillar ``chatmail`` overridden; StepFailed on any failed state."""
    ret = _client().cmd(
        minion,
        "state.apply",
        arg=["chatmail"],
        kwarg={"pillar": {"chatmail": pillar}, "test": test},
        timeout=CALL_TIMEOUT,
        full_return=True,
    )
    answer = ret.get(minion)
    states = answer.get("ret") if isinstance(answer, dict) else None
    if not isinstance(states, dict):
        raise StepFailed(f"state.apply chatmail on {minion}: {str(answer)[:1500]}")
    failed = [
        f"{v.get('__id__', k)}: {str(v.get('comment'))[:300]}"
        for k, v in states.items()
        if isinstance(v, dict) and v.get("result") is False
    ]
    if failed:
        raise StepFailed(f"state.apply chatmail on {minion} failed: " + "; ".join(failed[:10]))
    return {
        "states": len(states),
        "changed": sum(1 for v in states.values() if isinstance(v, dict) and v.get("changes")),
    }


def _say(text: str) -> None:
    """A line on the operator's terminal (salt-run prints runner output as it comes)."""
    print(f"chatmail: {text}", flush=True)


# -- migration: shared state ------------------------------------------------------


def _state_path(old: str, new: str) -> str:
    directory = os.path.join(__opts__["cachedir"], "chatmail-migrate")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    return os.path.join(directory, f"{old}--{new}.json")


def _load(old: str, new: str) -> dict[str, Any]:
    try:
        with open(_state_path(old, new), encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return {"old": old, "new": new, "steps": {}}


def _save(state: dict[str, Any]) -> None:
    path = _state_path(state["old"], state["new"])
    with open(path + ".new", "w", encoding="utf-8") as fh:
        json.dump(state, fh, indent=1)
    os.replace(path + ".new", path)


def mail_on_again(old: str) -> str:
    """The one command that lets the old relay take mail again (printed by every failing step)."""
    return f'salt {shlex.quote(old)} state.apply chatmail pillar=\'{{"chatmail": {{"disable_mail": false}}}}\''


def _step(name: str, old: str, new: str, work) -> dict[str, Any]:
    """Run one migration step: ``work(state)`` returns its report, or raises StepFailed."""
    if not old or not new or old == new:
        return {
            "Error": f"pillar chatmail_migrate needs 'from' and 'to', two different minion ids; got {old!r}, {new!r}"
        }
    state = _load(old, new)
    started = time.monotonic()
    _say(f"migrate {old} -> {new}: {name} ...")
    try:
        report = work(state)
    except StepFailed as exc:
        mail_off = state.get("mail_off_at") is not None and state.get("activated_at") is None
        why = f"step {name} failed: {exc}"
        if mail_off:
            why += f". Mail is off on {old}; to let it take mail again run: {mail_on_again(old)}"
        else:
            why += f". {old} still takes mail; nothing to undo there."
        state["steps"][name] = {"ok": False, "error": str(exc)}
        _save(state)
        _say(why)
        return {"Error": why, "mail_on_again": mail_on_again(old)}
    report["duration_s"] = round(time.monotonic() - started, 3)
    state["steps"][name] = {"ok": True, **report}
    _save(state)
    _say(f"migrate {old} -> {new}: {name} done in {report['duration_s']} s")
    return report


def _address(minion: str, wanted: str | None) -> str:
    if wanted:
        return wanted
    addresses = _call(minion, "network.ip_addrs")
    if not addresses:
        raise StepFailed(f"{minion} has no IPv4 address to copy to; set chatmail_migrate:address")
    return addresses[0]


def _compare(old_inv: dict[str, Any], new_inv: dict[str, Any], exact: bool) -> list[str]:
    """Differences between the two relays' inventories (chatmail.migrate_inventory)."""
    problems = []
    for account, folders in old_inv["mailboxes"].items():
        there = new_inv["mailboxes"].get(account)
        if there is None:
            problems.append(f"mailbox {account} missing")
            continue
        for folder, count in folders.items():
            have = there.get(folder, 0)
            if have < count or (exact and have != count):
                problems.append(f"{account}/{folder}: {count} messages on the old relay, {have} on the new")
    if exact:
        for name, item in old_inv["items"].items():
            if new_inv["items"].get(name, {}).get("sha256") != item["sha256"]:
                problems.append(f"{name} differs")
        if new_inv["queue_files"] != old_inv["queue_files"]:
            problems.append(f"Postfix queue: {old_inv['queue_files']} files on the old relay, {new_inv['queue_files']}")
    return problems


# -- migration: the steps ---------------------------------------------------------


def migrate_connect(old: str = "", new: str = "", address: str | None = None, **_kw: Any) -> dict[str, Any]:
    """Both relays answer; rsync and ssh on both; a key for the move, trusted both ways; ssh works."""

    def work(state):
        for minion in (old, new):
            _call(minion, "saltutil.sync_all", timeout=600)
        # unmask: Salt 3008 answers pillar.get with every value redacted unless asked not to
        state["old_pillar"] = _call(old, "pillar.get", "chatmail", unmask=True) or {}
        if not state["old_pillar"].get("mail_domain"):
            raise StepFailed(f"{old} has no pillar chatmail:mail_domain; is it a chatmail relay?")
        state["address"] = _address(new, address)
        _call(old, "chatmail.migrate_tools", "old", timeout=600)
        _call(new, "chatmail.migrate_tools", "new", timeout=600)
        host_keys = _call(new, "chatmail.migrate_authorize", _call(old, "chatmail.migrate_key"))
        _call(old, "chatmail.migrate_trust", state["address"], host_keys)
        _call(old, "chatmail.migrate_reach", f"root@{state['address']}")
        state.pop("mail_off_at", None)
        state.pop("activated_at", None)
        return {"address": state["address"], "mail_domain": state["old_pillar"]["mail_domain"]}

    return _step("connect", old, new, work)


def _copy(state: dict[str, Any], final: bool) -> dict[str, Any]:
    ssh = _call(state["old"], "chatmail.ssh_command")
    return _call(
        state["old"],
        "chatmail.migrate_copy",
        to=f"root@{state['address']}",
        final=final,
        mail_off=False,
        ssh=ssh,
        timeout=CALL_TIMEOUT,
    )


def migrate_precopy(old: str = "", new: str = "", **_kw: Any) -> dict[str, Any]:
    """The mailboxes copied while the old relay keeps taking mail (so the final copy is short)."""

    def work(state):
        copied = _copy(state, final=False)
        have = _call(state["new"], "chatmail.migrate_inventory", pillar=state["old_pillar"])
        return {"copied": copied["items"], "accounts": have["accounts"], "messages": have["messages"]}

    return _step("precopy", old, new, work)


def migrate_install(old: str = "", new: str = "", **_kw: Any) -> dict[str, Any]:
    """The new relay installed and configured with the old one's pillar, nothing activated; same settings."""

    def work(state):
        report = _apply(new, {**state["old_pillar"], "stages": ["install", "configure"]})
        # Debian starts Postfix and Dovecot when it installs them: stopped until activate, so
        # that nothing on the new relay touches the copied queue and mailboxes before then
        report["stopped"] = _stop_mail(new, state["old_pillar"])
        theirs = _call(new, "chatmail.settings", state["old_pillar"])
        ours = _call(old, "chatmail.settings")
        differ = sorted(k for k in ours if ours[k] != theirs.get(k))
        if differ:
            raise StepFailed(f"the new relay's settings differ from the old one's in {differ[:10]}")
        return report

    return _step("install", old, new, work)


def _mail_units(minion: str, pillar: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    status = _call(minion, "chatmail.status", pillar)
    return [row for row in status.get("services", []) if row.get("unit", "").startswith(("postfix", "dovecot"))]


def _stop_mail(minion: str, pillar: dict[str, Any]) -> list[str]:
    """Stop Postfix and Dovecot on ``minion`` where they run; the units stopped."""
    running = [row["unit"] for row in _mail_units(minion, pillar) if row.get("state") == "active"]
    for unit in running:
        _call(minion, "service.stop", unit)
    return running


def migrate_mail_off(old: str = "", new: str = "", **_kw: Any) -> dict[str, Any]:
    """Mail off on the old relay (disable_mail, through the formula); Postfix and Dovecot are stopped."""

    def work(state):
        state["mail_off_at"] = time.time()
        _save(state)
        report = _apply(old, {"disable_mail": True})
        running = [row["unit"] for row in _mail_units(old) if row.get("state") == "active"]
        if running:
            raise StepFailed(f"{old} still runs {running} after disable_mail")
        return report

    return _step("mail_off", old, new, work)


def migrate_final_sync(old: str = "", new: str = "", **_kw: Any) -> dict[str, Any]:
    """Every item copied and owned by the new relay's users; both sides' inventories equal."""

    def work(state):
        copied = _copy(state, final=True)
        adopted = _call(new, "chatmail.migrate_adopt", pillar=state["old_pillar"], timeout=600)
        before = _call(old, "chatmail.migrate_inventory")
        after = _call(new, "chatmail.migrate_inventory", pillar=state["old_pillar"])
        problems = _compare(before, after, exact=True)
        items = {
            i["name"]: f"{i['user']}:{i['group']}" for i in _call(new, "chatmail.backup_items", state["old_pillar"])
        }
        problems += [
            f"{name} owned by {item['owner']} on the new relay, expected {items[name]}"
            for name, item in after["items"].items()
            if items.get(name) and item["owner"] != items[name]
        ]
        if problems:
            raise StepFailed("the new relay's copy differs: " + "; ".join(problems[:10]))
        state["copied_inventory"] = before
        return {
            "items": copied["items"],
            "owned": adopted["owned"],
            "queue": adopted["queue"],
            "accounts": after["accounts"],
            "messages": after["messages"],
        }

    return _step("final_sync", old, new, work)


def migrate_dns(
    old: str = "",
    new: str = "",
    hook: str | None = None,
    confirmed: bool = False,
    confirm_timeout: float = 3600,
    **_kw: Any,
) -> dict[str, Any]:
    """The DNS change, made by the operator's hook or by hand (the run waits for the confirmation file)."""

    def work(state):
        domain = state["old_pillar"]["mail_domain"]
        change = {"domain": domain, "type": "A", "value": state["address"]}
        pending = _state_path(old, new)[: -len(".json")] + ".dns"
        confirm = pending + ".confirmed"
        with open(pending, "w", encoding="utf-8") as fh:
            json.dump(change, fh)
        if hook:
            env = {
                **os.environ,
                "CHATMAIL_DOMAIN": domain,
                "CHATMAIL_OLD": old,
                "CHATMAIL_NEW": new,
                "CHATMAIL_NEW_ADDRESS": state["address"],
            }
            proc = subprocess.run(shlex.split(hook), env=env, capture_output=True, text=True, timeout=600, check=False)
            if proc.returncode != 0:
                raise StepFailed(f"the DNS hook {hook!r} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
            return {"change": change, "by": "hook"}
        if confirmed:
            return {"change": change, "by": "pillar chatmail_migrate:confirmed"}
        _say(
            f"point DNS: {domain} A {state['address']} (and AAAA, if any, at {new}); "
            f"then run on the master: touch {confirm}   (waiting up to {confirm_timeout:.0f} s)"
        )
        started = time.monotonic()
        while not os.path.exists(confirm):
            if time.monotonic() - started > float(confirm_timeout):
                raise StepFailed(f"no DNS confirmation ({confirm}) within {confirm_timeout} s")
            time.sleep(1)
        os.unlink(confirm)
        return {"change": change, "by": confirm, "waited_s": round(time.monotonic() - started, 1)}

    return _step("dns", old, new, work)


def migrate_activate(old: str = "", new: str = "", **_kw: Any) -> dict[str, Any]:
    """The new relay activated with the old one's pillar: status clean, every copied message still there."""

    def work(state):
        report = _apply(new, state["old_pillar"])
        report["status_after_s"] = _wait_clean(new, state["old_pillar"], ACTIVE_WITHIN)
        state["activated_at"] = time.time()
        after = _call(new, "chatmail.migrate_inventory", pillar=state["old_pillar"])
        problems = _compare(state.get("copied_inventory") or {"mailboxes": {}}, after, exact=False)
        if problems:
            raise StepFailed("after activation: " + "; ".join(problems[:10]))
        report["downtime_s"] = round(state["activated_at"] - state["mail_off_at"], 1)
        _say(
            f"{new} serves {state['old_pillar']['mail_domain']} ({after['accounts']} accounts); mail was off for "
            f"{report['downtime_s']} s. Give {new} the old relay's pillar for good, and {old} "
            "'disable_mail: true' (or remove it), so that no later apply turns mail on there again."
        )
        return report

    return _step("activate", old, new, work)


def _wait_clean(minion: str, pillar: dict[str, Any] | None, within: float) -> float:
    """Seconds until ``chatmail.status`` on ``minion`` is clean (daemons restarted by the apply may
    take a moment to listen again); StepFailed with what is not clean after ``within`` s."""
    started = time.monotonic()
    while True:
        status = _call(minion, "chatmail.status", pillar)
        if status.get("ok"):
            return round(time.monotonic() - started, 1)
        if time.monotonic() - started > within:
            bad = [row for row in status.get("services", []) + status.get("ports", []) if not row.get("ok")]
            raise StepFailed(f"chatmail.status on {minion} is not clean after {within:.0f} s: {str(bad)[:1000]}")
        time.sleep(2)


def migrate_cleanup(old: str = "", new: str = "", **_kw: Any) -> dict[str, Any]:
    """The move's SSH key gone from both relays (runs whatever happened before)."""
    if not old or not new:
        return {"Error": "pillar chatmail_migrate needs 'from' and 'to'"}
    removed = {}
    for minion in (old, new):
        try:
            removed[minion] = _call(minion, "chatmail.migrate_forget")
        except StepFailed as exc:
            return {"Error": f"could not remove the move's SSH key: {exc}"}
    state = _load(old, new)
    return {"removed": removed, "steps": {k: v.get("duration_s") for k, v in state["steps"].items()}}


# -- rolling upgrade --------------------------------------------------------------


def _minions(target: str, tgt_type: str) -> list[str]:
    return sorted(_client().cmd(target, "test.ping", tgt_type=tgt_type, timeout=30))


def _probe_remove(minion: str, account: dict[str, str]) -> None:
    try:
        _call(minion, "chatmail.probe_remove", account["addr"])
    except StepFailed:
        pass  # a probe account left behind holds one message; never worth failing the run for


def health(minion: str, peer: str | None = None, bound: float = 60, **_kw: Any) -> dict[str, Any]:
    """``chatmail.status`` clean on ``minion``; a probe from it to itself and to ``peer`` arriving within ``bound`` s.

    Raises StepFailed saying which part failed.
    """
    _wait_clean(minion, None, ACTIVE_WITHIN)
    made: list[tuple[str, dict[str, str]]] = []
    try:
        sender = _call(minion, "chatmail.probe_account")
        made.append((minion, sender))
        for where in [minion] + ([peer] if peer else []):
            made.append((where, _call(where, "chatmail.probe_account")))
        recipients = made[1:]
        sent = _call(
            minion, "chatmail.probe_send", sender["addr"], sender["password"], [a["addr"] for _, a in recipients]
        )
        arrived = {}
        for where, account in recipients:
            try:
                got = _call(
                    where,
                    "chatmail.probe_wait",
                    account["addr"],
                    account["password"],
                    sent["token"],
                    bound,
                    timeout=int(bound) + 60,
                )
            except StepFailed as exc:
                raise StepFailed(f"probe from {minion} to {where}: {exc}") from None
            arrived[where] = got["arrived_s"]
        return {"status": "ok", "probe_arrived_s": arrived}
    finally:
        for where, account in made:
            _probe_remove(where, account)


def _apply_batch(group: list[str]) -> dict[str, str]:
    """sync_all and state.apply chatmail on ``group`` at once; the failure of each relay that failed."""
    client = _client()
    client.cmd(group, "saltutil.sync_all", tgt_type="list", timeout=600)
    ret = client.cmd(group, "state.apply", arg=["chatmail"], tgt_type="list", timeout=CALL_TIMEOUT, full_return=True)
    failed = {}
    for minion in group:
        states = (ret.get(minion) or {}).get("ret")
        if not isinstance(states, dict):
            failed[minion] = f"state.apply chatmail: {str(ret.get(minion, 'no answer'))[:800]}"
            continue
        bad = [
            f"{v.get('__id__', k)}: {str(v.get('comment'))[:300]}"
            for k, v in states.items()
            if isinstance(v, dict) and v.get("result") is False
        ]
        if bad:
            failed[minion] = "state.apply chatmail failed: " + "; ".join(bad[:5])
    return failed


def upgrade(target: str = "*", tgt_type: str = "glob", batch: int = 1, bound: float = 60, **_kw: Any) -> dict[str, Any]:
    """Apply the formula the master serves now to the relays matched, ``batch`` at a time, each checked.

    Relays go in the order of their minion ids.  After each batch (applied
    at once): on every relay of it, ``chatmail.status`` clean and a probe
    message from it to an account on itself and to one on another relay
    (an upgraded one if there is one) arriving within ``bound`` seconds.
    The first relay that fails stops the run; later batches stay untouched.
    """
    minions = _minions(target, tgt_type)
    if not minions:
        return {"Error": f"no minion answers for target {target!r} ({tgt_type})"}
    batch = max(1, int(batch))
    done: list[str] = []
    report: dict[str, Any] = {"relays": minions, "batch": batch, "upgraded": done, "health": {}}
    for start in range(0, len(minions), batch):
        group = minions[start : start + batch]
        started = time.monotonic()
        _say(f"upgrade: {', '.join(group)} ...")
        failed = _apply_batch(group)
        for minion in group:
            if minion not in failed:
                others = [m for m in done + minions if m != minion and m not in failed]
                try:
                    report["health"][minion] = health(minion, others[0] if others else None, bound)
                except StepFailed as exc:
                    failed[minion] = f"health check: {exc}"
        if failed:
            report["failed"] = failed
            report["untouched"] = minions[start + len(group) :]
            done.extend(m for m in group if m not in failed)
            report["Error"] = (
                "upgrade stopped: "
                + "; ".join(f"{m}: {why}" for m, why in failed.items())
                + f". Upgraded and healthy: {done or 'none'}; not touched: {report['untouched'] or 'none'}"
            )
            _say(report["Error"])
            return report
        done.extend(group)
        _say(f"upgrade: {', '.join(group)} healthy in {time.monotonic() - started:.1f} s: {report['health']}")
    return report
