"""The relay's settings: one table of the chatmail.ini keys its services read, their types and defaults.

The relay's Python services read the chatmail.ini the formula renders
(in chatmaild.lib of the formula's parameters table; its units pass the
path) through :func:`read_config`; the
operator's keys, their kinds and the rules between them are here.

The Salt formula validates its pillar with a table that extends this one
(``_utils/chatmail_config.py``: this table plus the keys only the formula
reads, such as tls_mode, stages, tofs and the backup), so a bad value fails
the Salt run before anything changes on the relay.  Those keys never reach
the relay's chatmail.ini (:func:`render_ini` writes the keys of this table
only), and their rules do not ship with the relay's services.

It imports nothing outside the standard library on purpose: Salt's own
Python loads it (``_utils/_chatmaild_config.py`` is a link to this file) as
well as the relay's system Python.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "SETTINGS",
    "SettingsError",
    "Config",
    "validate",
    "typed",
    "cross_checks",
    "parse_ini",
    "read_ini",
    "render_ini",
    "read_config",
    "derived",
]


class SettingsError(ValueError):
    """One or more settings are invalid; ``problems`` lists each one."""

    def __init__(self, problems: list[str], source: str = "chatmail"):
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid {source} settings:\n{lines}")


# -- value kinds ---------------------------------------------------------
# Each kind turns a raw value (a string from chatmail.ini or a YAML value
# from pillar) into a typed value, or raises ValueError naming the expected
# form.  The message is completed with the key and the bad value by
# validate().

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0", ""}
_DOMAIN_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_SIZE = re.compile(r"^([0-9]+)([kmgt]?)b?$", re.IGNORECASE)
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+$")


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list, tuple, bool)):
        raise ValueError("expected a text value")
    return str(value).strip()


def kind_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = _as_text(value).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("expected true or false")


def kind_count(value: Any) -> int:
    """A whole number >= 0."""
    if isinstance(value, bool):
        raise ValueError("expected a whole number >= 0 (e.g. 60)")
    if isinstance(value, int):
        number = value
    else:
        text = _as_text(value)
        if not re.fullmatch(r"[+-]?[0-9]+", text):
            raise ValueError("expected a whole number >= 0 (e.g. 60)")
        number = int(text)
    if number < 0:
        raise ValueError("expected a whole number >= 0, not a negative one")
    return number


def kind_positive(value: Any) -> int:
    """A whole number >= 1 (a limit where 0 would refuse everything)."""
    number = kind_count(value)
    if number < 1:
        raise ValueError("expected a whole number >= 1")
    return number


def kind_number(value: Any) -> float:
    """A decimal number >= 0, such as a load average (5 or 2.5)."""
    if isinstance(value, bool):
        raise ValueError("expected a number >= 0 (e.g. 5 or 2.5)")
    text = value if isinstance(value, (int, float)) else _as_text(value)
    try:
        number = float(text)
    except ValueError:
        raise ValueError("expected a number >= 0 (e.g. 5 or 2.5)") from None
    if not number >= 0 or number == float("inf"):
        raise ValueError("expected a finite number >= 0 (e.g. 5 or 2.5)")
    return number


def kind_port(value: Any) -> int:
    number = kind_count(value)
    if not 1 <= number <= 65535:
        raise ValueError("expected a TCP port number between 1 and 65535")
    return number


def kind_size(value: Any) -> str:
    """A Dovecot size such as 500M; kept as text, unit upper-cased."""
    text = _as_text(value)
    match = _SIZE.fullmatch(text)
    if not match:
        raise ValueError("expected a size like 500M (a number with optional unit K, M, G or T)")
    return match.group(1) + match.group(2).upper()


_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def size_bytes(size: str) -> int:
    """Bytes of a size as kind_size gives it ("200M" -> 209715200)."""
    match = _SIZE.fullmatch(size)
    if not match:
        raise ValueError(f"not a size: {size!r}")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]


def kind_domain(value: Any) -> str:
    text = _as_text(value)
    problem = domain_problem(text)
    if problem:
        raise ValueError(problem)
    return text


def kind_mail_domain(value: Any) -> str:
    """The relay's domain, or the IPv4 address of an IP-only relay (upstream 1.12).

    An IP-only relay's addresses are ``user@[1.2.3.4]`` (an RFC 5321 address
    literal); the setting holds the bare address, as upstream's
    chatmail.ini does (``[1.2.3.4]`` is accepted and stored bare).
    """
    text = _as_text(value)
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        return kind_domain(text)
    if address.version == 6:
        raise ValueError(
            "is an IPv6 address: IP-only relays work with an IPv4 address only (as upstream); "
            "expected a domain name like chat.example.org or an IPv4 address like 192.0.2.7"
        )
    if address.is_loopback or address.is_unspecified or address.is_multicast or str(address) != bare:
        raise ValueError(
            "is not an address other hosts can reach; expected the relay's own IPv4 address like 192.0.2.7"
        )
    return bare


def ip_relay(mail_domain: str) -> bool:
    """True if the relay has no domain, only an IPv4 address (addresses ``user@[1.2.3.4]``)."""
    return _is_ip(mail_domain)


def mail_domain_address(mail_domain: str) -> str:
    """The part of an address after the @: the domain, or ``[1.2.3.4]`` for an IP-only relay."""
    return f"[{mail_domain}]" if ip_relay(mail_domain) else mail_domain


def domain_problem(text: str) -> str | None:
    """Why ``text`` is not a usable lower-case mail domain, or None."""
    expected = "expected a lower-case domain name like chat.example.org"
    if not text:
        return "is empty; " + expected
    if text != text.lower():
        return "has upper-case letters; " + expected
    if _is_ip(text.strip("[]")):
        return "is an IP address; " + expected
    # upstream: a leading "_" marks a relay that uses a self-signed certificate
    labels = text.removeprefix("_").split(".")
    if len(labels) < 2 or len(text) > 253:
        return expected
    if not all(_DOMAIN_LABEL.match(label) for label in labels):
        return expected
    if labels[-1].isdigit():
        # no top-level domain is all digits (RFC 3696 2): a mistyped IP address like 192.0.2.007
        return "ends in a number: neither a domain nor an IPv4 address; " + expected
    return None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def kind_text(value: Any) -> str:
    return _as_text(value)


def kind_multiline(value: Any) -> str:
    """Free text that may span lines (privacy contacts).

    chatmail.ini holds it as continuation lines, which cannot be blank (a
    blank line ends nothing but is skipped) and cannot start with ``#`` or
    ``;`` (read as a comment and dropped; found by the hypothesis round-trip
    property).  Blank lines are therefore dropped here too, and a comment-like
    line is refused, so the value the pillar gives is the value chatmail.ini
    gives back.
    """
    if value is None:
        return ""
    if isinstance(value, (dict, list, tuple, bool)):
        raise ValueError("expected text")
    lines = [line.strip() for line in str(value).strip().splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("#", ";")):
            raise ValueError(
                f"line {line!r} starts with {line[0]!r}, which chatmail.ini reads as a comment; "
                "expected lines that start with something else (e.g. 'No. 3' for '# 3')"
            )
    return "\n".join(lines)


def kind_words(value: Any) -> list[str]:
    """Space-separated words in ini; a YAML list in pillar."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [_as_text(v) for v in value if _as_text(v)]
    return _as_text(value).split()


