"""Seeded fuzzing of every parser that hostile input reaches (docs/security.md).

The environment has no hypothesis or atheris, so this is a small
mutation fuzzer on the standard library: every target starts from valid
inputs (the mail corpus, real dict requests, a rendered chatmail.ini,
real SMTP dialogues), mutates them with byte-level and token-level
changes, and feeds them to the real code, over real sockets where the
service has one.  What counts:

crash   an exception escaping the code under test, or one caught by a
        service's own safety net (logged with a traceback: a bug even if
        the client only sees a 4xx)
hang    no complete answer within the target's timeout
wrong   an answer that breaks the target's oracle (a reply missing, an
        address accepted that is not a dot-atom, a fast MIME walk that
        disagrees with the full :mod:`email` parse, ...)

After every batch the runner checks that the service still answers a
valid request the way it should (``alive``).

Used by ``bench/fuzz.py`` (the long run) and
``test/unit/chatmaild/test_fuzz_slice.py`` (a short seeded slice per target).
"""

from __future__ import annotations

import io
import logging
import os
import random
import re
import socket
import tempfile
import time
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

from chatmaild import accountrules, newemail
from chatmaild.config import SettingsError, parse_ini, render_ini, validate
from chatmaild.mimecheck import Mail, is_ambiguous, is_encrypted, is_securejoin_request

from . import mailcorpus as mc
from . import mimereference

# -- mutation ------------------------------------------------------------------

TOKENS = [
    b"\x00",
    b"\xff",
    b"\xfe",
    b"\r\n",
    b"\n",
    b"\r",
    b"\t",
    b" ",
    b'"',
    b"\\",
    b"\x01",
    b"\x010",
    b"--",
    b"..",
    b".",
    b"@",
    b"=",
    b";",
    b":",
    b"<",
    b">",
    b"boundary=",
    b'boundary="x"',
    b"Content-Type: ",
    b"From: ",
    b"multipart/encrypted",
    b"text/plain",
    b"-----BEGIN PGP MESSAGE-----",
    b"-----END PGP MESSAGE-----",
    b"\r\n\r\n",
    b"\r\n.\r\n",
    b"\xc3\xa9",
    b"\xe2\x80\xae",
    b"\xed\xa0\x80",
    b"%",
    b"[",
    b"]",
    b"#",
]


def mutate(rng: random.Random, data: bytes, seeds: list[bytes] = (), max_len: int = 65536) -> bytes:
    """1 to 4 random changes: byte flips, insertions, deletions, repeats, tokens, splices."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        pos = rng.randint(0, len(buf))
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op == 1:
            buf[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif op == 2 and buf:
            del buf[pos : pos + rng.randint(1, 64)]
        elif op == 3 and buf:
            start = rng.randrange(len(buf))
            chunk = buf[start : start + rng.randint(1, 64)]
            buf[pos:pos] = chunk * rng.randint(1, 20)
        elif op == 4:
            buf[pos:pos] = rng.choice(TOKENS) * rng.choice((1, 1, 1, 2, 100))
        elif op == 5 and seeds:
            other = rng.choice(seeds)
            cut = rng.randint(0, len(other))
            buf[pos:] = other[cut:]
        elif op == 6:
            buf[pos:pos] = b"A" * rng.choice((64, 255, 256, 1000, 5000))
        else:
            text = bytes(buf)
            buf = bytearray(text.upper() if rng.random() < 0.5 else text.replace(b"\r\n", b"\n"))
    return bytes(buf[:max_len])


# -- results and the runner ----------------------------------------------------


class Hang(Exception):
    """No complete answer within the target's timeout."""


class Wrong(AssertionError):
    """The answer breaks the target's oracle."""


@dataclass
class Result:
    name: str
    inputs: int = 0
    crashes: int = 0
    hangs: int = 0
    wrong: int = 0
    dead_after_batch: int = 0
    seconds: float = 0.0
    examples: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.crashes or self.hangs or self.wrong or self.dead_after_batch)

    def note(self, kind: str, detail: str) -> None:
        if len(self.examples) < 5:
            self.examples.append(f"{kind}: {detail[:300]}")


