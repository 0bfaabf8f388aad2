"""Backup on relay A, restore onto a fresh relay B, one state.apply: B is A.

A restore moves a relay's identity, so B gets A's mail_domain: A is
discarded first (its DNS records go with it) and the lab's DNS points the
domain at B, as an operator re-points DNS after losing a machine.  A
backs up to a restic repository in a local directory, by the timer's
own service (``chatmail-backup.service``, what the schedule runs) and by
``salt-call chatmail.backup``; the repository and the password file are
carried to B as an operator would carry them (here: through the host);
restic comes to A with the formula (pillar ``backup_repository``), to B
with apt, as docs/backup.md tells the operator.
B is booted from the bare image (the formula never applied there), gets
A's pillar, ``chatmail.restore``, one ``state.apply chatmail``; then:

* accounts of A log in on B over IMAP with their old passwords and see
  their messages (same bytes);
* mail sent to them after the restore arrives;
* B signs with A's DKIM key, hands out A's TURN secret's credentials,
  serves A's certificate; ownership is B's users';
* a message that sat in A's Postfix queue (its next hop does not answer)
  is in B's queue.

Run with ``-s`` to see the backup's size and durations.
"""

from __future__ import annotations

import json
import time

import pytest

from harness import failed_states
from support import mailclient as mc
from support.relays import require_converged

pytestmark = pytest.mark.system

REPOSITORY = "/var/backups/chatmail"
PASSWORD = "/etc/chatmail-backup/password"
CERT = "/etc/ssl/certs/mailserver.pem"
IDENTITY = ("/etc/dkimkeys/opendkim.private", "/etc/chatmail-turn/secret", CERT)


def call(box, *args):
    result = box.salt_call(*args)
    assert result.retcode == 0, (result.stderr, dict(result))
    return result["local"]


def queued(box) -> list[dict]:
    return [json.loads(line) for line in box.run(["postqueue", "-j"]).stdout.splitlines() if line.strip()]


def wait_until(predicate, timeout: float = 30, step: float = 0.3):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


@pytest.fixture(scope="module")
def relay_a(relay, lab):
    box = relay("bk1", backup_repository=REPOSITORY)
    started = time.monotonic()
    require_converged(box, box.apply(box.pillar))
    box.apply_s = time.monotonic() - started
    return box


def test_backup_and_restore_moves_the_relay(relay, lab, relay_a):
    a = relay_a
    domain = a.pillar["mail_domain"]
    alice, bob = mc.created_account(a.address, domain), mc.created_account(a.address, domain)
    for n in range(3):
        assert alice.send([bob.addr], mc.encrypted(alice.addr, [bob.addr], subject=f"before {n}", size=20000)) == {}
    before = mc.wait_for_messages(bob, 3)
    assert len(before) == 3

    # a message Postfix cannot deliver yet: its domain's MX has no one listening
    lab.dns.a("gone", lab.bridge.next_address())
    lab.dns.mx("gone", "gone")
    stranded = f"someone@gone.{lab.dns.zone}"
    assert alice.send([stranded], mc.encrypted(alice.addr, [stranded], subject="stranded")) == {}
    assert wait_until(lambda: [m for m in queued(a) if m["recipients"][0]["address"] == stranded])

    # the scheduled job, as its timer starts it
    a.run(["systemctl", "start", "chatmail-backup.service"], timeout=300)
    assert a.run(["systemctl", "show", "-P", "Result", "chatmail-backup.service"]).stdout.strip() == "success"
    # and by hand, for the report
    report = call(a, "chatmail.backup")
    print(
        f"\nbackup of {report['accounts']} accounts / {report['messages']} messages: "
        f"{report['size_bytes']} bytes read, {report['added_bytes']} added to the repository; "
        f"Postfix+Dovecot {report['pause']} for {report['pause_s']} s (staging {report['stage_s']} s), "
        f"upload {report['upload_s']} s, total {report['duration_s']} s; apply of A {a.apply_s:.1f} s"
    )
    assert report["accounts"] == 2 and report["messages"] >= 3
    assert report["pause"] in ("frozen", "stopped")
    assert {"mailboxes", "dkim", "turn", "tls/cert", "tls/key"} <= set(report["items"])
    assert len(call(a, "chatmail.backups")) == 2
    assert a.run(["systemctl", "is-active", "dovecot", "postfix@-"]).stdout.split() == ["active", "active"]

    identity = {path: a.read_bytes(path) for path in IDENTITY}
    repository = a.run(["tar", "-C", REPOSITORY, "-cf", "-", "."], text=False).stdout
    password = a.read_file(PASSWORD)
    lab.discard(a)  # the old machine is gone; its DNS records too

    b = relay("bk2", domain=domain, backup_repository=REPOSITORY)
    assert b.pillar["mail_domain"] == domain
    b.run(["apt-get", "install", "-y", "-q", "restic"], env={"DEBIAN_FRONTEND": "noninteractive"})
    b.write_file(PASSWORD, password, "0600")
    b.run(["mkdir", "-p", REPOSITORY])
    b.run(["tar", "-C", REPOSITORY, "-xf", "-"], input=repository, text=False)
    b.write_pillar(b.pillar)
    started = time.monotonic()
    restored = call(b, "chatmail.restore")
    restore_s = time.monotonic() - started
    assert restored["install_stage"] is True and restored["owners_missing"] == []
    started = time.monotonic()
    require_converged(b, b.apply(b.pillar))
    print(
        f"restore {restore_s:.1f} s (restic {restored['download_s']} s), then apply of B "
        f"{time.monotonic() - started:.1f} s; queue: {restored['queue_fixed']}"
    )

    assert {path: b.read_bytes(path) for path in IDENTITY} == identity
    for path, owner in (
        (f"/home/vmail/mail/{domain}/{bob.addr}/password", "vmail:vmail"),
        ("/etc/dkimkeys/opendkim.private", "opendkim:opendkim"),
        ("/etc/chatmail-turn/secret", "root:vmail"),
    ):
        assert b.run(["stat", "-c", "%U:%G", path]).stdout.strip() == owner, path

    bob_b, alice_b = mc.Account(b.address, bob.addr, bob.password), mc.Account(b.address, alice.addr, alice.password)
    assert sorted(mc.fetch_all(bob_b)) == sorted(before)
    wrong = mc.Account(b.address, bob.addr, "not-" + bob.password)
    with pytest.raises(mc.imaplib.IMAP4.error):
        wrong.imap()
    assert alice_b.send([bob.addr], mc.encrypted(alice.addr, [bob.addr], subject="after")) == {}
    assert len(mc.wait_for_messages(bob_b, 4)) == 4
    assert [m for m in queued(b) if m["recipients"][0]["address"] == stranded]
    assert not failed_states(b.apply(b.pillar, test=True))
