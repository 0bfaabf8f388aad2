"""A fleet: one salt-master drives two relays, and the relays mail each other.

The master runs on the host from the Salt venv, bound to the lab's bridge
address (a tmp config, see :class:`SaltMaster`); each relay container runs
a salt-minion daemon from the same venv (bind-mounted) pointed at it,
with its own pillar on the master (its own domain).  What an operator of
several relays does is what the tests do: ``salt '*' state.apply
chatmail``, ``salt '*' chatmail.status`` and ``chatmail.expire``; the
master's reactor (reactor/master.d/chatmail-reactor.conf) restarts a
relay's Postfix when that relay's beacon reports it down (pillar
``selfheal: master``).

Mail between the relays uses only what the lab gives them: the test DNS
zone (A, MX and each relay's DKIM TXT record) and each other's
self-signed certificate in the system CA store (Postfix sends with
``smtp_tls_security_level = verify``).

The helpers (SaltMaster, join, trust, publish_dkim) are used by
bench/bench_fleet.py as well.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import dkim
import pytest
import yaml

import mailclient as mc
from harness import check_target, lifecycle
from relays import trust_each_other

pytestmark = pytest.mark.system

REPO = Path(__file__).resolve().parents[2]
VENV = (REPO / ".venv").resolve()  # a worktree may link the venv of another checkout
# what the master serves: the state tree, the reactor file and the extension modules (the
# runners of chatmail.orch.* too)
SERVED = ("chatmail", "reactor", "_modules", "_states", "_utils", "_runners")


class SaltMaster:
    """A salt-master on the host, for the containers on one bridge, from a tmp config."""

    def __init__(self, address: str, workdir: Path | None = None):
        self.address = check_target(address)
        # short: the master's unix sockets live below it (sun_path holds 107 bytes)
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="cm-master-"))
        self.conf = self.workdir / "conf"
        self.pillar = self.workdir / "pillar"
        self.process: subprocess.Popen | None = None
        self.publish_port, self.ret_port = _free_ports(address, 2)
        self._handle = None

    def start(self) -> SaltMaster:
        roots = self.workdir / "roots"
        for d in (self.conf / "master.d", self.pillar, roots):
            d.mkdir(parents=True, exist_ok=True)
        for top in SERVED:  # symlinks: the repo without .git and .venv (walking those is slow)
            (roots / top).symlink_to(REPO / top)
        config = {
            "root_dir": str(self.workdir / "root"),
            "interface": self.address,
            "publish_port": self.publish_port,
            "ret_port": self.ret_port,
            "auto_accept": True,  # test fleet: every minion on our own bridge is ours
            "file_roots": {"base": [str(roots)]},
            "pillar_roots": {"base": [str(self.pillar)]},
            "log_level_logfile": "info",  # root_dir/var/log/salt/master
            "keep_jobs_seconds": 3600,
        }
        (self.conf / "master").write_text(yaml.safe_dump(config))
        # the reactor config operators drop into master.d, as shipped
        shutil.copy(REPO / "reactor/master.d/chatmail-reactor.conf", self.conf / "master.d/")
        self.process = subprocess.Popen(
            [str(VENV / "bin/salt-master"), "-c", str(self.conf), "--log-level=quiet"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "master.err", "ab"),
            start_new_session=True,
            preexec_fn=lifecycle.die_with_parent,
            env=_clean_env(),
        )
        self._handle = lifecycle.register("salt-master", self.stop)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()
        lifecycle.unregister(self._handle)

    def set_pillar(self, relays: dict[str, dict]) -> None:
        """Pillar ``chatmail`` per minion id."""
        top = {"base": {minion: [minion] for minion in relays}}
        (self.pillar / "top.sls").write_text(yaml.safe_dump(top))
        for minion, pillar in relays.items():
            (self.pillar / f"{minion}.sls").write_text(json.dumps({"chatmail": pillar}))

    def salt(self, target: str | list[str], *args: str, timeout: int = 900) -> dict:
        """``salt --out=json --static TARGET ARGS`` (a list target: ``-L``): {minion id: return}."""
        tgt = ["-L", ",".join(target)] if isinstance(target, list) else [target]
        proc = subprocess.run(
            [
                str(VENV / "bin/salt"),
                "-c",
                str(self.conf),
                "--out=json",
                "--static",
                f"--timeout={timeout}",
                "--log-level=quiet",
                *tgt,
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=timeout + 60,
            env=_clean_env(),
        )
        if "No minions matched the target" in proc.stdout:
            return {}
        try:
            return json.loads(proc.stdout) if proc.stdout.strip() else {}
        except json.JSONDecodeError as exc:
            raise AssertionError(
                f"salt {target} {args}: {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            ) from exc

    def salt_run(self, *args: str, timeout: int = 3600) -> subprocess.CompletedProcess:
        """``salt-run ARGS`` on this master (e.g. ``state.orchestrate chatmail.orch.upgrade``), text output."""
        return subprocess.run(
            [str(VENV / "bin/salt-run"), "-c", str(self.conf), "--log-level=quiet", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_clean_env(),
        )

    def wait_for(self, minions: list[str], timeout: float = 90) -> float:
        """Seconds until every minion answers test.ping."""
        started = time.monotonic()
        while True:
            answered = self.salt("*", "test.ping", timeout=5)
            if all(answered.get(m) is True for m in minions):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise AssertionError(f"minions {minions} did not answer; got {answered}\n{self.log()[-3000:]}")
            time.sleep(1)

    def log(self) -> str:
        try:
            return (self.workdir / "root/var/log/salt/master").read_text(errors="replace")
        except OSError:
            return ""


def join(box, master: SaltMaster) -> None:
    """Run a salt-minion daemon (from the bind-mounted venv) in ``box`` that serves ``master``."""
    config = {
        "id": box.name,
        "master": master.address,
        "master_port": master.ret_port,
        "publish_port": master.publish_port,
        "grains_cache": True,
        "enable_fqdns_grains": False,
        "loop_interval": 1,
    }
    # replaces the harness's masterless config (file_client local)
    box.write_file("/etc/salt/minion.d/chatmail.conf", yaml.safe_dump(config))
    box.write_file(
        "/etc/systemd/system/salt-minion.service",
        (
            "[Unit]\nDescription=Salt minion of the test fleet\nAfter=network.target\n\n"
            f"[Service]\nExecStart={VENV}/bin/salt-minion -c /etc/salt\nKillMode=process\nRestart=on-failure\n\n"
            "[Install]\nWantedBy=multi-user.target\n"
        ),
    )
    box.run(["systemctl", "daemon-reload"])
    box.run(["systemctl", "enable", "--now", "salt-minion"])


def publish_dkim(lab, master: SaltMaster, minions: list[str]) -> dict[str, dict]:
    """Each relay's DKIM TXT record (from chatmail.dkim_record on the relay) into the test DNS."""
    records = master.salt(minions, "chatmail.dkim_record")
    for minion in minions:
        record = records[minion]
        assert isinstance(record, dict), record
        lab.dns.txt(record["name"], record["value"])
    return records


