"""System-test harness: systemd-nspawn containers on a private bridge.

Parts (one module each): ``image`` (cached debootstrap base), ``network``
(the bridge), ``guard`` (the network rule), ``proxy`` (tinyproxy for
apt/pip), ``dns`` (NSD for the ``test.`` zone), ``container`` (overlay,
boot, run, Salt), ``lab`` (all of them together), ``lifecycle`` (teardown
that always runs).
"""

from .container import Container, SaltResult, changed_states, failed_states
from .guard import TargetRefused, check_target
from .lab import Lab

__all__ = ["Container", "Lab", "SaltResult", "TargetRefused", "changed_states", "check_target", "failed_states"]
