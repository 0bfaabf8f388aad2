"""An existing Debian 12 relay, dist-upgraded in place to Debian 13 and applied again.

What an operator does (docs/upgrade-debian13.md), inside a container:
the Debian 12 relay is converged and used (accounts with passwords,
messages in their mailboxes, one of them flagged \\Seen, mail from a second
relay); then its apt sources go to trixie (through the lab's apt proxy),
``apt-get dist-upgrade`` runs noninteractive keeping the formula's config
files, the container reboots, the Salt venv is swapped for one built on
Debian 13's Python (what rebuilding ``.venv`` with scripts/bootstrap is for an
operator) and the formula is applied again.

Afterwards every account logs in with its old password, every message is
there with its flags, the DKIM key, the TLS certificate and the TURN secret
are the same files, and the mail sent while the relay was being upgraded
(queued at the other relay, or submitted by a client that retries) is in
its mailbox.  A probe on the host logs in over IMAP and SMTP every second
all along; the longest gaps are the relay's mail downtime, printed and
recorded (``record_property``).

The module takes several minutes (the dist-upgrade downloads and unpacks
Debian 13): it runs only when selected, ``-m upgrade`` (conftest OPT_IN).
"""

from __future__ import annotations

import hashlib
import subprocess
import threading
import time

import pytest

from harness import changed_states, check_target, failed_states
from harness.image import SALT_VENV_MOUNT, base_image, salt_venv
from support import mailclient as mc
from support.relays import apply_all, federate, require_converged

pytestmark = [pytest.mark.system, pytest.mark.upgrade, pytest.mark.debian13]

# the files whose content must survive the upgrade unchanged
KEPT_FILES = (
    "/etc/dkimkeys/opendkim.private",
    "/etc/ssl/certs/mailserver.pem",
    "/etc/ssl/private/mailserver.key",
    "/etc/chatmail-turn/secret",
)
ACCOUNTS = 3
# keeps the formula's config files (they are the relay's, the formula rewrites them)
# and never asks: what an unattended upgrade of a relay needs
POLICY_RC_D = "/usr/sbin/policy-rc.d"
DIST_UPGRADE = "apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold dist-upgrade"


class Probe(threading.Thread):
    """Logs in over IMAP (993) and SMTP submission (465) about once a second, noting when each worked."""

    def __init__(self, account: mc.Account, interval: float = 1.0):
        super().__init__(daemon=True)
        check_target(account.host)
        self.account = account
        self.interval = interval
        self.samples: list[tuple[float, bool, bool]] = []  # (monotonic time, imap ok, smtp ok)
        self.done = threading.Event()
        self.first_failure = threading.Event()

    def _works(self, login) -> bool:
        try:
            conn = login()
        except Exception:  # noqa: BLE001 - any failure is "down"
            return False
        try:
            conn.logout() if hasattr(conn, "logout") else conn.quit()
        except Exception:  # noqa: BLE001 - logged in: it worked
            pass
        return True

    def run(self) -> None:
        while not self.done.is_set():
            started = time.monotonic()
            imap_ok = self._works(self.account.imap)
            smtp_ok = self._works(self.account.smtp)
            self.samples.append((started, imap_ok, smtp_ok))
            if not (imap_ok and smtp_ok):
                self.first_failure.set()
            self.done.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def changes(self) -> list[tuple[float, bool, bool]]:
        """The samples where IMAP or SMTP went from working to failing or back."""
        found, last = [], None
        for sample in self.samples:
            if last is None or sample[1:] != last[1:]:
                found.append(sample)
            last = sample
        return found

    def downtime(self, which: int) -> float:
        """Seconds between the last sample that worked before a failure and the next that worked,
        summed over all gaps (``which``: 1 IMAP, 2 SMTP)."""
        total, last_ok, failing = 0.0, None, False
        for sample in self.samples:
            if sample[which]:
                if failing and last_ok is not None:
                    total += sample[0] - last_ok
                last_ok, failing = sample[0], False
            else:
                failing = True
        if failing and last_ok is not None:
            total += self.samples[-1][0] - last_ok
        return total


class RetryingClient(threading.Thread):
    """A client that submits one message once the relay fails, retrying every 2 s until it gets 250."""

    def __init__(self, sender: mc.Account, recipient: str, message: bytes, start_when: threading.Event):
        super().__init__(daemon=True)
        self.sender, self.recipient, self.message = sender, recipient, message
        self.start_when = start_when
        self.stop = threading.Event()
        self.attempts = 0
        self.accepted_at: float | None = None

    def run(self) -> None:
        self.start_when.wait()
        while not self.stop.is_set():
            self.attempts += 1
            try:
                if self.sender.send([self.recipient], self.message) == {}:
                    self.accepted_at = time.monotonic()
                    return
            except Exception:  # noqa: BLE001 - a client retries on any failure
                pass
            self.stop.wait(2)


