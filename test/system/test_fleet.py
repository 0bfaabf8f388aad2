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

The master and its helpers live in support/fleet.py (bench/bench_fleet.py uses them too).
"""

from __future__ import annotations

import base64
import re
import shutil
import smtplib
import subprocess
import time

import dkim
import pytest
import yaml

from support import mailclient as mc
from support.fleet import SaltMaster, apply_all, failures, join, publish_dkim
from support.relays import trust_each_other

pytestmark = pytest.mark.system

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
        log = box.run("journalctl --no-pager -n 30 -u postfix@- -u opendkim -u filtermail; postqueue -p", check=False)
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

    The signed copy is the local copy of a message fleet1 also sent to fleet2
    (mail with a remote recipient is signed and the local copy keeps the
    signature; mail for local recipients only is not signed, design.md §0.6);
    mail that crossed to fleet2 has it removed.
    """
    first, second = mailing
    sender, local = (mc.created_account(first.address, "fleet1.test") for _ in range(2))
    remote = mc.created_account(second.address, "fleet2.test")
    sender.send([local.addr, remote.addr], mc.encrypted(sender.addr, [local.addr, remote.addr]))
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
