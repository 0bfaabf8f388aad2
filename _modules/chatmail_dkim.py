"""chatmail.dkim_record: the DNS TXT record that publishes the relay's DKIM key.

Receivers (and the incoming filter of other chatmail relays) accept mail from
the domain only if this record matches ``<keydir>/<selector>.private`` (opendkim.keydir in
chatmail/parameters/defaults.yaml).
The public key is taken from the private key with ``openssl rsa -pubout``,
like upstream's ``cmdeploy dns``; the value is split into strings of at
most 255 characters, the limit of one TXT character-string.
"""

from __future__ import annotations

import os
from typing import Any

from salt.exceptions import CommandExecutionError

__virtualname__ = "chatmail"

TXT_STRING_MAX = 255


def __virtual__():
    return __virtualname__


def _split(value: str, size: int = TXT_STRING_MAX) -> list[str]:
    return [value[i : i + size] for i in range(0, len(value), size)]


def dkim_record(selector: str = "opendkim", domain: str | None = None, keydir: str | None = None) -> dict[str, Any]:
    """The DKIM TXT record for ``selector`` (domain defaults to pillar ``chatmail:mail_domain``).

    Returns ``name`` (FQDN with trailing dot), ``type``, ``value`` (the whole
    record text), ``strings`` (value cut into <=255-character pieces) and
    ``zone`` (one zone-file line with the pieces quoted).  ``keydir``
    defaults to the one the states write (``opendkim.keydir`` in
    chatmail/parameters/defaults.yaml).

    CLI Example::

        salt-call chatmail.dkim_record
    """
    if domain is None:
        domain = __salt__["chatmail.settings"]()["mail_domain"]
    if keydir is None:
        keydir = __salt__["chatmail.params"]()["opendkim"]["keydir"]
    private = os.path.join(keydir, selector + ".private")
    if not os.path.exists(private):
        raise CommandExecutionError(f"no DKIM key at {private}; apply chatmail.opendkim first")
    out = __salt__["cmd.run_all"](["openssl", "rsa", "-in", private, "-pubout"], python_shell=False)
    if out["retcode"] != 0:
        raise CommandExecutionError(f"openssl could not read {private}: {out['stderr']}")
    body = "".join(line.strip() for line in out["stdout"].splitlines() if line.strip() and not line.startswith("-----"))
    value = f"v=DKIM1;k=rsa;p={body};s=email;t=s"
    name = f"{selector}._domainkey.{domain}."
    strings = _split(value)
    return {
        "name": name,
        "type": "TXT",
        "value": value,
        "strings": strings,
        "zone": f"{name} TXT " + " ".join(f'"{s}"' for s in strings),
    }
