"""Real SMTP around filtermail for tests: a Postfix stand-in and a running filter.

The sink is a real aiosmtpd server on a loopback port that plays Postfix's
reinjection smtpd: it records what it receives and can be told to answer
a given stage with a given reply (451 as when the milter is down, 550, ...).
The LMTP sink plays Dovecot's LMTP on a unix socket the same way, with a
reply per recipient after the data (the relay's tests use real Dovecot).
The filter runs in-process on its own event loop thread, exactly as
``serve()`` runs it in the service.
"""

from __future__ import annotations

import asyncio
import smtplib
import threading
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller, UnixSocketController
from aiosmtpd.lmtp import LMTP

from chatmaild.config import read_config
from chatmaild.filtermail import MODES, serve

from .freeports import LOOPBACK, free_port, free_ports


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    peer: str = ""


@dataclass
class SinkHandler:
    """Records messages; ``replies`` maps a stage (MAIL, RCPT, DATA) to a reply."""

    received: list[Received] = field(default_factory=list)
    replies: dict[str, str] = field(default_factory=dict)
    refuse_rcpt: dict[str, str] = field(default_factory=dict)
    pipelining: bool = True  # Postfix offers it
    # as Postfix after a milter failure: once a session got a 451, every later MAIL in it gets one too
    poison_after_4xx: bool = False
    poisoned: set = field(default_factory=set)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, options):
        if id(session) in self.poisoned:
            return "451 4.7.1 Service unavailable - try again later"
        if "MAIL" in self.replies:
            return self.replies["MAIL"]
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        if "RCPT" in self.replies:
            return self.replies["RCPT"]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if "DATA" in self.replies:
            if self.poison_after_4xx and self.replies["DATA"].startswith("4"):
                self.poisoned.add(id(session))
            return self.replies["DATA"]
        self.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content, session.peer[0])
        )
        return "250 2.0.0 Ok: queued"


class Sink:
    """A real SMTP server on loopback standing in for Postfix's reinjection port."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.handler = SinkHandler()
        self.controller = Controller(self.handler, hostname=LOOPBACK, port=self.port, data_size_limit=None)

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def start(self) -> Sink:
        self.controller.start()
        self.running = True
        return self

    def stop(self) -> None:
        if getattr(self, "running", False):
            self.controller.stop()
            self.running = False

    def restart(self) -> None:
        """Stop (closing every connection) and listen again on the same port, same records."""
        self.stop()
        self.controller = Controller(self.handler, hostname=LOOPBACK, port=self.port, data_size_limit=None)
        self.start()


@dataclass
class LmtpHandler(SinkHandler):
    """As SinkHandler, and ``after_data`` maps a recipient to its own reply after the data."""

    after_data: dict[str, str] = field(default_factory=dict)

    async def handle_DATA(self, server, session, envelope):
        if "DATA" in self.replies:
            return self.replies["DATA"]
        stored = [r for r in envelope.rcpt_tos if r not in self.after_data]
        if stored:
            self.received.append(Received(envelope.mail_from, stored, envelope.original_content, "unix"))
        return "\r\n".join(self.after_data.get(r, "250 2.0.0 Saved") for r in envelope.rcpt_tos)


class _LmtpController(UnixSocketController):
    def factory(self):
        return LMTP(self.handler, **self.SMTP_kwargs)


class LmtpSink:
    """A real LMTP server on a unix socket standing in for Dovecot's."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.handler = LmtpHandler()
        self.controller = _LmtpController(self.handler, unix_socket=self.path, data_size_limit=None)

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def start(self) -> LmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


def write_ini(directory: Path, **settings) -> Path:
    ports = free_ports(4)
    values = {
        "mail_domain": "example.org",
        "max_user_send_per_minute": 60,
        "mailboxes_dir": str(directory / "mailboxes"),
        "filtermail_smtp_port": ports[0],
        "filtermail_smtp_port_incoming": ports[1],
        "postfix_reinject_port": ports[2],
        "postfix_reinject_port_incoming": ports[3],
    }
    values.update(settings)
    lines = ["[params]"] + [f"{k} = {' '.join(v) if isinstance(v, list) else v}" for k, v in values.items()]
    path = directory / "chatmail.ini"
    path.write_text("\n".join(lines) + "\n")
    return path


class RunningFilter:
    """``serve()`` on an event loop in a thread; ``port`` is where clients connect."""

    def __init__(self, ini: Path, mode: str, dkim_lookup=None, lmtp_socket: str | None = None):
        self.config = read_config(ini)
        self.dkim_lookup = dkim_lookup
        self.lmtp_socket = lmtp_socket
        self.mode = MODES[mode]
        self.port = getattr(self.config, self.mode.listen_port)
        self.reinject_port = getattr(self.config, self.mode.reinject_port)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = None

    def start(self) -> RunningFilter:
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            serve(self.config, self.mode, self.dkim_lookup, self.lmtp_socket), self.loop
        ).result(10)
        return self

    @property
    def policy(self):
        return self.server.filtermail_handler.policy

    def stop(self) -> None:
        async def shutdown():
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        handler = self.server.filtermail_handler
        handler.reinjector.close()
        if handler.local_delivery is not None:
            handler.local_delivery.close()
        handler.executor.shutdown(wait=True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def send(port, mail_from, rcpt_tos, data, mail_options=(), rcpt_options=(), conn=None):
    """One transaction; the first reply that is not a success, or the final one."""
    client = conn or smtplib.SMTP(LOOPBACK, port, timeout=30)
    try:
        if conn is None:
            client.ehlo("client.test")
        code, text = client.mail(mail_from, list(mail_options))
        if code != 250:
            client.rset()
            return code, text.decode()
        for rcpt in rcpt_tos:
            code, text = client.rcpt(rcpt, list(rcpt_options))
            if code not in (250, 251):
                client.rset()
                return code, text.decode()
        try:
            code, text = client.data(data)
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code, exc.smtp_error.decode()
        return code, text.decode()
    finally:
        if conn is None:
            client.quit()
