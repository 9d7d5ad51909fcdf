"""Every push to the live dashboard goes through here.

Two kinds of messages go to the `dashboard` group (payloads name the
consumer handler in `type`):

- `live.samples`: the latest power, current, voltage and running state of
  channels, from every accepted sample (written or not). Coalesced per
  process: at most one message a second, carrying the latest value of each
  channel that moved, so a channel is pushed at most once a second and the
  latest value always wins.
- `channels.changed`: rows or a run start/stop were committed; sent after
  the commit, pages refresh their figures.

Samples of another process reach the page through the channel layer in
production (Redis). The embedded mode's in-memory layer cannot cross
processes (the poller is its own process), so the dashboard consumer also
reads recently changed channel states from the database every few seconds
(`dashboard.selectors.live_states_since`): the page converges on the stored
state whatever the layer.
"""

import asyncio
import logging
import math
import threading
import time

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from shelly_site.logging import RepeatedFailureLog

log = logging.getLogger(__name__)
# A channel layer that is down fails every push: one line a minute with a count.
push_failures = RepeatedFailureLog(log, "dashboard push failed", event="realtime_push_failed")

DASHBOARD_GROUP = "dashboard"
LIVE_PUSH_INTERVAL_S = 1.0


def live_payload(live) -> dict:
    """What a page needs from one LiveSample (JSON-able)."""
    sample = live.sample
    return {
        "channel": live.channel_id,
        "device": live.device_pk,
        "p": sample.apower_w,
        "i": sample.current_a,
        "v": sample.voltage_v,
        "running": live.running,
        "ts": sample.ts.isoformat(),
    }


class LiveCoalescer:
    """The latest live value per channel, released as one batch at most every `interval_s`.

    Thread-safe: samples come from the event loop (device sockets, poller)
    and from worker threads (batch API).
    """

    def __init__(self, interval_s: float = LIVE_PUSH_INTERVAL_S, clock=time.monotonic):
        self.interval_s = interval_s
        self.clock = clock
        self._lock = threading.Lock()
        self._pending: dict[int, dict] = {}
        self._last_release = -math.inf
        self._flush_due: float | None = None  # when a scheduled flush should run; None: none scheduled

    def offer(self, items) -> float | None:
        """Keep the latest item per channel (anything with a `channel_id`); returns the delay before the
        caller should flush, or None when a flush is already on its way.

        Items are kept as they are (payloads are built once, when released):
        this runs for every sample. A flush scheduled on an event loop that has
        gone away (a stopped test loop, a crashed task) is considered lost
        after a grace period.
        """
        with self._lock:
            pending = self._pending
            for item in items:
                pending[item.channel_id] = item
            now = self.clock()
            if self._flush_due is not None and now < self._flush_due + 5 * self.interval_s:
                return None
            delay = max(0.0, self._last_release + self.interval_s - now)
            self._flush_due = now + delay
            return delay

    def take(self) -> list:
        """The pending items (oldest channel first), now released."""
        with self._lock:
            batch = list(self._pending.values())
            self._pending.clear()
            self._flush_due = None
            if batch:
                self._last_release = self.clock()
            return batch

    def give_up_schedule(self) -> None:
        """The caller cannot schedule a flush (sync, not due yet): the next offer schedules one."""
        with self._lock:
            self._flush_due = None


_coalescer = LiveCoalescer()


def samples_seen(live, *, loop=None) -> None:
    """Every accepted sample (a list of `collector.samples.LiveSample`), written or not.

    With `loop` (the event loop of an async caller: device sockets, the
    poller) the coalesced push is scheduled on it. A sync caller without a
    loop (the batch API) pushes when a push is due and otherwise leaves the
    values pending for the next push; the consumers' database refresh shows
    the final state within seconds either way.
    """
    if not live:
        return
    delay = _coalescer.offer(live)
    if delay is None:
        return
    if loop is not None and loop.is_running():
        loop.call_soon_threadsafe(_schedule_flush, delay)
        return
    if delay > 0:
        _coalescer.give_up_schedule()
        return
    _send_now({"type": "live.samples", "samples": [live_payload(item) for item in _coalescer.take()]})


def _schedule_flush(delay: float) -> None:
    # Runs in the event loop thread.
    asyncio.get_running_loop().call_later(delay, lambda: asyncio.ensure_future(_flush()))


async def _flush() -> None:
    batch = _coalescer.take()
    if not batch:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        samples = [live_payload(item) for item in batch]
        await layer.group_send(DASHBOARD_GROUP, {"type": "live.samples", "samples": samples})
    except Exception as exc:  # a dashboard push must never break ingestion
        push_failures.failed(exc)


def _send_now(message: dict) -> None:
    layer = get_channel_layer()
    if layer is None or not message.get("samples", True):
        return
    try:
        async_to_sync(layer.group_send)(DASHBOARD_GROUP, message)
    except Exception as exc:  # a dashboard push must never break ingestion
        push_failures.failed(exc)


def channels_changed(channel_ids, *, loop=None) -> None:
    """Tell dashboards that these channels have new rows or a new running state.

    Called after commit from sync code. With `loop` (the running event loop of
    an async caller, e.g. a device consumer whose write ran in a thread) the
    push is handed to that loop and not waited for: waiting held a database
    thread for each push while the loop was busy with a reconnect burst.
    """
    if not channel_ids:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "channels.changed", "channel_ids": sorted(channel_ids)}
    if loop is not None and loop.is_running():
        future = asyncio.run_coroutine_threadsafe(layer.group_send(DASHBOARD_GROUP, message), loop)
        future.add_done_callback(_log_failure)
        return
    _send_now(message)


def _log_failure(future) -> None:
    if not future.cancelled() and future.exception() is not None:
        push_failures.failed(future.exception())
