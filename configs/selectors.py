"""Read-side queries of configs: cycles with their impact, impact totals per period."""

from datetime import datetime

from django.db.models import Count, Max, Prefetch, Q, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncMonth, TruncWeek, TruncYear

from collector.models import Cycle
from configs.models import CycleImpact
from configs.tariffs import site_zone

TRUNCATE = {"day": TruncDay, "week": TruncWeek, "month": TruncMonth, "year": TruncYear}
IMPACT_SUMS = (
    "energy_kwh",
    "volume_m3",
    "bod5_kg",
    "cod_kg",
    "tss_kg",
    "electricity_co2e_kg",
    "avoided_ch4_kg",
    "avoided_co2e_kg",
    "net_co2e_kg",
    "energy_cost",
)


def cycles(
    *,
    channel_id: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    include_noise: bool = False,
    min_duration_s: float | None = None,
) -> QuerySet:
    """Cycles started in [start, end), noise excluded unless asked for, impact parts prefetched.

    `min_duration_s` keeps closed cycles at least that long (running cycles are always kept).
    """
    queryset = Cycle.objects.select_related("channel__device").prefetch_related(
        Prefetch("impacts", queryset=CycleImpact.objects.order_by("starts_at"))
    )
    if channel_id is not None:
        queryset = queryset.filter(channel_id=channel_id)
    if start is not None:
        queryset = queryset.filter(started_at__gte=start)
    if end is not None:
        queryset = queryset.filter(started_at__lt=end)
    if not include_noise:
        queryset = queryset.filter(is_noise=False)
    if min_duration_s:
        queryset = queryset.filter(Q(ended_at__isnull=True) | Q(duration_s__gte=min_duration_s))
    return queryset


def impact_totals(parts) -> dict:
    """Sum of a cycle's impact parts; a figure is None if any part lacks it ("not configured")."""
    totals = {}
    for name in IMPACT_SUMS:
        values = [getattr(p, name) for p in parts]
        totals[name] = sum(values) if values and None not in values else None
    totals["currency"] = next((p.currency for p in parts if p.currency), "")
    return totals


def impact_parts(
    *,
    channel_ids=None,
    start: datetime | None = None,
    end: datetime | None = None,
    include_noise: bool = False,
) -> QuerySet:
    """Impact parts starting in [start, end): what every impact total (API, dashboard, reports) sums."""
    parts = CycleImpact.objects.all()
    if channel_ids is not None:
        parts = parts.filter(channel_id__in=list(channel_ids))
    if start is not None:
        parts = parts.filter(starts_at__gte=start)
    if end is not None:
        parts = parts.filter(starts_at__lt=end)
    if not include_noise:
        parts = parts.filter(is_noise=False)
    return parts


def impact_sums_by_channel(
    *,
    channel_ids=None,
    start: datetime | None = None,
    end: datetime | None = None,
    include_noise: bool = False,
) -> dict[int, dict]:
    """{channel id: impact totals over [start, end)}, summed in the database like `impact_by_period`.

    A figure is None when no part of the range has it (e.g. no grid factor
    configured: "not configured", never 0). `currency` is the one currency
    of the costed parts ("" when none or mixed).
    """
    rows = (
        impact_parts(channel_ids=channel_ids, start=start, end=end, include_noise=include_noise)
        .values("channel_id")
        .annotate(
            parts=Count("id"),
            cycles=Sum("cycle_count"),
            running_hours=Sum("duration_s") / 3600.0,
            currencies=Count("currency", filter=~Q(currency=""), distinct=True),
            some_currency=Max("currency"),
            **{name: Sum(name) for name in IMPACT_SUMS},
        )
        .order_by("channel_id")
    )
    sums = {}
    for row in rows:
        currencies, currency = row.pop("currencies"), row.pop("some_currency")
        row["currency"] = currency if currencies == 1 else ""
        sums[row.pop("channel_id")] = row
    return sums


def impact_by_period(
    *,
    period: str,
    channel_id: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    include_noise: bool = False,
) -> list[dict]:
    """Impact totals per channel and per local day/week/month/year, summed in the database."""
    truncate = TRUNCATE[period]
    channel_ids = [channel_id] if channel_id is not None else None
    parts = impact_parts(channel_ids=channel_ids, start=start, end=end, include_noise=include_noise)
    rows = (
        parts.annotate(period_start=truncate("starts_at", tzinfo=site_zone()))
        .values("channel_id", "period_start", "currency")
        .annotate(
            cycles=Sum("cycle_count"),
            running_hours=Sum("duration_s") / 3600.0,
            **{name: Sum(name) for name in IMPACT_SUMS},
        )
        .order_by("period_start", "channel_id", "currency")
    )
    return [{**row, "channel": row.pop("channel_id")} for row in rows]


__all__ = ["cycles", "impact_by_period", "impact_parts", "impact_sums_by_channel", "impact_totals"]
