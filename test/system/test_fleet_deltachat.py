"""Delta Chat across a fleet: an account on one relay and an account on another talk (design.md §8.7 AC-14, AC-25).

The first relay runs Debian 12, the second Debian 13: the clients' end-to-end
run covers both releases, and mail crosses between them both ways.

Two relays, each applied masterless and made peers of each other the way
the internet would (relays.py: each trusts the other's self-signed
certificate, each relay's DKIM key is in the test DNS).  Each account runs
in its own deltachat-rpc-server, in its own bridge-only network namespace
(dcclient.py) whose hosts file names only *its* relay: a client cannot
reach the other relay, so whatever arrives crossed relay to relay on port 25.

Core 2.65 has no "verified" flag on chats or contacts any more: a securejoin
counts as done when both sides report progress 1000 and each holds the
other's key fingerprint.  The durations are printed (not asserted) so they
can be compared with upstream's figures across two relays (securejoin
2.7 s, message p50 ~1 s back to back, 0.58-0.64 s with 2 s between).
"""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass

import pytest

from support.dcclient import EVENT_TIMEOUT, ClientNamespace, DeltaChatClient, account_from_web, wait_for
from support.relays import federated

pytestmark = [pytest.mark.system, pytest.mark.e2e]

BACK_TO_BACK = 10  # upstream's send_10_receive_10; more would meet max_user_send_burst_size (10)
SPACED, SPACING = 5, 2.0


@pytest.fixture(scope="module")
def relays(relay, lab):
    """Two relays that can mail each other (trusted certificates, their DNS records in the test DNS):
    a Debian 12 relay and a Debian 13 relay, so every run shows the two releases federate."""
    return federated(relay, lab, "fdc1", "fdc2", releases=("12", "13"))


def online_account(lab, box, tag: str):
    """A client of its own (namespace knowing only ``box``) with one account from ``box``'s /new."""
    domain = box.pillar["mail_domain"]
    namespace = ClientNamespace(lab.bridge, {domain: box.address}, tag=tag).create()
    client = DeltaChatClient(namespace)
    try:
        account = account_from_web(client.start(), box)
    except BaseException:
        client.stop()
        namespace.delete()
        raise
    return account, client, namespace


@pytest.fixture(scope="module")
def pair(relays, lab):
    """(alice on relay 1, bob on relay 2), each in its own client."""
    made = []
    try:
        for tag, box in zip("12", relays):
            made.append(online_account(lab, box, tag))
        yield tuple(account for account, _, _ in made)
    finally:
        for _, client, namespace in made:
            client.stop()
            namespace.delete()


@dataclass
class Joined:
    inviter_contact: object  # the joiner as a Contact of the inviter
    joiner_contact: object  # the inviter as a Contact of the joiner
    seconds: float


@pytest.fixture(scope="module")
def joined(pair) -> Joined:
    """bob scans alice's invitation QR code; both sides run the handshake to its end."""
    alice, bob = pair
    started = time.monotonic()
    bob.secure_join(alice.get_qr_code())
    done_alice = wait_for(alice, lambda e: e.kind == "SecurejoinInviterProgress" and e.progress == 1000)
    done_bob = wait_for(bob, lambda e: e.kind == "SecurejoinJoinerProgress" and e.progress == 1000)
    seconds = time.monotonic() - started
    print(f"\nsecurejoin across relays: {seconds:.2f} s (upstream: 2.7 s)")
    return Joined(alice.get_contact_by_id(done_alice.contact_id), bob.get_contact_by_id(done_bob.contact_id), seconds)


def own_fingerprint(account) -> str:
    """The account's key fingerprint, as its own invitation QR code carries it."""
    match = re.search(r"(?:#|OPENPGP4FPR:)([0-9A-Fa-f]{40})\b", account.get_qr_code())
    assert match, account.get_qr_code()
    return match.group(1).upper()


