"""filtermail: the before-queue SMTP filter that keeps cleartext off the relay.

Postfix hands every submitted (outgoing, ports 465/587) and every received
(incoming, port 25) message to this filter before queueing it
(``smtpd_proxy_filter``); the filter's answers reach the client directly.
An acceptable message for this relay's own mailboxes is stored through
Dovecot's LMTP (see :mod:`chatmaild.lmtp`), with the header fields Postfix
would have dropped dropped (:mod:`chatmaild.headerclean`); any other, and
whatever LMTP did not take, is passed back unchanged to Postfix's
reinjection port (see :mod:`chatmaild.reinject`).  Everything else is
refused.

Usage: ``python3 -m chatmaild.filtermail <chatmail.ini> MODE...`` (MODE:
``outgoing``, ``incoming``).  The relay runs both modes in one process
(filtermail.service): they share the interpreter and the imports, each
has its own port, rules, thread pool and connections.

The rules, in the order they apply (design.md §5.6):

outgoing
  MAIL   sender over the rate limit              450 4.7.1 (try later)
  MAIL   sender not of the form x@y              500
  DATA   more than one From: header              550 5.7.1
  DATA   From: header differs from the sender    500
  DATA   encrypted, or a Secure-Join request     accept
  DATA   a cleartext exception (CLEARTEXT_OK)    accept
  DATA   otherwise                               523 Encryption Needed
incoming
  DATA   encrypted, or a Secure-Join request     go on to DKIM
  DATA   a cleartext exception (CLEARTEXT_OK)    go on to DKIM
  DATA   otherwise                               523 Encryption Needed
  DATA   From: user@[IP] sent from IP itself     accept (an IP-only relay: no DNS, no DKIM key)
  DATA   no valid signature of the From: domain  554 5.7.1 (see :mod:`chatmaild.dkimcheck`)
  DATA   DKIM key lookup failed for now          451 4.4.3

The sending client's address comes from Postfix's XFORWARD command, which
Postfix sends to a proxy filter that announces it in its EHLO reply.

An accepted message is answered 250 once Dovecot stored it for every
recipient, or else with Postfix's verdict on the rest (see
:mod:`chatmaild.reinject`): 250 once queued, 4xx if Postfix is down or
answers 4xx, Postfix's own 5xx if it refuses.  Anything failing inside the
filter is a 451 as well: a client treats 5xx as final, so a 5xx is only
ever given for a property of the message.

Where this differs from the reference relay (design.md §9): an encrypted
message must have exactly two parts (#8); the rate limit is upstream
1.12's token bucket (``max_user_send_burst_size`` at once, then
``max_user_send_per_minute`` a minute; 0 meaning no limit; #11); the
SEIPD packet must be version 1 or 2; reinjection is all-or-nothing across
recipients; failures behind the filter are 4xx, not 500.

ESMTP parameters of MAIL and RCPT (``SIZE``, ``ORCPT``, ``NOTIFY``, ...)
are ignored instead of refused: some MTAs send them unasked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

if __name__ == "__main__":
    # dnspython 2.3 (Debian 12) imports requests, for DNS over HTTPS, whenever it
    # is installed.  The filter only resolves through the relay's unbound, and
    # requests with urllib3, chardet and idna would hold 6.6 MB of the service's
    # memory.  Only the service's own process goes without (an importer of this
    # module may need requests).
    sys.modules.setdefault("requests", None)

from .config import Config, read_config
from .dkimcheck import DkimCheck, TxtLookup
from .headerclean import clean
from .lmtp import SOCKET_ENV, LocalDelivery
from .mimecheck import (
    Mail,
    is_autocrypt_setup_message,
    is_encrypted,
    is_mailer_daemon_report,
    is_securejoin_request,
)
from .ratelimit import SendRateLimiter
from .reinject import ACCEPTED, Reinjector
from .smtpserver import FilterSMTP

__all__ = ["MODES", "Mode", "FilterPolicy", "FilterHandler", "serve", "main"]

log = logging.getLogger("filtermail")

ENCRYPTION_NEEDED = "523 Encryption Needed: Invalid Unencrypted Mail"
MULTIPLE_FROM = "550 5.7.1 More than one From header; a message has exactly one (RFC 5322 3.6)"
# Outgoing mail whose every recipient is on this relay is reinjected from
# this loopback address, for which the reinjection smtpd runs no milter
# (master.cf: smtpd_milter_maps).  Such mail never leaves the relay, so a
# DKIM signature would only cost OpenDKIM a round trip per message and be
# checked by no one (local mail is not verified).
LOCAL_SOURCE = "127.0.0.2"

# What the client sees if something fails unexpectedly (a bug, not the
# mail's fault): temporary, so the message is tried again, never lost.
INTERNAL_ERROR = "451 4.3.0 Internal error in the mail filter, try again later"


@dataclass(frozen=True)
class Mode:
    """What differs between the two filter instances."""

    name: str
    label: str  # log prefix, matched by mtail
    listen_port: str  # config key
    reinject_port: str  # config key
    incoming: bool


MODES = {
    "outgoing": Mode("outgoing", "Outgoing", "filtermail_smtp_port", "postfix_reinject_port", False),
    "incoming": Mode("incoming", "Incoming", "filtermail_smtp_port_incoming", "postfix_reinject_port_incoming", True),
}


def address_matches(address: str, entries: list[str]) -> bool:
    """``address`` is one of ``entries``, or its domain is an ``@domain`` entry."""
    address = address.lower()
    domain = "@" + address.rpartition("@")[2]
    return any(entry == address or entry == domain for entry in entries)


@dataclass
class Submission:
    """One message with its envelope, as the rules see it."""

    mail_from: str
    rcpt_tos: list[str]
    mail: Mail


Rule = Callable[["FilterPolicy", Submission], bool]

# Cleartext that may pass anyway, per mode: (why, rule).  Order matters
# only for the log line naming the reason.
CLEARTEXT_OK: dict[str, tuple[tuple[str, Rule], ...]] = {
    "outgoing": (
        ("passthrough sender", lambda p, s: address_matches(s.mail_from, p.passthrough_senders)),
        ("Autocrypt Setup Message", lambda p, s: is_autocrypt_setup_message(s.mail, s.rcpt_tos)),
        (
            "passthrough recipients",
            lambda p, s: all(address_matches(r, p.passthrough_recipients) for r in s.rcpt_tos),
        ),
    ),
    "incoming": (
        ("mailer-daemon report", lambda p, s: is_mailer_daemon_report(s.mail)),
        ("no recipient enforces encryption", lambda p, s: not any(p.enforces_encryption(r) for r in s.rcpt_tos)),
    ),
}


def sent_by_its_ip_relay(from_domain: str, client_addr: str | None) -> bool:
    """From: user@[1.2.3.4] and the SMTP client is 1.2.3.4: an IP-only relay sending its own mail.

    Such a relay has no DNS name to publish a DKIM key under, so upstream
    accepts its mail unsigned.  The connecting address stands in for the
    signature: only the host at that IP can send from it (a spoofed source
    address cannot complete TCP's handshake).
    """
    if not client_addr or not (from_domain.startswith("[") and from_domain.endswith("]")):
        return False
    try:
        return ipaddress.ip_address(from_domain[1:-1]) == ipaddress.ip_address(client_addr)
    except ValueError:
        return False


class FilterPolicy:
    """The rules of one mode, independent of SMTP (so they can be tested and timed alone)."""

    def __init__(self, config: Config, mode: Mode, dkim_lookup: TxtLookup | None = None):
        self.config = config
        self.mode = mode
        # incoming mail only: outgoing mail is signed by OpenDKIM behind the filter
        self.dkim = DkimCheck(dkim_lookup) if mode.incoming else None
        self.passthrough_senders = [a.lower() for a in config.passthrough_senders]
        self.passthrough_recipients = [a.lower() for a in config.passthrough_recipients]
        self.limiter = SendRateLimiter(config.max_user_send_per_minute, config.max_user_send_burst_size)
        self.cleartext_ok = CLEARTEXT_OK[mode.name]

    def check_sender(self, mail_from: str) -> str | None:
        """The refusal of ``MAIL FROM:<mail_from>``, or None to accept it."""
        if self.mode.incoming:
            return None
        if not self.limiter.allow(mail_from.lower()):
            return f"450 4.7.1: Too much mail from {mail_from}"
        if len(mail_from.split("@")) != 2:
            return f"500 Invalid from address <{mail_from!r}>"
        return None

    def check_message(
        self, mail_from: str, rcpt_tos: list[str], data: bytes, client_addr: str | None = None
    ) -> str | None:
        """The refusal of a message, or None to accept it (``client_addr``: the sending host's IP)."""
        mail = Mail(data)
        if not self.mode.incoming:
            if mail.headers.occurs_more_than_once("From"):
                return MULTIPLE_FROM
            from_address = mail.from_address
            if from_address.lower() != mail_from.lower():
                return f"500 Invalid FROM <{from_address!r}> for <{mail_from!r}>"
        refusal = self.check_content(mail_from, rcpt_tos, mail)
        if refusal is None and self.dkim is not None:
            from_domain = mail.from_address.rpartition("@")[2]
            if sent_by_its_ip_relay(from_domain, client_addr):
                log.info("%s: accepted without DKIM from the IP-only relay %s", self.mode.label, from_domain)
                return None
            refusal = self.dkim.refusal(data, from_domain)
            if refusal:
                log.info("%s: Rejected mail: %s", self.mode.label, refusal)
        return refusal

    def check_content(self, mail_from: str, rcpt_tos: list[str], mail: Mail) -> str | None:
        """Encrypted, or one of the cleartext exceptions: None; else the refusal."""
        label = self.mode.label
        if is_encrypted(mail, incoming=self.mode.incoming) or is_securejoin_request(mail):
            log.info("%s: Filtering encrypted mail.", label)
            return None
        log.info("%s: Filtering unencrypted mail.", label)
        submission = Submission(mail_from, rcpt_tos, mail)
        for why, allowed in self.cleartext_ok:
            if allowed(self, submission):
                log.info("%s: cleartext accepted (%s).", label, why)
                return None
        log.info("Rejected unencrypted mail.")
        return ENCRYPTION_NEEDED

    def enforces_encryption(self, recipient: str) -> bool:
        """The recipient's mailbox carries the ``enforceE2EEincoming`` marker."""
        try:
            return (self.config.get_user_dir(recipient.lower()) / "enforceE2EEincoming").exists()
        except (ValueError, OSError):
            return False  # not a mailbox address here: nothing to enforce


class FilterHandler:
    """aiosmtpd handler: the policy at MAIL and DATA, then reinjection."""

    def __init__(
        self,
        policy: FilterPolicy,
        reinjector: Reinjector,
        executor: ThreadPoolExecutor,
        local_reinjector: Reinjector | None = None,
        local_delivery: LocalDelivery | None = None,
    ):
        self.policy = policy
        self.reinjector = reinjector
        self.executor = executor
        # outgoing mode: the same port, from LOCAL_SOURCE (not signed); None: everything signed
        self.local_reinjector = local_reinjector
        # Dovecot's LMTP for mail to this relay's mailboxes; None: everything through Postfix
        self.local_delivery = local_delivery
        self.local_domain = "@" + policy.config.mail_domain_address.lower()

    async def handle_MAIL(self, server, session, envelope, address: str, mail_options: list[str]) -> str:
        refusal = self.policy.check_sender(address)
        if refusal:
            return refusal
        envelope.mail_from = address
        return "250 OK"

    async def handle_EHLO(self, server, session, envelope, hostname, responses) -> list[str]:
        session.host_name = hostname
        # Postfix then tells the filter who the real client is (ADDR=...)
        responses.insert(-1, "250-XFORWARD NAME ADDR PROTO HELO")
        return responses

    async def handle_DATA(self, server, session, envelope) -> str:
        loop = asyncio.get_running_loop()
        client = getattr(session, "xforward_addr", None)
        return await loop.run_in_executor(
            self.executor, self.process, envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content, client
        )

    def process(self, mail_from: str, rcpt_tos: list[str], data: bytes, client_addr: str | None = None) -> str:
        """Check one message and, if acceptable, store or reinject it: the reply for the client."""
        try:
            refusal = self.policy.check_message(mail_from, rcpt_tos, data, client_addr)
            if refusal:
                return refusal
            if self.local_delivery is not None and self.all_local(rcpt_tos):
                cleaned = clean(data, self.policy.mode.name)
                rcpt_tos = self.local_delivery.deliver(mail_from, rcpt_tos, cleaned)
                if not rcpt_tos:
                    return ACCEPTED
                log.info("%s: %d recipient(s) left to Postfix's queue", self.policy.mode.label, len(rcpt_tos))
            return self.reinjector_for(rcpt_tos).send(mail_from, rcpt_tos, data)
        except Exception:  # a bug must not turn into a permanent refusal
            log.exception("processing a message failed")
            return INTERNAL_ERROR

    def all_local(self, rcpt_tos: list[str]) -> bool:
        """Every recipient is a mailbox of this relay."""
        return all(r.lower().endswith(self.local_domain) for r in rcpt_tos)

    def reinjector_for(self, rcpt_tos: list[str]) -> Reinjector:
        """The unsigned path if every recipient is a mailbox of this relay, else the signing one."""
        if self.local_reinjector is not None and self.all_local(rcpt_tos):
            return self.local_reinjector
        return self.reinjector

    async def handle_exception(self, error: Exception) -> str:
        """Any other failure during an SMTP command: temporary (aiosmtpd would say 500)."""
        log.error("SMTP session error: %r", error)
        return INTERNAL_ERROR


def can_bind(address: str) -> bool:
    """This host has ``address`` (Linux routes all of 127/8 to lo; other systems may not)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((address, 0))
        return True
    except OSError as exc:
        log.warning("cannot use %s for local-only mail (%s): all outgoing mail is signed", address, exc)
        return False


async def serve(
    config: Config, mode: Mode, dkim_lookup: TxtLookup | None = None, lmtp_socket: str | None = None
) -> asyncio.AbstractServer:
    """Start the filter on the loop that runs this coroutine; returns the listening server.

    ``dkim_lookup`` replaces DNS for DKIM keys (tests); by default keys come
    from the system's resolver.  ``lmtp_socket``: Dovecot's LMTP socket for
    local mail (default: the unit's ``CHATMAIL_LMTP_SOCKET``; none: all mail
    goes through Postfix).
    """
    policy = FilterPolicy(config, mode, dkim_lookup)
    port = getattr(config, mode.reinject_port)
    reinjector = Reinjector(port)
    local = None if mode.incoming or not can_bind(LOCAL_SOURCE) else Reinjector(port, source=LOCAL_SOURCE)
    lmtp_socket = lmtp_socket or os.environ.get(SOCKET_ENV)
    delivery = LocalDelivery(lmtp_socket) if lmtp_socket else None
    executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix=f"filtermail-{mode.name}")
    handler = FilterHandler(policy, reinjector, executor, local, delivery)
    loop = asyncio.get_running_loop()

    def factory() -> FilterSMTP:
        return FilterSMTP(
            handler,
            data_size_limit=config.max_message_size,
            hostname="localhost",
            ident="chatmail filtermail",
            loop=loop,
        )

    server = await loop.create_server(factory, host="127.0.0.1", port=getattr(config, mode.listen_port))
    server.filtermail_handler = handler  # for tests and shutdown
    return server


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2 or not all(mode in MODES for mode in args[1:]) or len(set(args[1:])) != len(args[1:]):
        print("usage: filtermail <chatmail.ini> outgoing|incoming [outgoing|incoming]", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command chatter
    config = read_config(args[0])
    modes = [MODES[name] for name in args[1:]]

    async def run() -> None:
        servers = [await serve(config, mode) for mode in modes]
        for mode in modes:
            log.info("filtermail %s listening on 127.0.0.1:%s", mode.name, getattr(config, mode.listen_port))
        await asyncio.gather(*(server.serve_forever() for server in servers))

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
