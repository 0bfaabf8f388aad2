"""chatmail.dns_zone / chatmail.dns_check: the relay's DNS records, made and verified.

The formula's ``cmdeploy dns`` (design.md §8.3).  ``dns_zone`` builds every
record the relay wants from what the minion itself knows (its public
addresses, the DKIM key, the ACME account, the MTA-STS policy) and returns
them as data and as zone-file text the operator pastes into their DNS.
``dns_check`` asks the domain's authoritative name servers (with
dnspython, no ``dig``) and reports each record that is missing or
different, split into *required* (mail does not work without them) and
*recommended*.

Choices:

* Addresses: the minion's non-loopback, non-link-local addresses; global
  ones win over private ones, so a host with a public address and a
  container bridge publishes only the public one.  Behind NAT/DNAT pass
  ``ipv4=``/``ipv6=`` (a list or comma-separated).  ``disable_ipv6``
  drops AAAA.
* MTA-STS ``id``: derived from the policy text (the same template nginx
  serves), so it changes exactly when the policy changes and senders
  refetch it; upstream used a timestamp and had to read DNS to keep it.
* CAA: only with ``tls_mode: acme`` once acmetool has an account
  (``acmetool account-url``, which asks the CA); until then it is left out
  and a note says why.  The issuer domain is ``acme_caa_issuer``, or known
  from ``acme_directory`` (:data:`CAA_ISSUERS`); a CAA record naming the
  wrong CA would stop renewals, so for an unknown CA there is none, and a
  note says which setting to give.
"""

from __future__ import annotations

import glob
import hashlib
import ipaddress
import os
from typing import Any
from urllib.parse import urlsplit

__virtualname__ = "chatmail"

TTL = 3600
DKIM_SELECTOR = "opendkim"
MTA_STS_TEMPLATE = "salt://chatmail/nginx/files/mta-sts.txt.j2"
REQUIRED, RECOMMENDED = "required", "recommended"

# ACME directory host -> the CA's CAA issuer domain (RFC 8659), for dns_zone's CAA record
CAA_ISSUERS = {
    "acme-v02.api.letsencrypt.org": "letsencrypt.org",
    "acme-staging-v02.api.letsencrypt.org": "letsencrypt.org",
    "acme.zerossl.com": "sectigo.com",
    "dv.acme-v02.api.pki.goog": "pki.goog",
    "api.buypass.com": "buypass.com",
}

# (service label, settings-independent port) for the SRV records (RFC 6186/8314)
SRV = (("_submission._tcp", 587), ("_submissions._tcp", 465), ("_imap._tcp", 143), ("_imaps._tcp", 993))


def __virtual__():
    return __virtualname__


# -- facts from the minion ---------------------------------------------------------


def _as_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def _public_addresses(candidates: list[str]) -> list[str]:
    """Addresses worth publishing: no loopback/link-local/unspecified; global first."""
    usable = []
    for text in candidates:
        try:
            addr = ipaddress.ip_address(text.partition("%")[0])
        except ValueError:
            continue
        if addr.is_loopback or addr.is_link_local or addr.is_unspecified or addr.is_multicast:
            continue
        usable.append(addr)
    chosen = [a for a in usable if a.is_global] or usable
    return sorted({str(a) for a in chosen}, key=lambda a: ipaddress.ip_address(a))


def _params() -> dict[str, Any]:
    """The formula's constants table (chatmail/parameters/), where the states put the files read here."""
    return __salt__["chatmail.params"]()  # read once per run (chatmail.params caches it)


def _mta_sts_live() -> str:
    """The mta-sts.txt nginx serves (nginx's table entry mta-sts)."""
    return next(f["path"] for f in _params()["nginx"]["files"] if f["id"] == "mta-sts")


def _acme_account_url(acme_state: str, ca_file: str = "") -> tuple[str | None, str | None]:
    """(account URL, note) from acmetool's state; the URL needs an account.

    acmetool asks the CA, so it trusts what the relay's acmetool trusts
    (``acme_ca_file``, as in the reconcile unit).
    """
    if not glob.glob(os.path.join(acme_state, "accounts", "*", "*", "privkey")):
        return None, f"no ACME account in {acme_state}/accounts yet; the CAA record follows after the first certificate"
    out = __salt__["cmd.run_all"](
        ["acmetool", "--state", acme_state, "--batch", "account-url"],
        env={"SSL_CERT_FILE": ca_file} if ca_file else None,
        python_shell=False,
        ignore_retcode=True,
        output_loglevel="quiet",
    )
    url = out["stdout"].strip() if out["retcode"] == 0 else ""
    if not url.startswith("https://"):
        return None, f"acmetool account-url failed: {(out['stderr'].strip() or 'no URL').splitlines()[-1]}"
    return url, None


