"""Real Delta Chat clients on relays the formula built (design.md §8.7 AC-9, AC-14, AC-23, AC-25, AC-26).

The client is deltachat-rpc-server (the Delta Chat core) in a network
namespace whose only link is the test bridge (dcclient.py).  Accounts come
from the relay's website, as a ``dcaccount:`` QR code gets them (POST
/new); the core then gets explicit transport settings (IMAP 993 and SMTP
465 over TLS, certificate checks off), because its own HTTPS client refuses
the relay's self-signed certificate when it fetches /new itself.

Two relays, applied at once, federated on the bridge (relays.py): mail
between them goes over port 25 with verified TLS and DKIM, as on the
internet.
"""

from __future__ import annotations

import time

import pytest
from deltachat_rpc_client.const import MessageState

from support import mailclient as mc
from support.dcclient import ClientNamespace, DeltaChatClient, account_from_web, wait_for
from support.postfixlog import delivery_delays
from support.relays import federated

pytestmark = [pytest.mark.system, pytest.mark.e2e]


@pytest.fixture(scope="module")
def relays(relay, lab):
    """Two relays that can mail each other (trusted certificates, their DNS records in the test DNS)."""
    return federated(relay, lab, "dcrelay", "dcrelay2")


@pytest.fixture(scope="module")
def dcrelay(relays):
    return relays[0]


@pytest.fixture(scope="module")
def dc(relays, lab):
    hosts = {box.pillar["mail_domain"]: box.address for box in relays}
    with ClientNamespace(lab.bridge, hosts) as namespace, DeltaChatClient(namespace) as deltachat:
        yield deltachat


@pytest.fixture(scope="module")
def make_account(dc, dcrelay):
    """A Delta Chat account with credentials from a relay's /new (the first relay by default), online."""

    def make(box=dcrelay):
        return account_from_web(dc, box)

    return make


def incoming_text(account, text: str):
    """A predicate: an incoming message with ``text``."""
    return lambda e: e.kind == "IncomingMsg" and account.get_message_by_id(e.msg_id).get_snapshot().text == text


def test_three_accounts_configure_from_the_relay_website(make_account, dcrelay):
    """AC-9."""
    accounts = [make_account() for _ in range(3)]
    domain = dcrelay.pillar["mail_domain"]
    assert all(a.is_configured() and a.addr.endswith("@" + domain) for a in accounts)
    assert len({a.addr for a in accounts}) == 3


def test_encrypted_message_is_received(make_account):
    """AC-23: a one-to-one message arrives, end-to-end encrypted."""
    alice, bob = make_account(), make_account()
    chat = alice.create_chat(bob)  # from bob's vCard, with his key
    started = time.monotonic()
    chat.send_text("hello bob")
    event = wait_for(bob, incoming_text(bob, "hello bob"))
    latency = time.monotonic() - started
    message = bob.get_message_by_id(event.msg_id).get_snapshot()
    assert message.text == "hello bob"
    assert message.show_padlock, "the message was not end-to-end encrypted"
    assert message.sender.get_snapshot().address == alice.addr
    print(f"send -> IncomingMsg at the peer: {latency * 1000:.0f} ms")

    # bob accepts the contact request and answers the same way
    message.chat.accept()
    message.chat.send_text("hello alice")
    event = wait_for(alice, incoming_text(alice, "hello alice"))
    reply = alice.get_message_by_id(event.msg_id).get_snapshot()
    assert (reply.text, reply.show_padlock) == ("hello alice", True)


def test_securejoin_completes_on_both_sides(make_account):
    """AC-25 on one relay: both sides finish the handshake and hold each other's key."""
    inviter, joiner = make_account(), make_account()
    started = time.monotonic()
    joiner.secure_join(inviter.get_qr_code())
    done_inviter = wait_for(inviter, lambda e: e.kind == "SecurejoinInviterProgress" and e.progress == 1000)
    done_joiner = wait_for(joiner, lambda e: e.kind == "SecurejoinJoinerProgress" and e.progress == 1000)
    print(f"securejoin: {(time.monotonic() - started) * 1000:.0f} ms")
    for account, event, peer in ((inviter, done_inviter, joiner), (joiner, done_joiner, inviter)):
        contact = account.get_contact_by_id(event.contact_id).get_snapshot()
        assert contact.address == peer.addr
        assert contact.is_key_contact and contact.e2ee_avail
    # the chat they set up carries encrypted messages
    chat = joiner.get_chat_by_contact(joiner.get_contact_by_id(done_joiner.contact_id))
    chat.send_text("joined")
    event = wait_for(inviter, incoming_text(inviter, "joined"))
    message = inviter.get_message_by_id(event.msg_id).get_snapshot()
    assert (message.text, message.show_padlock) == ("joined", True)


