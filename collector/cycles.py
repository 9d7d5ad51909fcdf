"""Cycles (§6): one run of a channel, derived from its stored rows.

`detect_cycles` is the one detector. It is pure (rows in, cycles out) and is
used both live — `record_run_transitions`, called by the pipeline inside its
transaction at every run start and stop — and by `manage.py rebuild_cycles`,
both through `sync_cycles`, so a live cycle is exactly what a rebuild of the
same rows gives.

Cycles are keyed by (channel, started_at) and upserted, so a rebuild keeps the
ids (and impacts) of cycles that did not change.
"""

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from collector.models import Channel, ChannelState, Cycle, PowerLog

log = logging.getLogger(__name__)

# Below this a counter decrease is rounding noise, not a reset (seed lesson:
# Shelly counters are floats and occasionally step back by a fraction of a Wh).
COUNTER_NOISE_WH = 1.0
ROW_CHUNK = 2000


@dataclass(frozen=True, slots=True)
class CycleRules:
    threshold_w: float = 10.0
    gap_threshold_s: float = 240.0
    min_cycle_s: float = 120.0
    max_power_w: float = 25000.0

    @classmethod
    def from_channel(cls, channel: Channel) -> "CycleRules":
        return cls(
            threshold_w=channel.effective_threshold_w,
            gap_threshold_s=channel.effective_gap_threshold_s,
            min_cycle_s=channel.min_cycle_s,
            max_power_w=channel.max_power_w,
        )

    def is_active(self, power_w) -> bool:
        return power_w is not None and power_w > self.threshold_w


@dataclass(slots=True)
class DetectedCycle:
    started_at: datetime
    ended_at: datetime | None  # None: still running
    duration_s: float
    energy_wh: float | None
    energy_method: str
    avg_power_w: float | None
    peak_power_w: float | None
    is_noise: bool

    FIELDS = ("ended_at", "duration_s", "energy_wh", "energy_method", "avg_power_w", "peak_power_w", "is_noise")

    def as_fields(self) -> dict:
        return {name: getattr(self, name) for name in self.FIELDS}


# --- the detector (pure) ------------------------------------------------------


def detect_cycles(rows, *, rules: CycleRules, still_running: bool = False) -> list[DetectedCycle]:
    """Cycles in `rows`, a time-ordered sequence of (timestamp, apower_w, energy_total_wh, reason).

    Rules (§6):
    - a cycle starts at an active row (power > threshold) after idle;
    - it ends at the first inactive row (that row's time is the end: the
      `events` stop row), or at the last active row before a gap of at least
      the channel's gap threshold — except before a `stop` row: the pipeline
      writes it for the run in progress, so it closes that run whatever the
      gap (a steady pump may leave only its start and stop rows), and so
      does an imported 0 W row (the earlier collectors' stop row);
    - `still_running`: the channel is running after the last row, so a cycle
      the rows leave open is returned running (ended_at None);
    - a closed cycle shorter than min_cycle is kept and flagged noise.
    """
    cycles = []
    current: list = []
    for row in rows:
        ts, power, _, reason = row
        if current:
            gap_s = (ts - current[-1][0]).total_seconds()
            if gap_s >= rules.gap_threshold_s and not _closes_run(reason, power, rules):
                cycles.append(_summarise(current, ended_at=current[-1][0], rules=rules))
                current = []
            elif not rules.is_active(power):
                current.append(row)
                cycles.append(_summarise(current, ended_at=ts, rules=rules))
                current = []
                continue
            else:
                current.append(row)
                continue
        if rules.is_active(power):
            current = [row]
    if current:
        cycles.append(_summarise(current, ended_at=None if still_running else current[-1][0], rules=rules))
    return cycles


def _closes_run(reason, power, rules: CycleRules) -> bool:
    """A stop row closes the run in progress whatever the gap before it.

    The earlier collectors (`manage.py import_history`) wrote their stop row
    as a 0 W row after their stop timeout: an imported inactive row is theirs.
    """
    if reason == PowerLog.Reason.STOP:
        return True
    return reason == PowerLog.Reason.IMPORTED and not rules.is_active(power)


