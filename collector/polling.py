"""Local RPC polling of energy meters (SPEC §4.3): live status and EMData intervals.

Runs in its own asyncio process (`manage.py run_poller`), not in django-q2:
q2's scheduler checks its schedules about every 30 s, so it cannot hold a
10 s cadence. Rules:

- one `DevicePoller` task per device, so a slow or dead meter only delays
  itself; its ticks stay on a fixed grid (start + k·period) and a tick missed
  while a poll was still hanging is skipped, never bunched up;
- device starts are spread over the period so 50 meters do not fire at once;
- live: `Shelly.GetStatus` → `samples_from_status` → the pipeline (policy
  `every` for meters); at most one retry, since the next tick is the better retry;
- intervals: a pull at start, every POLL_INTERVAL_DATA_SECONDS and right
  after a device answers again following failures (catch-up from its memory);
  once a day, after local midnight, the previous day is re-read;
- `Shelly.GetDeviceInfo` on first contact and after every recovery fills
  model, generation, firmware, MAC and profile (and the real device id);
- failures are counted on the device (`consecutive_failures`, `last_error`)
  and in metrics; they never stop the schedule.
"""

import asyncio
import logging
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from collector import intervals, metrics, outage, services
from collector.db import run_in_db_thread
from collector.models import Device, Transport
from collector.parsing import samples_from_status
from collector.pipeline import Pipeline
from collector.rpc_client import ComponentNotFound, MethodNotFound, RetryPolicy, RpcError, ShellyRpcClient

log = logging.getLogger(__name__)

LIVE_RETRY = RetryPolicy(attempts=2, base_s=0.2, max_s=1.0)
BACKFILL_AFTER = (0, 5)  # local hh, mm: yesterday is complete on the device by then
MAX_TIMINGS = 20_000
MAX_PENDING_STORES = 10

frames_in = metrics.frames_in.labels(Transport.RPC_POLL.value)
live_failures = metrics.poll_failures.labels("live")
interval_failures = metrics.poll_failures.labels("intervals")
info_failures = metrics.poll_failures.labels("info")


@dataclass
class PollStats:
    """What a device's poller did; the bench and the tests read it."""

    polls_ok: int = 0
    polls_failed: int = 0
    ticks_skipped: int = 0
    stores_dropped: int = 0
    intervals_written: int = 0
    interval_pulls: int = 0
    drifts: deque = field(default_factory=lambda: deque(maxlen=MAX_TIMINGS))  # s late vs the grid
    poll_times: deque = field(default_factory=lambda: deque(maxlen=MAX_TIMINGS))  # monotonic starts of good polls
    interval_errors: deque = field(default_factory=lambda: deque(maxlen=20))


