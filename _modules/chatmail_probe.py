"""chatmail.probe_*: a real message through this relay, for the rolling upgrade's health check.

``chatmail.orch.upgrade`` (the runner ``chatmail_orch.upgrade``) proves a
relay works after its upgrade the way a user would notice: an account is
made on it (one IMAP login, as Delta Chat makes accounts), a message is
submitted on port 465 to an account on the same relay and to one on
another relay, and both must arrive within a bound.  The message is a
Secure-Join request (``Secure-Join: vc-request``), the one cleartext
message the relays' filter accepts (chatmaild/mimecheck.py), so the probe
needs no OpenPGP.  Probe accounts are removed afterwards
(:func:`probe_remove`).

Connections go to this relay's own public ports on 127.0.0.1 with TLS
but without verifying the certificate: the name would not match
127.0.0.1, and the question asked is whether the relay's own daemons
answer, not whether its certificate is valid (``chatmail.status`` checks
that).
"""

from __future__ import annotations

import email.utils
import imaplib
import os
import secrets
import shutil
import smtplib
import ssl
import string
import time
from typing import Any

from salt.exceptions import CommandExecutionError

__virtualname__ = "chatmail"

HOST = "127.0.0.1"
IMAPS_PORT = 993
SUBMISSIONS_PORT = 465
TIMEOUT = 30
PROBE_PREFIX = "probe"  # local parts of probe accounts start with this


def __virtual__():
    return __virtualname__


def _context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _settings() -> dict[str, Any]:
    return __salt__["chatmail.settings"]()


def _imap(addr: str, password: str) -> imaplib.IMAP4_SSL:
    conn = imaplib.IMAP4_SSL(HOST, IMAPS_PORT, ssl_context=_context(), timeout=TIMEOUT)
    try:
        conn.login(addr, password)
    except imaplib.IMAP4.error as exc:
        conn.shutdown()
        raise CommandExecutionError(f"IMAP login of {addr} on {HOST}:{IMAPS_PORT} refused: {exc}") from None
    return conn


def probe_account() -> dict[str, str]:
    """Make a probe account on this relay (an IMAP login, as a client makes one); its address and password.

    CLI Example::

        salt relay1 chatmail.probe_account
    """
    s = _settings()
    length = max(s["username_min_length"], len(PROBE_PREFIX) + 4)
    if length > s["username_max_length"]:
        raise CommandExecutionError(
            f"username_max_length {s['username_max_length']} leaves no room for a probe account "
            f"(needs {length} characters)"
        )
    alphabet = string.ascii_lowercase + string.digits
    local = PROBE_PREFIX + "".join(secrets.choice(alphabet) for _ in range(length - len(PROBE_PREFIX)))
    password = secrets.token_urlsafe(max(24, s["password_min_length"]))
    addr = f"{local}@{s['mail_domain']}"
    _imap(addr, password).logout()
    return {"addr": addr, "password": password}


def probe_message(addr: str, recipients: list[str], token: str) -> bytes:
    """The probe: a Secure-Join request (the filter's one cleartext exception), ``token`` in its Message-ID."""
    return (
        f"From: <{addr}>\r\nTo: {', '.join(f'<{r}>' for r in recipients)}\r\n"
        f"Subject: {token}\r\nDate: {email.utils.formatdate()}\r\n"
        f"Message-ID: <{token}@{addr.split('@')[1]}>\r\nSecure-Join: vc-request\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=probe\r\n\r\n"
        "--probe\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSecure-Join: vc-request\r\n"
        "--probe--\r\n"
    ).encode()


def probe_send(addr: str, password: str, to: list[str] | str) -> dict[str, Any]:
    """Submit one probe message from ``addr`` to ``to`` on port 465; the token its Message-ID carries.

    CLI Example::

        salt relay1 chatmail.probe_send probeab12@relay1.example.org PASSWORD '[probecd34@relay2.example.org]'
    """
    recipients = [to] if isinstance(to, str) else list(to)
    token = "probe-" + secrets.token_hex(8)
    message = probe_message(addr, recipients, token)
    started = time.monotonic()
    try:
        with smtplib.SMTP_SSL(HOST, SUBMISSIONS_PORT, context=_context(), timeout=TIMEOUT) as smtp:
            smtp.login(addr, password)
            refused = smtp.sendmail(addr, recipients, message)
    except (OSError, smtplib.SMTPException) as exc:
        raise CommandExecutionError(f"submission of the probe on {HOST}:{SUBMISSIONS_PORT} failed: {exc}") from None
    if refused:
        raise CommandExecutionError(f"the probe was refused for {refused}")
    return {"token": token, "to": recipients, "submit_s": round(time.monotonic() - started, 3)}


def probe_wait(addr: str, password: str, token: str, timeout: float = 60) -> dict[str, Any]:
    """Wait until the probe ``token`` (in its Message-ID) is in ``addr``'s INBOX here; seconds it took, or an error after ``timeout``.

    CLI Example::

        salt relay2 chatmail.probe_wait probecd34@relay2.example.org PASSWORD probe-0123456789abcdef
    """
    started = time.monotonic()
    conn = _imap(addr, password)
    try:
        while True:
            typ, _ = conn.select("INBOX", readonly=True)
            # by Message-ID: the relay replaces the Subject of submitted mail (submission_header_cleanup)
            typ, data = conn.search(None, "HEADER", "Message-ID", token)
            if typ == "OK" and data and data[0].split():
                return {"token": token, "arrived_s": round(time.monotonic() - started, 3)}
            if time.monotonic() - started > float(timeout):
                raise CommandExecutionError(f"the probe {token} did not arrive in {addr}'s INBOX within {timeout} s")
            time.sleep(0.5)
    finally:
        conn.logout()


def probe_remove(addr: str) -> bool:
    """Remove a probe account's mailbox (only addresses made by :func:`probe_account`)."""
    local, _, domain = addr.partition("@")
    s = _settings()
    if not local.startswith(PROBE_PREFIX) or domain != s["mail_domain"] or "/" in local:
        raise CommandExecutionError(f"{addr} is not a probe account of this relay")
    path = os.path.join(s["mailboxes_dir"], addr)
    if not os.path.isdir(path):
        return False
    shutil.rmtree(path)
    return True