def _summarise(cycle_rows, *, ended_at, rules: CycleRules) -> DetectedCycle:
    started_at = cycle_rows[0][0]
    last_ts = ended_at or cycle_rows[-1][0]
    duration_s = (last_ts - started_at).total_seconds()
    energy_wh, method = counter_energy_wh(
        [(r[0], r[2]) for r in cycle_rows if r[2] is not None], max_power_w=rules.max_power_w
    )
    if energy_wh is None and duration_s > 0:
        energy_wh, method = integrated_energy_wh(cycle_rows), Cycle.EnergyMethod.INTEGRATION
    active_powers = [r[1] for r in cycle_rows if rules.is_active(r[1])]
    peak = max(active_powers) if active_powers else None
    if energy_wh is not None and duration_s > 0:
        avg = energy_wh * 3600.0 / duration_s
    else:
        avg = sum(active_powers) / len(active_powers) if active_powers else None
    return DetectedCycle(
        started_at=started_at,
        ended_at=ended_at,
        duration_s=duration_s,
        energy_wh=energy_wh,
        energy_method=method if energy_wh is not None else Cycle.EnergyMethod.NONE,
        avg_power_w=avg,
        peak_power_w=peak,
        is_noise=ended_at is not None and duration_s < rules.min_cycle_s,
    )


def counter_energy_wh(readings, *, max_power_w: float) -> tuple[float | None, str]:
    """Energy from cumulative counter readings [(ts, wh)], safe against counter faults.

    - a decrease below 1 Wh is rounding noise: ignored;
    - a 0 followed by the old value is a missing reading: ignored;
    - a real drop (reboot, firmware update, meter mode change) starts a new
      segment; the positive increments of all segments are summed;
    - an increment implying more than max_power_w is a spike: discarded. If
      the next reading continues from the spike, the counter jumped for good
      and counting resumes from there.
    Returns (None, "none") when there are fewer than two readings.
    """
    if len(readings) < 2:
        return None, Cycle.EnergyMethod.NONE
    base = readings[0]
    held = None  # a suspicious reading (0 or spike), judged by the next one
    total = 0.0
    for reading in readings[1:]:
        if held is not None:
            if _continues(base, reading, max_power_w):
                held = None  # the suspicious reading was a glitch
            else:
                base, held = held, None  # it was real: a reset to 0, or a lasting jump
        increment = reading[1] - base[1]
        if increment >= 0:
            if _plausible(base, reading, max_power_w):
                total += increment
                base = reading
            else:
                held = reading
        elif increment > -COUNTER_NOISE_WH:
            continue
        elif reading[1] == 0:
            held = reading
        else:
            base = reading  # new segment
    return total, Cycle.EnergyMethod.COUNTER


def _plausible(base, reading, max_power_w) -> bool:
    increment = reading[1] - base[1]
    seconds = (reading[0] - base[0]).total_seconds()
    if seconds <= 0:
        return increment <= COUNTER_NOISE_WH
    return increment * 3600.0 / seconds <= max_power_w


def _continues(base, reading, max_power_w) -> bool:
    increment = reading[1] - base[1]
    return increment > -COUNTER_NOISE_WH and _plausible(base, reading, max_power_w)


def integrated_energy_wh(cycle_rows) -> float:
    """Step integration: each row's power holds until the next row.

    Rows of `events` are written on change (start, delta, sample), so the
    value in force is the last written one; a trapezoid would halve the last
    segment before the 0 W stop row.
    """
    energy = 0.0
    for this, following in zip(cycle_rows, cycle_rows[1:], strict=False):
        energy += max(this[1] or 0.0, 0.0) * (following[0] - this[0]).total_seconds() / 3600.0
    return energy


# --- storing (live and rebuild) ------------------------------------------------


@dataclass
class SyncResult:
    channel_id: int
    detected: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    noise: int = 0
    closed_cycle_ids: list = field(default_factory=list)  # created or changed, and ended


