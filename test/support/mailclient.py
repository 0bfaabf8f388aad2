"""Plain IMAP/SMTP/HTTPS clients for driving a container relay from the host.

Every connection goes to an address the harness created: each helper
passes the address through :func:`harness.check_target` before it opens
a socket.  Relays in tests use self-signed certificates, so TLS here checks
nothing (the point is to speak the real protocols, not to test PKI).

Messages come from the filtermail corpus builder (support.mailcorpus):
OpenPGP-shaped mail with real packet framing and armor,
which the relay's filter accepts like a Delta Chat message.
"""

from __future__ import annotations

import email
import email.policy
import http.client
import imaplib
import json
import re
import secrets
import smtplib
import ssl
import string
import time
from dataclasses import dataclass

from harness import check_target

from . import mailcorpus

TIMEOUT = 20
# IMAP commands imaplib does not know (RFC 5464)
imaplib.Commands.setdefault("SETMETADATA", ("AUTH", "SELECTED"))
imaplib.Commands.setdefault("GETMETADATA", ("AUTH", "SELECTED"))


def tls_context(alpn: str | None = None) -> ssl.SSLContext:
    """TLS without certificate checks (test relays have self-signed certificates), offering ``alpn``."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols([alpn])
    return ctx


@dataclass
class Account:
    """An address on a relay with its password; the relay creates it on first login."""

    host: str  # the relay's bridge address
    addr: str
    password: str

    @property
    def domain(self) -> str:
        return self.addr.rpartition("@")[2]

    def imap(self, port: int = 993) -> imaplib.IMAP4:
        conn = imap(self.host, port)
        conn.login(self.addr, self.password)
        return conn

    def smtp(self, port: int = 465) -> smtplib.SMTP:
        conn = smtp(self.host, port)
        conn.login(self.addr, self.password)
        return conn

    def send(self, recipients: list[str], data: bytes, port: int = 465) -> dict:
        """Submit ``data`` from this account; returns smtplib's refused-recipients dict."""
        with self.smtp(port) as conn:
            return conn.sendmail(self.addr, recipients, data)


def random_local(length: int = 9) -> str:
    """A local part of ``length`` characters (the relay's default min = max = 9)."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(length))


def new_account(host: str, domain: str, password: str | None = None) -> Account:
    """Fresh, not yet created credentials (the first login creates the account)."""
    return Account(host, f"{random_local()}@{domain}", password or secrets.token_urlsafe(12))


def created_account(host: str, domain: str) -> Account:
    """A fresh account, created by logging in once over IMAP."""
    account = new_account(host, domain)
    account.imap().logout()
    return account


def imap(host: str, port: int = 993) -> imaplib.IMAP4:
    """IMAP over implicit TLS on 993, on 443 with ALPN "imap" (nginx passes it on), STARTTLS on 143."""
    check_target(host)
    if port == 143:
        conn = imaplib.IMAP4(host, port, timeout=TIMEOUT)
        conn.starttls(tls_context())
        return conn
    return imaplib.IMAP4_SSL(host, port, ssl_context=tls_context("imap" if port == 443 else None), timeout=TIMEOUT)


def smtp(host: str, port: int = 465) -> smtplib.SMTP:
    """SMTP over implicit TLS on 465, on 443 with ALPN "smtp", STARTTLS on any other port."""
    check_target(host)
    if port in (465, 443):
        return smtplib.SMTP_SSL(host, port, context=tls_context("smtp" if port == 443 else None), timeout=TIMEOUT)
    conn = smtplib.SMTP(host, port, timeout=TIMEOUT)
    conn.starttls(context=tls_context())
    return conn


def encrypted(
    sender: str,
    recipients: list[str],
    *,
    subject: str = "[...]",
    size: int = 2000,
    from_header: str | None = None,
    seed: int | None = None,
) -> bytes:
    """An OpenPGP-shaped message the relay's filter takes for encrypted mail."""
    seed = secrets.randbelow(2**31) if seed is None else seed
    return mailcorpus.encrypted(sender, recipients, subject=subject, size=size, from_header=from_header, seed=seed)


