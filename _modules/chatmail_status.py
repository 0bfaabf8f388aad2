"""chatmail.status / chatmail.ports / chatmail.listeners: is the relay healthy?

``chatmail.status`` is the formula's ``cmdeploy status``: one call that
answers what an operator asks after a deploy or a migration (design.md §8.1,
8.6): are the services up, does every port have its owner listening, when
does the certificate expire, is mail piling up in the queue, how many
accounts and how much disk, which revision is deployed, are the privacy
contacts set.  Every item is read on its own and reports "missing" /
"not installed" / "unknown" instead of raising, so a half-built relay (or
a host without systemd) still gets a full answer.

The expected services and ports are tables (``SERVICES``, ``PORTS``); the
port table is also what the pre-flight state ``chatmail_preflight``
checks before a deploy, so both agree on who may hold which port.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import ssl
from collections.abc import Callable
from typing import Any

__virtualname__ = "chatmail"


def __virtual__():
    return __virtualname__


# -- tables ------------------------------------------------------------------

# When a component is part of this relay's configuration, by name.
CONDITIONS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "always": lambda s: True,
    "acme": lambda s: s["tls_mode"] == "acme",
    "iroh_local": lambda s: bool(s["iroh_relay_local"]),
    "mtail": lambda s: bool(s["mtail_address"]),
    "external": lambda s: s["tls_mode"] == "external",
    "selfheal_masterless": lambda s: s["selfheal"] == "masterless",
    "backup": lambda s: bool(s["backup_repository"]),
}

# The row of the unit that runs Postfix's master: a per-release value
# (chatmail.params postfix.unit: postfix@- on Debian 12, postfix on 13).
POSTFIX_MASTER = "<params postfix.unit>"

# Every unit the formula keeps running (its service.running states; the
# system test compares this table with them).
# (unit, condition, stopped by disable_mail)
SERVICES: tuple[tuple[str, str, bool], ...] = (
    ("postfix.service", "always", True),
    (POSTFIX_MASTER, "always", True),
    ("dovecot.service", "always", True),
    ("opendkim.service", "always", False),
    ("nginx.service", "always", False),
    ("unbound.service", "always", False),
    ("chatmail-dicts.service", "always", False),  # doveauth, lastlogin, chatmail-metadata
    ("filtermail.service", "always", False),
    ("fcgiwrap.socket", "always", False),
    ("coturn.service", "always", False),
    ("systemd-journald.service", "always", False),
    ("chatmail-expire.timer", "always", False),
    ("chatmail-fsreport.timer", "always", False),
    ("acmetool-redirector.service", "acme", False),
    ("acmetool-reconcile.timer", "acme", False),
    ("chatmail-tls-reload.path", "external", False),
    ("chatmail-selfheal.service", "selfheal_masterless", True),  # watches only the mail daemons
    ("iroh-relay.service", "iroh_local", False),
    ("mtail.service", "mtail", False),
    ("chatmail-backup.timer", "backup", False),
)

POSTFIX = (("master", "smtpd"), ("postfix@-.service", "postfix.service"))
DOVECOT = (("imap-login", "dovecot"), ("dovecot.service",))
NGINX = (("nginx",), ("nginx.service",))

# Spec 0.4 (who listens where) and 8.5 (who may hold the port before a
# deploy).  port: a number or the settings key holding it; bind: "all",
# "localhost" or one address; owners: (process names, systemd units) -
# a listener is the relay's own if either matches (chatmaild's filtermail
# runs as "python3" inside filtermail.service); mail: stopped by
# disable_mail; precheck: checked before a deploy (design.md §8.5: not 3478, 3903).
# (port, proto, bind, owners, purpose, condition, mail, precheck)
# a table: one row per line: not reformatted
# fmt: off
PORTS: tuple[tuple[Any, str, str, tuple, str, str, bool, bool], ...] = (
    (25, "tcp", "all", POSTFIX, "SMTP from other relays (MX)", "always", True, True),
    (53, "tcp", "localhost", (("unbound",), ("unbound.service",)), "local DNS resolver", "always", False, True),
    (80, "tcp", "all", (("acmetool",), ("acmetool-redirector.service",)), "ACME HTTP-01, redirect to https", "acme", False, True),
    (143, "tcp", "all", DOVECOT, "IMAP (STARTTLS)", "always", True, True),
    (443, "tcp", "all", NGINX, "HTTPS and ALPN multiplexer", "always", False, True),
    (465, "tcp", "all", POSTFIX, "SMTP submission (TLS)", "always", True, True),
    (587, "tcp", "all", POSTFIX, "SMTP submission (STARTTLS)", "always", True, True),
    (993, "tcp", "all", DOVECOT, "IMAPS", "always", True, True),
    (3340, "tcp", "all", (("iroh-relay",), ("iroh-relay.service",)), "iroh relay (behind nginx)", "iroh_local", False, True),
    (3478, "udp", "all", (("turnserver",), ("coturn.service",)), "STUN/TURN", "always", False, False),
    (3903, "tcp", "mtail_address", (("mtail",), ("mtail.service",)), "mtail metrics", "mtail", False, False),
    (8465, "tcp", "127.0.0.1", POSTFIX, "SMTP submission from nginx (443, PROXY protocol)", "always", True, True),
    (8993, "tcp", "127.0.0.1", DOVECOT, "IMAPS from nginx (443, PROXY protocol)", "always", True, True),
    (8443, "tcp", "127.0.0.1", NGINX, "website, CGI, iroh proxy (behind 443)", "always", False, True),
    ("postfix_reinject_port", "tcp", "127.0.0.1", POSTFIX, "reinjection of filtered outgoing mail", "always", True, True),
    ("postfix_reinject_port_incoming", "tcp", "127.0.0.1", POSTFIX, "reinjection of filtered incoming mail", "always", True, True),
    ("filtermail_smtp_port", "tcp", "127.0.0.1", (("filtermail",), ("filtermail.service",)), "outgoing filter", "always", False, True),
    (
        # filtermail-incoming.service: the unit of formula versions before 2026-12 (chatmail.legacy
        # removes it), still holding the port when such a relay is deployed again
        "filtermail_smtp_port_incoming", "tcp", "127.0.0.1",
        (("filtermail",), ("filtermail.service", "filtermail-incoming.service")),
        "incoming filter", "always", False, True,
    ),
)
# fmt: on

WILDCARDS = {"0.0.0.0", "::", "*", ""}
LOCALHOST = {"127.0.0.1", "::1"}  # what unbound binds by default (127.0.0.53 is not in the way)


# -- helpers -----------------------------------------------------------------


def _settings(pillar: dict[str, Any] | None) -> dict[str, Any]:
    return __salt__["chatmail.settings"](pillar)


def _run(cmd: list[str]) -> dict[str, Any] | None:
    """cmd.run_all without a shell; None when the program is not installed."""
    if shutil.which(cmd[0]) is None:
        return None
    return __salt__["cmd.run_all"](cmd, python_shell=False, ignore_retcode=True, output_loglevel="quiet")


def _unit_of(pid: int) -> str | None:
    """The systemd unit (service) a process runs in, from its cgroup path."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    for line in lines:
        for part in reversed(line.rpartition(":")[2].split("/")):
            if part.endswith(".service"):
                return part
    return None


