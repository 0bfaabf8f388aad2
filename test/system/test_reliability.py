"""Nothing refused under load, nothing lost or late when a daemon dies: two relays, real faults.

rel1's users send to recipients on rel1 (local delivery) and on rel2 (across
the bridge, DKIM-signed by rel1 and verified by rel2's incoming filter), so
every daemon on the mail path carries traffic.  For a fault, one daemon is
killed with SIGKILL on both relays at once while the senders keep sending;
then every message that got a 250 must be in its mailbox, at the latest
10 s after the daemon is back (docs/reliability.md).  A client may see a
4xx or a dropped connection during the fault (it tries again), never a 5xx.
"""

from __future__ import annotations

import time

import pytest

from support import mailclient as mc
from support.loadgen import DAEMONS, Load, kill_and_wait_back, latency_line
from support.relays import federated

pytestmark = pytest.mark.system

LATE_AFTER_RETURN_S = 10.0


@pytest.fixture(scope="module")
def pair(relay, lab):
    return federated(relay, lab, "rel1", "rel2")


def accounts(pair, senders: int, local: int = 3, remote: int = 2):
    first, second = pair
    domain1, domain2 = first.pillar["mail_domain"], second.pillar["mail_domain"]
    send = [mc.created_account(first.address, domain1) for _ in range(senders)]
    rcpts = [mc.created_account(first.address, domain1) for _ in range(local)] + [
        mc.created_account(second.address, domain2) for _ in range(remote)
    ]
    boxes = {r.addr: (first if r.addr.endswith("@" + domain1) else second) for r in rcpts}
    return send, rcpts, boxes


def test_twenty_senders_nothing_refused_nothing_lost(pair):
    senders, rcpts, boxes = accounts(pair, 20)
    result = Load(pair[0], senders, rcpts, 10, boxes, seed=1).run()
    print(
        f"\n20 senders x 10: accepted {len(result.accepted)}/{result.attempted}, refused {dict(result.refused)}, "
        f"lost {len(result.lost)}; {latency_line(result.latencies)}"
    )
    assert dict(result.refused) == {}, result.refusal_texts
    assert len(result.accepted) == result.attempted
    assert result.lost == []


def trail(pair, message_ids: list[bytes]) -> str:
    """What the relays' journals and queues say about these messages (for a failure message)."""
    out = []
    for box in pair:
        for mid in message_ids[:3]:
            pattern = mid.decode().strip("<>")
            log = box.run(
                [
                    "sh",
                    "-c",
                    f"journalctl --no-pager -o short-monotonic | grep -F '{pattern}' | tail -5; "
                    "ids=$(journalctl --no-pager -o cat | grep -F '" + pattern + "' | grep -oE '[0-9A-F]{8,}:' "
                    "| sort -u | tr -d :); for q in $ids; do journalctl --no-pager -o short-monotonic "
                    '| grep -F "$q" | tail -12; done',
                ],
                check=False,
            ).stdout
            out.append(f"--- {box.name} {pattern}\n{log}")
        out.append(f"--- {box.name} queue\n" + box.run(["postqueue", "-p"], check=False).stdout[-2000:])
    return "\n".join(out)


@pytest.mark.parametrize("daemon", list(DAEMONS))
def test_a_killed_daemon_costs_no_message(pair, daemon):
    senders, rcpts, boxes = accounts(pair, 10)
    load = Load(pair[0], senders, rcpts, 10, boxes, seed=2 + list(DAEMONS).index(daemon), pause=0.3).start()
    time.sleep(1.2)
    faults = [kill_and_wait_back(box, daemon) for box in pair]
    back_at = max(killed + back for killed, back in faults)
    result = load.wait(deliver_timeout=60)
    late = {
        mid: result.stored[mid] - max(t, back_at)
        for mid, t in result.accepted.items()
        if mid in result.stored and result.stored[mid] - max(t, back_at) > LATE_AFTER_RETURN_S
    }
    print(
        f"\n{daemon}: back after {', '.join(f'{b:.1f}' for _, b in faults)} s; "
        f"accepted {len(result.accepted)}/{result.attempted}, refused {dict(result.refused)}, "
        f"lost {len(result.lost)}, late {len(late)}; {latency_line(result.latencies) if result.latencies else ''}"
    )
    assert all(back < 30 for _, back in faults), f"{daemon} did not come back: {faults}"
    assert result.refused.get("5xx", 0) == 0, result.refusal_texts
    assert result.lost == [], f"{len(result.lost)} accepted messages never arrived:\n" + trail(pair, result.lost)
    assert late == {}, f"{len(late)} messages arrived more than {LATE_AFTER_RETURN_S} s after {daemon} was back"


def test_an_apply_that_restarts_the_daemons_under_traffic_costs_no_message(pair):
    """state.apply finds the OpenDKIM, Postfix and Dovecot configs changed (edited by hand here),
    writes them back and restarts the three daemons while 10 senders send."""
    first = pair[0]
    for path in ("/etc/opendkim.conf", "/etc/postfix/main.cf", "/etc/dovecot/dovecot.conf"):
        first.run(["sh", "-c", f"echo '# local edit' >> {path}"])
    senders, rcpts, boxes = accounts(pair, 10)
    load = Load(first, senders, rcpts, 10, boxes, seed=50, pause=0.3).start()
    time.sleep(1.0)
    applied = first.apply(first.pillar)
    result = load.wait(deliver_timeout=60)
    restarted = sorted(
        sid
        for sid, state in applied.states.items()
        if "service_|-" in sid and state.get("changes") and state.get("result")
    )
    print(
        f"\napply under load: restarted {restarted}; accepted {len(result.accepted)}/{result.attempted}, "
        f"refused {dict(result.refused)}, lost {len(result.lost)}"
    )
    assert (
        any("opendkim" in sid for sid in restarted)
        and any("postfix" in sid for sid in restarted)
        and any("dovecot" in sid for sid in restarted)
    ), restarted
    assert result.refused.get("5xx", 0) == 0, result.refusal_texts
    assert result.lost == []
