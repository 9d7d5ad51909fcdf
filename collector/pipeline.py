"""The one pipeline every ingestion path feeds (§5).

Samples → per-channel RunState (policies.py) → PowerLog rows + ChannelState.

State lives in the database; a `Pipeline` caches it in memory for the
channels it serves (a WebSocket connection caches its device's channels) and
writes it back when rows are written, when a run starts or stops, and at least
every COLLECTOR_STATE_FLUSH_SECONDS. Every write of a channel's state is
conditional on the version it loaded (`run_seq`, `last_sample_at`): if another
process changed the channel meanwhile, the state is reloaded and the samples
are applied again, so two processes never both write a start or a stop.
"""

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from collector import metrics, outage, policies
from collector.db import run_in_db_thread
from collector.limits import new_device_budget
from collector.models import Channel, ChannelState, Device, PowerLog, Transport, WritePolicy
from collector.policies import ChannelRules, Outcome, RunState
from collector.samples import LiveSample, Sample

log = logging.getLogger(__name__)

MAX_CONFLICT_RETRIES = 5


def default_policy_for(channel_key: str) -> str:
    # Meters are polled every 10 s and feed interval accounting: keep every
    # sample (retention trims them). Switches drive pumps: record events.
    if channel_key.startswith(("em:", "em1:")):
        return WritePolicy.EVERY
    return WritePolicy.EVENTS


@dataclass
class ChannelRuntime:
    channel_id: int
    device_pk: int
    device_id: str
    key: str
    rules: ChannelRules
    state: RunState
    enabled: bool = True
    loaded_seq: int = 0
    loaded_last_sample_at: datetime | None = None
    dirty: bool = False
    last_flush: float = field(default_factory=time.monotonic)
    # A write the write-behind stage gave up on (not an outage): the cached state is ahead of the database.
    write_error: BaseException | None = None

    @property
    def key_base(self):
        return f"{self.device_id}|{self.key}"

    def mark_persisted(self):
        self.loaded_seq = self.state.run_seq
        self.loaded_last_sample_at = self.state.last_sample_at
        self.dirty = False
        self.last_flush = time.monotonic()


@dataclass
class ChannelPlan:
    runtime: ChannelRuntime
    samples: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    outcomes: list = field(default_factory=list)
    # Filled when the plan is written: the state to store and the version it
    # replaces. The write-behind stage takes them in the event loop while the
    # runtime's live state moves on; a conflict replay puts its own here.
    state: RunState | None = None
    base_seq: int = 0
    base_last_sample_at: datetime | None = None
    replayed: bool = False
    waiters: list = field(default_factory=list)
    # Database outage (collector.outage): the plan is held by the write-behind
    # stage after a failed flush; `held_count` of its samples fill the buffer.
    held: bool = False
    held_count: int = 0
    attempts: int = 0  # failed flushes of this plan that were not the database being away

    def take_snapshot(self) -> None:
        runtime = self.runtime
        self.state = copy_state(runtime.state)
        self.base_seq, self.base_last_sample_at = runtime.loaded_seq, runtime.loaded_last_sample_at

    def replay_detached(self) -> None:
        """Another process moved this channel: reload its stored state and apply our samples to a copy.

        Leaves the runtime alone (the event loop may be applying newer
        samples to it); whoever owns the runtime adopts `state` after commit.
        """
        runtime = self.runtime
        log.info("state conflict, replaying", extra={"event": "state_conflict", "device_id": runtime.device_id})
        stored = RunState.from_model(ChannelState.objects.get(pk=runtime.channel_id))
        self.base_seq, self.base_last_sample_at = stored.run_seq, stored.last_sample_at
        self.rows, self.outcomes = [], []
        for sample in self.samples:
            outcome = policies.apply_sample(runtime.rules, stored, sample, key_base=runtime.key_base)
            if not outcome.duplicate and (outcome.rows or outcome.changed_run):
                self.rows.extend(outcome.rows)
                self.outcomes.append(outcome)
        self.state = stored
        self.replayed = True


def copy_state(state: RunState) -> RunState:
    # The policies replace the dict fields, never mutate them: a shallow copy is a snapshot.
    return RunState(**state.as_fields())