_PROCESS = re.compile(r'\("((?:[^"\\]|\\.)*)",pid=(\d+),fd=\d+\)')


def _parse_ss(text: str) -> list[dict[str, Any]]:
    """Rows of ``ss -Hltnup`` as dicts: proto, address, port, processes."""
    rows = []
    for line in text.splitlines():
        fields = line.split(None, 6)
        if len(fields) < 5:
            continue
        proto, local = fields[0], fields[4]
        address, _, port = local.rpartition(":")
        if not port.isdigit():
            continue
        address = address.strip("[]").partition("%")[0]
        procs = [
            {"name": name, "pid": int(pid), "unit": _unit_of(int(pid))}
            for name, pid in _PROCESS.findall(fields[6] if len(fields) > 6 else "")
        ]
        seen, unique = set(), []
        for proc in procs:  # forked servers list each process once per socket fd
            if proc["pid"] not in seen:
                seen.add(proc["pid"])
                unique.append(proc)
        rows.append({"proto": _proc_name(proto), "address": address, "port": int(port), "processes": unique})
    return rows


def _proc_name(netid: str) -> str:
    return "udp" if netid.startswith("udp") else "tcp"


def _overlaps(address: str, bind: str) -> bool:
    """Would a listener on ``address`` keep the relay from binding ``bind``?"""
    if bind in ("all", "") or address in WILDCARDS:
        return True
    if bind == "localhost":
        return address in LOCALHOST
    return address == bind