class TracebackCounter(logging.Handler):
    """Counts log records with a traceback: a service's safety net caught a bug."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.count = 0
        self.last = ""

    def emit(self, record):
        if record.exc_info:
            self.count += 1
            self.last = self.format(record)


class Target:
    """One fuzz target: ``start``, ``one`` input per call, ``alive`` between batches, ``stop``."""

    name = "target"
    timeout = 5.0

    def start(self) -> None:
        pass

    def one(self, rng: random.Random) -> None:
        raise NotImplementedError

    def alive(self) -> bool:
        return True

    def stop(self) -> None:
        pass


def run(target: Target, inputs: int, seed: int = 0, batch: int = 1000) -> Result:
    """Feed ``inputs`` seeded inputs to ``target``; count crashes, hangs and wrong answers."""
    result = Result(target.name)
    rng = random.Random(f"{target.name}:{seed}")
    counter = TracebackCounter()
    root = logging.getLogger()
    root.addHandler(counter)
    previous_level = root.level
    root.setLevel(logging.ERROR)  # the services log every refused input as a warning
    started = time.monotonic()
    target.start()
    try:
        while result.inputs < inputs:
            for _ in range(min(batch, inputs - result.inputs)):
                result.inputs += 1
                before = counter.count
                try:
                    target.one(rng)
                except Hang as exc:
                    result.hangs += 1
                    result.note("hang", str(exc))
                except Wrong as exc:
                    result.wrong += 1
                    result.note("wrong", str(exc))
                except Exception as exc:  # noqa: BLE001 - counting them is the point
                    result.crashes += 1
                    result.note("crash", f"{type(exc).__name__}: {exc}")
                if counter.count != before:
                    result.crashes += 1
                    result.note("crash (caught by the service)", counter.last)
            if not target.alive():
                result.dead_after_batch += 1
                result.note("dead", f"no valid answer after input {result.inputs}")
    finally:
        target.stop()
        root.removeHandler(counter)
        root.setLevel(previous_level)
        result.seconds = time.monotonic() - started
    return result


# -- pure targets ----------------------------------------------------------------


def _mime_seeds() -> list[bytes]:
    seeds = [
        mc.encrypted(size=600, seed=1),
        mc.encrypted(size=3000, seed=2, armor_headers=["Version: X"]),
        mc.securejoin(seed=3),
        mc.plain(),
        mc.autocrypt_setup(),
        mc.report(),
    ]
    enc = seeds[0]
    seeds.append(
        enc.replace(b"\r\n\r\n--", b"\r\n\r\nThis is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n--", 1)
    )
    return seeds


class MimeTarget(Target):
    """The MIME/OpenPGP classifier, checked against a full :mod:`email` parse."""

    name = "mime"

    def start(self):
        self.reference = mimereference
        self.seeds = _mime_seeds()

    def one(self, rng):
        data = mutate(rng, rng.choice(self.seeds), self.seeds)
        mail = Mail(data)
        for incoming in (False, True):
            got = is_encrypted(mail, incoming=incoming)
            if got != self.reference.reference_is_encrypted(data, incoming):
                raise Wrong(f"is_encrypted(incoming={incoming}) = {got} on {data[:200]!r}")
        if is_securejoin_request(mail) != self.reference.reference_is_securejoin(data):
            raise Wrong(f"is_securejoin_request disagrees on {data[:200]!r}")
        is_ambiguous(mail)
        mail.from_address  # noqa: B018 - parses the From header

    def alive(self):
        return is_encrypted(Mail(self.seeds[0]), incoming=False) and not is_encrypted(Mail(mc.plain()), incoming=False)


_LOCAL_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789._-"
_NOISE = _LOCAL_CHARS + 'ABCZ+@"\\ \t\x00\x01\x1f\x7f\xe9\u00df\u0430\u200b\ud800\U0001f600.'
_ATOM = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


def _text(rng: random.Random, alphabet: str, longest: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, longest)))


class RulesTarget(Target):
    """Address and password rules against an independent reading of RFC 5321 dot-atom."""

    name = "rules"
    domain = "chat.example.org"

    def one(self, rng):
        alphabet = rng.choice((_LOCAL_CHARS, _NOISE))
        local = _text(rng, alphabet, rng.choice((12, 70, 300)))
        addr = local + rng.choice(("@" + self.domain, "@" + self.domain, "@other.org", "", "@@" + self.domain))
        lo, hi = sorted((rng.randint(1, 80), rng.randint(1, 80)))
        accepted = accountrules.address_refusal(addr, self.domain, lo, hi) is None
        expected = (
            addr == local + "@" + self.domain
            and lo <= len(local) <= hi
            and len(local.encode("utf-8", "surrogatepass")) <= 64
            and all(atom and set(atom) <= _ATOM for atom in local.split("."))
        )
        if accepted != expected:
            raise Wrong(f"address_refusal({addr!r}, {lo}..{hi}) accepted={accepted}")
        if accepted and accountrules.impossible_address(addr):
            raise Wrong(f"{addr!r} may be created but can never be looked up")
        password = _text(rng, rng.choice((_NOISE, "abcXYZ012!\"\\'")), 40)
        minimum = rng.randint(0, 20)
        ok = accountrules.password_refusal(password, minimum) is None
        if ok != (len(password) >= minimum and not any(ord(c) < 32 or ord(c) == 127 for c in password)):
            raise Wrong(f"password_refusal({password!r}, {minimum}) accepted={ok}")

    def alive(self):
        return accountrules.address_refusal(f"abcdefghi@{self.domain}", self.domain, 9, 9) is None


class NewemailTarget(Target):
    """The /new CGI's ``main`` under random settings: every suggestion must be creatable."""

    name = "newemail"

    def start(self):
        self.dir = Path(tempfile.mkdtemp(prefix="fuzz-newemail-"))
        self.ini = self.dir / "chatmail.ini"

    def one(self, rng):
        lo = rng.randint(1, 64)
        hi = rng.randint(lo, 64)
        lines = [
            "[params]",
            "mail_domain = chat.example.org",
            f"username_min_length = {lo}",
            f"username_max_length = {hi}",
            f"password_min_length = {rng.randint(1, 200)}",
        ]
        text = "\n".join(lines) + "\n"
        if rng.random() < 0.3:
            text = mutate(rng, text.encode()).decode("utf-8", "replace")
        self.ini.write_text(text, encoding="utf-8")
        out = io.StringIO()
        os.environ["CHATMAIL_INI"] = str(self.ini)
        try:
            with redirect_stdout(out), redirect_stderr(io.StringIO()):
                status = newemail.main()
        finally:
            del os.environ["CHATMAIL_INI"]
        head, _, body = out.getvalue().partition("\r\n\r\n")
        if status != 0:
            if not head.startswith("Status: 500"):
                raise Wrong(f"failure answered as {head!r}")
            return
        import json

        account = json.loads(body)
        cfg = newemail.read_relay_config(str(self.ini))
        why = accountrules.address_refusal(
            account["email"], cfg.mail_domain, cfg.username_min_length, cfg.username_max_length
        )
        why = why or accountrules.password_refusal(account["password"], cfg.password_min_length)
        if why:
            raise Wrong(f"suggested {account} which doveauth refuses: {why}")

    def alive(self):
        return True

    def stop(self):
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)