def kind_addresses(value: Any) -> list[str]:
    addrs = kind_words(value)
    for addr in addrs:
        if not (_ADDRESS.match(addr) or (addr.startswith("@") and "@" not in addr[1:])):
            raise ValueError("expected e-mail addresses (or @domain) separated by spaces")
    return addrs


def kind_optional_url(value: Any) -> str | None:
    """Absent (None) differs from empty: see iroh_relay in docs/pillar.md."""
    if value is None:
        return None
    text = _as_text(value)
    if text and not re.match(r"^https?://[^\s/]+", text):
        raise ValueError("expected an https:// URL, or empty")
    return text


def kind_ip_or_empty(value: Any) -> str:
    text = _as_text(value)
    if text:
        try:
            ipaddress.ip_address(text)
        except ValueError:
            raise ValueError("expected an IP address like 127.0.0.1, or empty") from None
    return text


def kind_path_or_empty(value: Any) -> str:
    text = _as_text(value)
    if text and not text.startswith("/"):
        raise ValueError("expected an absolute path, or empty")
    return text


def kind_cert_and_key(value: Any) -> list[str]:
    """Upstream's ``tls_external_cert_and_key = CERT KEY``: two absolute paths, or empty."""
    paths = kind_words(value)
    if paths and (len(paths) != 2 or not all(p.startswith("/") for p in paths)):
        raise ValueError("expected two absolute paths separated by a space: CERT_PATH KEY_PATH, or empty")
    return paths


# -- the table -------------------------------------------------------------


