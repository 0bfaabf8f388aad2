"""How many messages one sender may submit: N per sliding minute.

Kept in memory by the outgoing filter (one process); a restart forgets it,
which is acceptable for a limit meant to stop runaway or abusive senders,
not to account for mail.  The reference relay admitted N+1 per minute
(spec section 9 #11); this admits exactly N.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable

__all__ = ["SendRateLimiter"]


class SendRateLimiter:
    """Sliding-window counter per sender; ``limit`` 0 means unlimited."""

    def __init__(self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window = window
        self.clock = clock
        self._sent: dict[str, deque[float]] = {}
        self._next_sweep = 0.0

    def allow(self, sender: str) -> bool:
        """Record one message from ``sender`` if it is within the limit."""
        if self.limit <= 0:
            return True
        now = self.clock()
        horizon = now - self.window
        self._sweep(now, horizon)
        stamps = self._sent.get(sender)
        if stamps is None:
            stamps = self._sent[sender] = deque()
        while stamps and stamps[0] <= horizon:
            stamps.popleft()
        if len(stamps) >= self.limit:
            return False
        stamps.append(now)
        return True

    def _sweep(self, now: float, horizon: float) -> None:
        """Forget senders with nothing in the window, at most once per window."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.window
        idle = [s for s, stamps in self._sent.items() if not stamps or stamps[-1] <= horizon]
        for sender in idle:
            del self._sent[sender]
