"""dovecot_source: rebuilt on real relays, and what it buys: Delta Chat delivery without the 0.5 s IDLE delay.

The .debs are the formula's own build script run on Debian's source
package (harness/dovecotbuild.py, cached per source version under
/var/cache/chatmail-test).  Each relay gets them the way a fleet master
serves them: a file root holding chatmail-dovecot/<codename>/<arch>/<version>/
(the relays have no way to fetch Debian's source themselves here).

Two pairs of federated relays, one pair with Debian's Dovecot and one with
the rebuild, and the real Delta Chat core: the p50 of send -> IncomingMsg
at the peer, on one relay and across two, printed for both (-s shows it).

Marker ``dovecot_rebuild``: the module runs when the build is cached; a
machine without it skips, unless ``-m dovecot_rebuild`` asks for the build
(docs/testing.md gives its cost).
"""

from __future__ import annotations

import time

import pytest

from harness import changed_states, failed_states
from harness.dovecotbuild import rebuilt_debs
from support.dclatency import measure_pair, serve_rebuilt
from support.relays import apply_all, federate

pytestmark = [pytest.mark.system, pytest.mark.e2e, pytest.mark.dovecot_rebuild]

# the goal (issue #14) is 150 ms, measured at 58 / 116 ms on a quiet machine
# (docs/components/dovecot.md); the test fails only if the 0.5 s delay is back,
# since a loaded machine adds its own 100-200 ms
BOUND_MS = 400


@pytest.fixture(scope="module")
def debs(request, lab):
    """The folder of the rebuilt .debs of the base image's dovecot source version."""
    try:
        return rebuilt_debs("12", log=lab.log, build="dovecot_rebuild" in (request.config.option.markexpr or ""))
    except LookupError as missing:
        pytest.skip(str(missing))


def federated_pair(relay, lab, prefix: str, debs=None, **pillar) -> list:
    """Two relays ``<prefix>1``/``<prefix>2`` with ``pillar``, (served ``debs``), applied at once and federated."""
    boxes = [relay(f"{prefix}{i}", **pillar) for i in (1, 2)]
    for box in boxes if debs else ():
        serve_rebuilt(box, debs)
    started = time.monotonic()
    failures = apply_all(boxes)
    if any(failures.values()):
        pytest.fail(f"the relays did not converge: {failures}\n" + "\n".join(b.failed_units_log() for b in boxes))
    lab.log(f"{prefix}: 2 relays applied in {time.monotonic() - started:.0f} s")
    federate(lab, boxes)
    return boxes


@pytest.fixture(scope="module")
def pairs(relay, lab, request):
    """A getter: the federated pair of relays with ``dovecot_source`` "debian" or "rebuilt", booted on first use."""
    booted: dict[str, list] = {}

    def get(source: str) -> list:
        if source not in booted:
            if source == "rebuilt":
                debs = request.getfixturevalue("debs")
                booted[source] = federated_pair(relay, lab, "dcreb", debs, dovecot_source="rebuilt")
            else:
                booted[source] = federated_pair(relay, lab, "dcdeb")
        return booted[source]

    return get


def test_rebuilt_relay_runs_the_rebuild_and_converges(pairs, debs):
    """The rebuilt packages are installed and pinned; a second apply and test=True change nothing."""
    box = pairs("rebuilt")[0]
    # no -f '${Version}': the harness runs commands through systemd-run, which expands ${...}
    version = box.run(["dpkg-query", "-W", "dovecot-core"]).stdout.split()[-1]
    assert version.endswith("+chatmail1") and version.split(":")[-1].startswith(debs.name), version
    # apt keeps it: Debian's dovecot-core is no candidate
    policy = box.run(["apt-cache", "policy", "dovecot-core"]).stdout
    assert "Candidate: " + version in policy, policy
    again = box.apply(box.pillar)
    assert failed_states(again) == [] and changed_states(again) == []
    dry = box.apply(box.pillar, test=True)
    assert failed_states(dry) == [] and changed_states(dry) == []


@pytest.mark.parametrize("source", ["debian", "rebuilt"])
def test_deltachat_send_to_incoming_latency(pairs, lab, source, debs):
    """p50 send -> IncomingMsg at the peer, one relay and across two; the rebuild has no 0.5 s floor.

    Debian's half is the baseline the rebuild is compared with, so it runs where the rebuild
    does (``debs``: skipped together when the build is not cached; two relays cost a minute)."""
    first, second = pairs(source)
    measured = measure_pair(lab, first, second, source, tag={"debian": "7", "rebuilt": "8"}[source])
    print(f"\ndovecot_source {source}: send -> IncomingMsg {measured.summary()}")
    if source == "rebuilt":
        assert measured.p50_one < BOUND_MS and measured.p50_two < BOUND_MS, (measured.one, measured.two)
    else:
        # Debian's Dovecot announces new mail 0.5 s after it lands: the floor the rebuild removes
        assert measured.p50_one > 500, measured.one
