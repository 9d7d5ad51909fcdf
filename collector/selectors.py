"""Read queries over devices, channels and power logs (API, dashboard, exports).

The series aggregation runs in the database on both SQLite and PostgreSQL:
rows are grouped into buckets of `bucket_s` seconds aligned on the Unix epoch,
so the same range always gives the same buckets and a chart of a year never
moves a year of rows into Python.

With buckets of whole minutes the series reads the 1-minute rollups up to the
first minute still marked for recomputing (six to sixty times fewer rows than
10 s or 1 s samples), and raw rows after it; where retention has deleted the
raw rows (before `Channel.raw_kept_from`) it reads rollups with buckets
widened to whole minutes. Buckets both sources fill are merged by sample
counts: same shape, same figures.
"""

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Avg, BigIntegerField, Count, F, Func, Max, Min, Q, Sum
from django.utils import timezone

from collector.models import Channel, PowerLog, PowerRollup, RollupPending

MAX_SERIES_POINTS = 2000
# Bucket sizes a chart reader can make sense of; the automatic choice is the
# smallest that keeps a range within MAX_SERIES_POINTS.
NICE_BUCKETS_S = (
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
    2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400,
)  # fmt: skip


class BucketStart(Func):
    """Epoch seconds of the start of the `bucket_s` bucket holding a timestamp."""

    output_field = BigIntegerField()

    def __init__(self, expression, *, bucket_s: int):
        self.bucket_s = int(bucket_s)
        super().__init__(expression)

    def as_sql(self, compiler, connection, **extra):
        raise NotImplementedError(f"BucketStart is not implemented for {connection.vendor}")

    def as_sqlite(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        # Timestamps are stored as UTC text; strftime('%s') reads them as UTC.
        return f"((CAST(strftime('%%s', {sql}) AS INTEGER) / {self.bucket_s}) * {self.bucket_s})", params

    def as_postgresql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        # date_part gives a double; EXTRACT a numeric (PostgreSQL 14+), which
        # made a 30-day chart of 10 s rows about a third slower.
        return f"(FLOOR(date_part('epoch', {sql}) / {self.bucket_s}) * {self.bucket_s})::bigint", params


def power_logs(*, device_id=None, channel_id=None, start=None, end=None):
    qs = PowerLog.objects.select_related("device", "channel")
    if device_id is not None:
        qs = qs.filter(device__device_id=device_id)
    if channel_id is not None:
        qs = qs.filter(channel_id=channel_id)
    if start is not None:
        qs = qs.filter(timestamp__gte=start)
    if end is not None:
        qs = qs.filter(timestamp__lt=end)
    return qs


def automatic_bucket_s(start: datetime, end: datetime, *, max_points: int = MAX_SERIES_POINTS) -> int:
    """The smallest nice bucket that keeps [start, end) within max_points buckets."""
    span_s = max((end - start).total_seconds(), 1.0)
    # +1: epoch-aligned buckets can add one partial bucket at each end.
    needed = math.ceil(span_s / (max_points - 1))
    for bucket in NICE_BUCKETS_S:
        if bucket >= needed:
            return bucket
    return needed


@dataclass(frozen=True)
class SeriesPoint:
    t: datetime
    avg_power_w: float
    min_power_w: float
    max_power_w: float
    avg_current_a: float | None
    rows: int


@dataclass(frozen=True)
class Series:
    channel_id: int
    start: datetime
    end: datetime
    bucket_s: int
    points: list


def power_series(*, channel_id: int, start: datetime, end: datetime, bucket_s: int | None = None) -> Series:
    """Power and current of a channel per bucket, at most MAX_SERIES_POINTS points.

    A requested bucket smaller than the range allows is widened to the
    automatic one rather than refused, so a chart never asks twice.
    """
    smallest = automatic_bucket_s(start, end)
    bucket_s = max(int(bucket_s or 0), smallest)
    raw_from = Channel.objects.filter(pk=channel_id).values_list("raw_kept_from", flat=True).first()
    if raw_from is not None and start < raw_from:
        # Rollups hold whole minutes: buckets of whole minutes.
        bucket_s = max(60, math.ceil(bucket_s / 60) * 60)
    first_minute = _ceil_minute(start)
    rolled_until = first_minute
    if bucket_s % 60 == 0:
        # Every minute the trigger has not marked since its rollup was
        # computed is exact in the rollups: read them up to the first marked
        # minute (or the raw window's start, before which raw rows are gone).
        marked = (
            RollupPending.objects.filter(channel_id=channel_id, minute__gte=first_minute, minute__lt=end)
            .order_by("minute")
            .values_list("minute", flat=True)
            .first()
        )
        rolled_until = min(marked or end, _floor_minute(end))
        if raw_from is not None:
            rolled_until = max(rolled_until, min(raw_from, end))
    if settings.ROLLUP_RETENTION_DAYS:
        # Rollups past their retention are gone; the raw rows of `events`
        # (and other kept) channels are still there.
        kept_from = _ceil_minute(timezone.now() - timedelta(days=settings.ROLLUP_RETENTION_DAYS))
        first_minute = min(max(first_minute, kept_from), max(rolled_until, first_minute))
    buckets: dict[int, dict] = {}
    if rolled_until > first_minute:
        _merge(buckets, _raw_buckets(channel_id, start, first_minute, bucket_s))  # e.g. a partial first minute
        _merge(buckets, _rollup_buckets(channel_id, first_minute, rolled_until, bucket_s))
        _merge(buckets, _raw_buckets(channel_id, rolled_until, end, bucket_s))
    else:
        _merge(buckets, _raw_buckets(channel_id, start, end, bucket_s))
    points = [
        SeriesPoint(
            t=datetime.fromtimestamp(bucket, tz=UTC),
            avg_power_w=b["avg_power_w"],
            min_power_w=b["min_power_w"],
            max_power_w=b["max_power_w"],
            avg_current_a=b["avg_current_a"],
            rows=b["rows"],
        )
        for bucket, b in sorted(buckets.items())
    ]
    return Series(channel_id=channel_id, start=start, end=end, bucket_s=bucket_s, points=points)


def _floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _ceil_minute(moment: datetime) -> datetime:
    floor = _floor_minute(moment)
    return floor if floor == moment else floor + timedelta(minutes=1)


def _raw_buckets(channel_id, start, end, bucket_s):
    if start >= end:
        return []
    return (
        PowerLog.objects.filter(channel_id=channel_id, timestamp__gte=start, timestamp__lt=end)
        .annotate(bucket=BucketStart("timestamp", bucket_s=bucket_s))
        .values("bucket")
        .annotate(
            avg_power_w=Avg("apower_w"),
            min_power_w=Min("apower_w"),
            max_power_w=Max("apower_w"),
            avg_current_a=Avg("current_a"),
            current_rows=Count("current_a"),
            rows=Count("id"),
        )
        .order_by("bucket")
    )


def _rollup_buckets(channel_id, start, end, bucket_s):
    """Buckets from the rollups of the whole minutes in [start, end)."""
    with_current = Q(avg_current_a__isnull=False)
    buckets = (
        PowerRollup.objects.filter(channel_id=channel_id, minute__gte=start, minute__lt=end)
        .annotate(bucket=BucketStart("minute", bucket_s=bucket_s))
        .values("bucket")
        .annotate(
            power_sum=Sum(F("avg_power_w") * F("samples")),
            min_power_w=Min("min_power_w"),
            max_power_w=Max("max_power_w"),
            current_sum=Sum(F("avg_current_a") * F("samples"), filter=with_current),
            current_rows=Sum("samples", filter=with_current),
            rows=Sum("samples"),
        )
        .order_by("bucket")
    )
    for b in buckets:
        yield {
            "bucket": b["bucket"],
            "avg_power_w": b["power_sum"] / b["rows"],
            "min_power_w": b["min_power_w"],
            "max_power_w": b["max_power_w"],
            "avg_current_a": b["current_sum"] / b["current_rows"] if b["current_rows"] else None,
            "current_rows": b["current_rows"] or 0,
            "rows": b["rows"],
        }


def _merge(buckets: dict, rows) -> None:
    """Add aggregated buckets into `buckets`, combining a bucket both sources fill by weights."""
    for row in rows:
        row = dict(row)
        seen = buckets.get(row["bucket"])
        if seen is None:
            buckets[row["bucket"]] = row
            continue
        rows_total = seen["rows"] + row["rows"]
        currents = seen["current_rows"] + row["current_rows"]
        seen["avg_power_w"] = (seen["avg_power_w"] * seen["rows"] + row["avg_power_w"] * row["rows"]) / rows_total
        seen["min_power_w"] = min(seen["min_power_w"], row["min_power_w"])
        seen["max_power_w"] = max(seen["max_power_w"], row["max_power_w"])
        if currents:
            seen["avg_current_a"] = (
                (seen["avg_current_a"] or 0) * seen["current_rows"] + (row["avg_current_a"] or 0) * row["current_rows"]
            ) / currents
        seen["current_rows"], seen["rows"] = currents, rows_total
