"""chatmail_preflight: checks that run before anything changes.

platform_supported: the minion runs a release the formula supports
(``releases`` in chatmail/parameters/defaults.yaml).  On any other, the
states would write configs in another release's dialect (Dovecot 2.3's on
a 2.4), so the run stops naming the platform and what is supported.

ports_free: no foreign program holds a port the relay needs.

Before anything is installed or started, every port of the relay (design.md
§0.4, with the configured port numbers; table ``PORTS`` in
``_modules/chatmail_status.py``) is looked up in ``ss -Hltnup``.  A
listener is fine when it is the relay's own program (process name from
design.md §8.5, e.g. ``master``/``smtpd`` on 25) or runs in the relay's systemd
unit (chatmaild's filtermail is ``python3`` inside ``filtermail.service``);
anything else (exim4 on 25, apache2 on 443, ...) fails the state with a
comment naming port, process and pid, like upstream's "port P is occupied
by NAME".  Listeners on other addresses than the relay binds do not count
(nsd on 10.0.0.1:53 leaves unbound's 127.0.0.1:53 free).

The state only reads, so it succeeds with no changes when the ports are
free or ours, and gives the same answer under ``test=True``.

Example::

    chatmail-preflight-platform-supported:
      chatmail_preflight.platform_supported:
        - name: Debian-11
        - supported: {Debian-12: bookworm}
        - failhard: true

    chatmail-preflight-ports-free:
      chatmail_preflight.ports_free:
        - name: relay ports
        - failhard: true
"""

from __future__ import annotations

from typing import Any

__virtualname__ = "chatmail_preflight"


def __virtual__():
    if "chatmail.port_conflicts" not in __salt__:
        return False, "chatmail_preflight needs the chatmail execution modules (saltutil.sync_all)"
    return __virtualname__


def ports_free(name: str, ports: list[int] | None = None, pillar: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fail when a port the relay needs is held by a program that is not the relay's.

    name
        a label for the check
    ports
        check only these of the relay's ports (default: all it needs before
        a deploy; 3478/udp and 3903 are not checked, as upstream)
    pillar
        chatmail settings to use instead of pillar ``chatmail``
    """
    ret: dict[str, Any] = {"name": name, "changes": {}, "result": True, "comment": ""}
    found = __salt__["chatmail.port_conflicts"](ports, pillar)
    if "error" in found:
        ret["result"] = False
        ret["comment"] = found["error"]
    elif found["conflicts"]:
        ret["result"] = False
        ret["comment"] = "\n".join(c["message"] for c in found["conflicts"])
    else:
        checked = ", ".join(str(p) for p in found["checked"])
        ret["comment"] = f"ports {checked} are free or held by the relay's own services"
    return ret


def platform_supported(name: str, supported: dict[str, str]) -> dict[str, Any]:
    """Fail unless ``name`` (grains.osfinger, e.g. ``Debian-12``) is one of ``supported``.

    name
        the minion's platform, as grains.osfinger names it
    supported
        osfinger -> codename of every supported release
    """
    ret: dict[str, Any] = {"name": name, "changes": {}, "result": True, "comment": ""}
    listed = ", ".join(f"{finger} ({codename})" for finger, codename in supported.items())
    if name in supported:
        ret["comment"] = f"{name} ({supported[name]}) is supported"
    else:
        ret["result"] = False
        ret["comment"] = (
            f"platform {name or 'unknown'} is not supported by the chatmail formula; "
            f"supported: {listed}. Nothing was changed."
        )
    return ret