def fingerprints_held(contact) -> str:
    """The contact's encryption info (both fingerprints, grouped by spaces), as one hex string."""
    return re.sub(r"\s", "", contact.get_encryption_info()).upper()


def received(account, texts: set[str], timeout: float = EVENT_TIMEOUT) -> dict[str, tuple[float, object]]:
    """Wait until every text in ``texts`` came in: {text: (monotonic arrival time, message snapshot)}."""
    arrived: dict[str, tuple[float, object]] = {}

    def note(event) -> bool:
        if event.kind == "IncomingMsg":
            snapshot = account.get_message_by_id(event.msg_id).get_snapshot()
            if snapshot.text in texts:
                arrived[snapshot.text] = (time.monotonic(), snapshot)
        return set(arrived) == texts

    wait_for(account, note, timeout)
    return arrived


def latencies(sent: dict[str, float], arrived: dict[str, tuple[float, object]]) -> list[float]:
    return sorted(arrived[text][0] - sent[text] for text in sent)


def summary(values: list[float]) -> str:
    return f"p50 {statistics.median(values) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms (n={len(values)})"


def test_relays_are_separate_for_the_clients(pair, relays):
    alice, bob = pair
    assert alice.addr.endswith("@" + relays[0].pillar["mail_domain"])
    assert bob.addr.endswith("@" + relays[1].pillar["mail_domain"])


def test_securejoin_across_relays_completes_on_both_sides(pair, joined):
    """AC-25: both ends reach progress 1000 and each holds the other's key fingerprint."""
    alice, bob = pair
    for contact, peer in ((joined.inviter_contact, bob), (joined.joiner_contact, alice)):
        snapshot = contact.get_snapshot()
        assert snapshot.address == peer.addr
        assert snapshot.is_key_contact and snapshot.e2ee_avail, snapshot
    alice_fpr, bob_fpr = own_fingerprint(alice), own_fingerprint(bob)
    assert alice_fpr != bob_fpr
    assert bob_fpr in fingerprints_held(joined.inviter_contact)
    assert alice_fpr in fingerprints_held(joined.joiner_contact)


def test_encrypted_messages_both_ways_across_relays(pair, joined):
    """AC-14: the verified chat carries messages relay 2 -> relay 1 and back, each end-to-end encrypted."""
    alice, bob = pair
    to_alice = joined.joiner_contact.create_chat()
    to_bob = joined.inviter_contact.create_chat()

    for sender, chat, recipient, chat_at_recipient in ((bob, to_alice, alice, to_bob), (alice, to_bob, bob, to_alice)):
        text = f"hello from {sender.addr}"
        chat.send_text(text)
        ((_, message),) = received(recipient, {text}).values()
        assert message.show_padlock, f"{text!r} was not end-to-end encrypted"
        assert message.sender.get_snapshot().address == sender.addr
        assert message.chat_id == chat_at_recipient.id  # the chat the handshake set up

    # latency: back to back, then spaced, as upstream measured (printed, not asserted)
    sent = {}
    for i in range(BACK_TO_BACK):
        sent[f"burst {i}"] = time.monotonic()
        to_bob.send_text(f"burst {i}")
    arrived = received(bob, set(sent))
    assert all(message.show_padlock for _, message in arrived.values())
    burst = latencies(sent, arrived)

    spaced = []
    for i in range(SPACED):
        time.sleep(SPACING)
        started = time.monotonic()
        to_alice.send_text(f"spaced {i}")
        (arrival,) = received(alice, {f"spaced {i}"}).values()
        assert arrival[1].show_padlock
        spaced.append(arrival[0] - started)
    print(f"\nsend -> IncomingMsg across relays, {BACK_TO_BACK} back to back: {summary(burst)} (upstream p50 ~1.0 s)")
    print(f"send -> IncomingMsg across relays, {SPACING:.0f} s apart: {summary(spaced)} (upstream p50 0.58-0.64 s)")
