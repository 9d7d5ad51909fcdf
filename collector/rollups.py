"""1-minute rollups of the power log, recomputed from raw rows (SPEC §9 retention and downsampling).

A database trigger marks every (channel, minute) a raw row is written into
(`RollupPending`, migration 0004). `update_rollups` takes marked minutes,
recomputes each one from all of its raw rows and upserts the result, so
running it twice, or over a minute that got one more row, gives the same
rollup as computing it once at the end. A minute whose raw rows are all gone
(retention) keeps the rollup it has.
"""

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction

from collector.models import PowerLog, PowerRollup, RollupPending

log = logging.getLogger(__name__)

MINUTE = timedelta(minutes=1)
PENDING_BATCH = 2000  # minutes per transaction: keeps each one short next to live ingestion
# Marked minutes of one channel closer than this are read with one range query.
SPAN_GAP = timedelta(minutes=30)


def floor_minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


@dataclass
class RollupResult:
    minutes: int = 0
    written: int = 0
    batches: int = 0
    more: bool = False


def update_rollups(*, before: datetime | None = None, budget_s: float | None = None) -> RollupResult:
    """Recompute marked minutes (all of them, or those before `before`) until none is left or the budget is spent."""
    result = RollupResult()
    began = time.monotonic()
    while True:
        pending = RollupPending.objects.order_by("minute", "channel_id")
        if before is not None:
            pending = pending.filter(minute__lt=before)
        marks = list(pending.values_list("pk", "channel_id", "minute", "version")[:PENDING_BATCH])
        if not marks:
            return result
        with transaction.atomic():
            result.written += recompute_minutes([(channel_id, minute) for _, channel_id, minute, _ in marks])
        _unmark([(pk, version) for pk, _, _, version in marks])
        result.minutes += len(marks)
        result.batches += 1
        if len(marks) < PENDING_BATCH:
            return result
        if budget_s is not None and time.monotonic() - began > budget_s:
            result.more = True
            return result


def recompute_minutes(minutes) -> int:
    """Upsert the rollups of these (channel_id, minute) pairs from the raw rows; returns how many were written."""
    by_channel: dict[int, list[datetime]] = {}
    for channel_id, minute in minutes:
        by_channel.setdefault(channel_id, []).append(floor_minute(minute))
    rollups = []
    emptied = []
    for channel_id, wanted in by_channel.items():
        wanted = sorted(set(wanted))
        found = {}
        for first, last in _spans(wanted):
            rows = (
                PowerLog.objects.filter(channel_id=channel_id, timestamp__gte=first, timestamp__lt=last + MINUTE)
                .order_by("timestamp", "id")
                .values_list("timestamp", "apower_w", "voltage_v", "current_a", "energy_total_wh")
            )
            for row in rows.iterator(chunk_size=5000):
                found.setdefault(floor_minute(row[0]), []).append(row)
        for minute in wanted:
            rows = found.get(minute)
            if rows:
                rollups.append(_rollup(channel_id, minute, rows))
            else:
                emptied.append((channel_id, minute))
    if rollups:
        PowerRollup.objects.bulk_create(
            rollups,
            batch_size=500,
            update_conflicts=True,
            unique_fields=["channel", "minute"],
            update_fields=[
                "samples",
                "avg_power_w",
                "min_power_w",
                "max_power_w",
                "avg_voltage_v",
                "avg_current_a",
                "last_energy_total_wh",
            ],
        )
    _drop_emptied(emptied)
    return len(rollups)


def _spans(minutes):
    first = last = minutes[0]
    for minute in minutes[1:]:
        if minute - last > SPAN_GAP:
            yield first, last
            first = minute
        last = minute
    yield first, last


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _rollup(channel_id, minute, rows) -> PowerRollup:
    powers = [row[1] for row in rows]
    energies = [row[4] for row in rows if row[4] is not None]
    return PowerRollup(
        channel_id=channel_id,
        minute=minute,
        samples=len(rows),
        avg_power_w=sum(powers) / len(powers),
        min_power_w=min(powers),
        max_power_w=max(powers),
        avg_voltage_v=_mean(row[2] for row in rows),
        avg_current_a=_mean(row[3] for row in rows),
        last_energy_total_wh=energies[-1] if energies else None,
    )


def _drop_emptied(emptied) -> None:
    """A minute with no raw row left: inside the raw window the rows were
    removed on purpose, so its rollup goes too; before it, retention removed
    them and the rollup is all that is left."""
    if not emptied or not settings.RAW_RETENTION_DAYS:
        return
    window_start = floor_minute(datetime.now(UTC) - timedelta(days=settings.RAW_RETENTION_DAYS))
    for channel_id, minute in emptied:
        if minute >= window_start:
            PowerRollup.objects.filter(channel_id=channel_id, minute=minute).delete()


def _unmark(marks) -> None:
    """Remove the marks read, unless a new row bumped their version meanwhile.

    PostgreSQL: marks locked by an ingest transaction in flight are skipped
    (they are about to get a new version), so this never waits on ingestion
    and cannot deadlock with it. SQLite has a single writer.
    """
    table = RollupPending._meta.db_table
    skip_locked = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        for i in range(0, len(marks), 500):
            chunk = marks[i : i + 500]
            pairs = ", ".join(["(%s, %s)"] * len(chunk))
            params = [value for pair in chunk for value in pair]
            if skip_locked:
                cursor.execute(
                    f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} "
                    f"WHERE (id, version) IN (VALUES {pairs}) FOR UPDATE SKIP LOCKED)",
                    params,
                )
            else:
                cursor.execute(f"DELETE FROM {table} WHERE (id, version) IN (VALUES {pairs})", params)


def pending_minutes() -> int:
    return RollupPending.objects.count()