class Setting:
    """One key: how to read it, its default, what it is for, who reads it.

    ``scope`` is "ini" for chatmail.ini keys (rendered for the services)
    and "upstream" for keys of upstream's chatmail.ini that configure parts
    this formula does not run: accepted so that file converts unchanged,
    with no effect.  (The formula's own table adds "formula" keys, which
    only the Salt formula reads: _utils/chatmail_config.py.)  (A plain class, not a
    dataclass: Salt's loader imports this file without registering it in
    sys.modules, which dataclasses need.)
    """

    __slots__ = ("kind", "default", "doc", "scope")

    def __init__(self, kind: Callable[[Any], Any], default: Any, doc: str, scope: str = "ini"):
        self.kind = kind
        self.default = default
        self.doc = doc
        self.scope = scope


MAX_LOCAL_PART = 64  # octets, RFC 5321 4.5.3.1.1; doveauth creates nothing longer
REQUIRED = object()

# a table: one row per line: not reformatted
# fmt: off
SETTINGS: dict[str, Setting] = {
    "mail_domain": Setting(kind_mail_domain, REQUIRED, "the domain the relay serves (or its IPv4 address: an IP-only relay)"),
    "max_user_send_per_minute": Setting(kind_count, 60, "messages one address may send per minute"),
    "max_user_send_burst_size": Setting(kind_positive, 10, "messages one address may send at once before the per-minute rate applies"),
    "max_mailbox_size": Setting(kind_size, "500M", "quota of one mailbox"),
    "max_message_size": Setting(kind_count, 31457280, "largest message in bytes"),
    "delete_mails_after": Setting(kind_count, 20, "days after which messages are deleted"),
    "delete_large_after": Setting(kind_count, 7, "days after which seen messages > 200 kB are deleted"),
    "delete_inactive_users_after": Setting(kind_count, 90, "days without login before an account is removed"),
    "username_min_length": Setting(kind_count, 9, "shortest local part of a new address"),
    "username_max_length": Setting(kind_count, 9, "longest local part of a new address"),
    "password_min_length": Setting(kind_count, 9, "shortest password of a new account"),
    "max_load_1m": Setting(kind_number, 5.0, "1-minute load average above which no new accounts are created"),
    "min_available_memory": Setting(kind_size, "200M", "available memory below which no new accounts are created"),
    "min_free_disk_space": Setting(kind_size, "1G", "free disk under the mailboxes below which no new accounts are created"),
    "max_imap_connections": Setting(kind_positive, 10000, "concurrent IMAP connections (Dovecot imap process limit)"),
    "max_smtp_connections": Setting(kind_positive, 1000, "concurrent SMTP connections per submission port (Postfix process limit)"),
    "tls_external_cert_and_key": Setting(kind_cert_and_key, [], "certificate chain and key paths you manage (sets tls_mode external)"),
    "account_creations_per_hour": Setting(kind_count, 200, "accounts first logins from one client address (IPv6: its /64) may create per hour; 0: no limit"),
    "passthrough_senders": Setting(kind_addresses, [], "local senders allowed to send cleartext"),
    "passthrough_recipients": Setting(kind_addresses, [], "recipients (or @domain) that may get cleartext"),
    "www_folder": Setting(kind_path_or_empty, "", "folder on the relay (absolute path) served as the website instead of the built-in pages"),
    "filtermail_smtp_port": Setting(kind_port, 10080, "outgoing filter port"),
    "postfix_reinject_port": Setting(kind_port, 10025, "outgoing reinjection port"),
    "filtermail_smtp_port_incoming": Setting(kind_port, 10081, "incoming filter port"),
    "postfix_reinject_port_incoming": Setting(kind_port, 10026, "incoming reinjection port"),
    "disable_ipv6": Setting(kind_bool, False, "listen and send on IPv4 only"),
    "acme_email": Setting(kind_text, "", "contact address given to the ACME CA"),
    "iroh_relay": Setting(kind_optional_url, None, "iroh relay URL; absent: run one locally"),
    "mtail_address": Setting(kind_ip_or_empty, "", "address for mtail metrics on port 3903"),
    "imap_rawlog": Setting(kind_bool, False, "write IMAP rawlogs into mailboxes"),
    "imap_compress": Setting(kind_bool, False, "offer IMAP COMPRESS (disables hibernation)"),
    "privacy_postal": Setting(kind_multiline, "", "privacy page: postal address"),
    "privacy_mail": Setting(kind_text, "", "privacy page: contact address"),
    "privacy_pdo": Setting(kind_multiline, "", "privacy page: data protection officer"),
    "privacy_supervisor": Setting(kind_multiline, "", "privacy page: supervisory authority"),
    "mailboxes_dir": Setting(kind_path_or_empty, "", "mailbox root (deprecated; default /home/vmail/mail/DOMAIN)"),
    "passdb_path": Setting(kind_path_or_empty, "/home/vmail/passdb.sqlite", "legacy SQLite passdb to migrate"),
    # upstream keys for parts this formula does not run: accepted, no effect
    "filtermail_http_port_incoming": Setting(kind_port, 10082, "upstream's filtermail HTTPS relay-to-relay port (no effect here)", "upstream"),
    "filtermail_lmtp_port_transport": Setting(kind_port, 10083, "upstream's filtermail LMTP transport port (no effect here)", "upstream"),
    "turn_socket_path": Setting(kind_path_or_empty, "/run/chatmail-turn/turn.socket", "upstream's TURN credentials socket (no effect here)", "upstream"),
}
# fmt: on