def sync_cycles(
    channel: Channel,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    still_running: bool | None = None,
) -> SyncResult:
    """Detect the cycles of `channel` touching [start, end] and upsert them.

    The range is widened to whole cycles (a cycle is never cut at `start` or
    `end`). Stored cycles inside the widened range that the detector no longer
    finds are deleted. `still_running` defaults to the channel state when the
    range is open-ended. Call inside a transaction.
    """
    rules = CycleRules.from_channel(channel)
    if channel.raw_kept_from is not None and (start is None or start < channel.raw_kept_from):
        # Retention deleted the rows before this moment: the cycles stored
        # there keep the energy they were given; nothing can re-detect them.
        start = channel.raw_kept_from
    window_start = cycle_boundary_before(channel.pk, start, rules=rules) if start else None
    window_end = cycle_boundary_after(channel.pk, end, rules=rules) if end else None
    if still_running is None:
        still_running = end is None and ChannelState.objects.filter(pk=channel.pk, running=True).exists()

    logs = PowerLog.objects.filter(channel_id=channel.pk)
    stored = Cycle.objects.filter(channel_id=channel.pk)
    if window_start is not None:
        logs = logs.filter(timestamp__gte=window_start)
        stored = stored.filter(started_at__gte=window_start)
    if window_end is not None:
        logs = logs.filter(timestamp__lte=window_end)
        stored = stored.filter(started_at__lte=window_end)
    rows = logs.order_by("timestamp", "id").values_list("timestamp", "apower_w", "energy_total_wh", "reason")
    detected = detect_cycles(rows.iterator(chunk_size=ROW_CHUNK), rules=rules, still_running=still_running)

    if channel.raw_kept_from is not None and window_start is not None:
        # A stored cycle that began before the window and runs into it lost
        # its first rows: the detector would find its tail as a new cycle.
        covering = (
            Cycle.objects.filter(channel_id=channel.pk, started_at__lt=window_start, ended_at__gte=window_start)
            .order_by("-ended_at")
            .values_list("ended_at", flat=True)
            .first()
        )
        if covering is not None:
            detected = [found for found in detected if found.started_at > covering]
    result = SyncResult(channel_id=channel.pk, detected=len(detected))
    existing = {c.started_at: c for c in stored}
    now = timezone.now()
    to_create, to_update = [], []
    for found in detected:
        result.noise += found.is_noise
        cycle = existing.pop(found.started_at, None)
        if cycle is None:
            to_create.append(Cycle(channel_id=channel.pk, started_at=found.started_at, **found.as_fields()))
            continue
        fields = found.as_fields()
        if all(getattr(cycle, name) == value for name, value in fields.items()):
            continue
        for name, value in fields.items():
            setattr(cycle, name, value)
        cycle.updated_at = now
        to_update.append(cycle)
    if existing:
        Cycle.objects.filter(pk__in=[c.pk for c in existing.values()]).delete()
    if to_create:
        Cycle.objects.bulk_create(to_create, batch_size=1000)
        if any(c.pk is None for c in to_create):
            # SQLite before RETURNING support: fetch the ids back by key.
            ids = dict(
                Cycle.objects.filter(
                    channel_id=channel.pk, started_at__in=[c.started_at for c in to_create]
                ).values_list("started_at", "pk")
            )
            for cycle in to_create:
                cycle.pk = ids[cycle.started_at]
    if to_update:
        Cycle.objects.bulk_update(to_update, [*DetectedCycle.FIELDS, "updated_at"], batch_size=1000)
    result.created, result.updated, result.deleted = len(to_create), len(to_update), len(existing)
    result.closed_cycle_ids = [c.pk for c in (*to_create, *to_update) if c.ended_at is not None]
    return result


def cycle_boundary_before(channel_id: int, moment: datetime, *, rules: CycleRules) -> datetime:
    """The start of the cycle in progress at `moment`, or `moment` if none is.

    Walks the rows back from `moment` to the first inactive row or gap, so a
    detection that starts there never cuts a cycle in two.
    """
    first_after = (
        PowerLog.objects.filter(channel_id=channel_id, timestamp__gte=moment)
        .order_by("timestamp")
        .values_list("timestamp", flat=True)
        .first()
    )
    boundary = min(moment, first_after) if first_after else moment
    cursor = moment
    while True:
        chunk = list(
            PowerLog.objects.filter(channel_id=channel_id, timestamp__lt=cursor)
            .order_by("-timestamp")
            .values_list("timestamp", "apower_w")[:ROW_CHUNK]
        )
        for ts, power in chunk:
            if not rules.is_active(power) or (boundary - ts).total_seconds() >= rules.gap_threshold_s:
                return boundary
            boundary = ts
        if len(chunk) < ROW_CHUNK:
            return boundary
        cursor = chunk[-1][0]


