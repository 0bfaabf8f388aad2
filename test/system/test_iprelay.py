"""An IP-only relay (upstream 1.12): mail_domain is the container's IPv4 address, no DNS at all.

The relay's addresses are ``user@[IP]``, its certificate is self-signed for
the IP, nothing is DKIM-signed.  The website hands a browser a dclogin:
link and its QR code; two real Delta Chat clients (deltachat-rpc-server in
a namespace whose only link is the test bridge, no default route, no DNS)
log in with those codes and exchange an end-to-end encrypted message.
"""

from __future__ import annotations

import http.client
import json
import re
import ssl

import pytest

from harness import changed_states
from harness.guard import check_target
from support import mailclient as mc
from support.dcclient import ClientNamespace, DeltaChatClient, transport, wait_for
from support.mailclient import tls_context
from support.relays import publish_zone, require_converged, trust_each_other

pytestmark = [pytest.mark.system, pytest.mark.e2e]


@pytest.fixture(scope="module")
def box(relay):
    box = relay("iprelay")
    box.pillar["mail_domain"] = box.address
    box.pillar.pop("tls_mode", None)  # an IP means self-signed, as upstream
    return require_converged(box, box.apply(box.pillar))


def https(box, method: str, path: str, accept: str = "") -> tuple[int, dict[str, str], str]:
    """A request to the relay's website by its IP (no SNI, as a browser sends for an IP)."""
    conn = http.client.HTTPSConnection(check_target(box.address), 443, timeout=30, context=tls_context())
    try:
        headers = {"Content-Length": "0"} if method == "POST" else {}
        if accept:
            headers["Accept"] = accept
        conn.request(method, path, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


def new_account(box) -> dict:
    status, _, body = https(box, "POST", "/new")
    assert status == 200, body
    creds = json.loads(body)
    assert creds["email"].endswith(f"@[{box.address}]")
    return creds


def dclogin(box) -> str:
    return new_account(box)["dclogin_url"]


def creds_of(box) -> tuple[str, str]:
    creds = new_account(box)
    return creds["email"], creds["password"]


def test_certificate_is_for_the_ip(box):
    pem = ssl.get_server_certificate((check_target(box.address), 443))
    text = box.run(["openssl", "x509", "-noout", "-ext", "subjectAltName"], input=pem).stdout
    assert f"IP Address:{box.address}" in text, text


def test_web_page_gives_a_browser_a_dclogin_link_and_qr_code(box):
    status, headers, _ = https(box, "GET", "/new")
    assert status == 303 and headers["Location"].endswith("/")  # not dcaccount:, which cannot work here
    status, _, index = https(box, "GET", "/")
    assert status == 200 and 'form method="post" action="/new"' in index and box.address in index
    # what the form's button gets (a browser asks for text/html)
    status, headers, page = https(box, "POST", "/new", accept="text/html,*/*;q=0.8")
    assert status == 200 and headers["Content-Type"].startswith("text/html"), page[:300]
    link = re.search(r'href="(dclogin:[^"]+)"', page)
    assert link and f"ih={box.address}" in link.group(1) and "ic=3" in link.group(1)
    assert "<svg" in page, "no QR code on the page"


@pytest.fixture(scope="module")
def dc(box, lab):
    with ClientNamespace(lab.bridge, {}) as namespace, DeltaChatClient(namespace) as deltachat:
        yield deltachat


def account_from_qr(dc, box):
    creds = new_account(box)
    account = dc.add_account()
    account.add_transport_from_qr(creds["dclogin_url"])
    assert account.is_configured()
    account.bring_online()
    account.addr = creds["email"]
    return account


def test_delta_chat_profiles_from_dclogin_codes_exchange_encrypted_mail(dc, box):
    alice, bob = account_from_qr(dc, box), account_from_qr(dc, box)
    literal = f"@[{box.address}]"
    chat = alice.create_chat(bob)
    chat.send_text("hello over an IP")
    event = wait_for(
        bob,
        lambda e: e.kind == "IncomingMsg" and bob.get_message_by_id(e.msg_id).get_snapshot().text == "hello over an IP",
    )
    message = bob.get_message_by_id(event.msg_id).get_snapshot()
    assert message.show_padlock, "the message was not end-to-end encrypted"
    # the core took the address literal as the sender's address
    assert message.sender.get_snapshot().address == alice.addr and alice.addr.endswith(literal)
    chat_back = bob.create_chat(alice)
    chat_back.send_text("hello back")
    wait_for(
        alice,
        lambda e: e.kind == "IncomingMsg" and alice.get_message_by_id(e.msg_id).get_snapshot().text == "hello back",
    )


def test_raw_mail_on_the_literal_is_stored_unsigned(box):
    """SMTP submission and IMAP with user@[IP] logins; nothing is DKIM-signed (no DNS for a key)."""
    sender = mc.Account(box.address, *creds_of(box))
    recipient = mc.Account(box.address, *creds_of(box))
    recipient.imap().logout()  # the first login creates the account
    assert sender.send([recipient.addr], mc.encrypted(sender.addr, [recipient.addr])) == {}
    (stored,) = mc.wait_for_messages(recipient)
    assert f"From: <{sender.addr}>".encode() in stored and b"BEGIN PGP MESSAGE" in stored
    assert b"DKIM-Signature" not in stored


@pytest.fixture(scope="module")
def peer(relay, lab, box):
    """A relay with a domain (and DKIM) on the same bridge: the two mail each other over port 25."""
    peer = relay("ippeer")
    require_converged(peer, peer.apply(peer.pillar))
    trust_each_other([peer, box])  # the IP relay verifies the peer's certificate; the peer only encrypts
    publish_zone(lab, peer)
    return peer


def incoming(account, text: str):
    return lambda e: e.kind == "IncomingMsg" and account.get_message_by_id(e.msg_id).get_snapshot().text == text


def test_mail_between_an_ip_only_relay_and_a_domain_relay(dc, box, peer):
    """Out: unsigned, accepted by the peer because it comes from the IP itself; in: DKIM-signed."""
    alice = account_from_qr(dc, box)
    creds = mc.new_account_from_web(peer.address, peer.pillar["mail_domain"])
    carol = dc.add_account()
    carol.add_or_update_transport(transport(creds.addr, creds.password, peer.address))
    carol.bring_online()
    chat = alice.create_chat(carol)
    chat.send_text("from an IP")
    event = wait_for(carol, incoming(carol, "from an IP"))
    assert carol.get_message_by_id(event.msg_id).get_snapshot().show_padlock
    carol.create_chat(alice).send_text("to an IP")
    event = wait_for(alice, incoming(alice, "to an IP"))
    assert alice.get_message_by_id(event.msg_id).get_snapshot().show_padlock
    journal = peer.run(["journalctl", "-u", "filtermail", "--no-pager", "-q"], check=False).stdout
    assert f"accepted without DKIM from the IP-only relay [{box.address}]" in journal


def test_second_apply_changes_nothing(box):
    result = box.apply(box.pillar)
    require_converged(box, result)
    assert changed_states(result) == []