def apply_all(master: SaltMaster, minions: list[str]) -> dict:
    """``salt <minions> saltutil.sync_all`` then ``state.apply chatmail`` (and chatmail.selfheal if
    the top file does not include it yet); returns the state.apply result per minion."""
    synced = master.salt(minions, "saltutil.sync_all")
    assert set(synced) == set(minions), synced
    result = master.salt(minions, "state.apply", "chatmail")
    if "chatmail.selfheal" not in (REPO / "chatmail/init.sls").read_text():
        extra = master.salt(minions, "state.apply", "chatmail.selfheal")
        for minion in minions:
            if isinstance(result.get(minion), dict) and isinstance(extra.get(minion), dict):
                result[minion].update(extra[minion])
    return result


def failures(states) -> list[str]:
    if not isinstance(states, dict):
        return [str(states)[:2000]]
    return [
        f"{s.get('__id__', k)}: {s.get('comment', '')}"[:600] for k, s in states.items() if s.get("result") is False
    ]


def _free_ports(address: str, count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((address, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _clean_env() -> dict[str, str]:
    return {"PATH": f"{VENV}/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def master(lab):
    master = SaltMaster(lab.bridge.address).start()
    yield master
    master.stop()
    shutil.rmtree(master.workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def fleet(lab, relay, master):
    boxes = [relay(name, selfheal="master") for name in ("fleet1", "fleet2")]
    master.set_pillar({box.name: box.pillar for box in boxes})
    for box in boxes:
        join(box, master)
    master.wait_for([box.name for box in boxes])
    return boxes


@pytest.fixture(scope="module")
def applied(fleet, master):
    return apply_all(master, [box.name for box in fleet])


@pytest.fixture(scope="module")
def mailing(lab, fleet, master, applied):
    """The relays as mail peers: DKIM keys published, certificates trusted."""
    for box in fleet:
        if failures(applied.get(box.name)):
            pytest.fail(f"{box.name} did not converge:\n" + "\n".join(failures(applied[box.name])))
    publish_dkim(lab, master, [box.name for box in fleet])
    trust_each_other(fleet)
    return fleet


# -- tests -------------------------------------------------------------------------------------


def test_one_apply_from_the_master_converges_every_relay(fleet, applied):
    assert sorted(applied) == ["fleet1", "fleet2"]
    for box in fleet:
        assert failures(applied[box.name]) == []
        assert box.read_file("/etc/mailname").strip() == f"{box.name}.test"  # each its own pillar


def test_status_and_expire_answer_once_per_relay(fleet, master, applied):
    status = master.salt("*", "chatmail.status")
    assert sorted(status) == ["fleet1", "fleet2"]
    for box in fleet:
        assert status[box.name]["domain"] == f"{box.name}.test"
        assert status[box.name]["ok"] is True, status[box.name]
    expire = master.salt("*", "chatmail.expire")
    assert sorted(expire) == ["fleet1", "fleet2"]
    assert all(isinstance(expire[name], dict) for name in expire), expire


def test_master_reactor_restarts_postfix_on_the_relay_that_reported_it(fleet, master, applied):
    first, second = fleet
    dropin = yaml.safe_load(first.read_file("/etc/salt/minion.d/chatmail-beacons.conf"))
    assert sorted(dropin["beacons"]["chatmail_services"][1]["services"]) == ["dovecot", "postfix@-"]
    first.run(["systemctl", "stop", "postfix@-"])
    started = time.monotonic()
    while first.run(["systemctl", "is-active", "--quiet", "postfix@-"], check=False).returncode != 0:
        assert time.monotonic() - started < 60, "the master's reactor did not restart postfix@- within 60 s"
        time.sleep(0.5)
    print(f"postfix@- on fleet1 back after {time.monotonic() - started:.1f} s")
    log = first.read_file("/var/log/salt/minion")
    assert "chatmail selfheal: postfix@- on fleet1 reported not running; restarting it" in log
    assert "chatmail selfheal" not in second.run(["cat", "/var/log/salt/minion"], check=False).stdout


def test_relays_deliver_to_each_other_signed_and_verified(mailing):
    first, second = mailing
    sender = mc.created_account(first.address, "fleet1.test")
    recipient = mc.created_account(second.address, "fleet2.test")
    assert sender.send([recipient.addr], mc.encrypted(sender.addr, [recipient.addr])) == {}
    messages = mc.wait_for_messages(recipient, 1, timeout=60)
    assert len(messages) == 1, mail_logs(mailing)
    parsed = mc.parse(messages[0])
    assert parsed["From"] == sender.addr
    # fleet1 signed it; fleet2's incoming filter verified it (unsigned mail is refused) and,
    # the signature being valid, Postfix removed it before delivery, with the verification
    # results and the Received trail that names fleet1
    assert parsed["DKIM-Signature"] is None and parsed["Authentication-Results"] is None
    trail = " ".join(parsed.get_all("Received") or [])
    assert "fleet1" not in trail and first.address not in trail, trail
    message_id = parsed["Message-ID"].strip("<>")
    log = first.run(["journalctl", "--no-pager", "-o", "cat", "-u", "postfix@-", "-u", "opendkim"]).stdout
    (queue_id,) = [line.split(":")[0].split()[-1] for line in log.splitlines() if f"message-id=<{message_id}>" in line]
    assert f"{queue_id}: DKIM-Signature field added (s=opendkim, d=fleet1.test)" in log


def mail_logs(boxes) -> str:
    """The end of each relay's mail log and its queue, for failure messages."""
    out = []
    for box in boxes:
        log = box.run(
            "journalctl --no-pager -n 30 -u postfix@- -u opendkim -u filtermail-incoming; postqueue -p", check=False
        )
        out.append(f"--- {box.name}\n{log.stdout}{log.stderr}")
    return "\n".join(out)


def attacker_signed(message: bytes, domain: str, key_pem: bytes, selector: str = "opendkim") -> bytes:
    """``message`` with a DKIM-Signature of ``domain`` made with ``key_pem`` (dkimpy, as a forger would)."""
    header = dkim.sign(
        message,
        selector.encode(),
        domain.encode(),
        key_pem,
        canonicalize=(b"relaxed", b"simple"),
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
    )
    return header + message


def test_missing_forged_and_foreign_signatures_are_refused(lab, mailing):
    """On port 25 of fleet2, as a stranger would send: no signature, a signature of fleet1.test made
    with another key, and a valid signature of a domain that is not the From: domain: all 554 5.7.1.
    A valid signature of the From: domain (the attacker's own domain, published in DNS) passes."""
    first, second = mailing
    key = subprocess.run(["openssl", "genrsa", "2048"], check=True, capture_output=True).stdout
    public = subprocess.run(
        ["openssl", "rsa", "-pubout", "-outform", "DER"], input=key, check=True, capture_output=True
    ).stdout
    lab.dns.txt("opendkim._domainkey.evil.test.", "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode())
    victim = mc.created_account(second.address, "fleet2.test")
    sender = "someone@fleet1.test"
    plain = mc.encrypted(sender, [victim.addr])
    own_domain = mc.encrypted("mallory@evil.test", [victim.addr])
    cases = {
        "unsigned": (sender, plain, 554),
        "forged (fleet1.test, wrong key)": (sender, attacker_signed(plain, "fleet1.test", key), 554),
        "foreign domain (evil.test signs fleet1's From)": (sender, attacker_signed(plain, "evil.test", key), 554),
        "own domain, valid": ("mallory@evil.test", attacker_signed(own_domain, "evil.test", key), 250),
    }
    replies = {}
    for name, (mail_from, data, _) in cases.items():
        with mc.smtp(second.address, 25) as conn:
            try:
                conn.sendmail(mail_from, [victim.addr], data)
                replies[name] = (250, b"")
            except smtplib.SMTPDataError as exc:
                replies[name] = (exc.smtp_code, exc.smtp_error)
    assert {name: code for name, (code, _) in replies.items()} == {name: c[2] for name, c in cases.items()}, replies
    for name, (code, text) in replies.items():
        if code == 554:
            assert text.startswith(b"5.7.1") and b"DKIM" in text, (name, text)
    (delivered,) = mc.wait_for_messages(victim, 1, timeout=30)
    assert mc.parse(delivered)["From"] == "mallory@evil.test"


def test_a_broken_signature_is_refused(mailing):
    """A message fleet1 really signed, replayed to fleet2 on port 25: accepted as it is,
    refused with one signed header changed.

    The signed copy comes from a delivery inside fleet1 (local mail keeps its
    DKIM-Signature, design.md §0.6); mail that crossed to fleet2 has it removed.
    """
    first, second = mailing
    sender, local = (mc.created_account(first.address, "fleet1.test") for _ in range(2))
    sender.send([local.addr], mc.encrypted(sender.addr, [local.addr]))
    (message,) = mc.wait_for_messages(local, 1, timeout=60)
    # what fleet1 signed: from its DKIM-Signature on (the delivery's own headers come before it)
    signed = b"DKIM-Signature:" + message.split(b"DKIM-Signature:", 1)[1]
    parsed = mc.parse(message)
    tags = dict(tag.split("=", 1) for tag in re.sub(r"\s", "", parsed["DKIM-Signature"]).split(";") if tag)
    assert tags["d"] == "fleet1.test" and "date" in tags["h"].lower().split(":")
    # a signed header changed: the last digit of Date
    date = re.search(rb"\r\nDate:[^\r]*[0-9]", signed.split(b"\r\n\r\n", 1)[0])
    digit = b"1" if signed[date.end() - 1 : date.end()] != b"1" else b"2"
    tampered = signed[: date.end() - 1] + digit + signed[date.end() :]
    assert tampered != signed

    replayed, other = (mc.created_account(second.address, "fleet2.test") for _ in range(2))
    with mc.smtp(second.address, 25) as conn:
        assert conn.sendmail(sender.addr, [replayed.addr], signed) == {}
        with pytest.raises(smtplib.SMTPDataError) as refused:
            conn.sendmail(sender.addr, [other.addr], tampered)
    assert refused.value.smtp_code == 554, refused.value
    assert b"5.7.1" in refused.value.smtp_error and b"DKIM" in refused.value.smtp_error, refused.value
    assert len(mc.wait_for_messages(replayed, 1, timeout=30)) == 1, mail_logs(mailing)
    assert mc.fetch_all(other) == []
