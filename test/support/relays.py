"""Setting up relays for tests: apply the formula to several at once, and let relays mail each other.

Relays on the test bridge are real MTAs for each other: Postfix looks up
MX records in the test DNS (through each relay's unbound, which forwards
the test zone), insists on a verified TLS certificate (smtp_tls_security_level
= verify) and the incoming filter refuses mail without a valid DKIM signature.  What the
public internet would provide, :func:`federate` provides on the bridge:

* trust: each relay's self-signed certificate goes into the others' CA
  store (standing in for a public CA), and Postfix is restarted, because
  Debian's Postfix copies the CA store into its chroot only when it starts;
* DNS: every record ``chatmail.dns_zone`` asks for (DKIM key, MTA-STS,
  SRV, SPF, DMARC, ...) goes into the test DNS, as an operator would
  publish them; the lab already serves each relay's A and MX.
"""

from __future__ import annotations

import threading
import time

import pytest

from harness import failed_states

from . import REPO

CERT = "/etc/ssl/certs/mailserver.pem"
# the unit of Postfix's master per Debian release (chatmail/parameters: postfix.unit)
POSTFIX_UNIT = {"12": "postfix@-", "13": "postfix"}
# what a container sees of the working tree through its bind mount and applies
FORMULA_DIRS = ("chatmail", "_modules", "_states", "_utils")


def apply_all(boxes) -> dict[str, list[str]]:
    """``state.apply chatmail`` on every box at once; failures by box name (empty lists: all fine)."""
    failures: dict[str, list[str]] = {}

    def apply(box):
        try:
            result = box.apply(box.pillar)
            failures[box.name] = failed_states(result) + ([f"retcode {result.retcode}"] if result.retcode else [])
        except Exception as exc:  # noqa: BLE001 - reported to the caller
            failures[box.name] = [repr(exc)]

    threads = [threading.Thread(target=apply, args=(box,)) for box in boxes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def require_converged(box, result, width: int = 1500):
    """``box`` if ``result`` (its state.apply) went through; else fail the test with the failed
    states and the journal of the units that failed."""
    failed = failed_states(result)
    if failed or result.retcode:
        pytest.fail(
            f"{box.name} did not converge:\n" + "\n".join(f[:width] for f in failed) + "\n" + box.failed_units_log()
        )
    return box


def federated(relay, lab, *names: str, releases: tuple[str | None, ...] = ()) -> list:
    """Relays ``names`` booted, applied at once and federated; fails the test if one does not converge.

    ``releases`` gives the Debian release of each relay in turn (None or
    missing: the ``relay`` factory's default, ``--relay-release``)."""
    boxes = [relay(name, release=(releases[i] if i < len(releases) else None)) for i, name in enumerate(names)]
    failures = apply_all(boxes)
    if any(failures.values()):
        logs = "\n".join(box.failed_units_log() for box in boxes if failures[box.name])
        pytest.fail(f"the relays did not converge: {failures}\n{logs}")
    federate(lab, boxes)
    return boxes


def federate(lab, boxes) -> None:
    """Make every relay trust the others' certificates and publish every relay's DNS records."""
    trust_each_other(boxes)
    for box in boxes:
        publish_zone(lab, box)


def trust_each_other(boxes) -> None:
    """Each relay's self-signed certificate into the others' system CA store."""
    certs = {box.name: box.read_file(CERT) for box in boxes}
    for box in boxes:
        for name, pem in certs.items():
            if name != box.name:
                box.write_file(f"/usr/local/share/ca-certificates/chatmail-test-{name}.crt", pem)
        box.run(["update-ca-certificates"])
        # Debian copies the CA store into Postfix's chroot when postfix@- starts
        # (configure-instance.sh); a reload would not see the new certificates
        box.run(["systemctl", "restart", POSTFIX_UNIT[box.release]])


def publish_zone(lab, box) -> None:
    """Serve what ``chatmail.dns_zone`` of ``box`` asks for (records the lab has stay as they are)."""
    have = {(name, rtype) for name, rtype, _ in lab.dns.records}
    for record in box.salt_call("chatmail.dns_zone")["local"]["records"]:
        if (record["name"], record["type"]) not in have:
            lab.dns.records.append((record["name"], record["type"], record["value"]))
    lab.dns.reload()


def tree_state() -> dict[str, tuple[int, int]]:
    """(mtime, size) of every file of the formula the container sees through its bind mount.

    Other people may edit the working tree while a test runs; an apply
    after such an edit rightly changes things, so "a second apply changes
    nothing" is judged on an apply whose tree did not change since the
    one before it.
    """
    found = {}
    for top in FORMULA_DIRS:
        for path in (REPO / top).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                st = path.stat()
                found[str(path)] = (st.st_mtime_ns, st.st_size)
    return found


def reapply_on_same_tree(box, pillar, tree_after_last_apply, attempts: int = 3):
    """Apply again; if the tree changed since the last apply, apply once more (up to ``attempts``)."""
    for _ in range(attempts):
        changed_tree = tree_state() != tree_after_last_apply
        result = box.apply(pillar)
        tree_after_last_apply = tree_state()
        if not changed_tree:
            return result
    return result


def kill_until_systemd_gives_up(box, unit: str, kills: int = 15) -> None:
    """SIGKILL ``unit`` every 0.3 s, each time it is back, until its start limit leaves it failed."""
    box.run(f"for i in $(seq {kills}); do systemctl kill -s KILL {unit} 2>/dev/null; sleep 0.3; done")
    # Restart=always would be "activating" again; failed is systemd giving up (Result keeps "signal")
    assert box.run(["systemctl", "show", "-p", "ActiveState", "--value", unit]).stdout.strip() == "failed"


def wait_active(box, unit: str, timeout: float = 60) -> str:
    """``unit``'s state once it is active, or when ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while box.run(["systemctl", "is-active", "--quiet", unit], check=False).returncode and time.monotonic() < deadline:
        time.sleep(1)
    return box.run(["systemctl", "is-active", unit], check=False).stdout.strip()