@dataclass(slots=True)
class _Transition:
    """What cycles.record_run_transitions reads: the channel and its state as written."""

    channel_id: int
    state: RunState


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    refused: int = 0
    rows_written: int = 0
    runs_started: int = 0
    runs_ended: int = 0

    def add(self, other):
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class _StateConflict(Exception):
    def __init__(self, plans):
        self.plans = plans


class Pipeline:
    """Per-process (or per-connection) front of the pipeline with a state cache."""

    def __init__(self, *, transport=Transport.WEBSOCKET, auto_register=None, flush_seconds=None, token_key=None):
        self.transport = transport
        # Whose budget of new devices a registration spends (an ingest token's pk).
        self.token_key = token_key
        self.auto_register = settings.COLLECTOR_AUTO_REGISTER if auto_register is None else auto_register
        self.flush_seconds = settings.COLLECTOR_STATE_FLUSH_SECONDS if flush_seconds is None else flush_seconds
        self.runtimes: dict[tuple[str, str], ChannelRuntime | None] = {}
        self.refused_devices: set[str] = set()
        # The event loop of the async caller, so pushes after commit are handed
        # to it instead of blocking a database thread until it gets round to them.
        self.event_loop: asyncio.AbstractEventLoop | None = None
        # Database outage (collector.outage): samples of channels that could not be loaded yet.
        # (What could not be written is held by the write-behind stage.)
        self.unloaded: list = []
        # Resolves when the latest submission to the write-behind stage is committed (or held).
        self._last_commit: asyncio.Future | None = None
        # A write the stage gave up on (not a database outage): raised by the next `aingest`.
        self.write_error: BaseException | None = None

    # -- loading -----------------------------------------------------------
    def load(self, samples) -> None:
        """Load (and auto-register) the channels these samples need. Sync, touches the DB."""
        missing = {(s.device_id, s.channel_key) for s in samples} - self.runtimes.keys()
        if not missing:
            return
        device_ids = {device_id for device_id, _ in missing}
        devices = {d.device_id: d for d in Device.objects.filter(device_id__in=device_ids)}
        for device_id in device_ids - devices.keys():
            if not self.auto_register:
                self.refused_devices.add(device_id)
                continue
            if not new_device_budget.take(self.token_key, settings.COLLECTOR_MAX_NEW_DEVICES_PER_MINUTE):
                self.refused_devices.add(device_id)
                metrics.reject("registration_limit", device_id=device_id, detail="new devices per minute exceeded")
                continue
            devices[device_id], _ = Device.objects.get_or_create(
                device_id=device_id, defaults={"transport": self.transport, "auto_registered": True}
            )
        channels = {
            (c.device.device_id, c.key): c
            for c in Channel.objects.select_related("device", "state").filter(
                device__device_id__in=devices.keys(), key__in={key for _, key in missing}
            )
        }
        channel_counts: dict[str, int] = {}
        for device_id, key in sorted(missing):
            device = devices.get(device_id)
            if device is None:
                self.runtimes[(device_id, key)] = None
                continue
            channel = channels.get((device_id, key))
            if channel is None:
                if device_id not in channel_counts:
                    channel_counts[device_id] = Channel.objects.filter(device=device).count()
                if channel_counts[device_id] >= settings.COLLECTOR_MAX_CHANNELS_PER_DEVICE:
                    # Refused, not stored; cached so the count is not asked again per frame.
                    metrics.reject("channel_limit", device_id=device_id, detail="channels per device exceeded")
                    self.runtimes[(device_id, key)] = None
                    continue
                channel = self._register_channel(device, key)
                channel_counts[device_id] += 1
            self.runtimes[(device_id, key)] = self._runtime(channel)

    @staticmethod
    def _register_channel(device, key):
        channel, _ = Channel.objects.get_or_create(device=device, key=key, defaults={"policy": default_policy_for(key)})
        channel.device = device
        return channel

    @staticmethod
    def _runtime(channel) -> ChannelRuntime:
        try:
            model_state = channel.state
        except ChannelState.DoesNotExist:
            model_state, _ = ChannelState.objects.get_or_create(channel=channel)
        state = RunState.from_model(model_state)
        runtime = ChannelRuntime(
            channel_id=channel.pk,
            device_pk=channel.device.pk,
            device_id=channel.device.device_id,
            key=channel.key,
            rules=ChannelRules.from_channel(channel),
            state=state,
            enabled=channel.enabled and channel.device.enabled,
        )
        runtime.mark_persisted()
        return runtime

    def reload(self, runtime: ChannelRuntime) -> None:
        runtime.state = RunState.from_model(ChannelState.objects.get(pk=runtime.channel_id))
        runtime.mark_persisted()

    def forget_device(self, device_id: str) -> None:
        for key in [k for k in self.runtimes if k[0] == device_id]:
            del self.runtimes[key]

    def take_device(self, other: "Pipeline", device_id: str) -> None:
        """Continue a device from another pipeline of this process (a reconnect): its cached
        state, and what a database outage held for it, move here instead of being reloaded."""
        for key in [k for k in other.runtimes if k[0] == device_id]:
            runtime = other.runtimes.pop(key)
            self.runtimes.setdefault(key, runtime)
        # What the write-behind stage holds for these runtimes stays there, keyed by runtime.
        moved = [s for s in other.unloaded if s.device_id == device_id]
        if moved:
            other.unloaded = [s for s in other.unloaded if s.device_id != device_id]
            self.unloaded = moved + self.unloaded

    def cached_runtimes(self):
        return [rt for rt in self.runtimes.values() if rt is not None]

    # -- applying (pure, in memory) ------------------------------------------
    def apply(self, samples, result: IngestResult) -> dict[int, ChannelPlan]:
        """Run the samples through their channels' policies (in memory); live readers see every accepted one."""
        plans: dict[int, ChannelPlan] = {}
        live: list[LiveSample] = []
        for sample in samples:
            runtime = self.runtimes.get((sample.device_id, sample.channel_key))
            if runtime is None or not runtime.enabled:
                result.refused += 1
                continue
            plan = plans.get(runtime.channel_id)
            if plan is None:
                plan = plans[runtime.channel_id] = ChannelPlan(runtime)
            plan.samples.append(sample)
            if self._apply_one(plan, sample, result):
                running = runtime.state.running
                live.append(LiveSample(runtime.channel_id, runtime.device_pk, sample, running, self.transport))
        if live:
            _observe_live(live, loop=self.event_loop)
        return plans

    @staticmethod
    def _apply_one(plan: ChannelPlan, sample: Sample, result: IngestResult) -> bool:
        """Apply one sample to its channel's state; False when it is a duplicate."""
        runtime = plan.runtime
        outcome = policies.apply_sample(runtime.rules, runtime.state, sample, key_base=runtime.key_base)
        if outcome.duplicate:
            result.duplicates += 1
            return False
        result.accepted += 1
        runtime.dirty = True
        if outcome.rows or outcome.changed_run:
            plan.rows.extend(outcome.rows)
            plan.outcomes.append(outcome)
        return True

    def close_expired(self, now: datetime) -> dict[int, ChannelPlan]:
        """Timer: close runs of cached channels that saw no active sample for stop_timeout."""
        plans = {}
        for runtime in self.cached_runtimes():
            if policies.run_expired(runtime.rules, runtime.state, now):
                outcome = policies.close_run(runtime.rules, runtime.state, key_base=runtime.key_base)
                runtime.dirty = True
                plans[runtime.channel_id] = ChannelPlan(runtime, rows=outcome.rows, outcomes=[outcome])
        return plans

    def needs_persist(self, plans) -> bool:
        if any(plan.rows or plan.outcomes for plan in plans.values()):
            return True
        deadline = time.monotonic() - self.flush_seconds
        return any(rt.dirty and rt.last_flush <= deadline for rt in self.cached_runtimes())

    # -- persisting (sync, DB) -----------------------------------------------
    def due_plans(self, plans: dict[int, ChannelPlan], *, flush_all=False) -> dict[int, ChannelPlan]:
        """These plans plus one for every dirty cached channel whose state flush is due."""
        due = time.monotonic() - self.flush_seconds
        for runtime in self.cached_runtimes():
            if runtime.dirty and runtime.channel_id not in plans and (flush_all or runtime.last_flush <= due):
                plans[runtime.channel_id] = ChannelPlan(runtime)
        return plans

    def persist(self, plans: dict, *, flush_all=False, detached=False) -> IngestResult:
        """Write rows and state of these plans now, as one transaction. Sync, in a database thread.

        By default (the sync paths) every dirty cached channel whose flush is
        due goes too, and the runtimes adopt what was written. `detached`
        (the write-behind stage): the plans carry their state snapshot and the
        runtimes, owned by the event loop, are left alone.
        """
        if detached:
            return write_plans(list(plans.values()), replay=True, loop=self.event_loop)
        return self._persist_once(self.due_plans(plans, flush_all=flush_all), IngestResult(), replay=True)

    def _persist_once(self, plans, result: IngestResult, *, replay=False) -> IngestResult:
        """Write these plans from the runtimes' current state; raises _StateConflict unless `replay`."""
        for plan in plans.values():
            plan.take_snapshot()
            plan.runtime.dirty = False
        try:
            written = write_plans(list(plans.values()), replay=replay, loop=self.event_loop)
        except BaseException:
            for plan in plans.values():
                plan.runtime.dirty = True
            raise
        for plan in plans.values():
            adopt_written(plan)
        result.add(written)
        return result

    @staticmethod
    def _power_logs(runtime, rows, now):
        return [
            (
                row.ts,
                runtime.device_pk,
                runtime.channel_id,
                row.apower_w,
                row.voltage_v,
                row.current_a,
                row.energy_total_wh,
                row.reason,
                row.idempotency_key,
                now,
            )
            for row in rows
        ]

    # -- entry points --------------------------------------------------------
    def ingest(self, samples) -> IngestResult:
        """Sync entry point: load, apply, persist everything now."""
        samples = sorted(samples, key=lambda s: (s.device_id, s.channel_key, s.ts))
        self.load(samples)
        result = IngestResult()
        plans = self.apply(samples, result)
        written = self.persist(plans, flush_all=True)
        result.add(written)
        return result

    async def _aload(self, samples) -> list:
        """Load the channels of these samples; in an outage hold those that cannot be loaded. Returns the rest."""
        if self.unloaded:
            outage.state.release(len(self.unloaded))
            samples, self.unloaded = [*self.unloaded, *samples], []
        if all((s.device_id, s.channel_key) in self.runtimes for s in samples):
            return samples
        try:
            await run_in_db_thread(self.load)(samples)
            return samples
        except outage.DATABASE_ERRORS as exc:
            # Raised through Django's cursor: the connection is closed after the call.
            outage.state.database_failed(exc)
        missing = [s for s in samples if (s.device_id, s.channel_key) not in self.runtimes]
        self.unloaded = outage.hold_unloaded([], missing)
        return [s for s in samples if (s.device_id, s.channel_key) in self.runtimes]

    async def aingest(self, samples, *, wait=True) -> IngestResult:
        """Async entry point: decisions in the event loop, writes through the process's write-behind stage.

        With `wait` it returns once what these samples produced is committed
        (a group commit with every other connection of the process) or, the
        database being unreachable, held by the stage; without, it returns at
        once (device sockets) and `committed()` waits for it.
        """
        self.event_loop = asyncio.get_running_loop()
        self.raise_write_error()
        samples = await self._aload(samples)
        result = IngestResult()
        plans = self.apply(samples, result)
        if self.needs_persist(plans):
            # A caller that waits (the poller, a test) gets its flush at once
            # (during a known outage at most once per timer interval); the
            # device sockets do not wait and let the stage gather.
            urgent = wait and (not outage.state.database_down or outage.state.retry_due())
            await self._submit(self.due_plans(plans), result, wait=wait, urgent=urgent)
        return result

    async def atick(self, now: datetime | None = None, *, flush_all=False, wait=True) -> IngestResult:
        """Timer: close expired runs and flush state that is due (everything with `flush_all`).

        With `wait`, returns once everything this pipeline handed to the stage
        is committed (or held in an outage, after a retry of the database).
        """
        self.event_loop = asyncio.get_running_loop()
        result = IngestResult()
        if self.unloaded:
            result.add(await self.aingest([], wait=wait))
        plans = self.close_expired(now or timezone.now())
        if flush_all or self.needs_persist(plans) or (wait and self.has_unwritten()):
            await self._submit(self.due_plans(plans, flush_all=flush_all), result, wait=wait, urgent=wait)
        return result

    async def _submit(self, plans, result: IngestResult, *, wait: bool, urgent=False) -> None:
        from collector.writebehind import stage

        current = stage()
        if plans or urgent:
            self._last_commit = current.submit(list(plans.values()), urgent=urgent)
            self._last_commit.add_done_callback(self._note_write)
        if not wait:
            # Backpressure, not a commit wait: past the high-water mark (the
            # database slower than the devices) the socket reads its next
            # frame once the stage has written some of what it holds.
            await current.room()
            return
        if await self.committed():
            for plan in plans.values():
                result.rows_written += len(plan.rows)
                for outcome in plan.outcomes:
                    result.runs_started += outcome.started_at is not None
                    result.runs_ended += outcome.ended is not None

    def _note_write(self, future: asyncio.Future) -> None:
        if not future.cancelled() and future.exception() is not None:
            self.write_error = future.exception()

    def raise_write_error(self) -> None:
        """A write of this pipeline the stage gave up on: the caller drops its cache (the database is right)."""
        error, self.write_error = self.write_error, None
        for runtime in self.cached_runtimes():
            if runtime.write_error is not None:
                error, runtime.write_error = runtime.write_error, None
        if error is not None:
            raise error

    async def committed(self) -> bool:
        """Wait until what this pipeline handed to the write-behind stage is committed (False: held in an outage)."""
        future = self._last_commit
        if future is None:
            return True
        self.write_error = None
        return await asyncio.shield(future)

    def has_unwritten(self) -> bool:
        """Plans of this pipeline's channels still in the write-behind stage (waiting, or held in an outage)."""
        from collector.writebehind import holds

        return holds(self.cached_runtimes())


