"""The attack suite: hostile input against a relay in a container, refused with the right code.

One relay for the module.  Each test plays one class of attack from the
host over the container's bridge (login names and passwords, sender
forgery, MIME/OpenPGP shapes that smuggle cleartext, HTTP floods, AUTH
before STARTTLS, VRFY/EXPN) and asserts the answer a client gets; the last test checks
that the relay still serves a normal user after all of it.  What is
refused where is in docs/security.md.
"""

from __future__ import annotations

import smtplib
import socket

import pytest

from harness import check_target
from support import mailclient as mc
from support.relays import require_converged

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def live(relay):
    box = relay("attack1")
    return require_converged(box, box.apply(box.pillar), width=600)


@pytest.fixture(scope="module")
def domain(live) -> str:
    return live.pillar["mail_domain"]


def raw_login(host: str, port: int, user: bytes, password: bytes) -> bytes:
    """IMAP LOGIN with both arguments as literals (any byte, as a hostile client sends them)."""
    check_target(host)
    ctx = mc.tls_context("imap" if port == 443 else None)
    with socket.create_connection((host, port), timeout=30) as raw, ctx.wrap_socket(raw) as sock:
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"a LOGIN {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(user), user, len(password), password))
        return f.readline()


HOSTILE_LOGINS = {
    "consecutive dots": ("xxx..xxxx", b"abcdefghijklmnop"),
    "trailing dot": ("xxxxxxxx.", b"abcdefghijklmnop"),
    "leading dot": (".xxxxxxxx", b"abcdefghijklmnop"),
    "300-char local part": ("x" * 300, b"abcdefghijklmnop"),
    "password byte 0xFF": ("ffffffffa", b"abcdefghij\xffklmnop"),
    "control byte": ("ctrlctrlc", b"abcdefghij\x01klmnop"),
    "early NUL": ("nulnulnul", b"abc\0defghijklmnop"),
    "cyrillic look-alike": ("\u0430bcdefghi", b"abcdefghijklmnop"),
}


@pytest.mark.parametrize("port", [993, 443])
@pytest.mark.parametrize("name", HOSTILE_LOGINS)
def test_hostile_logins_are_permanent_failures_and_create_nothing(live, domain, name, port):
    local, password = HOSTILE_LOGINS[name]
    addr = f"{local}@{domain}"
    reply = raw_login(live.address, port, addr.encode("utf-8"), password)
    assert reply.startswith(b"a NO [AUTHENTICATIONFAILED]"), reply
    assert not live.exists(f"/home/vmail/mail/{domain}/{addr}")


def test_auth_before_starttls_is_refused(live, domain):
    check_target(live.address)
    with smtplib.SMTP(live.address, 587, timeout=30) as conn:
        conn.ehlo()
        assert "auth" not in conn.esmtp_features
        code, _ = conn.docmd("AUTH", "PLAIN AGFAAGI=")
        assert code >= 500


def submit(sender: mc.Account, recipients: list[str], data: bytes) -> tuple[int, bytes]:
    try:
        sender.send(recipients, data)
    except smtplib.SMTPDataError as refused:
        return refused.smtp_code, refused.smtp_error
    return 250, b""


def test_shapes_that_smuggle_cleartext_are_refused(live, domain):
    sender = mc.created_account(live.address, domain)
    recipient = mc.created_account(live.address, domain)
    rcpt = [recipient.addr]
    good = mc.encrypted(sender.addr, rcpt, seed=1)
    boundary = b"b00000001_encrypted"
    shapes = {
        "two From headers": (good.replace(b"To: ", f"From: <{recipient.addr}>\r\nTo: ".encode(), 1), 550),
        "preamble text": (good.replace(b"\r\n\r\n--" + boundary, b"\r\n\r\nmeet me at noon\r\n--" + boundary, 1), 523),
        "epilogue text": (good + b"meet me at noon\r\n", 523),
        "second boundary": (
            good.replace(b'boundary="' + boundary + b'"', b'boundary="' + boundary + b'"; boundary="x"', 1),
            523,
        ),
        "text inside the armor": (good.replace(b"\r\n-----END", "\r\nвстреча в полдень\r\n-----END".encode(), 1), 523),
        "cleartext": (mc.plain(sender.addr, rcpt), 523),
    }
    answers = {name: submit(sender, rcpt, data)[0] for name, (data, _) in shapes.items()}
    assert answers == {name: code for name, (_, code) in shapes.items()}
    assert submit(sender, rcpt, good)[0] == 250  # the real thing still goes through
    assert len(mc.wait_for_messages(recipient, 1)) == 1


def test_new_flood_is_limited_and_the_site_keeps_serving(live, domain):
    statuses = [mc.https_post(live.address, "/new", domain)[0] for _ in range(30)]
    assert statuses[0] == 200 and 429 in statuses, statuses
    assert set(statuses) <= {200, 429}


def test_vrfy_and_expn_tell_nothing(live, domain):
    with mc.smtp(live.address, 25) as conn:  # STARTTLS first: port 25 requires it
        assert conn.verify(f"nosuchuser@{domain}")[0] == 252
        assert conn.expn("postmaster")[0] >= 500


def test_relay_still_serves_after_the_attacks(live, domain):
    sender, recipient = mc.created_account(live.address, domain), mc.created_account(live.address, domain)
    assert sender.send([recipient.addr], mc.encrypted(sender.addr, [recipient.addr])) == {}
    assert len(mc.wait_for_messages(recipient, 1)) == 1
