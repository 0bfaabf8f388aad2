"""chatmail_preflight.ports_free: no foreign program holds a port the relay needs.

Before anything is installed or started, every port of the relay (spec
0.4, with the configured port numbers; table ``PORTS`` in
``_modules/chatmail_status.py``) is looked up in ``ss -Hltnup``.  A
listener is fine when it is the relay's own program (process name from
spec 8.5, e.g. ``master``/``smtpd`` on 25) or runs in the relay's systemd
unit (chatmaild's filtermail is ``python3`` inside ``filtermail.service``);
anything else (exim4 on 25, apache2 on 443, ...) fails the state with a
comment naming port, process and pid, like upstream's "port P is occupied
by NAME".  Listeners on other addresses than the relay binds do not count
(nsd on 10.0.0.1:53 leaves unbound's 127.0.0.1:53 free).

The state only reads, so it succeeds with no changes when the ports are
free or ours, and gives the same answer under ``test=True``.

Example::

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