def ingest_samples(samples, *, transport=Transport.BATCH, auto_register=None, token_key=None) -> IngestResult:
    """Feed samples from a sync path (batch API, RPC poller) with no long-lived cache.

    States are loaded fresh on each call, so several processes can take
    batches for the same channel.
    """
    return Pipeline(transport=transport, auto_register=auto_register, token_key=token_key).ingest(list(samples))


def close_expired_runs(now: datetime | None = None) -> IngestResult:
    """Sweeper: close runs in the database whose stop timeout passed.

    Only runs whose next sample has not come yet are here: a process that
    holds the channel writes its state back at least every flush interval,
    far below any stop timeout, and the write is conditional.
    """
    now = now or timezone.now()
    result = IngestResult()
    states = ChannelState.objects.filter(running=True).select_related("channel__device")
    for model_state in states:
        channel = model_state.channel
        runtime = Pipeline._runtime(channel)
        if not policies.run_expired(runtime.rules, runtime.state, now):
            continue
        outcome = policies.close_run(runtime.rules, runtime.state, key_base=runtime.key_base)
        plans = {runtime.channel_id: ChannelPlan(runtime, rows=outcome.rows, outcomes=[outcome])}
        pipeline = Pipeline(transport=channel.device.transport, auto_register=False)
        try:
            result.add(pipeline._persist_once(plans, IngestResult()))
        except _StateConflict:
            # Someone else closed or continued the run first: nothing to do.
            continue
    return result