def test_each_relay_finds_its_published_records(relays):
    """The records dns_zone asks for are what the lab serves: dns_check through the relay's unbound is clean."""
    for box in relays:
        check = box.salt_call("chatmail.dns_check", "timeout=3")["local"]
        assert check["ok"] is True and check["required"] == [] and check["recommended"] == [], check


def test_mail_between_relays_passes_dkim_and_tls(relays):
    """Port 25 relay to relay: verified TLS, a DKIM signature the receiver checks (then strips)."""
    first, second = relays
    sender = mc.created_account(first.address, first.pillar["mail_domain"])
    recipient = mc.created_account(second.address, second.pillar["mail_domain"])
    assert sender.send([recipient.addr], mc.encrypted(sender.addr, [recipient.addr])) == {}
    (raw,) = mc.wait_for_messages(recipient, 1)
    message = mc.parse(raw)
    assert message["From"].addresses[0].addr_spec == sender.addr
    # verified signatures, their results and the Received trail are removed before delivery
    assert message["DKIM-Signature"] is None and message["Authentication-Results"] is None
    assert first.address not in " ".join(message.get_all("Received", []))
    # it came over TLS: Postfix sends only after verifying the certificate (security level verify)
    assert first.run(["postconf", "-h", "smtp_tls_security_level"]).stdout.strip() == "verify"


def test_relay_to_relay_connections_set_up_without_a_delayed_ack_stall(relays):
    """Each message to another relay sets up its connection (TCP, EHLO, TLS) in well under
    the 40 ms a resumed TLS session costs: Nagle holds EHLO until the peer's delayed ACK."""
    first, second = relays
    senders = [mc.created_account(first.address, first.pillar["mail_domain"]) for _ in range(5)]
    recipient = mc.created_account(second.address, second.pillar["mail_domain"])
    since = first.run(["date", "+%s"]).stdout.strip()
    for count, sender in enumerate(senders, 1):  # one at a time: each its own connection
        assert sender.send([recipient.addr], mc.encrypted(sender.addr, [recipient.addr])) == {}
        assert len(mc.wait_for_messages(recipient, count)) == count
    delays = delivery_delays(first, since)
    # the last ones: ``since`` has whole seconds, so an earlier test's delivery may be in it
    setups = [c for _, _, c, _ in delays.get(second.pillar["mail_domain"], [])][-len(senders) :]
    assert len(setups) == len(senders), delays
    # Postfix logs two digits: a stalled setup is 0.04-0.05 s, a full handshake 0-0.01 s
    assert sorted(setups)[len(setups) // 2] < 0.03, setups


def test_securejoin_and_chat_across_relays(make_account, relays):
    """AC-14 and AC-25: accounts on two relays set up contact and exchange encrypted messages."""
    inviter, joiner = make_account(relays[0]), make_account(relays[1])
    started = time.monotonic()
    joiner.secure_join(inviter.get_qr_code())
    wait_for(inviter, lambda e: e.kind == "SecurejoinInviterProgress" and e.progress == 1000)
    done = wait_for(joiner, lambda e: e.kind == "SecurejoinJoinerProgress" and e.progress == 1000)
    print(f"securejoin across relays: {(time.monotonic() - started) * 1000:.0f} ms")
    chat = joiner.get_chat_by_contact(joiner.get_contact_by_id(done.contact_id))
    chat.send_text("from the other relay")
    event = wait_for(inviter, incoming_text(inviter, "from the other relay"))
    message = inviter.get_message_by_id(event.msg_id).get_snapshot()
    assert message.show_padlock
    message.chat.send_text("back again")
    event = wait_for(joiner, incoming_text(joiner, "back again"))
    assert joiner.get_message_by_id(event.msg_id).get_snapshot().show_padlock


def test_read_receipts_between_relays_cause_no_message_errors(make_account, relays):
    """AC-26: a read receipt (an encrypted MDN) crosses relays; the sender's message ends up 'read', error-free."""
    inviter, joiner = make_account(relays[0]), make_account(relays[1])
    joiner.secure_join(inviter.get_qr_code())
    done = wait_for(inviter, lambda e: e.kind == "SecurejoinInviterProgress" and e.progress == 1000)
    wait_for(joiner, lambda e: e.kind == "SecurejoinJoinerProgress" and e.progress == 1000)
    chat = inviter.get_chat_by_contact(inviter.get_contact_by_id(done.contact_id))
    sent = chat.send_text("please read me")
    event = wait_for(joiner, incoming_text(joiner, "please read me"))
    joiner.mark_seen_messages([joiner.get_message_by_id(event.msg_id)])
    wait_for(inviter, lambda e: e.kind == "MsgRead" and e.msg_id == sent.id)
    snapshot = sent.get_snapshot()
    assert snapshot.state == MessageState.OUT_MDN_RCVD
    assert not snapshot.error, snapshot.error
    received = joiner.get_message_by_id(event.msg_id).get_snapshot()
    assert received.state == MessageState.IN_SEEN and not received.error
