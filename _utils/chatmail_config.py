"""The formula's settings: chatmaild's table of the relay's keys, extended by the keys only Salt reads.

What a pillar ``chatmail`` (or the chatmail.ini the ``chatmail_ini``
ext_pillar reads) may hold is :data:`SETTINGS`: the relay's table
(chatmaild/config.py, the keys its services read, loaded from
``_chatmaild_config.py`` beside this file, a link to it) followed by the
keys only the formula reads: how the certificate is got (tls_mode, ACME),
which stages run, TOFS, self-healing, Dovecot's source, the backup, the
rate limit of /new, the app version index.  Their kinds and the rules that
involve them are here, so the relay's services do not ship them.

:func:`validate` checks a pillar against the whole table, with the relay's
own rules (chatmaild.config.cross_checks) and the formula's; the pillar a
relay had before is read the same way, with the same messages.  The
functions the formula calls through ``__utils__["chatmail_config.*"]``
(validate, derived, render_ini, read_ini) are defined here: Salt's loader
offers only functions defined in the module it loads.

Like the relay's module it imports nothing outside the standard library:
Salt's own Python loads it.
"""

from __future__ import annotations

import difflib
import importlib.util
import ipaddress
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _load_relay_config():
    """chatmaild/config.py, from ``_chatmaild_config.py`` beside this file.

    A file, not an import: Salt syncs _utils/ to a minion's cache, where no
    chatmaild package is on the path, and the link's leading "_" keeps
    Salt's loader from offering the relay's validate() as a utils module of
    its own.  A plain module object, not registered in sys.modules.
    """
    path = Path(__file__).with_name("_chatmaild_config.py")
    spec = importlib.util.spec_from_file_location("chatmaild_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


relay = _load_relay_config()

# what callers of this module also need of the relay's one
REQUIRED = relay.REQUIRED
Setting = relay.Setting
SettingsError = relay.SettingsError
parse_ini = relay.parse_ini

__all__ = ["SETTINGS", "SettingsError", "STAGES", "validate", "derived", "parse_ini", "read_ini", "render_ini"]

STAGES = ("install", "configure", "activate")


# -- kinds of the formula's keys ---------------------------------------------
# As in chatmaild.config: a raw value (ini text or YAML) in, a typed value
# out, or ValueError naming the expected form.


def kind_url(value: Any) -> str:
    text = relay.kind_text(value)
    if not re.match(r"^https?://[^\s/]+", text):
        raise ValueError("expected an http(s):// URL")
    return text


def kind_domain_or_empty(value: Any) -> str:
    text = relay.kind_text(value)
    return relay.kind_domain(text) if text else ""


def kind_terms_url(value: Any) -> str:
    """A terms-of-service URL as an ACME server names it: https://..., or data:... (pebble)."""
    text = relay.kind_text(value)
    if text and not re.match(r"^(https?://[^\s/]+|data:)\S*$", text):
        raise ValueError("expected the https:// (or data:) URL the ACME server gives as its terms of service, or empty")
    return text


_RESTIC_URL = re.compile(r"^(sftp|rest|s3|b2|azure|gs|swift|rclone):\S+$")
_CALENDAR = re.compile(r"^[A-Za-z0-9 *:,./~+-]+$")


def kind_repository_or_empty(value: Any) -> str:
    """Where backups go: an absolute directory or a restic repository URL."""
    text = relay.kind_text(value)
    if text and not (text.startswith("/") or _RESTIC_URL.match(text)):
        raise ValueError(
            "expected an absolute directory or a restic repository URL "
            "(sftp:host:/path, rest:https://..., s3:...), or empty"
        )
    return text


def kind_calendar(value: Any) -> str:
    """A systemd OnCalendar expression (daily, *-*-* 03:30, Mon..Fri 02:00)."""
    text = relay.kind_text(value)
    if not text or not _CALENDAR.match(text):
        raise ValueError("expected a systemd calendar expression like daily or *-*-* 03:30:00")
    return text


def one_of(*choices: str) -> Callable[[Any], str]:
    def kind(value: Any) -> str:
        # YAML reads a bare off/no as false: name the choices, not the type
        text = value if isinstance(value, str) else None
        if text is None or text.strip() not in choices:
            raise ValueError("expected one of: " + ", ".join(choices))
        return text.strip()

    return kind


def subset_of(*choices: str) -> Callable[[Any], list[str]]:
    def kind(value: Any) -> list[str]:
        words = relay.kind_words(value.replace(",", " ") if isinstance(value, str) else value)
        bad = [w for w in words if w not in choices]
        if bad or not words:
            raise ValueError("expected a list of: " + ", ".join(choices))
        return [c for c in choices if c in words]

    return kind


def kind_forward_zones(value: Any) -> dict[str, list[str]]:
    """DNS zones unbound forwards elsewhere: {zone: [addr[@port], ...]}.

    In chatmail.ini written as ``zone=addr,addr other.zone=addr@5353``.
    """
    expected = "expected zones mapped to resolver addresses, e.g. {test.: [10.0.0.1@53]}"
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        pairs = {}
        for item in value.split():
            zone, sep, addrs = item.partition("=")
            if not sep:
                raise ValueError(expected)
            pairs[zone] = addrs.split(",")
        value = pairs
    if not isinstance(value, dict):
        raise ValueError(expected)
    zones: dict[str, list[str]] = {}
    for zone, addrs in value.items():
        if isinstance(addrs, str):
            addrs = [addrs]
        if not isinstance(addrs, (list, tuple)) or not addrs:
            raise ValueError(expected)
        checked = []
        for addr in addrs:
            host, _, port = str(addr).partition("@")
            try:
                ipaddress.ip_address(host)
                if port:
                    relay.kind_port(port)
            except ValueError:
                raise ValueError(expected) from None
            checked.append(str(addr))
        zones[str(zone).rstrip(".") + "."] = checked
    return zones


_APPVERSION_SOURCE = {"sourceId": str, "versionInteger": int, "versionString": str, "downloadUrl": str}


def kind_appversions(value: Any) -> dict[str, Any] | None:
    """The app version index clients read from IMAP METADATA; None: the formula's own file.

    Checked the way Delta Chat core reads it (typed structs): one value of
    the wrong type makes core drop the whole index, so it is refused here.
    In chatmail.ini it is JSON text; in pillar a mapping.
    """
    expected = (
        "expected {clients: [{clientId: ..., sources: [{sourceId: ..., versionInteger: <0..2^32-1>, "
        "versionString: ..., downloadUrl: https://...}]}]}"
    )
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError("is not JSON; " + expected) from None
    clients = value.get("clients") if isinstance(value, dict) else None
    if not isinstance(clients, list) or set(value) != {"clients"}:
        raise ValueError(expected)
    for client in clients:
        if not (
            isinstance(client, dict)
            and set(client) == {"clientId", "sources"}
            and isinstance(client["clientId"], str)
            and client["clientId"]
            and isinstance(client["sources"], list)
        ):
            raise ValueError(f"client {client!r}: " + expected)
        for source in client["sources"]:
            ok = (
                isinstance(source, dict)
                and set(source) == set(_APPVERSION_SOURCE)
                and all(
                    isinstance(source[k], t) and not isinstance(source[k], bool) for k, t in _APPVERSION_SOURCE.items()
                )
            )
            if not ok or not 0 <= source["versionInteger"] < 2**32 or not source["downloadUrl"].startswith("https://"):
                raise ValueError(f"source {source!r}: " + expected)
    return value


_SALT_PATH = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
_GRAIN = re.compile(r"^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)*$")
_STATE_ID = re.compile(r"^chatmail-[a-z0-9-]+$")


def _is_salt_path(text: Any) -> bool:
    """A relative path inside the file roots that cannot climb out of them."""
    return isinstance(text, str) and bool(_SALT_PATH.match(text)) and ".." not in text.split("/")


def _tofs_path_prefix(value: Any) -> str:
    text = value.strip().rstrip("/") if isinstance(value, str) else ""
    if not _is_salt_path(text):
        raise ValueError(
            "expected a folder in the file roots like chatmail or site/chatmail (relative: no salt://, no leading /, no ..)"
        )
    return text


def _tofs_files_switch(value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and _GRAIN.match(v) for v in value):
        raise ValueError("expected a list of grain names, e.g. [id, os_family]")
    return list(value)


def _tofs_source_files(value: Any) -> dict[str, list[str]]:
    expected = (
        "expected state IDs mapped to lists of file names, e.g. {chatmail-postfix-main-cf-file-managed: [main.cf.j2]}"
    )
    if not isinstance(value, dict):
        raise ValueError(expected)
    files: dict[str, list[str]] = {}
    for state_id, names in value.items():
        if not (isinstance(state_id, str) and _STATE_ID.match(state_id)):
            raise ValueError(f"{state_id!r} is not a state ID of this formula; " + expected)
        if not (isinstance(names, (list, tuple)) and names and all(map(_is_salt_path, names))):
            raise ValueError(f"{state_id}: got {names!r}; " + expected)
        files[state_id] = list(names)
    return files


_TOFS_KEYS = {
    "path_prefix": _tofs_path_prefix,
    "files_switch": _tofs_files_switch,
    "source_files": _tofs_source_files,
}


def kind_tofs(value: Any) -> dict[str, Any]:
    """Where templates are looked up (chatmail/libtofs.jinja, docs/tofs.md).

    Pillar only: a mapping of path_prefix, files_switch and source_files,
    each optional.  chatmail.ini cannot hold it (its values are strings).
    """
    if value is None:
        return {"path_prefix": "chatmail", "files_switch": ["id"], "source_files": {}}
    if not isinstance(value, dict):
        raise ValueError("expected a mapping (pillar only, not chatmail.ini) with keys " + ", ".join(_TOFS_KEYS))
    problems = []
    tofs = kind_tofs(None)
    for key, sub in value.items():
        if key not in _TOFS_KEYS:
            hint = difflib.get_close_matches(str(key), _TOFS_KEYS, n=1)
            also = f" (did you mean {hint[0]}?)" if hint else ""
            problems.append(f"tofs:{key}: unknown key{also}; expected only " + ", ".join(_TOFS_KEYS))
            continue
        try:
            tofs[key] = _TOFS_KEYS[key](sub)
        except ValueError as exc:
            problems.append(f"tofs:{key}: got {sub!r}; {exc}")
    if problems:
        raise ValueError("; ".join(problems))
    return tofs


# -- the table: the relay's keys, then the formula's ----------------------------

# a table: one row per line: not reformatted
# fmt: off
FORMULA_SETTINGS: dict[str, Setting] = {
    "tls_mode": Setting(one_of("acme", "self_signed", "external"), "acme", "how the relay gets its certificate", "formula"),
    "acme_directory": Setting(kind_url, "https://acme-v02.api.letsencrypt.org/directory", "ACME directory URL", "formula"),
    "acme_ca_file": Setting(relay.kind_path_or_empty, "", "CA bundle (PEM) acmetool trusts for acme_directory instead of the system roots", "formula"),
    "acme_terms_url": Setting(kind_terms_url, "", "a further terms-of-service URL acmetool accepts (another CA, or terms newer than the formula)", "formula"),
    "acme_caa_issuer": Setting(kind_domain_or_empty, "", "CAA issuer domain dns_zone publishes; empty: known from acme_directory", "formula"),
    "tls_cert_file": Setting(relay.kind_path_or_empty, "", "certificate chain for tls_mode external", "formula"),
    "tls_key_file": Setting(relay.kind_path_or_empty, "", "private key for tls_mode external", "formula"),
    "dns_forward_zones": Setting(kind_forward_zones, {}, "zones unbound forwards to other resolvers", "formula"),
    "dovecot_source": Setting(one_of("debian", "chatmail", "rebuilt"), "debian", "Debian's Dovecot, chatmail's patched build, or Debian's source rebuilt without the IDLE delay", "formula"),
    "disable_mail": Setting(relay.kind_bool, False, "stop and disable Postfix and Dovecot", "formula"),
    "stages": Setting(subset_of(*STAGES), list(STAGES), "which stages a run applies", "formula"),
    "selfheal": Setting(one_of("disabled", "masterless", "master"), "disabled", "restart Postfix/Dovecot via Salt beacons and a reactor", "formula"),
    "appversions": Setting(kind_appversions, None, "app version index served as IMAP METADATA; absent: the formula's appversions.json", "formula"),
    "backup_repository": Setting(kind_repository_or_empty, "", "restic repository for chatmail.backup and its timer; empty: no timer", "formula"),
    "backup_password_file": Setting(relay.kind_path_or_empty, "/etc/chatmail-backup/password", "the backup repository's password (made on first backup)", "formula"),
    "backup_schedule": Setting(kind_calendar, "daily", "when the backup timer runs (systemd OnCalendar)", "formula"),
    "backup_keep": Setting(relay.kind_count, 14, "backups kept (older ones pruned); 0 keeps all", "formula"),
    "newemail_per_minute": Setting(relay.kind_count, 120, "POSTs to /new one client address may make per minute (nginx limit_req); 0: no limit", "formula"),
    "newemail_burst": Setting(relay.kind_count, 5, "POSTs to /new above the rate one client address may make at once", "formula"),
    "tofs": Setting(kind_tofs, kind_tofs(None), "where templates are looked up, to override single ones (docs/tofs.md)", "formula"),
}
# fmt: on

SETTINGS: dict[str, Setting] = {**relay.SETTINGS, **FORMULA_SETTINGS}


def validate(raw: dict[str, Any] | None, source: str = "chatmail") -> dict[str, Any]:
    """Typed settings of the whole table with defaults filled in, or SettingsError.

    ``source`` names where the values came from (pillar key or file) so
    the message points the operator at the right place.  Each key's kind
    first; then, if every value had its form, upstream's way of choosing the
    certificate; then the rules between keys, the relay's and the formula's.
    """
    raw = {} if raw is None else raw
    settings, problems = relay.typed(raw, SETTINGS, source)
    if not problems:
        problems = _upstream_tls_modes(settings, raw, source)
    if not problems:
        problems = relay.cross_checks(settings, source) + _cross_checks(settings, source)
    if problems:
        raise SettingsError(problems, source)
    return settings


def _upstream_tls_modes(s: dict[str, Any], raw: dict[str, Any], source: str) -> list[str]:
    """Upstream's way of choosing the certificate, mapped onto tls_mode.

    Upstream has no tls_mode: ``tls_external_cert_and_key`` means external,
    a mail_domain starting with ``_`` or an IPv4 address (an IP-only relay)
    means self-signed (no CA issues a certificate for such a name), anything
    else ACME.  An explicit tls_mode
    that says otherwise is a contradiction, not something to guess about.
    """
    problems = []
    pair = s["tls_external_cert_and_key"]
    if pair:
        if "tls_mode" in raw and s["tls_mode"] != "external":
            problems.append(
                f"{source}:tls_mode: got {s['tls_mode']!r}, but tls_external_cert_and_key is set; "
                "expected tls_mode external (or leave tls_mode out)"
            )
        for key, path in zip(("tls_cert_file", "tls_key_file"), pair):
            if s[key] and s[key] != path:
                problems.append(
                    f"{source}:{key}: got {s[key]!r}, but tls_external_cert_and_key says {path!r}; "
                    "expected one of the two (or both the same)"
                )
        s["tls_mode"] = "external"
        s["tls_cert_file"], s["tls_key_file"] = pair
    elif s["mail_domain"].startswith("_") or relay.ip_relay(s["mail_domain"]):
        what = "an IP address" if relay.ip_relay(s["mail_domain"]) else "a name starting with '_'"
        if "tls_mode" not in raw:
            s["tls_mode"] = "self_signed"
        elif s["tls_mode"] == "acme":
            problems.append(
                f"{source}:tls_mode: got 'acme' for {s['mail_domain']!r}; no CA issues certificates for "
                f"{what}; expected self_signed or external (or leave tls_mode out)"
            )
    return problems


def _cross_checks(s: dict[str, Any], source: str) -> list[str]:
    """Rules that involve the formula's keys."""
    problems = []
    if s["tls_mode"] == "external":
        for key in ("tls_cert_file", "tls_key_file"):
            if not s[key]:
                problems.append(f"{source}:{key}: missing; tls_mode external needs an absolute path")
    return problems


def derived(settings: dict[str, Any], tls_params: dict[str, Any]) -> dict[str, Any]:
    """Values computed from the settings: the relay's (chatmaild.config.derived) and the formula's.

    ``tls_params``: the parameters table's ``tls`` (chatmail/parameters/), where the
    certificate of each tls_mode lies."""
    domain = settings["mail_domain"]
    live = f"{tls_params['acme_state']}/live/{domain}"
    tls = {
        "acme": (f"{live}/fullchain", f"{live}/privkey"),
        "self_signed": (tls_params["self_signed_cert"], tls_params["self_signed_key"]),
        "external": (settings["tls_cert_file"], settings["tls_key_file"]),
    }[settings["tls_mode"]]
    return {
        **relay.derived(settings),
        "tls_cert_path": tls[0],
        "tls_key_path": tls[1],
        # the file chatmail-metadata serves; None: the formula's own file
        "appversions_json": None
        if settings["appversions"] is None
        else json.dumps(settings["appversions"], indent=2) + "\n",
    }


def render_ini(settings: dict[str, Any], scopes: tuple[str, ...] = ("ini",)) -> str:
    """The relay's chatmail.ini for validated settings: the relay's keys only (chatmaild.config.render_ini)."""
    return relay.render_ini(settings, scopes)


def read_ini(path: str | Path) -> dict[str, str]:
    """The ``[params]`` of a chatmail.ini as raw strings, formula keys included (chatmaild.config.read_ini)."""
    return relay.read_ini(path)
