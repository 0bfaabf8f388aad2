"""Helpers the tests and benchmarks share: one package, on the import path through pytest.ini.

pytest.ini's ``pythonpath`` puts ``test/`` (this package and ``harness``) and
``chatmail/chatmaild/files`` (the relay's ``chatmaild``) on the path; the
benchmarks get the same through ``scripts/bench``.  Nothing here is a test:

* the relay's services in-process: :mod:`.dicts` (the dict services and a
  push stand-in), :mod:`.filtermail` (filtermail between real SMTP), :mod:`.dkim`
  (keys and signatures), :mod:`.mailcorpus` (the mail they get), :mod:`.fuzzing`;
* Salt: :mod:`.salt`, the one driver (a throw-away masterless minion of this repo);
* relays in containers (with :mod:`harness`): :mod:`.relays`, :mod:`.mailclient`,
  :mod:`.loadgen`, :mod:`.dcclient`, :mod:`.acmeserver`, :mod:`.browser`;
* small things: :mod:`.freeports`, :mod:`.webpage`.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# the relay's Python services, as /usr/local/lib/chatmaild holds them on a relay
CHATMAILD_SRC = REPO / "chatmail" / "chatmaild" / "files"


def chatmaild_env(**extra: str) -> dict[str, str]:
    """This process's environment for a child ``python3 -m chatmaild.X``: chatmaild on its path."""
    return dict(os.environ, PYTHONPATH=str(CHATMAILD_SRC), **extra)