def next_run_expiry() -> datetime | None:
    """The earliest moment a currently running run could be closed by the sweeper."""
    expiries = [
        policies.run_expiry(ChannelRules.from_channel(state.channel), RunState.from_model(state))
        for state in ChannelState.objects.filter(running=True).select_related("channel")
    ]
    return min((expiry for expiry in expiries if expiry is not None), default=None)


def write_plans(plans: list[ChannelPlan], *, replay: bool, loop=None) -> IngestResult:
    """Write plans (state taken) as one transaction; sync, in a database thread.

    One conditional UPDATE for all their channel states (keyed by the version
    each plan replaces), one INSERT for all rows, cycle bookkeeping for starts
    and stops. A plan whose channel moved under us rolls everything back; with
    `replay` its samples are re-applied to the stored state and the whole
    write is tried again, else `_StateConflict` is raised.
    """
    for _ in range(MAX_CONFLICT_RETRIES):
        try:
            return _write_once(plans, loop=loop)
        except _StateConflict as conflict:
            if not replay:
                raise
            for plan in conflict.plans:
                plan.replay_detached()
    raise RuntimeError("channel state kept changing under us; giving up this write")


def _write_once(plans: list[ChannelPlan], *, loop=None) -> IngestResult:
    now = timezone.now()
    result = IngestResult()
    rows, transitions = [], []
    with transaction.atomic():
        updated = update_states(plans, now)
        conflicts = [plan for plan in plans if plan.runtime.channel_id not in updated]
        if conflicts:
            transaction.set_rollback(True)
            raise _StateConflict(conflicts)
        for plan in plans:
            rows.extend(Pipeline._power_logs(plan.runtime, plan.rows, now))
            state = _Transition(plan.runtime.channel_id, plan.state)
            transitions.extend((state, outcome) for outcome in plan.outcomes if outcome.changed_run)
        if rows:
            insert_power_logs(rows)
        if transitions:
            from collector import cycles

            cycles.record_run_transitions(transitions)
        _after_commit(plans, rows, transitions, loop=loop)
    result.rows_written += len(rows)
    for _, outcome in transitions:
        result.runs_started += outcome.started_at is not None
        result.runs_ended += outcome.ended is not None
    return result