def cycle_boundary_after(channel_id: int, moment: datetime, *, rules: CycleRules) -> datetime:
    """The end of the cycle in progress at `moment` (its closing row included), or `moment`."""
    last_before = (
        PowerLog.objects.filter(channel_id=channel_id, timestamp__lte=moment)
        .order_by("-timestamp")
        .values_list("timestamp", "apower_w")
        .first()
    )
    if last_before is None or not rules.is_active(last_before[1]):
        return moment
    boundary = last_before[0]
    cursor = moment
    while True:
        chunk = list(
            PowerLog.objects.filter(channel_id=channel_id, timestamp__gt=cursor)
            .order_by("timestamp")
            .values_list("timestamp", "apower_w")[:ROW_CHUNK]
        )
        for ts, power in chunk:
            if (ts - boundary).total_seconds() >= rules.gap_threshold_s:
                return max(boundary, moment)
            if not rules.is_active(power):
                return ts
            boundary = ts
        if len(chunk) < ROW_CHUNK:
            return max(boundary, moment)
        cursor = chunk[-1][0]


def record_run_transitions(transitions) -> None:
    """Live hook, called inside the pipeline's transaction for every run start/stop.

    A start only opens the running cycle (cheap: it happens on the ingest
    path, often for many channels at once when devices reconnect). A stop
    re-detects the channel's cycles from the run's start on (the rows are
    already written), so the stored cycles equal what `rebuild_cycles` gives.
    Impact is computed after commit, off the ingest path.
    """
    earliest_end: dict[int, datetime] = {}
    running: dict[int, bool] = {}
    starts: dict[int, datetime] = {}
    for runtime, outcome in transitions:
        channel_id = runtime.channel_id
        running[channel_id] = runtime.state.running
        if outcome.ended is not None:
            moment = outcome.ended.started_at
            earliest_end[channel_id] = min(moment, earliest_end.get(channel_id, moment))
        if outcome.started_at is not None:
            starts[channel_id] = outcome.started_at
    # One statement for all the starts of a flush (a reconnect burst starts hundreds of runs at once);
    # the unique (channel, started_at) makes it a get-or-create.
    opened = [
        Cycle(channel_id=channel_id, started_at=started_at)
        for channel_id, started_at in starts.items()
        if channel_id not in earliest_end
    ]
    if opened:
        Cycle.objects.bulk_create(opened, ignore_conflicts=True)
    if not earliest_end:
        return
    closed_ids = []
    for channel in Channel.objects.filter(pk__in=earliest_end.keys()):
        result = sync_cycles(channel, start=earliest_end[channel.pk], still_running=running[channel.pk])
        closed_ids.extend(result.closed_cycle_ids)
    if closed_ids:
        from configs.tasks import enqueue_cycle_impacts

        transaction.on_commit(lambda: enqueue_cycle_impacts(closed_ids))


@dataclass
class RebuildProgress:
    channel: Channel
    result: SyncResult
    seconds: float


def rebuild_cycles(*, channels, start=None, end=None, with_impact=True, on_progress=None) -> list[RebuildProgress]:
    """Rebuild the cycles of these channels over [start, end], one transaction per channel.

    Idempotent: running it twice changes nothing the second time.
    """
    done = []
    for channel in channels:
        began = time.monotonic()
        with transaction.atomic():
            result = sync_cycles(channel, start=start, end=end)
            if with_impact:
                from configs.impact import recompute_cycle_impacts

                recompute_cycle_impacts(channel_id=channel.pk, start=start, end=end)
        progress = RebuildProgress(channel=channel, result=result, seconds=time.monotonic() - began)
        done.append(progress)
        if on_progress:
            on_progress(progress)
    return done


__all__ = [
    "CycleRules",
    "DetectedCycle",
    "counter_energy_wh",
    "detect_cycles",
    "rebuild_cycles",
    "record_run_transitions",
    "sync_cycles",
]
