"""Delta Chat delivery latency between real clients: send_text -> IncomingMsg at the peer.

Shared by test/system/test_dovecot_rebuilt.py and bench/bench_deltachat.py,
so the figure the test asserts and the one the benchmark prints are taken
the same way: one warm-up message per chat (it makes a contact request,
which is accepted), then ``samples`` messages ``gap`` seconds apart, so
each finds the peer idle.  Needs a lab (test/harness) and relays already
federated (support.relays.federate).
"""

from __future__ import annotations

import shutil
import statistics
import time
from dataclasses import dataclass

from harness.dovecotbuild import file_root
from support.dcclient import ClientNamespace, DeltaChatClient, account_from_web, wait_for

SAMPLES = 12  # messages per path; the warm-up of each chat is not counted
GAP = 1.0  # seconds between messages
FILE_ROOT_MOUNT = "/srv/dovecot-rebuilt"


def serve_rebuilt(box, debs) -> None:
    """Serve the rebuilt .debs to ``box`` as a master's file server would: an extra file root."""
    rel = debs.relative_to(file_root("12"))
    shutil.copytree(debs, box.root / FILE_ROOT_MOUNT.lstrip("/") / rel)
    box.write_file(
        "/etc/salt/minion.d/zz-dovecot-rebuilt.conf",
        f"file_roots:\n  base:\n    - /srv/formula\n    - {FILE_ROOT_MOUNT}\n",
    )


def incoming(account, text: str):
    return lambda e: e.kind == "IncomingMsg" and account.get_message_by_id(e.msg_id).get_snapshot().text == text


def latencies(sender, receiver, label: str, samples: int = SAMPLES, gap: float = GAP) -> list[float]:
    """Milliseconds from send_text to IncomingMsg at ``receiver``, for ``samples`` messages after a warm-up."""
    chat = sender.create_chat(receiver)
    chat.send_text(f"{label} warm-up")
    event = wait_for(receiver, incoming(receiver, f"{label} warm-up"))
    receiver.get_message_by_id(event.msg_id).get_snapshot().chat.accept()
    measured = []
    for i in range(samples):
        time.sleep(gap)
        text = f"{label} {i}"
        started = time.monotonic()
        chat.send_text(text)
        wait_for(receiver, incoming(receiver, text))
        measured.append((time.monotonic() - started) * 1000)
    return measured


@dataclass
class PairLatency:
    one: list[float]  # sender and receiver on the first relay
    two: list[float]  # sender on the first, receiver on the second

    @property
    def p50_one(self) -> float:
        return statistics.median(self.one)

    @property
    def p50_two(self) -> float:
        return statistics.median(self.two)

    def summary(self) -> str:
        return (
            f"p50 one relay {self.p50_one:.0f} ms (min {min(self.one):.0f}, max {max(self.one):.0f}),"
            f" across two {self.p50_two:.0f} ms (min {min(self.two):.0f}, max {max(self.two):.0f}),"
            f" n={len(self.one)} each"
        )


def measure_pair(lab, first, second, label: str, tag: str, samples: int = SAMPLES) -> PairLatency:
    """Three fresh accounts (two on ``first``, one on ``second``) in one client namespace ``tag``."""
    hosts = {box.pillar["mail_domain"]: box.address for box in (first, second)}
    with ClientNamespace(lab.bridge, hosts, tag=tag) as namespace, DeltaChatClient(namespace) as dc:
        alice, bob, carol = account_from_web(dc, first), account_from_web(dc, first), account_from_web(dc, second)
        one = latencies(alice, bob, f"{label} one relay", samples)
        two = latencies(alice, carol, f"{label} two relays", samples)
    return PairLatency(one, two)