def adopt_written(plan: ChannelPlan) -> None:
    """After commit, in the runtime owner's thread: the written state is the runtime's new base version."""
    runtime = plan.runtime
    runtime.loaded_seq, runtime.loaded_last_sample_at = plan.state.run_seq, plan.state.last_sample_at
    runtime.last_flush = time.monotonic()
    if plan.replayed:
        runtime.state = copy_state(plan.state)


_STATE_TYPES = {
    "running": "boolean",
    "run_seq": "bigint",
    "run_started_at": "timestamptz",
    "last_active_at": "timestamptz",
    "last_active_values": "jsonb",
    "first_inactive_at": "timestamptz",
    "first_inactive_values": "jsonb",
    "last_sample_at": "timestamptz",
    "last_values": "jsonb",
    "last_row_at": "timestamptz",
    "last_row_power_w": "float8",
    "last_run_ended_at": "timestamptz",
}


def update_states(plans: list[ChannelPlan], now) -> set[int]:
    """Store each plan's state where the channel is still at the version the plan replaces.

    Returns the channel ids written. On PostgreSQL one `UPDATE … FROM
    unnest(arrays)` for the whole flush; SQLite (one writer, embedded) one
    conditional UPDATE per channel in the same transaction.
    """
    if not plans:
        return set()
    if not settings.DATABASE_IS_POSTGRES:
        updated = set()
        for plan in plans:
            written = ChannelState.objects.filter(
                pk=plan.runtime.channel_id, run_seq=plan.base_seq, last_sample_at=plan.base_last_sample_at
            ).update(**plan.state.as_fields(), updated_at=now)
            if written:
                updated.add(plan.runtime.channel_id)
        return updated
    from psycopg.types.json import Jsonb

    columns = [("channel_id", "bigint"), ("base_seq", "bigint"), ("base_last", "timestamptz")]
    columns += [(name, _STATE_TYPES[name]) for name in RunState.FIELDS]
    values = [
        [plan.runtime.channel_id for plan in plans],
        [plan.base_seq for plan in plans],
        [plan.base_last_sample_at for plan in plans],
    ]
    for name in RunState.FIELDS:
        kind = _STATE_TYPES[name]
        column = [getattr(plan.state, name) for plan in plans]
        if kind == "jsonb":
            column = [Jsonb(v) for v in column]
        elif kind == "float8":
            column = [None if v is None else float(v) for v in column]
        values.append(column)
    arrays = ", ".join(f"%s::{kind}[]" for _, kind in columns)
    names = ", ".join(name for name, _ in columns)
    sets = ", ".join(f'"{name}" = v."{name}"' for name in RunState.FIELDS)
    table = ChannelState._meta.db_table
    sql = (
        f"UPDATE {table} AS cs SET {sets}, updated_at = %s FROM unnest({arrays}) AS v({names}) "
        "WHERE cs.channel_id = v.channel_id AND cs.run_seq = v.base_seq "
        "AND cs.last_sample_at IS NOT DISTINCT FROM v.base_last RETURNING cs.channel_id"
    )
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, [now, *values])
        return {row[0] for row in cursor.fetchall()}