PRIVACY_KEYS = ("privacy_postal", "privacy_mail", "privacy_pdo", "privacy_supervisor")
UPSTREAM_OPERATOR = ("merlinux", "schmieder", "testrun.org")


def _is_testrun(domain: str) -> bool:
    return domain == "testrun.org" or domain.endswith(".testrun.org")


def validate(raw: dict[str, Any] | None, source: str = "chatmail") -> dict[str, Any]:
    """Typed settings with defaults filled in, or SettingsError.

    ``source`` names where the values came from (pillar key or file) so
    the message points the operator at the right place.
    """
    settings, problems = typed(raw, SETTINGS, source)
    if not problems:
        problems = cross_checks(settings, source)
    if problems:
        raise SettingsError(problems, source)
    return settings


def typed(raw: dict[str, Any] | None, table: dict[str, Setting], source: str) -> tuple[dict[str, Any], list[str]]:
    """Each key of ``table`` with its kind applied (or its default), and the problems found.

    Problems: a key ``table`` does not know (with a "did you mean" for a
    typo), a missing required key, a value its kind refuses.  Shared with the
    formula's table (``_utils/chatmail_config.py``), which extends this one.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SettingsError([f"{source}: expected a mapping of settings, got {type(raw).__name__}"], source)
    problems: list[str] = []
    settings: dict[str, Any] = {}
    for key in raw:
        if key not in table:
            hint = difflib.get_close_matches(str(key), table, n=1)
            also = f" (did you mean {hint[0]}?)" if hint else ""
            problems.append(
                f"{source}:{key}: got {raw[key]!r} for an unknown key{also}; expected one of the keys in pillar.example"
            )
    for key, setting in table.items():
        if key not in raw:
            if setting.default is REQUIRED:
                problems.append(f"{source}:{key}: missing; {setting.doc} is required, e.g. chat.example.org")
                continue
            value = setting.default
            settings[key] = list(value) if isinstance(value, list) else value
            continue
        try:
            settings[key] = setting.kind(raw[key])
        except ValueError as exc:
            problems.append(f"{source}:{key}: got {raw[key]!r}; {exc}")
    return settings, problems


def cross_checks(s: dict[str, Any], source: str) -> list[str]:
    """Rules that involve more than one key of this table."""
    problems = []
    if s["username_max_length"] > MAX_LOCAL_PART:
        problems.append(
            f"{source}:username_max_length: got {s['username_max_length']}; expected at most "
            f"{MAX_LOCAL_PART} (the longest local part RFC 5321 allows)"
        )
    if s["username_min_length"] > s["username_max_length"]:
        problems.append(
            f"{source}:username_min_length: got {s['username_min_length']}; expected at most "
            f"username_max_length ({s['username_max_length']})"
        )
    if not _is_testrun(s["mail_domain"]):
        for key in PRIVACY_KEYS:
            found = [w for w in UPSTREAM_OPERATOR if w in s[key].lower()]
            if found:
                problems.append(
                    f"{source}:{key}: got {s[key]!r}, the contact of the upstream operator "
                    f"({found[0]}); expected your own contact details for {s['mail_domain']}"
                )
    ports = [
        "filtermail_smtp_port",
        "postfix_reinject_port",
        "filtermail_smtp_port_incoming",
        "postfix_reinject_port_incoming",
    ]
    seen: dict[int, str] = {}
    for key in ports:
        if s[key] in seen:
            problems.append(f"{source}:{key}: got {s[key]}, already used by {seen[s[key]]}; expected distinct ports")
        seen[s[key]] = key
    return problems


def derived(settings: dict[str, Any]) -> dict[str, Any]:
    """Values computed from the settings, for the services (and the formula, which adds its own)."""
    domain = settings["mail_domain"]
    iroh = settings["iroh_relay"]
    no_domain = ip_relay(domain)
    return {
        # the part after the @ of the relay's addresses ("[1.2.3.4]" for an IP-only relay)
        "mail_domain_address": mail_domain_address(domain),
        # an IP-only relay: no DNS, so no DKIM key to publish and no MX or MTA-STS names
        "ip_relay": no_domain,
        # the name Postfix greets with: an IP-only relay's reverse-DNS name (4.3.2.1.in-addr.arpa)
        "smtp_hostname": ipaddress.ip_address(domain).reverse_pointer if no_domain else domain,
        # a relay whose certificate is self-signed by design (an IP-only or "_" relay): Delta Chat
        # cannot fetch DCACCOUNT:https://D/new from it, so the website hands out dclogin: codes
        # (credentials plus "accept invalid certificates") made by /new, as upstream
        "dclogin_accounts": no_domain or domain.startswith("_"),
        "mailboxes_dir": settings["mailboxes_dir"] or f"/home/vmail/mail/{domain}",
        # absent key: run a local iroh-relay and advertise it
        "iroh_relay_url": f"https://{domain}" if iroh is None else iroh,
        "iroh_relay_local": iroh is None,
    }


# -- chatmail.ini ------------------------------------------------------------


def parse_ini(text: str, source: str = "chatmail.ini") -> dict[str, str]:
    """The ``[params]`` section as raw strings (indented lines continue a value)."""
    params: dict[str, str] = {}
    section = None
    key = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if line[0] in " \t" and key is not None and section == "params":
            params[key] = (params[key] + "\n" + stripped).strip()
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            section, key = stripped[1:-1].strip(), None
            continue
        name, sep, value = stripped.partition("=")
        if not sep:
            raise SettingsError([f"{source} line {number}: got {stripped!r}; expected 'key = value'"], source)
        if section is None:
            raise SettingsError(
                [f"{source} line {number}: setting before any section; expected it under [params]"], source
            )
        if section == "params":
            key = name.strip()
            params[key] = value.strip()
    return params


def read_ini(path: str | Path) -> dict[str, str]:
    return parse_ini(Path(path).read_text(encoding="utf-8"), source=str(path))


def _ini_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return " ".join(value)
    if isinstance(value, dict):
        return " ".join(f"{zone}={','.join(addrs)}" for zone, addrs in value.items())
    return "\n    ".join(str(value).splitlines())


def render_ini(settings: dict[str, Any], scopes: tuple[str, ...] = ("ini",)) -> str:
    """A chatmail.ini with every key of the given scopes, typed values in ini form."""
    lines = ["# chatmail relay settings; managed by the chatmail Salt formula", "[params]"]
    for key, setting in SETTINGS.items():
        if setting.scope not in scopes:
            continue
        value = settings.get(key, setting.default)
        if value is None or value is REQUIRED:
            continue
        lines.append(f"# {setting.doc}")
        lines.append(f"{key} = {_ini_value(value)}".rstrip())
    return "\n".join(lines) + "\n"


class Config:
    """Settings for the relay's services: built once, passed to each service."""

    def __init__(self, settings: dict[str, Any], path: str | Path | None = None):
        self.settings = settings
        # the chatmail.ini it was read from: the formula writes the services' other files beside it
        self.path = Path(path) if path is not None else None
        for key, value in settings.items():
            setattr(self, key, value)
        extra = derived(settings)
        self.mailboxes_dir = Path(extra["mailboxes_dir"])
        self.iroh_relay_url = extra["iroh_relay_url"]
        self.mail_domain_address = extra["mail_domain_address"]
        self.ip_relay = extra["ip_relay"]
        self.dclogin_accounts = extra["dclogin_accounts"]
        self.passdb_path = Path(settings["passdb_path"])

    def get_user_dir(self, addr: str) -> Path:
        """The mailbox folder of ``addr``; refuses anything that is not one address."""
        if not addr or "@" not in addr or "/" in addr or addr.startswith("."):
            raise ValueError(f"invalid address {addr!r}")
        return self.mailboxes_dir / addr


def read_config(path: str | Path) -> Config:
    """The Config of a rendered chatmail.ini (as the services get it)."""
    raw = read_ini(path)
    return Config(validate(raw, source=str(path)), path)