def _port_rows(s: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for port, proto, bind, (names, units), purpose, condition, mail, precheck in PORTS:
        key = port if isinstance(port, str) else None
        number = s[port] if key else port
        if bind == "mtail_address":
            bind = s["mtail_address"] or "127.0.0.1"
        needed = CONDITIONS[condition](s)
        rows.append(
            {
                "port": number,
                "setting": key,
                "proto": proto,
                "bind": bind,
                "process_names": list(names),
                "units": list(units),
                "purpose": purpose,
                "needed": needed,
                "precheck": precheck and needed,
                "expect_listening": needed and not (mail and s["disable_mail"]),
            }
        )
    return rows


def _owned_by_relay(row: dict[str, Any], proc: dict[str, Any]) -> bool:
    return proc["name"] in row["process_names"] or (proc.get("unit") or "") in row["units"]


# -- public functions ----------------------------------------------------------


def ports(pillar: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The ports this relay uses, with the processes/units allowed to hold them.

    ``needed``: this configuration uses the port; ``precheck``: checked by
    ``chatmail_preflight.ports_free`` before a deploy; ``expect_listening``:
    something should listen there now (not with ``disable_mail`` for the
    Postfix/Dovecot ports).

    CLI Example::

        salt-call --out=json chatmail.ports
    """
    return _port_rows(_settings(pillar))


def listeners() -> dict[str, Any]:
    """Listening sockets (``ss -Hltnup``) with process name, pid and systemd unit.

    Returns ``{"listeners": [...]}``, or ``{"listeners": [], "error": ...}``
    when ``ss`` is missing or fails.

    CLI Example::

        salt-call --out=json chatmail.listeners
    """
    out = _run(["ss", "-Hltnup"])
    if out is None:
        return {"listeners": [], "error": "ss not installed (package iproute2)"}
    if out["retcode"] != 0:
        return {"listeners": [], "error": f"ss failed: {out['stderr'].strip()}"}
    return {"listeners": _parse_ss(out["stdout"])}


def _service_rows() -> list[tuple[str, str, bool]]:
    """SERVICES on this release: POSTFIX_MASTER named, each unit once (on Debian 13
    postfix.service is the master itself)."""
    master = __salt__["chatmail.params"]()["postfix"]["unit"] + ".service"
    rows: dict[str, tuple[str, str, bool]] = {}
    for unit, condition, mail in SERVICES:
        unit = master if unit == POSTFIX_MASTER else unit
        rows.setdefault(unit, (unit, condition, mail))
    return list(rows.values())


def _services(s: dict[str, Any]) -> list[dict[str, Any]]:
    table = _service_rows()
    units = [unit for unit, _, _ in table]
    out = _run(["systemctl", "is-active", *units])
    states = out["stdout"].split() if out is not None else []
    detail = None
    if out is None:
        detail = "systemctl not installed"
    elif len(states) != len(units):
        detail = (out["stderr"].strip().splitlines() or ["systemctl gave no answer"])[0]
        states = []
    rows = []
    for index, (unit, condition, mail) in enumerate(table):
        wanted = CONDITIONS[condition](s) and not (mail and s["disable_mail"])
        state = states[index] if states else "unknown"
        row = {"unit": unit, "expected": "active" if wanted else "inactive", "state": state}
        row["ok"] = state == row["expected"] or (not wanted and state in ("inactive", "unknown"))
        if detail:
            row["detail"] = detail
        rows.append(row)
    return rows


def _describe(proc: dict[str, Any]) -> str:
    where = f"pid {proc['pid']}" if proc.get("pid") else "pid unknown"
    if proc.get("unit"):
        where += f", unit {proc['unit']}"
    return f"{proc['name']} ({where})"


def port_conflicts(ports: Any = None, pillar: dict[str, Any] | None = None) -> dict[str, Any]:
    """Ports the relay needs that a program other than the relay's holds (design.md §8.5).

    ports
        check only these (list or comma-separated); default: every port
        checked before a deploy (all the relay needs but 3478/udp and 3903)

    Returns ``checked`` (port numbers), ``conflicts`` (each with ``port``,
    ``setting``, ``held_by``, ``expected`` and a one-line ``message``) and
    ``error`` when the ports cannot be listed or are not the relay's.

    CLI Example::

        salt-call --out=json chatmail.port_conflicts
        salt-call chatmail.port_conflicts ports=25,443
    """
    rows = [row for row in _port_rows(_settings(pillar)) if row["precheck"]]
    if ports not in (None, "", []):
        if isinstance(ports, (int, str)):  # from the CLI: 25 or "25,443"
            ports = str(ports).split(",")
        wanted = {int(p) for p in ports}
        unknown = sorted(wanted - {row["port"] for row in rows})
        if unknown:
            return {
                "checked": [],
                "conflicts": [],
                "error": f"not ports this relay checks: {unknown}; it checks {sorted(row['port'] for row in rows)}",
            }
        rows = [row for row in rows if row["port"] in wanted]
    result: dict[str, Any] = {"checked": [row["port"] for row in rows], "conflicts": []}
    found = listeners()
    if "error" in found:
        return result | {"error": f"cannot list listening ports: {found['error']}"}
    for row in rows:
        foreign: dict[Any, dict[str, Any]] = {}
        for sock in found["listeners"]:
            if (
                sock["port"] != row["port"]
                or sock["proto"] != row["proto"]
                or not _overlaps(sock["address"], row["bind"])
            ):
                continue
            for proc in sock["processes"] or [{"name": "an unknown process", "pid": None, "unit": None}]:
                if not _owned_by_relay(row, proc):
                    foreign[proc["pid"]] = proc | {"address": sock["address"]}
        if not foreign:
            continue
        expected = " or ".join(row["process_names"]) + f" (unit {', '.join(row['units'])}) or free"
        what = f" ({row['setting']})" if row["setting"] else ""
        held = ", ".join(_describe(p) for p in foreign.values())
        result["conflicts"].append(
            {
                "port": row["port"],
                "setting": row["setting"],
                "held_by": list(foreign.values()),
                "expected": expected,
                "message": f"port {row['port']}{what} is held by {held}; expected {expected}",
            }
        )
    return result


def _ports_status(s: dict[str, Any]) -> list[dict[str, Any]]:
    found = listeners()
    rows = []
    for row in _port_rows(s):
        if not row["needed"]:
            continue
        held = [
            proc | {"address": sock["address"]}
            for sock in found["listeners"]
            if sock["port"] == row["port"] and sock["proto"] == row["proto"] and _overlaps(sock["address"], row["bind"])
            for proc in (sock["processes"] or [{"name": "unknown", "pid": None, "unit": None}])
        ]
        ours = [p for p in held if _owned_by_relay(row, p)]
        item = {
            "port": row["port"],
            "proto": row["proto"],
            "purpose": row["purpose"],
            "expected": row["process_names"],
            "listening": bool(ours),
            "held_by": sorted({p["name"] for p in held}),
        }
        foreign = sorted({p["name"] for p in held if not _owned_by_relay(row, p)})
        item["ok"] = not foreign and (bool(ours) == row["expect_listening"])
        if foreign:
            item["foreign"] = foreign
        if "error" in found:
            item["ok"] = False
            item["detail"] = found["error"]
        rows.append(item)
    return rows


def _certificate(path: str) -> dict[str, Any]:
    if not path or not os.path.exists(path):
        return {"path": path, "state": "missing"}
    out = _run(["openssl", "x509", "-enddate", "-noout", "-in", path])
    if out is None:
        return {"path": path, "state": "unknown", "detail": "openssl not installed"}
    try:
        if out["retcode"] != 0:
            raise ValueError(out["stderr"].strip() or "openssl failed")
        not_after = ssl.cert_time_to_seconds(out["stdout"].strip().partition("=")[2])
    except ValueError as exc:
        return {"path": path, "state": "unreadable", "detail": str(exc)}
    now = datetime.datetime.now(datetime.timezone.utc).timestamp()
    days = int((not_after - now) // 86400)
    expires = datetime.datetime.fromtimestamp(not_after, datetime.timezone.utc).isoformat()
    return {"path": path, "state": "expired" if days < 0 else "valid", "not_after": expires, "days_left": days}


def _mail_queue() -> dict[str, Any]:
    out = _run(["postqueue", "-j"])
    if out is None:
        return {"state": "not installed"}
    if out["retcode"] != 0:
        return {"state": "unknown", "detail": (out["stderr"].strip() or "postqueue failed").splitlines()[0]}
    messages = []
    for line in out["stdout"].splitlines():
        try:
            messages.append(json.loads(line))
        except ValueError:
            continue
    by_queue: dict[str, int] = {}
    for msg in messages:
        by_queue[msg.get("queue_name", "?")] = by_queue.get(msg.get("queue_name", "?"), 0) + 1
    return {"state": "ok", "length": len(messages), "by_queue": by_queue}


def _accounts(mailboxes_dir: str) -> dict[str, Any]:
    try:
        names = os.listdir(mailboxes_dir)
    except FileNotFoundError:
        return {"dir": mailboxes_dir, "state": "missing"}
    except OSError as exc:
        return {"dir": mailboxes_dir, "state": "unreadable", "detail": str(exc)}
    return {"dir": mailboxes_dir, "state": "ok", "count": sum(1 for n in names if "@" in n)}


def _disk(mailboxes_dir: str) -> dict[str, Any]:
    if not os.path.isdir(mailboxes_dir):
        return {"dir": mailboxes_dir, "state": "missing"}
    usage = shutil.disk_usage(mailboxes_dir)
    item: dict[str, Any] = {
        "dir": mailboxes_dir,
        "state": "ok",
        "filesystem_free_bytes": usage.free,
        "filesystem_used_percent": round(100 * (usage.total - usage.free) / usage.total, 1) if usage.total else None,
    }
    out = _run(["du", "-sb", mailboxes_dir])
    if out is not None and out["retcode"] == 0 and out["stdout"].split():
        item["used_bytes"] = int(out["stdout"].split()[0])
    else:
        item["used_bytes"] = None
        item["detail"] = "du failed" if out is not None else "du not installed"
    return item


def _version() -> dict[str, Any]:
    # minion option chatmail.version_file overrides where chatmail.version writes it
    path = __opts__.get("chatmail.version_file") or __salt__["chatmail.params"]()["version"]["marker"]
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        return {"path": path, "state": "missing"}
    lines = text.splitlines()
    return {"path": path, "state": "ok", "revision": lines[0].strip() if lines else "", "local_changes": len(lines) > 1}


def status(pillar: dict[str, Any] | None = None) -> dict[str, Any]:
    """Health of the relay: services, ports, certificate, queue, accounts, disk, version, privacy.

    Each item is a dict with ``state``/``ok`` fields; nothing raises when a
    part is absent (e.g. no systemd: services are "unknown").  ``ok`` at
    the top is true when every service and every port is as expected and
    the certificate has more than 7 days left.

    CLI Example::

        salt-call --out=json chatmail.status
    """
    s = _settings(pillar)
    services = _services(s)
    port_rows = _ports_status(s)
    cert = _certificate(s["tls_cert_path"])
    result = {
        "domain": s["mail_domain"],
        "services": services,
        "ports": port_rows,
        "certificate": cert,
        "mail_queue": _mail_queue(),
        "accounts": _accounts(s["mailboxes_dir"]),
        "mail_store": _disk(s["mailboxes_dir"]),
        "version": _version(),
        "privacy": {"state": "present" if s["privacy_mail"] else "missing", "privacy_mail": s["privacy_mail"]},
        "disable_mail": s["disable_mail"],
    }
    result["ok"] = (
        all(row["ok"] for row in services) and all(row["ok"] for row in port_rows) and cert.get("days_left", -1) > 7
    )
    return result