def _ini_seed() -> bytes:
    settings = validate(
        {
            "mail_domain": "chat.example.org",
            "passthrough_recipients": ["echo@x.org", "@open.example"],
            "privacy_postal": "Street 1\nTown",
        }
    )
    return render_ini(settings).encode("utf-8")


class IniTarget(Target):
    """chatmail.ini parser and validation: refusals are SettingsError/ValueError, acceptances round-trip."""

    name = "ini"

    def start(self):
        self.seeds = [_ini_seed(), b"[params]\nmail_domain = chat.example.org\n"]

    def one(self, rng):
        text = mutate(rng, rng.choice(self.seeds), self.seeds).decode("utf-8", "surrogateescape")
        try:
            settings = validate(parse_ini(text))
        except (SettingsError, ValueError):
            return
        again = validate(parse_ini(render_ini(settings)))
        if again != settings:
            diff = {k: (settings[k], again.get(k)) for k in settings if again.get(k) != settings[k]}
            raise Wrong(f"render/parse does not round-trip: {diff}")

    def alive(self):
        return validate(parse_ini(self.seeds[1].decode()))["mail_domain"] == "chat.example.org"


# -- the dict services over their real sockets ------------------------------------


class DictTarget(Target):
    """A dict service on a real unix socket; each input is one connection, half-closed after sending."""

    timeout = 5.0
    seeds: list[bytes] = []

    def make_proxy(self, tmp: Path):
        raise NotImplementedError

    def start(self):
        import threading

        from chatmaild.dictproxy import DictServer

        self.tmp = Path(tempfile.mkdtemp(prefix=f"fuzz-{self.name}-"))
        self.proxy = self.make_proxy(self.tmp)
        self.path = self.tmp / "dict.socket"
        self.server = DictServer(self.proxy, self.path)
        self.server.bind()
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.server.ready.wait(5)

    def exchange(self, payload: bytes) -> list[bytes]:
        """Send ``payload``, half-close, read every reply line until the server closes."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            data = b""
            deadline = time.monotonic() + self.timeout
            while True:
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    raise Hang(f"no end of answer to {payload[:120]!r}") from None
                if not chunk:
                    break
                data += chunk
                if time.monotonic() > deadline:
                    raise Hang(f"answer to {payload[:120]!r} does not end")
        except (ConnectionResetError, BrokenPipeError):
            return []  # an overlong line closes the connection: allowed
        finally:
            sock.close()
        return data.split(b"\n")[:-1]

    def one(self, rng):
        line = mutate(rng, rng.choice(self.seeds), self.seeds, max_len=8192)
        payload = (b"H3\t2\t0\t\tfuzz\n" if rng.random() < 0.5 else b"") + line + b"\n"
        replies = self.exchange(payload)
        # every L, I, C and D line gets at least one reply line (Dovecot waits for it)
        wanted = sum(1 for request in payload.split(b"\n") if request[:1] in (b"L", b"I", b"C", b"D"))
        if len(replies) < wanted:
            raise Wrong(f"{len(replies)} replies to {wanted} requests in {payload[:200]!r}")

    def stop(self):
        import shutil

        self.server.shutdown()
        self.thread.join(5)
        if self.thread.is_alive():
            raise Hang(f"{self.name} server did not stop")
        shutil.rmtree(self.tmp, ignore_errors=True)


def _config(tmp: Path, **extra):
    from chatmaild.config import Config

    # no system limits: this host's load is not the target's (doveauth creates no account above max_load_1m)
    limits = {"max_load_1m": 1e6, "min_available_memory": "0", "min_free_disk_space": "0"}
    return Config(validate({"mail_domain": "chat.example.org", "mailboxes_dir": str(tmp / "mail"), **limits, **extra}))


SENTINEL = "sentinel1@chat.example.org"
SENTINEL_PASSWORD = "sentinel-password-1"


class DoveauthTarget(DictTarget):
    name = "doveauth"
    seeds = [
        f'Lshared/passdb/{SENTINEL_PASSWORD}"{SENTINEL}"192.0.2.1\t{SENTINEL}'.encode(),
        b'Lshared/passdb/pa\\"ss\\\\word"abcdefghi@chat.example.org\tabcdefghi@chat.example.org',
        f"Lshared/userdb/{SENTINEL}\t{SENTINEL}".encode(),
        b"I0\t0\tshared/userdb/",
        b"B1\tuser\nS1\tkey\tvalue\nC1",
    ]

    def make_proxy(self, tmp):
        from chatmaild.doveauth import AuthDict

        (tmp / "mail").mkdir()
        # the load guard (max_load_1m) would refuse the sentinel on a busy machine: not what is fuzzed here
        return AuthDict(_config(tmp, max_load_1m=1000), nocreate_path=tmp / "nocreate")

    def start(self):
        super().start()
        # create the sentinel account before the fuzzing spends 192.0.2.1's account creation budget:
        # the liveness check is a login of an existing account, which the budget never limits
        if not self.alive():
            raise RuntimeError("doveauth does not create the sentinel account")

    def alive(self):
        replies = self.exchange(self.seeds[0] + b"\n")
        return len(replies) == 1 and replies[0].startswith(b'O{"addr": "' + SENTINEL.encode())


class LastloginTarget(DictTarget):
    name = "lastlogin"
    seeds = [
        f"B1\t{SENTINEL}\nS1\tshared/last-login/{SENTINEL}\t1700000000\nC1".encode(),
        f"B2\t{SENTINEL}\nS2\tshared/last-login/{SENTINEL}\t1700000000\nD2".encode(),
        b"Lshared/last-login/x@chat.example.org\tx@chat.example.org",
        b"I0\t0\tshared/",
    ]

    def make_proxy(self, tmp):
        from chatmaild.lastlogin import LastLoginDict

        cfg = _config(tmp)
        (tmp / "mail" / SENTINEL).mkdir(parents=True)
        (tmp / "mail" / SENTINEL / "password").write_text("{SHA512-CRYPT}$6$x")
        self.password = tmp / "mail" / SENTINEL / "password"
        return LastLoginDict(cfg)

    def alive(self):
        day = 86400 * random.randint(19000, 20000)
        payload = f"B9\t{SENTINEL}\nS9\tshared/last-login/{SENTINEL}\t{day + 5}\nC9\n".encode()
        return self.exchange(payload) == [b"O9"] and int(self.password.stat().st_mtime) == day


class MetadataTarget(DictTarget):
    name = "metadata"
    seeds = [
        f"Lpriv/guid/devicetoken\t{SENTINEL}".encode(),
        f"B1\t{SENTINEL}\nS1\tpriv/guid/devicetoken\ttoken-1\nC1".encode(),
        f"B1\t{SENTINEL}\nS1\tpriv/guid/messagenew\t\nC1".encode(),
        b"Lshared/vendor/vendor.dovecot/pvt/server/vendor/vendor.dovecot/pvt/server/irohrelay\t",
        b"Lshared/x/vendor/vendor.dovecot/pvt/server/turn\t",
    ]

    def make_proxy(self, tmp):
        from chatmaild.metadata import MetadataDict
        from chatmaild.metadata_tokens import TokenStore
        from chatmaild.notifier import Notifier

        from .dicts import PushServer

        cfg = _config(tmp, iroh_relay="https://iroh.example.org")
        (tmp / "mail" / SENTINEL).mkdir(parents=True)
        self.push = PushServer()  # FAKE: loopback stand-in for the public push service
        tokens = TokenStore(cfg)
        self.notifier = Notifier(
            tmp / "mail" / "pending_notifications", tokens, url=self.push.url, workers=(1, 1, 1, 1, 1), timeout=5
        )
        self.notifier.start()
        secret = tmp / "turn-secret"
        secret.write_text("fuzz-secret\n")
        return MetadataDict(cfg, tokens, self.notifier, turn_secret=secret)

    def alive(self):
        from chatmaild.metadata import SERVER_ENTRY

        replies = self.exchange(f"Lshared/x/{SERVER_ENTRY}irohrelay\t\n".encode())
        return replies == [b"Ohttps://iroh.example.org"]

    def stop(self):
        try:
            super().stop()
        finally:
            self.notifier.stop()
            self.push.close()


# -- the SMTP dialogue of both filters --------------------------------------------

_REPLY = re.compile(rb"\d{3}[ -]")


class FilterTarget(Target):
    """filtermail (outgoing or incoming) on loopback, reinjecting into a local sink SMTP server."""

    timeout = 10.0

    def __init__(self, mode: str):
        self.mode = mode
        self.name = f"smtp-{mode}"

    def start(self):
        from .filtermail import RunningFilter, Sink, write_ini

        self.tmp = Path(tempfile.mkdtemp(prefix=f"fuzz-{self.name}-"))
        ini = write_ini(self.tmp, max_user_send_per_minute=0)
        from chatmaild.config import read_config

        cfg = read_config(ini)
        self.sink = Sink(
            getattr(cfg, "postfix_reinject_port" if self.mode == "outgoing" else "postfix_reinject_port_incoming")
        ).start()
        self.messages = [m for m in _mime_seeds()]
        keys = None
        if self.mode == "incoming":
            # mail from other servers must carry a DKIM signature of its From: domain: sign the seeds
            # (mutations then mostly fail DKIM, which is a 554, as it should be)
            from chatmaild.mimecheck import Mail

            from .dkim import KeyTable, sign

            keys = KeyTable()
            signed = []
            for data in self.messages:
                domain = Mail(data).from_address.rpartition("@")[2] or "example.org"
                keys.publish(domain)
                signed.append(sign(data, domain))
            self.messages = signed
        self.filter = RunningFilter(ini, self.mode, keys).start()

    def dialogue(self, rng: random.Random) -> bytes:
        message = self.messages[0] if rng.random() < 0.2 else mutate(rng, rng.choice(self.messages), self.messages)
        message = message.replace(b"\r\n.", b"\r\n..")
        lines = [
            b"EHLO fuzz.example",
            b"MAIL FROM:<alice@example.org>",
            b"RCPT TO:<bob@example.org>",
            b"DATA",
            message + b"\r\n.",
            b"QUIT",
        ]
        for _ in range(rng.randint(0, 3)):
            i = rng.randrange(len(lines))
            choice = rng.randrange(5)
            if choice == 0:
                lines[i] = mutate(rng, lines[i], max_len=2048)
            elif choice == 1:
                lines.insert(
                    i,
                    rng.choice(
                        [
                            b"RSET",
                            b"NOOP",
                            b"HELO x",
                            b"VRFY bob",
                            b"STARTTLS",
                            b"AUTH PLAIN AGE=",
                            b"BDAT 10",
                            b"MAIL FROM:<>",
                            b"RCPT TO:<\x00@x>",
                            b"DATA",
                            b"\xff\xfe",
                        ]
                    ),
                )
            elif choice == 2:
                del lines[i]
            elif choice == 3:
                lines[i] = lines[i].replace(b"alice@example.org", rng.choice([b"", b"a@b@c", b"x" * 600, b'"a b"@x']))
            else:
                lines.insert(i, mutate(rng, b"MAIL FROM:<alice@example.org> SIZE=100 BODY=8BITMIME", max_len=2048))
        return b"\r\n".join(lines) + b"\r\n"

    def exchange(self, payload: bytes) -> list[bytes]:
        sock = socket.create_connection(("127.0.0.1", self.filter.port), timeout=self.timeout)
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            data = b""
            deadline = time.monotonic() + self.timeout
            while True:
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    raise Hang(f"no end of the SMTP dialogue {payload[:160]!r}") from None
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                data += chunk
                if time.monotonic() > deadline:
                    raise Hang("SMTP answers do not end")
        finally:
            sock.close()
        return [line for line in data.split(b"\r\n") if line]

    def one(self, rng):
        payload = self.dialogue(rng)
        replies = self.exchange(payload)
        for reply in replies:
            if not _REPLY.match(reply):
                raise Wrong(f"malformed SMTP reply {reply[:120]!r}")
            if reply.startswith(b"451 4.3.0") or b"Error: (" in reply:
                raise Wrong(f"internal error reply {reply[:160]!r} to {payload[:200]!r}")
        if len(self.sink.received) > 1000:
            self.sink.received.clear()

    def alive(self):
        import smtplib

        self.probes = getattr(self, "probes", 0) + 1
        marker = f"X-Fuzz-Probe: {self.probes}".encode()
        with smtplib.SMTP("127.0.0.1", self.filter.port, timeout=self.timeout) as smtp:
            refused = smtp.sendmail("alice@example.org", ["bob@example.org"], marker + b"\r\n" + self.messages[0])
        # a fuzz session's message may still be on its way to the sink: look for this one
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if any(r.data.startswith(marker) for r in self.sink.received[-50:]):
                return refused == {}
            time.sleep(0.01)
        return False

    def stop(self):
        import shutil

        self.filter.stop()
        self.sink.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


TARGETS: dict[str, Callable[[], Target]] = {
    "mime": MimeTarget,
    "rules": RulesTarget,
    "newemail": NewemailTarget,
    "ini": IniTarget,
    "doveauth": DoveauthTarget,
    "lastlogin": LastloginTarget,
    "metadata": MetadataTarget,
    "smtp-outgoing": lambda: FilterTarget("outgoing"),
    "smtp-incoming": lambda: FilterTarget("incoming"),
}
