"""A real Delta Chat client against a relay the formula built (spec 8.7 AC-9, AC-23, AC-25).

The client is deltachat-rpc-server (the Delta Chat core) in a network
namespace whose only link is the test bridge (dcclient.py).  Accounts come
from the relay's website, as a ``dcaccount:`` QR code gets them (POST
/new); the core then gets explicit transport settings (IMAP 993 and SMTP
465 over TLS, certificate checks off), because its own HTTPS client refuses
the relay's self-signed certificate when it fetches /new itself.
"""

from __future__ import annotations

import time

import pytest

import mailclient as mc
from dcclient import ClientNamespace, DeltaChatClient, transport
from harness import failed_states

pytestmark = [pytest.mark.system, pytest.mark.e2e]

EVENT_TIMEOUT = 60


@pytest.fixture(scope="module")
def dcrelay(relay):
    box = relay("dcrelay")
    result = box.apply(box.pillar)
    failed = failed_states(result)
    if failed or result.retcode:
        pytest.fail("the relay did not converge:\n" + "\n".join(f[:600] for f in failed))
    return box


@pytest.fixture(scope="module")
def dc(dcrelay, lab):
    domain = dcrelay.pillar["mail_domain"]
    with ClientNamespace(lab.bridge, {domain: dcrelay.address}) as namespace, \
            DeltaChatClient(namespace) as deltachat:
        yield deltachat


@pytest.fixture(scope="module")
def make_account(dc, dcrelay):
    """A Delta Chat account with credentials from the relay's /new, online."""
    domain = dcrelay.pillar["mail_domain"]

    def make():
        creds = mc.new_account_from_web(dcrelay.address, domain)
        account = dc.add_account()
        account.add_or_update_transport(transport(creds.addr, creds.password, domain))
        assert account.is_configured()
        account.bring_online()
        account.addr = creds.addr
        return account

    return make


def incoming_text(account, text: str):
    """A predicate: an incoming message with ``text``."""
    return lambda e: e.kind == "IncomingMsg" and account.get_message_by_id(e.msg_id).get_snapshot().text == text


def wait_for(account, predicate, timeout: float = EVENT_TIMEOUT):
    """The first event of ``account`` that ``predicate`` accepts (fails after ``timeout``)."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        event = account.wait_for_event()
        seen.append(event.kind)
        if event.kind == "Error":
            pytest.fail(f"core error: {event.msg}")
        if predicate(event):
            return event
    pytest.fail(f"no awaited event within {timeout} s; saw {seen[-20:]}")


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
