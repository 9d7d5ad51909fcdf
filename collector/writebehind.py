"""The write-behind stage: one per process, gathering the writes of all its connections (§5, §9 operations).

Device connections decide in memory (`Pipeline.apply`) and hand what must
be written — rows, run starts and stops, due channel states — to the stage
of their event loop. The stage flushes what it holds as ONE transaction
(`Pipeline.persist(detached=True)` → `pipeline.write_plans`: one conditional
UPDATE of all channel states, one INSERT or COPY of all rows) at most
COLLECTOR_WRITE_FLUSH_MS after the first write it holds, or at once when
COLLECTOR_WRITE_FLUSH_ROWS rows are waiting or a caller needs its writes now
(a disconnect, a timer tick of the poller, shutdown). Group commit: hundreds
of frames share one commit instead of five round trips each.

Rules:
- one flush at a time per stage, at most about 4 × COLLECTOR_WRITE_FLUSH_ROWS
  rows each (never "everything held" in one ever larger transaction), and a
  channel's plans in submit order, so the rows of a channel
  are stored in sample order across flushes;
- a flush is all or nothing. When the database is unreachable the failed
  plans are *held* (this is the database-outage buffer of `collector.outage`):
  they go back in front of what arrived meanwhile, and what arrives while
  the outage lasts is admitted into the same bounded buffer
  (COLLECTOR_OUTAGE_BUFFER_SAMPLES; beyond it a plan's ordinary rows are
  dropped and counted, its starts and stops kept). The stage retries on its
  own, with backoff up to COLLECTOR_TIMER_SECONDS, sooner when a caller asks;
  connections stay open and keep deciding, nobody waits for the database;
- any other failure (a bug, a conflict that kept changing) is retried a few
  times, then the plans are given up: logged, and the owning pipelines see
  the error at their next frame (the device reconnects with the database's
  state) — never an endless retry that holds everything behind it;
- while the database answers but is slower than the devices, a connection
  that submits past the high-water mark (4 × COLLECTOR_WRITE_FLUSH_ROWS rows
  waiting) waits for room before reading its next frame: backpressure, not
  unbounded memory;
- a conflict (another process moved a channel) is replayed in the database
  thread on the stored state; the connection's runtime adopts the replayed
  state after commit and re-applies whatever it submitted since.
"""

import asyncio
import logging
import weakref

from django.conf import settings

from collector import metrics, outage, policies
from collector.db import run_in_db_thread
from collector.models import Transport
from collector.pipeline import ChannelPlan, Pipeline, adopt_written, copy_state

log = logging.getLogger(__name__)

# A failure that is not the database being away is retried this many times, then given up.
MAX_ATTEMPTS = 3
HIGH_WATER_FLUSHES = 4


class _Waiter:
    """One submission: True when all its plans are committed, False when held (outage), an exception when given up."""

    __slots__ = ("future", "remaining")

    def __init__(self, future, remaining):
        self.future, self.remaining = future, remaining

    def plan_done(self) -> None:
        self.remaining -= 1
        if self.remaining <= 0 and not self.future.done():
            self.future.set_result(True)

    def release(self) -> None:
        if not self.future.done():
            self.future.set_result(False)

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