# PowerLog columns in the order of the row tuples, with their PostgreSQL array types.
POWER_LOG_COLUMNS = (
    ("timestamp", "timestamptz"),
    ("device_id", "bigint"),
    ("channel_id", "bigint"),
    ("apower_w", "float8"),
    ("voltage_v", "float8"),
    ("current_a", "float8"),
    ("energy_total_wh", "float8"),
    ("reason", "text"),
    ("idempotency_key", "text"),
    ("created_at", "timestamptz"),
)
COLUMN_NAMES = tuple(name for name, _ in POWER_LOG_COLUMNS)

# From this many rows on, COPY into a staging table beats binding arrays.
COPY_MIN_ROWS = 200
_COPY_TABLE = "powerlog_copy_in"


def insert_power_logs(rows) -> None:
    """Insert row tuples (COLUMN_NAMES order); a row whose idempotency key exists is skipped.

    On PostgreSQL a large batch goes through COPY (binary, psycopg 3) into a
    temporary staging table of this connection, then one INSERT … SELECT … ON
    CONFLICT DO NOTHING (COPY itself cannot skip existing idempotency keys);
    a small one through INSERT … SELECT unnest(arrays). Both run in the
    caller's transaction on Django's own connection.
    """
    if not settings.DATABASE_IS_POSTGRES:
        PowerLog.objects.bulk_create(
            [PowerLog(**dict(zip(COLUMN_NAMES, row, strict=True))) for row in rows], ignore_conflicts=True
        )
        return
    columns = ", ".join(f'"{name}"' for name in COLUMN_NAMES)
    connection.ensure_connection()
    if len(rows) >= COPY_MIN_ROWS:
        _copy_power_logs(rows, columns)
        return
    arrays = ", ".join(f"%s::{kind}[]" for _, kind in POWER_LOG_COLUMNS)
    # A server-side-binding cursor: the default client-side binding spells 10
    # arrays of 1000 values out as SQL text in Python, slower than the insert itself.
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(
            f"INSERT INTO {PowerLog._meta.db_table} ({columns}) SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING",
            [
                [None if v is None else float(v) for v in values] if kind == "float8" else list(values)
                for (_, kind), values in zip(POWER_LOG_COLUMNS, zip(*rows, strict=True), strict=True)
            ],
        )


