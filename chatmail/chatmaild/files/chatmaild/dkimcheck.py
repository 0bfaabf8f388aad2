"""Inbound DKIM: mail from other servers must be signed by its From: domain.

Why in the incoming filter and not in OpenDKIM: OpenDKIM verified with its
own libunbound, which had to be given the relay's forward zones through
``ResolverConfiguration``; under concurrent messages that path crashed
OpenDKIM (its config parser is not thread-safe), and each crash refused
mail.  Here keys are looked up through the relay's own resolver (unbound on
the relay, via /etc/resolv.conf): forward zones, public DNS and DNSSEC
validation are exactly what the rest of the relay sees, and there is no
milter left on the incoming path that can fail.  OpenDKIM only signs.

The rules (docs/design.md 4.4, 4.5):

* only signatures whose ``d=`` equals the From: domain count (strict
  alignment, as DMARC ``adkim=s``); others are ignored, they can neither
  make nor break a message;
* at least one of those must verify, else ``554 5.7.1`` with the reason;
* a key lookup that fails for a transient reason (timeout, SERVFAIL) is a
  ``451``: the sending server tries again, nothing is refused for good
  because of our resolver;
* the DKIM-Signature and Authentication-Results headers of accepted mail
  are removed by Postfix on the way to the mailbox (header_checks of the
  incoming cleanup service), so the message bytes pass this filter
  unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import dkim
import dns.exception
import dns.resolver
from dkim.util import InvalidTagValueList, parse_tag_value

__all__ = ["DkimCheck", "TxtLookup", "KeyLookupFailed", "dns_txt_lookup"]

log = logging.getLogger(__name__)

# name (e.g. "sel._domainkey.example.org.") -> the TXT record's text, or None if there is none
TxtLookup = Callable[[str], "bytes | None"]

LOOKUP_TIMEOUT = 10.0  # seconds for one key lookup, retries included
ATTEMPT_TIMEOUT = 2.0  # one query; a resolver that restarts (unbound, in a second) loses it
RETRY_PAUSE = 0.2


class KeyLookupFailed(Exception):
    """The resolver could not answer now (timeout, SERVFAIL): try the message again later."""


def dns_txt_lookup(resolver: dns.resolver.Resolver | None = None) -> TxtLookup:
    """A TXT lookup through the system's resolver (the relay's unbound), with a small TTL cache."""
    if resolver is None:
        resolver = dns.resolver.Resolver()  # /etc/resolv.conf
        resolver.cache = dns.resolver.LRUCache(4096)
    resolver.timeout = ATTEMPT_TIMEOUT

    def lookup(name: str) -> bytes | None:
        deadline = time.monotonic() + LOOKUP_TIMEOUT
        while True:
            try:
                answer = resolver.resolve(
                    name,
                    "TXT",
                    raise_on_no_answer=False,
                    search=False,
                    lifetime=max(0.1, min(ATTEMPT_TIMEOUT, deadline - time.monotonic())),
                )
                break
            except dns.resolver.NXDOMAIN:
                return None
            except (dns.resolver.NoNameservers, dns.exception.Timeout, dns.resolver.NoResolverConfiguration) as exc:
                if time.monotonic() + RETRY_PAUSE >= deadline:
                    raise KeyLookupFailed(f"{name}: {exc.__class__.__name__}") from exc
                time.sleep(RETRY_PAUSE)
        for rrset in answer.response.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                return b"".join(next(iter(rrset)).strings)
        return None

    return lookup


class DkimCheck:
    """The DKIM verdict on one incoming message: None to accept, else the SMTP reply."""

    def __init__(self, lookup: TxtLookup | None = None, minkey: int = 1024):
        self.lookup = lookup or dns_txt_lookup()
        self.minkey = minkey

    def refusal(self, data: bytes, from_domain: str) -> str | None:
        from_domain = from_domain.lower().rstrip(".")
        # the domain comes from the message: 8-bit bytes in it must not make the reply unsendable
        shown = _one_line(from_domain) if from_domain else "the From: domain"
        try:
            notes = _Notes()
            message = dkim.DKIM(data, minkey=self.minkey, logger=notes)
        except Exception as exc:  # noqa: BLE001 - dkimpy raises more than DKIMException on malformed mail
            return f"554 5.7.1 No valid DKIM signature found: {_one_line(exc)}"
        signatures = [value for name, value in message.headers if name.lower() == b"dkim-signature"]
        error = None
        for index, value in enumerate(signatures):
            if signature_domain(value) != from_domain:
                continue  # not made by the From: domain: ignored
            try:
                notes.errors.clear()
                if message.verify(idx=index, dnsfunc=self._dnsfunc):
                    return None
                why = notes.errors[-1] if notes.errors else "does not verify"
                error = f"DKIM signature of {shown} is invalid: {_one_line(why)}"
            except KeyLookupFailed as exc:
                log.warning("DKIM key lookup failed temporarily: %s", exc)
                return f"451 4.4.3 DKIM key lookup failed temporarily ({_one_line(exc)}), try again later"
            except Exception as exc:  # noqa: BLE001 - malformed signatures make dkimpy raise IndexError & co.
                error = f"DKIM signature of {shown} is invalid: {_one_line(exc)}"
        if error is None:
            return f"554 5.7.1 No valid DKIM signature found: none made by {shown}"
        return f"554 5.7.1 {error}"

    def _dnsfunc(self, name: bytes | str, timeout: float = LOOKUP_TIMEOUT) -> bytes | None:
        text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        return self.lookup(text)


def signature_domain(value: bytes) -> str | None:
    """The ``d=`` of a DKIM-Signature header value, lowercased (None if unreadable)."""
    try:
        tags = parse_tag_value(value)
    except (InvalidTagValueList, ValueError):
        return None
    domain = tags.get(b"d")
    if domain is None:
        return None
    return domain.decode("utf-8", "replace").strip().lower().rstrip(".")


class _Notes:
    """A logger for one dkimpy call: keeps the errors it reports (key not found, ...) for the reply."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, msg, *args, **kwargs) -> None:
        self.errors.append(str(msg) % args if args else str(msg))

    def debug(self, *args, **kwargs) -> None:
        pass

    info = warning = debug


def _one_line(exc: BaseException | str) -> str:
    """An exception's text fit for an SMTP reply: one line, printable, bounded."""
    text = " ".join(str(exc).split())
    text = "".join(ch if " " <= ch <= "~" else "?" for ch in text)
    return text[:200] or exc.__class__.__name__
