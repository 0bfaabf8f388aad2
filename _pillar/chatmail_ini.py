"""ext_pillar: a chatmail.ini file becomes pillar ``chatmail``, key for key.

Masterless (minion config)::

    ext_pillar:
      - chatmail_ini: /etc/chatmail/chatmail.ini

On a master, one file per relay (``{minion_id}`` is replaced)::

    ext_pillar:
      - chatmail_ini: /srv/chatmail/{minion_id}.ini

Values stay the strings written in the file; ``map.jinja`` types and
validates them with the same table the services use, so the ini and the
pillar are read by exactly one set of rules.  A minion without a file gets
no ``chatmail`` pillar from here (other pillar sources may provide it).
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger(__name__)

__virtualname__ = "chatmail_ini"


def __virtual__():
    return __virtualname__


def ext_pillar(minion_id: str, pillar: dict[str, Any], path: str = "/etc/chatmail/chatmail.ini") -> dict[str, Any]:
    """Pillar ``{"chatmail": {...}}`` from the minion's chatmail.ini."""
    path = path.replace("{minion_id}", minion_id)
    if not os.path.exists(path):
        log.info("chatmail_ini: no %s for minion %s", path, minion_id)
        return {}
    params = __utils__["chatmail_config.read_ini"](path)
    return {"chatmail": params}