def run_or_fail(box, cmd: str, timeout: float) -> None:
    proc = box.run(cmd, env={"DEBIAN_FRONTEND": "noninteractive"}, check=False, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def digest(box, path: str) -> str:
    return hashlib.sha256(box.read_bytes(path)).hexdigest()


def inbox(account: mc.Account) -> dict[str, bytes]:
    """Message-ID -> flags (but \\Recent) of every message in the INBOX."""
    conn = account.imap()
    try:
        found = {}
        for num in mc.message_ids(conn):
            typ, data = conn.fetch(num, "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            assert typ == "OK", data
            flags = data[0][0].split(b"FLAGS (", 1)[1].split(b")", 1)[0]
            message_id = mc.parse(data[0][1])["Message-ID"]
            # \Recent belongs to a session (the first to see the message), not to the message
            found[message_id] = b" ".join(sorted(f for f in flags.split() if f != b"\\Recent"))
        return found
    finally:
        conn.logout()


def flush_queues(*boxes) -> None:
    for box in boxes:
        box.run(["postqueue", "-f"], check=False)


# the figures measured by the upgrade, recorded by test_mail_works_again_after_the_upgrade
FIGURES: dict[str, float] = {}


@pytest.fixture(scope="module")
def upgraded(relay, lab):
    """Everything the tests compare: the relay before and after the upgrade, and what happened between."""
    old, other = relay("upgrade1", release="12"), relay("sender1", release="12")
    failures = apply_all([old, other])
    if any(failures.values()):
        pytest.fail(f"the Debian 12 relays did not converge: {failures}\n{old.failed_units_log()}")
    federate(lab, [old, other])
    domain, other_domain = old.pillar["mail_domain"], other.pillar["mail_domain"]

    # the relay in use: accounts, local mail (one message read), mail from the other relay
    accounts = [mc.created_account(old.address, domain) for _ in range(ACCOUNTS)]
    remote = mc.created_account(other.address, other_domain)
    for i, account in enumerate(accounts):
        peer = accounts[(i + 1) % ACCOUNTS]
        assert peer.send([account.addr], mc.encrypted(peer.addr, [account.addr])) == {}
        assert remote.send([account.addr], mc.encrypted(remote.addr, [account.addr])) == {}
    for account in accounts:
        assert len(mc.wait_for_messages(account, 2, timeout=60)) == 2, account.addr
    conn = accounts[0].imap()
    conn.select("INBOX")
    conn.store(mc.message_ids(conn)[0], "+FLAGS", "\\Seen")
    conn.logout()
    before = {
        "inboxes": {a.addr: inbox(a) for a in accounts},
        "files": {path: digest(old, path) for path in KEPT_FILES},
        "dovecot": old.run(["dovecot", "--version"]).stdout.strip(),
    }

    # the upgrade, with a probe logging in all along and mail sent meanwhile
    probe = Probe(accounts[0])
    probe.start()
    while len(probe.samples) < 3:
        time.sleep(0.2)
    retrying = RetryingClient(
        accounts[1], accounts[2].addr, mc.encrypted(accounts[1].addr, [accounts[2].addr]), probe.first_failure
    )
    retrying.start()
    during: list[tuple[mc.Account, str]] = []  # (recipient, Message-ID) sent to the relay while it was upgraded

    def send_from_other(recipient: mc.Account) -> None:
        message = mc.encrypted(remote.addr, [recipient.addr])
        assert remote.send([recipient.addr], message) == {}
        during.append((recipient, mc.parse(message)["Message-ID"]))

    during.append((accounts[2], mc.parse(retrying.message)["Message-ID"]))
    timings = {}
    t0 = time.monotonic()
    old.run("sed -i 's/bookworm/trixie/g' /etc/apt/sources.list")
    old.run(["apt-get", "update", "-q"], timeout=600)
    # the downloads first, while the relay still runs as before
    run_or_fail(old, DIST_UPGRADE + " --download-only", timeout=1800)
    timings["download"] = time.monotonic() - t0
    # no daemon (re)started by the packages: Debian 13's Dovecot would not
    # start on Debian 12's configuration, failing the upgrade (invoke-rc.d(8))
    old.write_file(POLICY_RC_D, "#!/bin/sh\nexit 101\n", mode="0755")
    send_from_other(accounts[0])
    t1 = time.monotonic()
    run_or_fail(old, DIST_UPGRADE, timeout=1800)
    timings["dist-upgrade"] = time.monotonic() - t1
    send_from_other(accounts[1])
    # the operator rebuilds the Salt venv on Debian 13's Python (scripts/bootstrap);
    # here the venv built inside the Debian 13 image is copied in
    t2 = time.monotonic()
    venv = salt_venv(base_image(release="13", log=lab.log), log=lab.log)
    (old.root / SALT_VENV_MOUNT.lstrip("/")).mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", f"{venv}/.", str(old.root / SALT_VENV_MOUNT.lstrip("/"))], check=True)
    old.venv_mount, old.release = SALT_VENV_MOUNT, "13"
    # the harness's minion caches its grains (grains_cache, minion.conf); a dist-upgrade
    # changes them (osfinger Debian-13), and an operator's minion, which caches nothing
    # by default, reads them afresh
    old.run(["rm", "-f", "/var/cache/salt/minion/grains.cache.p"])
    # (policy-rc.d stays: the packages the apply adds, e.g. dovecot-auth-lua,
    # would restart Dovecot on the old configuration and fail)
    applied = old.apply(old.pillar)
    old.run(["rm", POLICY_RC_D])
    timings["apply"] = time.monotonic() - t2
    require_converged(old, applied, width=800)
    send_from_other(accounts[2])
    t3 = time.monotonic()
    old.reboot(venv=venv, venv_mount=SALT_VENV_MOUNT)
    timings["reboot"] = time.monotonic() - t3
    t4 = time.monotonic()
    probe.first_failure.set()  # the client sends now if the probe never saw the relay fail
    flush_queues(other, old)
    retrying.join(120)
    retrying.stop.set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all(mid in inbox(recipient) for recipient, mid in during):
        flush_queues(other, old)
        time.sleep(2)
    timings["window mail after reboot"] = time.monotonic() - t4
    time.sleep(3)  # a few probe samples after the upgrade
    probe.done.set()
    probe.join()
    downtime = {"imap": probe.downtime(1), "smtp": probe.downtime(2)}
    FIGURES.update({**timings, **{f"{k} down": v for k, v in downtime.items()}})
    print(
        "\nupgrade Debian 12 -> 13: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
        + f"; mail down (probe every {probe.interval:.0f} s): IMAP {downtime['imap']:.0f} s, SMTP submission {downtime['smtp']:.0f} s"
        + f"; retrying client: {retrying.attempts} attempts"
        + "\nprobe changes (s since the download ended: IMAP, SMTP): "
        + ", ".join(f"{t - t1:.0f}: {i}, {m}" for t, i, m in probe.changes())
    )
    return {
        "box": old,
        "other": other,
        "accounts": accounts,
        "remote": remote,
        "before": before,
        "applied": applied,
        "during": during,
        "retrying": retrying,
        "downtime": downtime,
        "probe": probe,
    }


def test_the_relay_runs_debian13_with_dovecot24(upgraded):
    box = upgraded["box"]
    assert upgraded["before"]["dovecot"].startswith("2.3.")
    assert box.read_file("/etc/debian_version").startswith("13.")
    assert box.run(["dovecot", "--version"]).stdout.startswith("2.4.")


def test_status_is_ok_after_the_reboot(upgraded):
    """Step 4's check, before anything else touches the relay: every service the formula runs
    came up by itself at boot."""
    status = upgraded["box"].salt_call("chatmail.status")
    assert status.retcode == 0 and status["local"]["ok"] is True, status["local"]


def test_the_apply_after_the_upgrade_converges_and_a_second_changes_nothing(upgraded):
    box = upgraded["box"]
    assert failed_states(upgraded["applied"]) == []
    again = box.apply(box.pillar)
    assert failed_states(again) == []
    changes = {s["__id__"]: str(s.get("changes"))[:300] for s in again.states.values() if s.get("changes")}
    assert changed_states(again) == [], changes


def test_every_account_logs_in_with_its_old_password(upgraded):
    for account in upgraded["accounts"]:
        account.imap().logout()
        account.smtp().quit()
    wrong = upgraded["accounts"][0]
    with pytest.raises(mc.imaplib.IMAP4.error):
        mc.Account(wrong.host, wrong.addr, wrong.password + "x").imap()


def test_every_message_is_kept_with_its_flags(upgraded):
    for account in upgraded["accounts"]:
        now = inbox(account)
        for message_id, flags in upgraded["before"]["inboxes"][account.addr].items():
            assert now.get(message_id) == flags, (account.addr, message_id)
    assert b"\\Seen" in upgraded["before"]["inboxes"][upgraded["accounts"][0].addr].values()


def test_dkim_key_tls_certificate_and_turn_secret_stay(upgraded):
    box = upgraded["box"]
    assert {path: digest(box, path) for path in KEPT_FILES} == upgraded["before"]["files"]


def test_mail_sent_during_the_upgrade_is_delivered(upgraded):
    assert upgraded["retrying"].accepted_at is not None, "the retrying client never got its message accepted"
    for recipient, message_id in upgraded["during"]:
        assert message_id in inbox(recipient), (recipient.addr, message_id)


def test_the_upgraded_relay_mails_the_other_relay_and_makes_new_accounts(upgraded):
    box, remote = upgraded["box"], upgraded["remote"]
    fresh = mc.created_account(box.address, box.pillar["mail_domain"])
    assert fresh.send([remote.addr], mc.encrypted(fresh.addr, [remote.addr])) == {}
    assert remote.send([fresh.addr], mc.encrypted(remote.addr, [fresh.addr])) == {}
    assert len(mc.wait_for_messages(fresh, 1, timeout=60)) == 1
    assert any(mc.parse(m)["From"] == fresh.addr for m in mc.wait_for_messages(remote, 1, timeout=60))


def test_mail_works_again_after_the_upgrade(upgraded, record_property):
    """The probe's last logins (after the apply) all worked; the downtime figures are recorded and printed."""
    for key, value in FIGURES.items():
        record_property(key, round(value, 1))
    last = upgraded["probe"].samples[-3:]
    assert last and all(imap_ok and smtp_ok for _, imap_ok, smtp_ok in last), last