@dataclass(frozen=True)
class PollSettings:
    live_s: float
    interval_s: float
    timeout_s: float
    live_retry: RetryPolicy = LIVE_RETRY
    spread_start: bool = True
    backfill: bool = True

    @classmethod
    def from_settings(cls, **overrides):
        values = {
            "live_s": settings.POLL_LIVE_SECONDS,
            "interval_s": settings.POLL_INTERVAL_DATA_SECONDS,
            "timeout_s": settings.SHELLY_TIMEOUT_MS / 1000,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to `seconds`; True when stop was set meanwhile."""
    if seconds <= 0:
        return stop.is_set()
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


def _start_offset(device_id: str, period: float) -> float:
    # Stable per device (not random) so restarts keep the same phase.
    return (zlib.crc32(device_id.encode()) % 1000) / 1000 * period


class DevicePoller:
    """Polls one device until `stop` is set."""

    def __init__(self, device: Device, config: PollSettings, *, client_factory=ShellyRpcClient):
        self.device = device
        self.config = config
        self.stats = PollStats()
        self.client = client_factory(device.host, password=device.password, timeout_s=config.timeout_s)
        self.pipeline = Pipeline(transport=Transport.RPC_POLL, auto_register=True)
        self.needs_info = device.info_fetched_at is None
        self.failing = False
        self.pull_now = asyncio.Event()
        self.stop_event = asyncio.Event()
        self.pending_stores = 0
        self.no_interval_data: str | None = None  # the profile under which the device had no EMData
        self._last_store: asyncio.Task | None = None
        self.backfilled_for = timezone.localdate()  # startup catch-up comes from the cursor

    @property
    def signature(self) -> tuple:
        return (self.device.host, self.device.password, self.device.enabled)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await asyncio.gather(self._live_loop(stop), self._interval_loop(stop))
        finally:
            if self._last_store is not None:
                await asyncio.wait([self._last_store], timeout=10)
            await self.client.aclose()

    # -- live ----------------------------------------------------------------
    async def _live_loop(self, stop: asyncio.Event) -> None:
        period = self.config.live_s
        offset = _start_offset(self.device.device_id, period) if self.config.spread_start else 0.0
        next_at = time.monotonic() + offset
        while not await _wait(stop, next_at - time.monotonic()):
            started = time.monotonic()
            self.stats.drifts.append(started - next_at)
            await self.poll_live(started, wait_for_store=False)
            next_at += period
            now = time.monotonic()
            if next_at <= now:
                # The poll overran (a hanging meter): skip to the next grid point.
                missed = int((now - next_at) // period) + 1
                self.stats.ticks_skipped += missed
                next_at += missed * period

    async def poll_live(self, started: float | None = None, *, wait_for_store: bool = True) -> bool:
        """One GetStatus. The schedule does not wait for the database: storing is
        chained per device (samples stay in order), so a slow write never makes
        the next poll late."""
        try:
            if self.needs_info:
                try:
                    await self.refresh_info()
                except outage.DATABASE_ERRORS as exc:
                    # The info is saved on a later poll; the samples are held meanwhile.
                    outage.state.database_failed(exc)
            status = await self.client.get_status(retry=self.config.live_retry)
        except RpcError as exc:
            await self._failed("live", exc)
            return False
        except Exception as exc:  # e.g. the database while saving device info: keep the schedule
            log.exception("live poll failed", extra={"event": "poll_live_error", "device_id": self.device_id})
            await self._failed("live", exc)
            return False
        received_at = timezone.now()
        frames_in.inc()
        self.stats.polls_ok += 1
        self.stats.poll_times.append(started if started is not None else time.monotonic())
        if self.failing:
            # Back after failures: read what the meter recorded meanwhile, and its info
            # (a reboot may have come with a firmware update).
            self.failing = False
            self.needs_info = True
            self.pull_now.set()
        samples = samples_from_status(self.device.device_id, status if isinstance(status, dict) else {}, received_at)
        stored = self._queue_store(samples, received_at)
        return await stored if wait_for_store else True

    def _queue_store(self, samples, received_at) -> asyncio.Future:
        if self.pending_stores >= MAX_PENDING_STORES:
            # The database is far behind: drop this poll rather than grow without bound.
            self.stats.stores_dropped += 1
            dropped = asyncio.get_running_loop().create_future()
            dropped.set_result(False)
            return dropped
        self.pending_stores += 1
        self._last_store = asyncio.create_task(self._store(samples, received_at, self._last_store))
        return self._last_store

    async def _store(self, samples, received_at, previous) -> bool:
        try:
            if previous is not None:
                await asyncio.wait([previous])
            await self.pipeline.aingest(samples)  # held in memory during a database outage
            try:
                await run_in_db_thread(services.record_poll_success)(self.device.pk, at=received_at)
            except outage.DATABASE_ERRORS as exc:
                # The poll itself succeeded: not a device failure (that would
                # re-read its info, which needs the database, before each poll).
                outage.state.database_failed(exc)
            return True
        except Exception as exc:  # a database hiccup must not end the schedule
            log.exception("storing a poll failed", extra={"event": "poll_store_failed", "device_id": self.device_id})
            await self._failed("live", exc)
            return False
        finally:
            self.pending_stores -= 1

    async def refresh_info(self) -> None:
        try:
            info = await self.client.get_device_info()
        except RpcError:
            info_failures.inc()
            raise
        old_id = self.device.device_id
        device = await run_in_db_thread(services.apply_device_info)(self.device.pk, info)
        self.device.device_id = device.device_id
        self.device.profile = device.profile
        self.device.info_fetched_at = device.info_fetched_at
        if device.device_id != old_id:
            self.pipeline = Pipeline(transport=Transport.RPC_POLL, auto_register=True)
        self.needs_info = False
        self.pull_now.set()  # the profile is known now: the interval pull can run

    async def _failed(self, kind: str, exc: Exception) -> None:
        self.failing = True
        self.stats.polls_failed += kind == "live"
        (live_failures if kind == "live" else interval_failures).inc()
        message = str(exc) or type(exc).__name__
        log.warning("poll failed", extra={"event": f"poll_{kind}_failed", "device_id": self.device_id})
        try:
            await run_in_db_thread(services.record_poll_failure)(self.device.pk, message, at=timezone.now())
        except Exception:
            log.exception("recording a poll failure failed", extra={"event": "poll_health_failed"})

    @property
    def device_id(self) -> str:
        return self.device.device_id

    # -- intervals -------------------------------------------------------------
    async def _interval_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.pull_now.clear()  # before pulling: a wake-up during the pull is kept
            await self.pull_intervals()
            await self.backfill_if_due()
            waiter = asyncio.ensure_future(self.pull_now.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, timeout=self.config.interval_s, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()

    async def pull_intervals(self) -> intervals.PullResult | None:
        if self.needs_info or self.no_interval_data == self.device.profile:
            return None  # profile unknown yet, or this device keeps no EMData (a Pro 4PM)
        try:
            result = await intervals.pull_intervals(self.client, self.device)
        except (MethodNotFound, ComponentNotFound) as exc:
            # Not a failure: the device has no such records. Asked again only
            # when its profile changes (a 3EM switched between triphase/monophase).
            log.info("no interval data", extra={"event": "no_interval_data", "device_id": self.device_id})
            self.no_interval_data = self.device.profile
            self.stats.interval_errors.append(str(exc))
            return None
        except RpcError as exc:
            await self._failed("intervals", exc)
            return None
        except outage.DATABASE_ERRORS as exc:
            # Not the meter's fault (marking it failing would re-read its info,
            # which needs the database, before every poll): retried on schedule.
            outage.state.database_failed(exc)
            return None
        except Exception as exc:
            log.exception("interval pull failed", extra={"event": "interval_pull_failed", "device_id": self.device_id})
            await self._failed("intervals", exc)
            return None
        self.stats.interval_pulls += 1
        self.stats.intervals_written += result.written
        return result

    async def backfill_if_due(self, now: datetime | None = None) -> None:
        if not self.config.backfill or self.needs_info:
            return
        local = timezone.localtime(now or timezone.now())
        if local.date() == self.backfilled_for or (local.hour, local.minute) < BACKFILL_AFTER:
            return
        try:
            result = await intervals.backfill_previous_day(self.client, self.device, now=now)
        except Exception as exc:
            await self._failed("intervals", exc)
            return
        self.backfilled_for = local.date()
        self.stats.intervals_written += result.written


class Poller:
    """All polled devices of this process; picks up admin changes every `refresh_s`."""

    def __init__(self, config: PollSettings | None = None, *, refresh_s: float = 30.0, client_factory=ShellyRpcClient):
        self.config = config or PollSettings.from_settings()
        self.refresh_s = refresh_s
        self.client_factory = client_factory
        self.pollers: dict[int, DevicePoller] = {}
        self.tasks: dict[int, asyncio.Task] = {}
        self.finished: list[DevicePoller] = []

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                await self.sync_devices()
                if await _wait(stop, self.refresh_s):
                    break
        finally:
            await self._stop_all()

    async def sync_devices(self) -> None:
        devices = {d.pk: d for d in await run_in_db_thread(list)(services.polled_devices())}
        for pk in list(self.tasks):
            device = devices.get(pk)
            changed = device is None or (device.host, device.password, device.enabled) != self.pollers[pk].signature
            if changed or self.tasks[pk].done():
                await self._stop(pk)
        for pk, device in devices.items():
            if pk not in self.tasks:
                poller = DevicePoller(device, self.config, client_factory=self.client_factory)
                self.pollers[pk] = poller
                self.tasks[pk] = asyncio.create_task(poller.run(poller.stop_event))

    async def _stop(self, pk: int) -> None:
        poller, task = self.pollers.pop(pk), self.tasks.pop(pk)
        poller.stop_event.set()
        try:
            await asyncio.wait_for(task, timeout=self.config.timeout_s * 3 + 1)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
        except Exception:
            log.exception("device poller ended with an error", extra={"device_id": poller.device_id})
        self.finished.append(poller)

    async def _stop_all(self) -> None:
        for pk in list(self.tasks):
            self.pollers[pk].stop_event.set()
        if self.tasks:
            done, pending = await asyncio.wait(list(self.tasks.values()), timeout=self.config.timeout_s * 3 + 1)
            for task in pending:
                task.cancel()
        self.finished.extend(self.pollers.values())
        self.pollers.clear()
        self.tasks.clear()

    def all_stats(self) -> dict[str, PollStats]:
        return {p.device_id: p.stats for p in [*self.finished, *self.pollers.values()]}


def pull_device_intervals(device_pk: int, *, previous_day: bool = False) -> intervals.PullResult:
    """Sync entry for tasks and admin actions: one interval pull (or yesterday's backfill) now."""
    from asgiref.sync import async_to_sync

    device = Device.objects.get(pk=device_pk)

    async def pull():
        async with ShellyRpcClient(device.host, password=device.password) as client:
            if previous_day:
                return await intervals.backfill_previous_day(client, device)
            return await intervals.pull_intervals(client, device)

    return async_to_sync(pull)()