class WriteBehind:
    def __init__(self, loop, *, interval_s=None, max_rows=None):
        self.loop = loop
        self.interval_s = settings.COLLECTOR_WRITE_FLUSH_MS / 1000 if interval_s is None else interval_s
        self.max_rows = settings.COLLECTOR_WRITE_FLUSH_ROWS if max_rows is None else max_rows
        # id(runtime) -> plan, in submit order. Keyed by runtime, not channel:
        # two pipelines of one process may hold the same channel (an orphaned
        # run and the device's new connection), each at its own version.
        self.pending: dict[int, ChannelPlan] = {}
        self.inflight: dict[int, ChannelPlan] = {}
        self.pending_rows = 0
        self.first_at: float | None = None
        self.urgent = False
        self.failures = 0  # consecutive failed flushes
        self.retry_at = 0.0
        self.flushes = 0
        self._next_flush: list[_Waiter] = []  # resolved when the next flush to start ends
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._task: asyncio.Task | None = None
        # Writes through `Pipeline.persist` (tests make it fail like a database outage).
        self._flusher = Pipeline(transport=Transport.WEBSOCKET, auto_register=False)
        self._flusher.event_loop = loop

    @property
    def holding(self) -> bool:
        """Plans held after a failed flush (the database unreachable, or a failure being retried)."""
        return self.failures > 0

    @property
    def high_water(self) -> int:
        return HIGH_WATER_FLUSHES * max(1, self.max_rows)

    # -- submitting (event loop) ---------------------------------------------
    def submit(self, plans: list[ChannelPlan], *, urgent=False) -> asyncio.Future:
        """Hold these plans for the next flush; the future says when they are committed (or held)."""
        future = self.loop.create_future()
        waiter = _Waiter(future, len(plans))
        for plan in plans:
            plan.waiters.append(waiter)
            if self.holding:
                _admit(plan)
            key = id(plan.runtime)
            held = self.pending.get(key)
            if held is None:
                self.pending[key] = plan
            else:
                _merge(held, plan)
            self.pending_rows += len(plan.rows)
        if not plans:
            if not (urgent and (self.pending or self.inflight)):
                future.set_result(True)
                return future
            self._next_flush.append(waiter)
        elif self.holding and not urgent:
            # The database is away: held, nobody waits for it (the stage retries on its own).
            waiter.release()
        if self.first_at is None:
            self.first_at = self.loop.time()
        self.urgent = self.urgent or urgent
        if self.urgent or (self.pending_rows >= self.max_rows and not self.holding):
            self._wake.set()
        self._ensure_running()
        return future

    async def room(self) -> None:
        """Backpressure: wait while more than the high-water mark of rows waits on a database that answers."""
        while self.pending_rows >= self.high_water and not self.holding and not outage.state.database_down:
            self._room.clear()
            self._ensure_running()
            await self._room.wait()

    async def drain(self) -> None:
        """Flush everything held now (shutdown) and wait for it; stops at a failed flush (the database is away)."""
        while self.pending or self.inflight:
            ok = await self.submit([], urgent=True)
            if not ok:
                log.error(
                    "shutting down with unwritten rows: the database is unreachable",
                    extra={"event": "write_backlog_lost", "rows": self.pending_rows, "plans": len(self.pending)},
                )
                return

    def holds(self, runtimes) -> bool:
        return any(id(rt) in self.pending or id(rt) in self.inflight for rt in runtimes)

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._run(), name="shelly-write-behind")

    # -- flushing ------------------------------------------------------------
    async def _run(self) -> None:
        while self.pending or self._next_flush:
            now = self.loop.time()
            if self.urgent or self._next_flush:
                deadline = now
            elif self.holding:
                deadline = self.retry_at
            elif self.pending_rows >= self.max_rows:
                deadline = now
            else:
                deadline = (self.first_at or now) + self.interval_s
            if deadline > now:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=deadline - now)
                except TimeoutError:
                    pass
                continue
            await self._flush_once()

    def _take_batch(self) -> list[ChannelPlan]:
        batch, seen, rest, rows = [], set(), {}, 0
        for key, plan in self.pending.items():
            channel_id = plan.runtime.channel_id
            # The same channel through a second runtime, or the flush is full: next flush.
            # (A backlog drains in flushes of up to the high-water mark: bounded transactions.)
            if channel_id in seen or (batch and rows >= self.high_water):
                rest[key] = plan
                continue
            seen.add(channel_id)
            plan.take_snapshot()
            plan.runtime.dirty = False
            batch.append(plan)
            rows += len(plan.rows)
        self.pending = rest
        self.pending_rows -= rows
        self.inflight = {id(plan.runtime): plan for plan in batch}
        self.first_at = self.loop.time() if rest else None
        if not rest:
            self.urgent = False
        return batch

    async def _flush_once(self) -> None:
        waiters, self._next_flush = self._next_flush, []
        batch = self._take_batch()
        try:
            if batch:
                await run_in_db_thread(self._write)(batch)
        except Exception as exc:
            self._failed(batch, exc)
            for waiter in waiters:
                waiter.release()
            return
        finally:
            self.inflight = {}
            self._room.set()
        self._written(batch)
        for waiter in waiters:
            waiter.plan_done()

    def _write(self, batch: list[ChannelPlan]):
        """In a database thread: one transaction for the batch."""
        try:
            return self._flusher.persist({id(plan.runtime): plan for plan in batch}, detached=True)
        except outage.DATABASE_ERRORS as exc:
            outage.database_failed(exc)  # closes this thread's broken connection
            raise

    def _written(self, batch: list[ChannelPlan]) -> None:
        self.failures = 0
        self.flushes += 1
        released = 0
        for plan in batch:
            newer = self.pending.get(id(plan.runtime))
            replayed = plan.replayed
            adopt_written(plan)
            if replayed and newer is not None:
                self._reapply(newer)
            released += plan.held_count
            for waiter in plan.waiters:
                waiter.plan_done()
        if batch:
            outage.state.release(released)
            outage.state.database_back()

    def _failed(self, batch: list[ChannelPlan], exc: Exception) -> None:
        self.failures += 1
        self.urgent = False
        metrics.write_flush_failures.inc()
        database = isinstance(exc, outage.DATABASE_ERRORS)
        if database:
            log.warning(
                "write-behind flush failed, held for retry: %s",
                exc,
                extra={"event": "write_flush_failed", "plans": len(batch), "failures": self.failures},
            )
        else:
            log.error(
                "write-behind flush failed: %s",
                exc,
                exc_info=exc,
                extra={"event": "write_flush_failed", "plans": len(batch), "failures": self.failures},
            )
            for plan in batch:
                plan.attempts += 1
            given_up = [plan for plan in batch if plan.attempts >= MAX_ATTEMPTS]
            if given_up:
                self._give_up(given_up, exc)
                batch = [plan for plan in batch if plan not in given_up]
        self._requeue(batch)
        # Backoff up to the timer interval (one try per interval in a long outage, like `retry_due`).
        backoff = max(self.interval_s, 0.01) * 2 ** min(self.failures, 10)
        self.retry_at = self.loop.time() + min(settings.COLLECTOR_TIMER_SECONDS, backoff)
        # Whoever waits is told "held": connections go on, the stage retries.
        for plan in self.pending.values():
            for waiter in plan.waiters:
                waiter.release()
            plan.waiters.clear()
        if not self.pending:
            self.failures = 0

    def _give_up(self, plans: list[ChannelPlan], exc: Exception) -> None:
        rows = sum(len(plan.rows) for plan in plans)
        metrics.rows_dropped.inc(rows)
        log.error(
            "write-behind gave up a write after %d attempts: %d rows dropped",
            MAX_ATTEMPTS,
            rows,
            extra={"event": "write_given_up", "rows": rows, "plans": len(plans)},
        )
        for plan in plans:
            outage.state.release(plan.held_count)
            plan.runtime.dirty = True
            plan.runtime.write_error = exc
            for waiter in plan.waiters:
                waiter.fail(exc)
            # What was submitted for the runtime since cannot be written on top of it either.
            newer = self.pending.pop(id(plan.runtime), None)
            if newer is not None:
                self.pending_rows -= len(newer.rows)
                outage.state.release(newer.held_count)
                for waiter in newer.waiters:
                    waiter.fail(exc)

    def _requeue(self, batch: list[ChannelPlan]) -> None:
        """A failed flush goes back in front of what arrived meanwhile (order per channel kept), held."""
        merged = {}
        for plan in batch:
            key = id(plan.runtime)
            newer = self.pending.pop(key, None)
            plan.runtime.dirty = True
            if plan.replayed:
                # Replayed on the stored state before the failure: the runtime
                # continues from that state (its newer samples re-applied).
                runtime = plan.runtime
                runtime.state = copy_state(plan.state)
                runtime.loaded_seq, runtime.loaded_last_sample_at = plan.base_seq, plan.base_last_sample_at
                plan.replayed = False
                if newer is not None:
                    self._reapply(newer)
            _admit(plan)
            if newer is not None:
                _admit(newer)
                _merge(plan, newer)
            merged[key] = plan
        for key, plan in self.pending.items():
            _admit(plan)
            merged[key] = plan
        self.pending = merged
        self.pending_rows = sum(len(plan.rows) for plan in merged.values())
        self.first_at = self.loop.time() if merged else None

    def _reapply(self, plan: ChannelPlan) -> None:
        """The runtime's state was replaced: decide the samples it submitted since again."""
        runtime = plan.runtime
        self.pending_rows -= len(plan.rows)
        plan.rows, plan.outcomes = [], []
        for sample in plan.samples:
            outcome = policies.apply_sample(runtime.rules, runtime.state, sample, key_base=runtime.key_base)
            if not outcome.duplicate and (outcome.rows or outcome.changed_run):
                plan.rows.extend(outcome.rows)
                plan.outcomes.append(outcome)
        self.pending_rows += len(plan.rows)