def _copy_power_logs(rows, columns) -> None:
    float_at = [i for i, (_, kind) in enumerate(POWER_LOG_COLUMNS) if kind == "float8"]
    definition = ", ".join(f'"{name}" {kind}' for name, kind in POWER_LOG_COLUMNS)
    with psycopg.Cursor(connection.connection) as cursor:
        # Emptied at every commit; created once per database connection.
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_COPY_TABLE} ({definition}) ON COMMIT DELETE ROWS")
        with cursor.copy(f"COPY {_COPY_TABLE} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([kind for _, kind in POWER_LOG_COLUMNS])
            for row in rows:
                row = list(row)
                for i in float_at:
                    if row[i] is not None:
                        row[i] = float(row[i])
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO {PowerLog._meta.db_table} ({columns}) SELECT {columns} FROM {_COPY_TABLE} "
            "ON CONFLICT DO NOTHING"
        )
        # The sync paths may run outside an atomic block in tests: never keep staged rows.
        if connection.get_autocommit():
            cursor.execute(f"TRUNCATE {_COPY_TABLE}")


def _count_rows(rows) -> None:
    # One increment per reason, not per row: a flush carries thousands.
    reason_index = COLUMN_NAMES.index("reason")
    for reason, count in Counter(row[reason_index] for row in rows).items():
        metrics.rows_written.labels(reason).inc(count)


def _observe_live(live: list[LiveSample], *, loop=None) -> None:
    """Every accepted sample, before any write: alert rules and the dashboard's live values.

    Both keep what they need in memory and touch the database or the channel
    layer only on a change, so this costs ingestion next to nothing.
    """
    from alerts import engine
    from dashboard import realtime

    engine.observe_samples(live)
    realtime.samples_seen(live, loop=loop)


def _after_commit(plans, rows, transitions, *, loop=None) -> None:
    """Once the rows are committed: count them and tell the dashboards."""
    from dashboard import realtime

    if not (rows or transitions):
        return
    # One message per flush for all its channels, never one per row.
    channel_ids = {plan.runtime.channel_id for plan in plans if plan.rows or plan.outcomes}

    def committed():
        _count_rows(rows)
        realtime.channels_changed(channel_ids, loop=loop)

    transaction.on_commit(committed)


__all__ = [
    "IngestResult",
    "Outcome",
    "Pipeline",
    "close_expired_runs",
    "ingest_samples",
]
