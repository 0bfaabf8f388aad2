"""A Debian 13 (trixie) relay: Debian's own Dovecot 2.4, Postfix 3.10, Python 3.13.

The subset of test_relay.py that shows the formula makes a relay of a bare
Debian 13 container: converge, a zero-change re-apply, accounts created on
first login (Dovecot 2.4's Lua passdb/userdb asking doveauth), mail
between two accounts over SMTP and IMAP, and the mail policy checks of
support/policy.py that test_relay.py runs on Debian 12.  The Delta Chat
end-to-end run on Debian 13, and mail between a Debian 12 and a Debian 13
relay, are in test_fleet_deltachat.py.  Select it with ``-m debian13``.
"""

from __future__ import annotations

import time

import pytest

from harness import changed_states, failed_states
from support import mailclient as mc
from support import policy
from support.relays import kill_until_systemd_gives_up, reapply_on_same_tree, require_converged, tree_state, wait_active

pytestmark = [pytest.mark.system, pytest.mark.debian13]


@pytest.fixture(scope="module")
def box(relay):
    return relay("trixie1", release="13")


@pytest.fixture(scope="module")
def applied(box):
    result = box.apply(box.pillar)
    result.tree = tree_state()
    return result


@pytest.fixture(scope="module")
def live(box, applied):
    return require_converged(box, applied, width=600)


@pytest.fixture(scope="module")
def domain(box) -> str:
    return box.pillar["mail_domain"]


def test_container_is_debian13_with_dovecot24(box):
    assert box.read_file("/etc/debian_version").startswith("13.")
    assert box.run(["dovecot", "--version"]).stdout.startswith("2.4.")


def test_first_apply_converges(box, applied):
    assert failed_states(applied) == []
    assert applied.retcode == 0


def test_second_apply_changes_nothing(live, applied):
    again = reapply_on_same_tree(live, live.pillar, applied.tree)
    assert failed_states(again) == []
    changes = {s["__id__"]: str(s.get("changes"))[:300] for s in again.states.values() if s.get("changes")}
    assert changed_states(again) == [], changes


def test_capabilities_announce_chatmail_push_and_metadata(live):
    conn = mc.imap(live.address)
    try:
        assert {"XCHATMAIL", "XDELTAPUSH"} <= set(conn.capabilities)
        acc = mc.new_account(live.address, live.pillar["mail_domain"])
        conn.login(acc.addr, acc.password)
        caps = set(conn.capability()[1][0].decode().split())
        assert {"METADATA", "QUOTA", "XCHATMAIL", "XDELTAPUSH"} <= caps
        assert "COMPRESS=DEFLATE" not in caps  # imap_compress off: hibernation instead
    finally:
        conn.logout()


def test_first_login_creates_the_account_and_checks_the_password(live, domain):
    acc = mc.new_account(live.address, domain)
    home = f"/home/vmail/mail/{domain}/{acc.addr}"
    assert not live.exists(home)
    acc.imap().logout()
    assert live.read_file(f"{home}/password").startswith("{SHA512-CRYPT}$6$")
    acc.imap().logout()  # the same password again
    with pytest.raises(mc.imaplib.IMAP4.error):
        mc.Account(acc.host, acc.addr, acc.password + "x").imap()
    with pytest.raises(mc.smtplib.SMTPAuthenticationError):
        mc.Account(acc.host, acc.addr, acc.password + "x").smtp()


def test_quota_is_the_configured_mailbox_size(live, domain):
    conn = mc.created_account(live.address, domain).imap()
    try:
        typ, data = conn.getquotaroot("INBOX")
        assert typ == "OK"
        assert b'"User quota" (STORAGE 0 512000)' in data[1]
    finally:
        conn.logout()


def test_mail_between_two_accounts(live, domain):
    sender, recipient = mc.created_account(live.address, domain), mc.created_account(live.address, domain)
    assert sender.send([recipient.addr], mc.encrypted(sender.addr, [recipient.addr])) == {}
    received = mc.wait_for_messages(recipient)
    assert len(received) == 1
    assert mc.parse(received[0])["From"] == sender.addr


