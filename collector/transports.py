"""Device transports: the session behind one outbound WebSocket (§4.1).

Kept free of Channels so the consumer stays a thin adapter (authenticate,
accept, move frames, close) and a test or a benchmark can drive a stream with
frames directly.

- `DeviceStream`: one connection's frames → parser → pipeline, with the
  device restriction of its token, bad-input counting and `last_seen`.
- `OrphanedRuns`: runs left running by a device that disconnected; one
  process-wide task keeps ticking them so the stop is still written within
  stop_timeout + a few seconds (the django-q2 sweeper covers process restarts).
"""

import asyncio
import json
import logging
import time
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from collector import metrics, outage
from collector.db import run_in_db_thread
from collector.models import Device, IngestToken, Transport
from collector.parsing import DeviceStatusTracker, FrameError, decode_frame
from collector.pipeline import Pipeline
from collector.services import mark_token_used
from collector.token_cache import token_cache

log = logging.getLogger(__name__)

GET_STATUS_ID = 2
LAST_SEEN_EVERY_SECONDS = 30.0
# A device row may not exist yet (registered with its first samples): retry sooner.
LAST_SEEN_RETRY_SECONDS = 5.0
# A refused (unknown) device is looked up again after this long, so an admin
# who adds it does not have to wait for the device to reconnect.
REFUSED_RECHECK_SECONDS = 60.0
NOT_IMPLEMENTED = {"code": 500, "message": "Not Implemented"}

frames_in = metrics.frames_in.labels(Transport.WEBSOCKET.value)


def bootstrap_frames(server_src: str) -> list[str]:
    """What the server sends on connect: ask for notifications, then for a full status."""
    return [
        json.dumps({"id": 1, "src": server_src, "method": "NotifyStatus", "params": {"enable": True}}),
        json.dumps({"id": GET_STATUS_ID, "src": server_src, "method": "Shelly.GetStatus"}),
    ]


def authenticate_ingest_token(raw: str | None) -> IngestToken | None:
    """The enabled ingest token with this secret, marked as used; None when there is none."""
    token = IngestToken.objects.matching(raw).select_related("device").first()
    if token is None:
        return None
    token_cache.remember(raw, token)
    mark_token_used(token)
    return token


async def authenticate_ingest_token_or_cached(raw: str | None):
    """The token from the database; while the database is unreachable, from the recently validated ones.

    Raises `outage.DATABASE_ERRORS` when the database is down and the token was not seen recently.
    """
    try:
        return await run_in_db_thread(authenticate_ingest_token)(raw)
    except outage.DATABASE_ERRORS as exc:
        outage.state.database_failed(exc)
        cached = token_cache.get(raw)
        if cached is None:
            raise
        return cached


def _touch_device(device_id: str, now: datetime) -> bool:
    return Device.objects.filter(device_id=device_id).update(last_seen=now) > 0


