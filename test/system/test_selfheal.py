"""Self-healing without a master: the relay's own Salt minion restarts dead mail daemons.

One relay container with ``selfheal: masterless``: the formula runs
chatmail-selfheal.service, a salt-minion daemon with no master whose
service beacon watches postfix@- and dovecot and whose reactor engine
restarts the one reported down (docs/selfheal.md).  The tests take the
daemons down the ways systemd itself does not undo (a clean stop; a
SIGKILL with systemd's own Restart= switched off for the test) and measure
how long the relay needs to be whole again.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness import failed_states
from support import mailclient as mc

pytestmark = pytest.mark.system

REPO = Path(__file__).resolve().parents[2]
VENV_PATH = (REPO / ".venv").resolve()  # a worktree may link the venv of another checkout
BOUND = 60  # seconds from the failure until the unit is active again
NO_RESTART = "/run/systemd/system/dovecot.service.d/50-selfheal-test.conf"


@pytest.fixture(scope="module")
def healer(relay):
    box = relay("heal1", selfheal="masterless")
    result = box.apply(box.pillar)
    assert failed_states(result) == [], failed_states(result)
    if "chatmail.selfheal" not in (REPO / "chatmail/init.sls").read_text():
        result = box.salt_call("state.apply", "chatmail.selfheal", pillar=box.pillar)
        assert failed_states(result) == [], failed_states(result)
    wait_until(lambda: active(box, "chatmail-selfheal"), 30, "chatmail-selfheal never became active")
    return box


def active(box, unit: str) -> bool:
    return box.run(["systemctl", "is-active", "--quiet", unit], check=False).returncode == 0


def wait_until(predicate, timeout: float, message: str, step: float = 0.5) -> float:
    """Seconds until ``predicate()`` held; fails the test after ``timeout``."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            pytest.fail(message)
        time.sleep(step)
    return time.monotonic() - started


def selfheal_log(box, since: str) -> str:
    return box.run(["journalctl", "-u", "chatmail-selfheal", "--no-pager", "-o", "cat", "--since", since]).stdout


def now(box) -> str:
    return box.run(["date", "+%Y-%m-%d %H:%M:%S"]).stdout.strip()


def main_pid(box, unit: str) -> int:
    return int(box.run(["systemctl", "show", "-P", "MainPID", unit]).stdout)


def test_the_daemon_is_the_salt_that_applied_the_formula(healer):
    pid = main_pid(healer, "chatmail-selfheal")
    # Salt sets a process title: the whole command line comes as one string
    cmdline = healer.read_file(f"/proc/{pid}/cmdline").replace("\0", " ")
    # the harness's Salt venv, seen inside
    assert cmdline.startswith(
        f"{VENV_PATH}/bin/python3 /usr/local/lib/chatmail-selfheal/salt-minion -c /etc/chatmail-selfheal "
    )
    # it talks to no master, and /etc/salt stays the operator's
    assert not healer.exists("/etc/salt/minion.d/chatmail-beacons.conf")


def test_stopped_postfix_daemon_is_started_again(healer):
    """`systemctl stop postfix@-` is not a failure to systemd (Restart= does nothing): only the reactor brings it back."""
    since = now(healer)
    healer.run(["systemctl", "stop", "postfix@-"])
    assert not active(healer, "postfix@-")
    # the oneshot wrapper looks fine all the while: that is why the beacon watches postfix@-
    assert active(healer, "postfix")
    seconds = wait_until(lambda: active(healer, "postfix@-"), BOUND, f"postfix@- still down after {BOUND} s")
    print(f"postfix@- back after {seconds:.1f} s")
    assert "chatmail selfheal: postfix@- on heal1 reported not running; restarting it" in selfheal_log(healer, since)
    with mc.smtp(healer.address, 25) as conn:
        assert conn.noop()[0] == 250


def test_killed_dovecot_is_restarted_and_mail_waiting_for_it_arrives(healer):
    domain = healer.pillar["mail_domain"]
    sender, recipient = (mc.created_account(healer.address, domain) for _ in range(2))
    # systemd would restart dovecot itself (Restart=always from the formula): switch that
    # off for this test only (a runtime drop-in, gone at reboot and removed below)
    healer.write_file(NO_RESTART, "[Service]\nRestart=no\n")
    healer.run(["systemctl", "daemon-reload"])
    try:
        # the client logged in before the failure; it sends while Dovecot is dead
        session = sender.smtp()
        since = now(healer)
        healer.run(["kill", "-KILL", str(main_pid(healer, "dovecot"))])
        wait_until(lambda: not active(healer, "dovecot"), 10, "dovecot survived SIGKILL")
        killed = time.monotonic()
        try:
            refused = session.sendmail(sender.addr, [recipient.addr], mc.encrypted(sender.addr, [recipient.addr]))
        finally:
            session.quit()
        assert refused == {}
        queued = healer.run(["postqueue", "-j"]).stdout
        assert recipient.addr in queued, "while Dovecot is down the message waits in Postfix's queue"

        wait_until(lambda: active(healer, "dovecot"), BOUND, f"dovecot still down after {BOUND} s")
        print(f"dovecot back after {time.monotonic() - killed:.1f} s")
        assert "chatmail selfheal: dovecot on heal1 reported not running; restarting it" in selfheal_log(healer, since)
        assert healer.read_file("/proc/1/comm")  # container alive; now deliver what waited:
        # Postfix retries deferred mail on its own after minimal_backoff_time (300 s by
        # default); a flush does the same now
        healer.run(["postqueue", "-f"])
        messages = mc.wait_for_messages(recipient, 1, timeout=30)
        assert len(messages) == 1, "the message queued while Dovecot was down was lost"
        assert mc.parse(messages[0])["From"] == sender.addr
    finally:
        healer.run(["rm", "-f", NO_RESTART])
        healer.run(["systemctl", "daemon-reload"])


def test_systemds_own_restart_drop_ins_are_in_place(healer):
    """Self-healing comes on top of systemd's: Restart=always for both mail daemons and the chatmaild units."""
    for unit in (
        "postfix@-",
        "dovecot",
        "chatmail-dicts",
        "filtermail",
    ):
        props = healer.run(["systemctl", "show", "-P", "Restart", unit]).stdout.strip()
        assert props == "always", unit
