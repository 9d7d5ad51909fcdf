"""Riding out a database outage (§9 operations): hold what the pipeline could not write, write it when it returns.

The holding is done by the write-behind stage (`collector.writebehind`), the
one place every live write goes through: when a flush fails with a
connection-level error (the database is stopped, restarting or unreachable)
its plans are kept — the rows, the run transitions and the samples behind
them (replayed if another process moved the channel meanwhile) — in front of
what arrives while the outage lasts. The connections' in-memory channel state
stays ahead of the database; when it answers again everything goes in, in
order per channel, and the state write stays conditional on the version
loaded before the outage: one start and one stop per run. This module keeps
the process's view of the database (down since when, why: /healthz reports
it with a 503), the bounded buffer's accounting and its counters.

Memory is bounded per process by COLLECTOR_OUTAGE_BUFFER_SAMPLES (samples
held for replay or for channels not loaded yet). Beyond it, a new sample's
ordinary rows are dropped, counted (`shelly_outage_dropped_samples`) and
logged; run starts and stops and the channel state are still kept, so runs
stay whole. What is held is lost if the process itself ends before the
database returns (logged at shutdown as far as the process can).
"""

import contextlib
import logging
import threading
import time

import psycopg
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from prometheus_client import Counter, Gauge

log = logging.getLogger(__name__)

# Connection-level failures: the server is gone or not accepting. Integrity
# or programming errors are bugs and keep propagating.
# The raw psycopg ones come from the bulk insert, which uses psycopg directly.
DATABASE_ERRORS = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)
TRANSITION_REASONS = frozenset({"start", "stop"})
DROP_LOG_EVERY = 1000

buffered_gauge = Gauge(
    "shelly_outage_buffered_samples",
    "Samples held in memory because the database could not be written (database outage).",
    multiprocess_mode="livesum",
)
dropped_counter = Counter(
    "shelly_outage_dropped_samples",
    "Samples whose rows were dropped because the outage buffer (COLLECTOR_OUTAGE_BUFFER_SAMPLES) was full.",
)


class OutageState:
    """This process's view of the database: down since when, why, how much is held and dropped."""

    def __init__(self):
        self._lock = threading.Lock()  # touched from the event loop and from database threads
        self.down_since: float | None = None
        self.reason = ""
        self.held = 0
        self.dropped = 0
        self._next_retry = 0.0

    @property
    def database_down(self) -> bool:
        return self.down_since is not None

    def database_failed(self, exc: BaseException) -> None:
        with self._lock:
            first = self.down_since is None
            if first:
                self.down_since = time.monotonic()
            self.reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:300]
        if first:
            log.error(
                "database unreachable: holding samples in memory until it returns",
                extra={"event": "database_outage", "reason": self.reason},
            )

    def database_back(self) -> None:
        if self.down_since is None:
            return
        with self._lock:
            if self.down_since is None:
                return
            seconds = time.monotonic() - self.down_since
            self.down_since = None
            self.reason = ""
        log.warning(
            "database reachable again after %.1f s",
            seconds,
            extra={"event": "database_back", "held": self.held, "dropped": self.dropped},
        )

    def retry_due(self) -> bool:
        """Whether a frame's write may try the database again (one try per COLLECTOR_TIMER_SECONDS per process;
        paths without a timer, like the poller, rely on it)."""
        now = time.monotonic()
        with self._lock:
            if now < self._next_retry:
                return False
            self._next_retry = now + settings.COLLECTOR_TIMER_SECONDS
            return True

    def try_hold(self, count: int) -> bool:
        """Reserve room for `count` samples; False (and counted as dropped) when the buffer is full."""
        with self._lock:
            if self.held + count <= settings.COLLECTOR_OUTAGE_BUFFER_SAMPLES:
                self.held += count
                buffered_gauge.inc(count)
                return True
            before = self.dropped
            self.dropped += count
        dropped_counter.inc(count)
        if before == 0 or before // DROP_LOG_EVERY != self.dropped // DROP_LOG_EVERY:
            log.error(
                "outage buffer full: dropped samples",
                extra={"event": "outage_dropped", "dropped": self.dropped, "held": self.held},
            )
        return False

    def release(self, count: int) -> None:
        if not count:
            return
        with self._lock:
            self.held = max(0, self.held - count)
        buffered_gauge.dec(count)

    def summary(self) -> dict:
        report = {"buffered_samples": self.held, "dropped_samples": self.dropped}
        if self.down_since is not None:
            report["down_for_s"] = round(time.monotonic() - self.down_since, 1)
            report["error"] = self.reason
        return report

    def reset(self) -> None:
        """Tests only."""
        with self._lock:
            self.down_since, self.reason, self.held, self.dropped = None, "", 0, 0


state = OutageState()


def database_failed(exc: BaseException) -> None:
    """A write or read of this database thread failed for want of a database."""
    state.database_failed(exc)
    # Django only notices errors raised through its own cursor wrapper; the
    # bulk insert's psycopg cursor is not one, so the broken connection is
    # closed here and the next attempt opens a fresh one.
    with contextlib.suppress(Exception):
        connection.close()


def hold_unloaded(held: list, samples: list) -> list:
    """Samples of channels that could not be loaded (database down): kept in order while there is room."""
    if samples and not state.try_hold(len(samples)):
        return held
    return held + samples