def _admit(plan: ChannelPlan) -> None:
    """Count a plan into the outage buffer (collector.outage) once; a full buffer keeps only its starts and stops."""
    if plan.held:
        return
    plan.held = True
    if plan.samples and not outage.state.try_hold(len(plan.samples)):
        plan.rows = [row for row in plan.rows if row.reason in outage.TRANSITION_REASONS]
        plan.samples = []
    plan.held_count = len(plan.samples)


def _merge(held: ChannelPlan, newer: ChannelPlan) -> None:
    held.samples.extend(newer.samples)
    held.rows.extend(newer.rows)
    held.outcomes.extend(newer.outcomes)
    held.waiters.extend(newer.waiters)
    held.held_count += newer.held_count


_stages: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, WriteBehind]" = weakref.WeakKeyDictionary()


def stage() -> WriteBehind:
    """The write-behind stage of the running event loop (one per process in production)."""
    loop = asyncio.get_running_loop()
    current = _stages.get(loop)
    if current is None:
        current = _stages[loop] = WriteBehind(loop)
    return current


def holds(runtimes) -> bool:
    """Whether the stage of the running event loop still has plans of these runtimes."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    current = _stages.get(loop)
    return current is not None and current.holds(runtimes)


async def drain_all() -> None:
    """Shutdown: write what the stage of this loop holds."""
    current = _stages.get(asyncio.get_running_loop())
    if current is not None:
        await current.drain()