class DeviceStream:
    """The frames of one device connection, from bytes on the wire to the pipeline.

    Per frame the work stays in the event loop (decode, merge, policy); rows,
    run transitions and due state flushes go to the process's write-behind
    stage without waiting for their commit (collector.writebehind); the
    database is reached directly only to load channels and for `last_seen`
    every 30 s. Only a disconnect waits for the commit of what it handed over.
    """

    def __init__(
        self,
        *,
        allowed_device_id: str | None = None,
        server_src: str | None = None,
        max_frame_bytes: int | None = None,
        max_skew_s: float | None = None,
        pipeline: Pipeline | None = None,
        token_key=None,
    ):
        self.allowed_device_id = allowed_device_id
        self.device_id = allowed_device_id  # the device this connection speaks for, once known
        self.server_src = server_src or settings.COLLECTOR_SERVER_SRC
        self.max_frame_bytes = max_frame_bytes or settings.COLLECTOR_MAX_FRAME_BYTES
        skew = settings.COLLECTOR_CLOCK_SKEW_SECONDS if max_skew_s is None else max_skew_s
        self.tracker = DeviceStatusTracker(max_skew_s=skew)
        self.pipeline = pipeline or Pipeline(transport=Transport.WEBSOCKET, token_key=token_key)
        self.seen_devices: set[str] = set()
        self.last_seen_due: dict[str, float] = {}
        self.refused_since: dict[str, float] = {}
        self.failed = False
        # The timer task and the frame handler share the pipeline's cache;
        # its persist step runs in a thread, so they must take turns.
        self._pipeline_lock = asyncio.Lock()

    async def handle(self, data: str | bytes, *, received_at: datetime | None = None) -> str | None:
        """Handle one frame; returns the reply to send, if any.

        Bad input is dropped and counted; only an oversize frame raises
        (FrameError kind "oversize"), the caller closes with 1009.
        """
        frames_in.inc()
        try:
            frame = decode_frame(data, max_bytes=self.max_frame_bytes)
            src = frame.get("src")
            # One device per connection: the token's device, else the first `src` seen.
            if self.device_id and isinstance(src, str) and src and src != self.device_id:
                metrics.reject("wrong_device", device_id=self.device_id, detail=f"frame from {src}")
                return None
            parsed = self.tracker.parse(frame, received_at=received_at or timezone.now(), device_id=self.device_id)
        except FrameError as exc:
            metrics.reject(exc.kind, device_id=self.device_id, detail=str(exc))
            if exc.kind == "oversize":
                raise
            return None

        if parsed.kind == "request":
            # Frames are handled in order and written behind: the reply to a
            # request is sent once what the frames before it produced is
            # committed (or held, the database being away). Rare, and bounded
            # by one flush: never the frame path.
            await self.pipeline.committed()
            return json.dumps({"id": parsed.frame_id, "src": self.server_src, "error": NOT_IMPLEMENTED})
        device_id = parsed.device_id
        for problem in parsed.problems:
            metrics.reject(problem, device_id=device_id, detail=f"{parsed.method or 'result'} part dropped")
        if parsed.clock_skew:
            metrics.clock_skew.inc()
            metrics.log_bad_input("clock_skew", device_id=device_id, detail="device time unusable, server time used")
        if not device_id:
            return None
        if device_id not in self.seen_devices:
            await self._first_sight(device_id)
        if parsed.samples and not await self._ingest(device_id, parsed.samples):
            return None
        if time.monotonic() >= self.last_seen_due.get(device_id, 0.0):
            await self._touch(device_id)
        return None

    async def _first_sight(self, device_id: str) -> None:
        self.seen_devices.add(device_id)
        if self.device_id is None:
            self.device_id = device_id
        # A run this process was still closing for the device is continued
        # from the database state by this connection's own pipeline.
        await orphaned_runs.release(device_id, into=self.pipeline)

    async def _ingest(self, device_id: str, samples) -> bool:
        """Feed samples; False when the device is refused (unknown, auto-register off)."""
        if device_id in self.pipeline.refused_devices:
            if time.monotonic() - self.refused_since.get(device_id, 0.0) < REFUSED_RECHECK_SECONDS:
                metrics.refused_devices.inc()
                return False
            self.pipeline.refused_devices.discard(device_id)
            self.pipeline.forget_device(device_id)
        if self.pipeline.unloaded:
            # Database down at the reconnect: the previous connection of this
            # device may have been handed to the orphans only after our first
            # frame; take its held rows now, or they would be replayed after
            # ours and dropped as old.
            await orphaned_runs.release(device_id, into=self.pipeline)
        async with self._pipeline_lock:
            try:
                # Not waiting for the commit: the process's write-behind stage
                # writes it with every other connection's rows (group commit).
                await self.pipeline.aingest(samples, wait=False)
            except Exception:
                self.failed = True
                raise
        if device_id in self.pipeline.refused_devices:
            self.refused_since[device_id] = time.monotonic()
            metrics.refused_devices.inc()
            metrics.log_bad_input("refused_device", device_id=device_id, detail="unknown device, auto-register off")
            return False
        return True

    async def _touch(self, device_id: str) -> None:
        try:
            found = await run_in_db_thread(_touch_device)(device_id, timezone.now())
        except outage.DATABASE_ERRORS as exc:
            # `last_seen` is advisory: try again later, keep the connection.
            outage.state.database_failed(exc)
            found = False
        delay = LAST_SEEN_EVERY_SECONDS if found else LAST_SEEN_RETRY_SECONDS
        self.last_seen_due[device_id] = time.monotonic() + delay

    async def tick(self, now: datetime | None = None) -> None:
        """Timer: close runs whose stop timeout passed while connected, flush due state."""
        if self.failed:
            return
        async with self._pipeline_lock:
            try:
                # Not waiting either: a tick never holds this connection's
                # frames behind a commit (the stage retries on its own).
                await self.pipeline.atick(now, wait=False)
                self.pipeline.raise_write_error()
            except Exception:
                self.failed = True
                raise

    async def close(self) -> None:
        """The device went away: write everything, hand still-running runs to the orphan registry.

        After a pipeline failure the in-memory state may claim rows that were
        never written: it is dropped, the database state stays authoritative.
        """
        if self.failed:
            return
        async with self._pipeline_lock:
            await self.pipeline.atick(flush_all=True)
        if _has_running(self.pipeline):
            orphaned_runs.adopt(self.pipeline)


