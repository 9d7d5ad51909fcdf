"""Bounds that keep one client from costing everyone else (§4.1).

- `FrameRateLimiter`: frames per second on one device connection; a frame
  over the rate is dropped before it is decoded. A connection that keeps
  flooding (a second's worth of frames dropped in a row) is also told to
  pause: the consumer stops reading for `pause_seconds`, the server stops
  reading the socket, and TCP holds the flooder back, so the flood costs the
  server about two seconds' worth of frames per second, not the
  tens of thousands the device sends.
- `NewDeviceBudget`: how many devices one ingest token may register per
  minute, process-wide (each process keeps its own window: with N web
  processes a token registers at most N times the limit, still bounded).
"""

import threading
import time
from collections import deque


class FrameRateLimiter:
    """Token bucket: `rate` frames per second on average, bursts up to one second's worth."""

    __slots__ = ("rate", "capacity", "allowance", "last", "dropped", "dropped_in_a_row")

    def __init__(self, rate: float, *, clock=time.monotonic):
        self.rate = float(rate)
        self.capacity = max(self.rate, 1.0)
        self.allowance = self.capacity
        self.last = clock()
        self.dropped = 0
        self.dropped_in_a_row = 0

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
            self.dropped_in_a_row += 1
            return False
        self.allowance = allowance - 1.0
        self.dropped_in_a_row = 0
        return True

    def pause_seconds(self) -> float:
        """How long to stop reading this connection: 0 unless it floods (a full bucket's worth dropped in a row).

        The pause is the time the bucket takes to refill: after it the
        connection may send a second's worth of frames again.
        """
        if self.rate <= 0 or self.dropped_in_a_row < self.capacity:
            return 0.0
        self.dropped_in_a_row = 0
        return self.capacity / self.rate


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