@pytest.mark.parametrize("ports", mc.CLIENT_PORTS)
def test_clients_log_in_and_send_on_every_port(live, domain, ports):
    """Dovecot 2.4 takes IMAP from nginx on 443 too (its PROXY-protocol listener on 8993)."""
    mc.check_client_ports(mc.created_account(live.address, domain), mc.created_account(live.address, domain), ports)


def test_status_is_ok_on_debian13(live):
    """chatmail.status finds every unit and port of the Debian 13 relay where it should be."""
    status = live.salt_call("chatmail.status")
    assert status.retcode == 0, status.stderr
    status = status["local"]
    assert status["ok"] is True, [row for row in status["services"] + status["ports"] if not row["ok"]]


def test_postfix_master_is_supervised(live):
    """postfix.service runs the master in the foreground: a killed master comes back (Debian 13 has no postfix@-)."""
    assert live.run(["systemctl", "is-active", "postfix"]).stdout.strip() == "active"
    pid = live.run(["systemctl", "show", "-p", "MainPID", "--value", "postfix"]).stdout.strip()
    assert pid != "0"
    live.run(["kill", "-9", pid])
    # a deadline, not a count of polls: on a loaded machine each poll takes longer, and
    # systemd first stops what is left of the old master (seen: over 10 s with a second test run)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = live.run(["systemctl", "show", "-p", "MainPID", "--value", "postfix"]).stdout.strip()
        if now not in ("0", pid):
            break
        time.sleep(0.1)
    assert now not in ("0", pid), "postfix.service did not start a new master within 30 s"
    for _ in range(50):  # the new master opens its listeners a moment after it starts
        try:
            assert mc.smtp(live.address).noop()[0] == 250
            return
        except ConnectionRefusedError:
            live.run(["sleep", "0.1"])
    pytest.fail("Postfix did not listen on 465 again within 5 s of its master's restart")


def test_doveadm_lists_every_account(live, domain):
    """The Lua userdb iterates through doveauth: doveadm's user '*' and -A see every account."""
    accounts = {mc.created_account(live.address, domain).addr for _ in range(2)}
    listed = set(live.run(["doveadm", "user", "*"]).stdout.split())
    assert accounts <= listed
    quota = live.run(["doveadm", "quota", "get", "-A"]).stdout
    assert all(addr in quota for addr in accounts)


def test_logins_and_deliveries_log_no_dovecot_error(live, domain):
    """Neither a restart, a login, a failed login nor an LMTP delivery makes Dovecot 2.4 log
    an error (anvil's socket is open to lmtp's vmail; no dead auth-penalty socket is left;
    no process reconnects to stats while Dovecot stops)."""
    since = live.run(["date", "+%s"]).stdout.strip()
    live.run(["systemctl", "restart", "dovecot"])  # a fresh auth process, as after a deploy
    sender, recipient = mc.created_account(live.address, domain), mc.created_account(live.address, domain)
    assert sender.send([recipient.addr], mc.encrypted(sender.addr, [recipient.addr])) == {}
    assert len(mc.wait_for_messages(recipient)) == 1
    with pytest.raises(mc.imaplib.IMAP4.error):
        mc.Account(recipient.host, recipient.addr, recipient.password + "x").imap()
    journal = live.run(["journalctl", "-u", "dovecot", f"--since=@{since}", "--no-pager", "-o", "cat"]).stdout
    errors = [line for line in journal.splitlines() if "Error:" in line or "Fatal:" in line]
    assert errors == []
    # no process reports to stats, so none reconnects (and logs an error) when stats exits
    # first as systemd stops Dovecot: only the listener is left on the socket
    stats = live.run(["ss", "-xaH", "src", "/run/dovecot/stats-writer"]).stdout.splitlines()
    assert [line.split()[1] for line in stats] == ["LISTEN"]


# -- the relay's mail policy, the same tests as on Debian 12 ---------------------------------


class TestMailPolicy(policy.MailPolicy):
    """support/policy.py on this relay."""


def test_postfix_is_tried_again_after_systemd_gives_up(live):
    """Postfix killed each time it is back: systemd's start limit stops postfix.service, and
    chatmail-retry@ (its drop-in's OnFailure=) starts it again half a minute later."""
    kill_until_systemd_gives_up(live, "postfix")
    assert wait_active(live, "postfix") == "active"