class OrphanedRuns:
    """Pipelines of disconnected devices that still have a run to close.

    One task per process ticks them every COLLECTOR_TIMER_SECONDS until their
    runs are closed, the device reconnects here (`release`), or a write fails
    (then the database still says running and the sweeper closes it). A
    reconnect in another process is safe too: every write is conditional on
    the state version this pipeline loaded.
    """

    MAX_FAILURES = 3

    def __init__(self):
        self.pipelines: list[Pipeline] = []
        self._failures: dict[int, int] = {}
        self._lock: asyncio.Lock | None = None
        self._lock_loop = None
        self._task: asyncio.Task | None = None

    def adopt(self, pipeline: Pipeline) -> None:
        self.pipelines.append(pipeline)
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._run(), name="shelly-orphaned-runs")

    async def release(self, device_id: str, into: Pipeline | None = None) -> None:
        """The device reconnected here: its runs continue in `into` (its cached state and
        anything a database outage held move there), or are reloaded from the database."""
        if not self.pipelines:
            return
        async with self._current_lock():
            for pipeline in list(self.pipelines):
                if into is not None:
                    into.take_device(pipeline, device_id)
                else:
                    pipeline.forget_device(device_id)
                if not _has_running(pipeline):
                    self._drop(pipeline)

    async def tick(self, now: datetime | None = None) -> None:
        async with self._current_lock():
            for pipeline in list(self.pipelines):
                try:
                    await pipeline.atick(now)
                except Exception:
                    log.exception("closing an orphaned run failed", extra={"event": "orphan_tick_failed"})
                    self._failures[id(pipeline)] = self._failures.get(id(pipeline), 0) + 1
                    if self._failures[id(pipeline)] >= self.MAX_FAILURES:
                        self._drop(pipeline)
                    continue
                if not _has_running(pipeline):
                    self._drop(pipeline)

    def clear(self) -> None:
        self.pipelines.clear()
        self._failures.clear()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None

    def _drop(self, pipeline: Pipeline) -> None:
        if pipeline in self.pipelines:  # `clear()` may have run while a tick awaited
            self.pipelines.remove(pipeline)
        self._failures.pop(id(pipeline), None)

    def _current_lock(self) -> asyncio.Lock:
        # An asyncio lock belongs to one event loop; a new loop (as in tests) gets a new lock.
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def _run(self) -> None:
        while self.pipelines:
            await asyncio.sleep(settings.COLLECTOR_TIMER_SECONDS)
            await self.tick()


def _has_running(pipeline: Pipeline) -> bool:
    """A run to close, or (database outage) rows still to write: keep ticking the pipeline."""
    if pipeline.unloaded or pipeline.has_unwritten():
        return True
    return any(rt.state.running for rt in pipeline.cached_runtimes())


orphaned_runs = OrphanedRuns()
