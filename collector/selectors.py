"""Read queries over devices, channels and power logs (API, dashboard, exports).

The series aggregation runs in the database on both SQLite and PostgreSQL:
rows are grouped into buckets of `bucket_s` seconds aligned on the Unix epoch,
so the same range always gives the same buckets and a chart of a year never
moves a year of rows into Python.
"""

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import Avg, BigIntegerField, Count, Func, Max, Min

from collector.models import PowerLog

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
        return f"(FLOOR(EXTRACT(EPOCH FROM {sql}) / {self.bucket_s}) * {self.bucket_s})::bigint", params


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
    buckets = (
        PowerLog.objects.filter(channel_id=channel_id, timestamp__gte=start, timestamp__lt=end)
        .annotate(bucket=BucketStart("timestamp", bucket_s=bucket_s))
        .values("bucket")
        .annotate(
            avg_power_w=Avg("apower_w"),
            min_power_w=Min("apower_w"),
            max_power_w=Max("apower_w"),
            avg_current_a=Avg("current_a"),
            rows=Count("id"),
        )
        .order_by("bucket")
    )
    points = [
        SeriesPoint(
            t=datetime.fromtimestamp(b["bucket"], tz=UTC),
            avg_power_w=b["avg_power_w"],
            min_power_w=b["min_power_w"],
            max_power_w=b["max_power_w"],
            avg_current_a=b["avg_current_a"],
            rows=b["rows"],
        )
        for b in buckets
    ]
    return Series(channel_id=channel_id, start=start, end=end, bucket_s=bucket_s, points=points)
