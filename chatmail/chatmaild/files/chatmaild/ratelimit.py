"""How many messages one sender may submit: a token bucket per address.

Upstream's filtermail (the ``governor`` crate, GCRA) and this module agree:
a sender may send ``burst`` messages at once; after that one more every
``60 / per_minute`` seconds, and an idle sender's allowance refills at the
same pace up to ``burst`` again.  So a Delta Chat client that sends a few
messages in a row (a group invite, a forwarded batch) is not slowed down,
while a runaway or abusive sender gets at most ``per_minute`` a minute
over any longer stretch.

GCRA keeps one number per sender, the "theoretical arrival time" (TAT):
when the sender's bucket would be full again.  A message at ``now`` is
allowed if ``TAT - now <= (burst - 1) * interval``; allowing it moves the
TAT one interval later.  Kept in memory by the outgoing filter (one
process); a restart forgets it, which is acceptable for a limit meant to
stop runaway senders, not to account for mail.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

__all__ = ["SendRateLimiter", "WindowLimit"]


class SendRateLimiter:
    """GCRA per sender; ``per_minute`` 0 means unlimited."""

    def __init__(self, per_minute: int, burst: int = 10, clock: Callable[[], float] = time.monotonic):
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.per_minute = per_minute
        self.clock = clock
        self.interval = 60.0 / per_minute if per_minute > 0 else 0.0
        self.tolerance = (burst - 1) * self.interval
        self._tat: dict[str, float] = {}
        self._next_sweep = 0.0

    def allow(self, sender: str) -> bool:
        """Take one token of ``sender``'s bucket if there is one."""
        if self.per_minute <= 0:
            return True
        now = self.clock()
        self._sweep(now)
        tat = max(self._tat.get(sender, now), now)
        if tat - now > self.tolerance:
            return False
        self._tat[sender] = tat + self.interval
        return True

    def _sweep(self, now: float) -> None:
        """Forget senders whose bucket is full again, at most once a minute."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + 60.0
        full = [s for s, tat in self._tat.items() if tat <= now]
        for sender in full:
            del self._tat[sender]


class WindowLimit:
    """At most ``limit`` events per key in any sliding ``window`` seconds; 0 means unlimited.

    For budgets counted over a long window where a burst allowance makes
    no sense, such as accounts created per client address and hour
    (doveauth): the count is exact, not smoothed.
    """

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window = window
        self.clock = clock
        self._events: dict[str, deque[float]] = {}
        self._next_sweep = 0.0

    def allow(self, key: str) -> bool:
        """Record one event of ``key`` if it is within the limit."""
        if self.limit <= 0:
            return True
        now = self.clock()
        horizon = now - self.window
        self._sweep(now, horizon)
        stamps = self._events.setdefault(key, deque())
        while stamps and stamps[0] <= horizon:
            stamps.popleft()
        if len(stamps) >= self.limit:
            return False
        stamps.append(now)
        return True

    def _sweep(self, now: float, horizon: float) -> None:
        """Forget keys with nothing in the window, at most once per window."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.window
        idle = [k for k, stamps in self._events.items() if not stamps or stamps[-1] <= horizon]
        for key in idle:
            del self._events[key]
