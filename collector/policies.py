"""Write policies and run tracking (§5), as pure functions over a RunState.

Nothing here touches the database: `collector.pipeline` loads the state,
calls `apply_sample` / `close_run`, and persists what they return. Time is
always the samples' time, so a replayed or batched history gives exactly the
rows a live stream would have given.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from collector.samples import Sample

EVERY = "every"
THROTTLE = "throttle"
ACTIVITY = "activity"
EVENTS = "events"


@dataclass(slots=True, frozen=True)
class ChannelRules:
    policy: str = EVENTS
    threshold_w: float = 10.0
    stop_timeout_s: float = 120.0
    interval_s: float = 60.0
    delta_w: float = 10.0
    sample_minutes: int = 5
    fill_max_minutes: int = 10

    @classmethod
    def from_channel(cls, channel):
        return cls(
            policy=channel.policy,
            threshold_w=channel.effective_threshold_w,
            stop_timeout_s=channel.stop_timeout_s,
            interval_s=channel.interval_s,
            delta_w=channel.delta_w,
            sample_minutes=max(1, channel.sample_minutes),
            fill_max_minutes=channel.fill_max_minutes,
        )


@dataclass(slots=True)
class RunState:
    """In-memory mirror of `ChannelState` (same field names)."""

    running: bool = False
    run_seq: int = 0
    run_started_at: datetime | None = None
    last_active_at: datetime | None = None
    last_active_values: dict = field(default_factory=dict)
    first_inactive_at: datetime | None = None
    first_inactive_values: dict = field(default_factory=dict)
    last_sample_at: datetime | None = None
    last_values: dict = field(default_factory=dict)
    last_row_at: datetime | None = None
    last_row_power_w: float | None = None
    last_run_ended_at: datetime | None = None

    FIELDS = (
        "running",
        "run_seq",
        "run_started_at",
        "last_active_at",
        "last_active_values",
        "first_inactive_at",
        "first_inactive_values",
        "last_sample_at",
        "last_values",
        "last_row_at",
        "last_row_power_w",
        "last_run_ended_at",
    )

    @classmethod
    def from_model(cls, model):
        return cls(**{name: getattr(model, name) for name in cls.FIELDS})

    def as_fields(self) -> dict:
        return {name: getattr(self, name) for name in self.FIELDS}


@dataclass(slots=True)
class Row:
    ts: datetime
    apower_w: float
    voltage_v: float | None
    current_a: float | None
    energy_total_wh: float | None
    reason: str
    idempotency_key: str | None = None


@dataclass(slots=True)
class RunEnded:
    started_at: datetime
    ended_at: datetime


@dataclass(slots=True)
class Outcome:
    rows: list = field(default_factory=list)
    started_at: datetime | None = None
    ended: RunEnded | None = None
    duplicate: bool = False

    @property
    def changed_run(self):
        return self.started_at is not None or self.ended is not None


def _minute(ts: datetime) -> int:
    return int(ts.timestamp() // 60)


def _row(ts, values, reason, key=None, power=None) -> Row:
    return Row(
        ts=ts,
        apower_w=values.get("p") if power is None else power,
        voltage_v=values.get("v"),
        current_a=values.get("i"),
        energy_total_wh=values.get("e"),
        reason=reason,
        idempotency_key=key,
    )


def run_end(state: RunState) -> datetime | None:
    """When the current run ended: first inactive sample after the last active one, else the last active."""
    return state.first_inactive_at or state.last_active_at


def run_expiry(rules: ChannelRules, state: RunState) -> datetime | None:
    """The moment the running run ends for want of an active sample (stop_timeout after the last one)."""
    if not state.running or state.last_active_at is None:
        return None
    return state.last_active_at + timedelta(seconds=rules.stop_timeout_s)


def run_expired(rules: ChannelRules, state: RunState, now: datetime) -> bool:
    expiry = run_expiry(rules, state)
    return expiry is not None and now > expiry


def close_run(rules: ChannelRules, state: RunState, *, key_base: str = "") -> Outcome:
    """End the running run; for `events` this yields the one 0 W stop row.

    The stop row's time is the run's end (not the time the timer fired) and it
    carries the voltage, current and energy known at that moment.
    """
    outcome = Outcome()
    if not state.running:
        return outcome
    ended_at = run_end(state)
    values = state.first_inactive_values if state.first_inactive_at else state.last_active_values
    if rules.policy == EVENTS:
        key = f"{key_base}|{ended_at.isoformat()}|stop" if key_base else None
        outcome.rows.append(_row(ended_at, values, "stop", key, power=0.0))
        state.last_row_at = ended_at
        state.last_row_power_w = 0.0
    outcome.ended = RunEnded(started_at=state.run_started_at, ended_at=ended_at)
    state.running = False
    state.run_seq += 1
    state.last_run_ended_at = ended_at
    state.first_inactive_at = None
    state.first_inactive_values = {}
    return outcome


def scoped_idempotency_key(sample, key_base: str | None) -> str | None:
    """A row's idempotency key: the client's, scoped to its device and channel, else `device|channel|ts`.

    Scoped so a client's key can never collide with (and suppress) another
    device's or channel's reading (§4.2).
    """
    if sample.idempotency_key:
        return f"{key_base}|{sample.idempotency_key}" if key_base else sample.idempotency_key
    return f"{key_base}|{sample.ts.isoformat()}" if key_base else None


def apply_sample(rules: ChannelRules, state: RunState, sample: Sample, *, key_base: str = "") -> Outcome:
    """Feed one sample; returns the rows to write and the run transitions.

    Rules (seed lessons):
    - a sample not after the last processed one is a duplicate and changes nothing;
    - a sample more than stop_timeout after the last active one first closes the old run;
    - inactive samples (≤ threshold, e.g. erratic 0 W) never write under
      `events` and never restart the stop timer.
    """
    if state.last_sample_at is not None and sample.ts <= state.last_sample_at:
        return Outcome(duplicate=True)

    outcome = Outcome()
    if run_expired(rules, state, sample.ts):
        outcome = close_run(rules, state, key_base=key_base)

    values = sample.values()
    key = scoped_idempotency_key(sample, key_base)
    active = sample.apower_w > rules.threshold_w
    was_running = state.running
    run_continues = was_running and state.first_inactive_at is None

    state.last_sample_at = sample.ts
    state.last_values = values
    if active:
        if not was_running:
            state.running = True
            state.run_seq += 1
            state.run_started_at = sample.ts
            outcome.started_at = sample.ts
        previous_active_values = state.last_active_values
        state.last_active_at = sample.ts
        state.last_active_values = values
        state.first_inactive_at = None
        state.first_inactive_values = {}
    else:
        previous_active_values = None
        if state.running and state.first_inactive_at is None:
            state.first_inactive_at = sample.ts
            state.first_inactive_values = values

    rows = _rows_for_policy(
        rules,
        state,
        sample,
        values=values,
        key=key,
        key_base=key_base,
        active=active,
        started=outcome.started_at is not None,
        run_continues=run_continues,
        previous_active_values=previous_active_values,
    )
    if rows:
        outcome.rows.extend(rows)
        state.last_row_at = rows[-1].ts
        state.last_row_power_w = rows[-1].apower_w
    return outcome


def _rows_for_policy(
    rules, state, sample, *, values, key, key_base, active, started, run_continues, previous_active_values
):
    policy = rules.policy
    if policy == EVERY:
        return [_row(sample.ts, values, "sample", key)]
    if not active:
        return []
    if policy == THROTTLE:
        if state.last_row_at is None or (sample.ts - state.last_row_at).total_seconds() >= rules.interval_s:
            return [_row(sample.ts, values, "sample", key)]
        return []
    if policy == ACTIVITY:
        return _activity_rows(rules, state, sample, values, key, key_base, run_continues, previous_active_values)
    return _events_rows(rules, state, sample, values, key, started)


def _activity_rows(rules, state, sample, values, key, key_base, run_continues, previous_active_values):
    minute = _minute(sample.ts)
    last_row_minute = _minute(state.last_row_at) if state.last_row_at else None
    if last_row_minute == minute:
        return []
    rows = []
    # Fill only minutes missed inside the same active period: the last row
    # belongs to this run and no inactive sample came since.
    if (
        run_continues
        and last_row_minute is not None
        and state.run_started_at is not None
        and state.last_row_at >= state.run_started_at
        and previous_active_values
    ):
        last_fill = min(minute - 1, last_row_minute + rules.fill_max_minutes)
        for fill_minute in range(last_row_minute + 1, last_fill + 1):
            fill_ts = datetime.fromtimestamp(fill_minute * 60, tz=UTC)
            fill_key = f"{key_base}|{fill_ts.isoformat()}|fill" if key_base else None
            rows.append(_row(fill_ts, previous_active_values, "fill", fill_key))
    rows.append(_row(sample.ts, values, "sample", key))
    return rows


def _events_rows(rules, state, sample, values, key, started):
    if started:
        return [_row(sample.ts, values, "start", key)]
    minute = _minute(sample.ts)
    if state.last_row_at is not None and _minute(state.last_row_at) == minute:
        return []
    if state.last_row_power_w is None or abs(sample.apower_w - state.last_row_power_w) >= rules.delta_w:
        return [_row(sample.ts, values, "delta", key)]
    if minute % rules.sample_minutes == 0:
        return [_row(sample.ts, values, "sample", key)]
    return []