def plain(sender: str, recipients: list[str], subject: str = "Hi") -> bytes:
    """A cleartext message (the relay refuses it for protected recipients)."""
    return mailcorpus.plain(sender, recipients, subject=subject, seed=secrets.randbelow(2**31))


def message_ids(conn: imaplib.IMAP4, mailbox: str = "INBOX") -> list[bytes]:
    conn.select(mailbox)
    typ, data = conn.search(None, "ALL")
    assert typ == "OK", data
    return data[0].split()


def fetch_all(account: Account, mailbox: str = "INBOX") -> list[bytes]:
    """Every message in ``mailbox`` as raw bytes."""
    conn = account.imap()
    try:
        out = []
        for num in message_ids(conn, mailbox):
            typ, data = conn.fetch(num, "(BODY.PEEK[])")
            assert typ == "OK", data
            out.append(data[0][1])
        return out
    finally:
        conn.logout()


def wait_for_messages(account: Account, count: int = 1, timeout: float = 30) -> list[bytes]:
    """Poll the INBOX until it holds ``count`` messages; return them."""
    deadline = time.monotonic() + timeout
    while True:
        found = fetch_all(account)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def metadata(conn: imaplib.IMAP4, *args: str, command: str = "GETMETADATA") -> tuple[str, list]:
    """SETMETADATA/GETMETADATA with arguments sent as written (imaplib quotes nothing)."""
    typ, data = conn._simple_command(command, *args)
    if command == "GETMETADATA":
        typ, data = conn._untagged_response(typ, data, "METADATA")
    return typ, data


def metadata_value(data: list) -> str | None:
    """The value out of a ``METADATA INBOX (/private/devicetoken ...)`` response.

    Dovecot sends the value as a literal (imaplib gives a (prefix, value)
    tuple) or as a quoted string; NIL means no value.
    """
    for part in data:
        if isinstance(part, tuple):
            return part[1].decode()
        if isinstance(part, bytes):
            match = re.search(rb'\(\S+ (?:"((?:[^"\\]|\\.)*)"|NIL)\)', part)
            if match:
                return None if match.group(1) is None else match.group(1).decode()
    return None


def https_post(host: str, path: str, server_name: str, port: int = 443) -> tuple[int, bytes]:
    """POST over HTTPS to ``host`` with ``Host: server_name`` (SNI too)."""
    check_target(host)
    conn = http.client.HTTPSConnection(host, port, timeout=TIMEOUT, context=_sni_context(server_name))
    try:
        conn.request("POST", path, headers={"Host": server_name, "Content-Length": "0"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def new_account_from_web(host: str, domain: str, path: str = "/new") -> Account:
    """An account as Delta Chat gets one: POST /new (or ``path``) on the relay's website."""
    status, body = https_post(host, path, domain)
    assert status == 200, (status, body[:300])
    creds = json.loads(body)
    return Account(host, creds["email"], creds["password"])


def _sni_context(server_name: str) -> ssl.SSLContext:
    """A context whose sockets send ``server_name`` as SNI even when connecting to an IP."""
    ctx = tls_context()
    original = ctx.wrap_socket

    def wrap_socket(sock, *args, **kwargs):
        kwargs["server_hostname"] = server_name
        return original(sock, *args, **kwargs)

    ctx.wrap_socket = wrap_socket
    return ctx


# every way a client reaches a relay: (IMAP port, SMTP port); 443 is nginx's ALPN multiplexer
CLIENT_PORTS = {"implicit TLS": (993, 465), "STARTTLS": (143, 587), "443 ALPN": (443, 443)}


def check_client_ports(sender: Account, recipient: Account, ports: str) -> None:
    """``sender`` logs in over IMAP on one of CLIENT_PORTS (the chatmail capabilities are
    announced there) and sends to ``recipient`` over its SMTP port; the mail arrives."""
    imap_port, smtp_port = CLIENT_PORTS[ports]
    conn = sender.imap(imap_port)
    try:
        assert {"XCHATMAIL", "XDELTAPUSH"} <= set(conn.capabilities)
    finally:
        conn.logout()
    assert sender.send([recipient.addr], encrypted(sender.addr, [recipient.addr]), port=smtp_port) == {}
    assert len(wait_for_messages(recipient, 1)) == 1