def _caa_issuer(settings: dict[str, Any]) -> str | None:
    """The CA's issuer domain for CAA: the setting, else known from the directory URL."""
    return settings["acme_caa_issuer"] or CAA_ISSUERS.get(urlsplit(settings["acme_directory"]).hostname or "")


def _mta_sts_policy(settings: dict[str, Any]) -> str | None:
    """The policy text nginx serves: the formula's template, else the live file."""
    source = __salt__["cp.get_file_str"](MTA_STS_TEMPLATE)
    if source:
        rendered = __salt__["file.apply_template_on_contents"](
            source, template="jinja", context={"chatmail": settings}, defaults=None, saltenv="base"
        )
        if isinstance(rendered, str):
            return rendered
    try:
        with open(_mta_sts_live(), encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return None


def _mta_sts_id(policy: str) -> str:
    """A stable id (1-32 alphanumerics, RFC 8461) that changes with the policy."""
    normalized = "\n".join(line.strip() for line in policy.strip().splitlines())
    return hashlib.sha256(normalized.encode()).hexdigest()[:20]


# -- the zone -------------------------------------------------------------------------


def _record(name: str, rtype: str, value: str, level: str) -> dict[str, str]:
    return {"name": name, "type": rtype, "value": value, "level": level}


def _txt(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _zone_text(domain: str, records: list[dict[str, str]], notes: list[str]) -> str:
    width = max(len(r["name"]) for r in records) if records else 0
    lines = [f"; DNS records for the chatmail relay {domain} (chatmail.dns_zone)"]
    lines += [f"; note: {note}" for note in notes]
    for level in (REQUIRED, RECOMMENDED):
        lines.append(f"; {level}")
        lines += [f"{r['name']:<{width}} {TTL} IN {r['type']:<5} {r['value']}" for r in records if r["level"] == level]
    return "\n".join(lines) + "\n"


def dns_zone(
    ipv4: Any = None,
    ipv6: Any = None,
    pillar: dict[str, Any] | None = None,
    dkim_keydir: str | None = None,
    acme_state: str | None = None,
    acme_account_url: str | None = None,
    zonefile: str | None = None,
) -> dict[str, Any]:
    """The relay's DNS records (design.md §8.3) as data and as zone-file text.

    ipv4 / ipv6
        addresses to publish (list or comma-separated); default: the
        minion's own (grains), loopback and link-local left out
    pillar
        chatmail settings to use instead of pillar ``chatmail``
    dkim_keydir / acme_state
        where the DKIM key and acmetool's state live (default: where the
        states put them, chatmail/parameters/defaults.yaml)
    acme_account_url
        the ACME account URI for CAA, instead of asking acmetool
    zonefile
        also write the zone text to this file (like ``cmdeploy dns --zonefile``)

    Returns ``domain``, ``records`` (each ``name``, ``type``, ``value`` in
    zone-file form, ``level`` required|recommended), ``zone`` (the text),
    ``mta_sts_id`` and ``notes`` (what could not be included and why).

    CLI Example::

        salt-call --out=json chatmail.dns_zone
        salt-call chatmail.dns_zone ipv4=203.0.113.5 zonefile=/root/chat.example.org.zone
    """
    s = __salt__["chatmail.settings"](pillar)
    dkim_keydir = dkim_keydir or _params()["opendkim"]["keydir"]
    acme_state = acme_state or _params()["tls"]["acme_state"]
    domain = s["mail_domain"]
    if s["ip_relay"]:
        # upstream 1.12 (`cmdeploy dns` warns instead of checking): no name, so nothing to publish
        note = f"{domain} is an IP-only relay: it has no domain, so there are no DNS records to publish"
        return {"domain": domain, "records": [], "zone": "", "mta_sts_id": None, "notes": [note]}
    apex = domain + "."
    notes: list[str] = []
    records: list[dict[str, str]] = []

    v4 = _as_list(ipv4)
    v6 = _as_list(ipv6)
    v4 = _public_addresses(v4 if v4 is not None else __grains__.get("ipv4", []))
    v6 = [] if s["disable_ipv6"] else _public_addresses(v6 if v6 is not None else __grains__.get("ipv6", []))
    if not v4 and not v6:
        notes.append("no public address found; pass ipv4=/ipv6=")
    records += [_record(apex, "A", a, REQUIRED) for a in v4]
    records += [_record(apex, "AAAA", a, REQUIRED) for a in v6]
    records.append(_record(apex, "MX", f"10 {apex}", REQUIRED))

    policy = _mta_sts_policy(s)
    sts_id = _mta_sts_id(policy) if policy else None
    if sts_id:
        records.append(_record(f"_mta-sts.{apex}", "TXT", _txt(f"v=STSv1; id={sts_id}"), REQUIRED))
    else:
        notes.append("MTA-STS policy not found; the _mta-sts record is left out")
    records.append(_record(f"mta-sts.{apex}", "CNAME", apex, REQUIRED))
    records.append(_record(f"www.{apex}", "CNAME", apex, REQUIRED))

    dkim = None
    if "chatmail.dkim_record" in __salt__:
        try:
            dkim = __salt__["chatmail.dkim_record"](selector=DKIM_SELECTOR, domain=domain, keydir=dkim_keydir)
        except Exception as exc:  # CommandExecutionError: no key or unreadable  # pylint: disable=broad-except
            notes.append(str(exc))
    else:
        notes.append("chatmail.dkim_record is not available; sync the formula's modules")
    if dkim:
        records.append(_record(dkim["name"], "TXT", " ".join(_txt(p) for p in dkim["strings"]), REQUIRED))

    records.append(_record(apex, "TXT", _txt("v=spf1 a ~all"), RECOMMENDED))
    records.append(_record(f"_dmarc.{apex}", "TXT", _txt("v=DMARC1;p=reject;adkim=s;aspf=s"), RECOMMENDED))
    issuer = _caa_issuer(s)
    if s["tls_mode"] == "acme" and not issuer:
        notes.append(
            f"no CAA record: the CAA issuer domain of {s['acme_directory']} is not known; "
            "set acme_caa_issuer to the CA's (its documentation names it)"
        )
    elif s["tls_mode"] == "acme":
        url, note = (acme_account_url, None) if acme_account_url else _acme_account_url(acme_state, s["acme_ca_file"])
        if url:
            records.append(_record(apex, "CAA", f'0 issue "{issuer};accounturi={url}"', RECOMMENDED))
        else:
            notes.append(note)
    records.append(_record(f"_adsp._domainkey.{apex}", "TXT", _txt("dkim=discardable"), RECOMMENDED))
    records += [_record(f"{label}.{apex}", "SRV", f"0 1 {port} {apex}", RECOMMENDED) for label, port in SRV]

    result = {
        "domain": domain,
        "records": records,
        "zone": _zone_text(domain, records, notes),
        "mta_sts_id": sts_id,
        "notes": notes,
    }
    if dkim:
        result["dkim_single_string"] = f"{dkim['name']} TXT {_txt(dkim['value'])}"
    if zonefile:
        with open(zonefile, "w", encoding="utf-8") as fh:
            fh.write(result["zone"])
        result["zonefile"] = os.path.abspath(zonefile)
    return result


# -- checking it against DNS ------------------------------------------------------------


class Unreachable(Exception):
    """No authoritative name server could be asked."""


def _query(server: str, port: int, name: str, rdtype: str, timeout: float):
    import dns.message
    import dns.query

    request = dns.message.make_query(name, rdtype, use_edns=0, payload=1232)
    request.flags &= ~0x0100  # RD off: we ask the authority, not a resolver
    response, _ = dns.query.udp_with_fallback(request, server, timeout=timeout, port=port)
    return response


def _answers(response, name: str, rdtype: str) -> list:
    import dns.name
    import dns.rdatatype

    wanted = dns.name.from_text(name)
    kind = dns.rdatatype.from_text(rdtype)
    return [rd for rrset in response.answer if rrset.name == wanted and rrset.rdtype == kind for rd in rrset]


def _canonical(rdata) -> str:
    """Comparable text: TXT strings joined (providers split differently), else canonical form."""
    import dns.rdatatype

    if rdata.rdtype == dns.rdatatype.TXT:
        return b"".join(rdata.strings).decode("utf-8", "replace")
    return rdata.to_digestable().hex()


def _shown(rdata) -> str:
    import dns.rdatatype

    if rdata.rdtype == dns.rdatatype.TXT:
        return _txt(b"".join(rdata.strings).decode("utf-8", "replace"))
    return rdata.to_text()


def _authoritative(domain: str, timeout: float) -> list[str]:
    """Addresses of the name servers of the zone that holds ``domain``."""
    import dns.exception
    import dns.resolver

    try:
        resolver = dns.resolver.Resolver()
        resolver.lifetime = timeout
        zone = dns.resolver.zone_for_name(domain, resolver=resolver, lifetime=timeout)
        hosts = sorted(str(ns.target) for ns in resolver.resolve(zone, "NS"))
        addresses = []
        for host in hosts:
            for rdtype in ("A", "AAAA"):
                try:
                    addresses += [rd.address for rd in resolver.resolve(host, rdtype)]
                except dns.resolver.NoAnswer:
                    continue
    except (dns.exception.DNSException, OSError) as exc:
        raise Unreachable(f"cannot find the name servers of {domain}: {exc}") from None
    if not addresses:
        raise Unreachable(f"the name servers of {domain} ({', '.join(hosts)}) have no addresses")
    return addresses


def _probe(servers: list[str], port: int, domain: str, timeout: float) -> str:
    """The first server that answers for ``domain`` with authority."""
    import dns.exception
    import dns.rcode

    problems = []
    for server in servers:
        try:
            response = _query(server, port, domain + ".", "SOA", timeout)
        except (dns.exception.DNSException, OSError) as exc:
            problems.append(f"{server} port {port}: {type(exc).__name__}: {exc or 'no answer'}")
            continue
        rcode = response.rcode()
        if rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return server
        problems.append(f"{server} port {port} answered {dns.rcode.to_text(rcode)} for {domain}")
    raise Unreachable("; ".join(problems) or "no name server to ask")


def _compare(record: dict[str, str], server: str, port: int, timeout: float) -> dict[str, Any] | None:
    """None when DNS serves the record; else what is wrong."""
    import dns.exception
    import dns.rdata
    import dns.rdataclass
    import dns.rdatatype

    expected = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(record["type"]), record["value"])
    try:
        response = _query(server, port, record["name"], record["type"], timeout)
    except (dns.exception.DNSException, OSError) as exc:
        return record | {"problem": "no answer", "found": [], "detail": f"{type(exc).__name__}: {exc}"}
    found = _answers(response, record["name"], record["type"])
    if _canonical(expected) in {_canonical(rd) for rd in found}:
        return None
    return record | {"problem": "different" if found else "missing", "found": [_shown(rd) for rd in found]}


def dns_check(
    nameserver: str | None = None,
    timeout: float = 5,
    port: int = 53,
    ipv4: Any = None,
    ipv6: Any = None,
    pillar: dict[str, Any] | None = None,
    dkim_keydir: str | None = None,
    acme_state: str | None = None,
    acme_account_url: str | None = None,
) -> dict[str, Any]:
    """Compare ``dns_zone`` with what the domain's authoritative name servers serve.

    nameserver
        ask this server (IP address) instead of the zone's NS servers
    port
        its port (default 53)
    timeout
        seconds per query

    The other arguments are those of ``chatmail.dns_zone``.  Returns
    ``required`` and ``recommended`` (each a list of records that are
    ``missing`` or ``different``, with what was ``found``), ``ok`` (no
    required record wrong), ``nameserver``, ``checked`` and ``notes``.
    When no name server answers: ``unreachable: true`` and ``reason``.

    CLI Example::

        salt-call --out=json chatmail.dns_check
        salt-call chatmail.dns_check nameserver=127.0.0.1 port=5353 timeout=2
    """
    zone = dns_zone(ipv4, ipv6, pillar, dkim_keydir, acme_state, acme_account_url)
    domain = zone["domain"]
    result: dict[str, Any] = {"domain": domain, "required": [], "recommended": [], "notes": list(zone["notes"])}
    try:
        servers = [nameserver] if nameserver else _authoritative(domain, timeout)
        server = _probe(servers, int(port), domain, timeout)
    except Unreachable as exc:
        return result | {"ok": False, "unreachable": True, "reason": str(exc)}
    result["nameserver"] = server
    result["port"] = int(port)
    for record in zone["records"]:
        problem = _compare(record, server, int(port), timeout)
        if problem:
            result[record["level"]].append(problem)
    if not any(r["name"].endswith("._domainkey." + domain + ".") for r in zone["records"] if r["level"] == REQUIRED):
        result["required"].append(
            {
                "name": f"{DKIM_SELECTOR}._domainkey.{domain}.",
                "type": "TXT",
                "level": REQUIRED,
                "problem": "unknown",
                "found": [],
                "detail": "no DKIM key on the relay (see notes)",
            }
        )
    if (
        any(r["type"] == "TXT" and "_domainkey" in r["name"] for r in result["required"])
        and "dkim_single_string" in zone
    ):
        result["dkim_single_string"] = zone["dkim_single_string"]
    result["checked"] = len(zone["records"])
    result["ok"] = not result["required"]
    result["unreachable"] = False
    return result
