"""Bounds that keep one client from costing everyone else (§4.1).

- `FrameRateLimiter`: frames per second on one device connection; a frame
  over the rate is dropped before it is decoded, so a flood costs the
  server little more than reading it off the socket.
- `NewDeviceBudget`: how many devices one ingest token may register per
  minute, process-wide (each process keeps its own window: with N web
  processes a token registers at most N times the limit, still bounded).
"""

import threading
import time
from collections import deque


class FrameRateLimiter:
    """Token bucket: `rate` frames per second on average, bursts up to one second's worth."""

    __slots__ = ("rate", "capacity", "allowance", "last", "dropped")

    def __init__(self, rate: float, *, clock=time.monotonic):
        self.rate = float(rate)
        self.capacity = max(self.rate, 1.0)
        self.allowance = self.capacity
        self.last = clock()
        self.dropped = 0

    def allow(self, now: float) -> bool:
        if self.rate <= 0:  # 0 turns the limit off
            return True
        allowance = self.allowance + (now - self.last) * self.rate
        self.last = now
        if allowance > self.capacity:
            allowance = self.capacity
        if allowance < 1.0:
            self.allowance = allowance
            self.dropped += 1
            return False
        self.allowance = allowance - 1.0
        return True


class NewDeviceBudget:
    """At most `limit` registrations per key (token) in any 60 s window."""

    WINDOW_SECONDS = 60.0

    def __init__(self, *, clock=time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()  # registrations happen in database threads
        self._spent: dict[object, deque] = {}

    def take(self, key, limit: int) -> bool:
        """Spend one registration for `key`; False when its budget for the minute is used up."""
        if limit <= 0:
            return True  # 0 turns the limit off
        now = self.clock()
        with self._lock:
            spent = self._spent.setdefault(key, deque())
            while spent and now - spent[0] >= self.WINDOW_SECONDS:
                spent.popleft()
            if len(spent) >= limit:
                return False
            spent.append(now)
            return True

    def clear(self) -> None:
        with self._lock:
            self._spent.clear()


new_device_budget = NewDeviceBudget()
