"""Energy intervals read back: selectors and the per-period summary with costs (SPEC §4.3, §7, §9).

- Periods (`day`, `week`, `month`) are local calendar periods in the site
  time zone (a DST day is 23 or 25 hours long).
- kWh per channel (phases and total) are sums of the stored 1-minute
  intervals; the cost uses the device's total (`em:N:total`, or the em1
  channels summed) and the tariff in force at each interval (channel's, else
  device's, else the site default), split by tariff period with
  `configs.tariffs`.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Count, DateTimeField, ExpressionWrapper, F, Q, Sum
from django.db.models.functions import TruncDay, TruncHour, TruncMonth
from django.utils import timezone

from collector.models import Device, EnergyInterval

PERIODS = ("day", "week", "month")
BUCKETS = {"day": TruncDay, "month": TruncMonth}


def energy_intervals():
    return EnergyInterval.objects.select_related("device", "channel").order_by("start", "id")


def period_bounds(period: str, day: date) -> tuple[datetime, datetime]:
    """Local start and end (exclusive) of the day, Monday-start week or month holding `day`."""
    if period == "day":
        first, after = day, day + timedelta(days=1)
    elif period == "week":
        first = day - timedelta(days=day.weekday())
        after = first + timedelta(days=7)
    elif period == "month":
        first = day.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}")
    zone = timezone.get_current_timezone()
    return (
        timezone.make_aware(datetime.combine(first, datetime.min.time()), zone),
        timezone.make_aware(datetime.combine(after, datetime.min.time()), zone),
    )


def _is_total(key: str) -> bool:
    return key.endswith(":total")


@dataclass
class CostLine:
    tariff: str
    currency: str
    period: str
    price_per_kwh: float
    energy_wh: float = 0.0

    @property
    def cost(self) -> float:
        return self.energy_wh / 1000.0 * self.price_per_kwh


def _costs(priced, start: datetime, end: datetime):
    """Cost lines per (tariff, tariff period), the standing charges, and the Wh with no tariff.

    Intervals are priced by `configs.tariffs.split_by_tariff_period`. When
    every tariff changes period on the hour (the usual case), the intervals
    that lie inside one local hour — all of a meter's 1-minute records — are
    first summed per channel and local hour in the database and priced once
    per hour: a month of records is ~700 sums instead of 43,000 splits.
    Pricing depends on the local wall time only, so the hour of a DST change
    that occurs twice is priced correctly as one. Other intervals are split
    one by one.
    """
    from configs.tariffs import TariffResolver, split_by_tariff_period, standing_charge

    resolver = TariffResolver()
    lines: dict[tuple, CostLine] = {}
    unpriced_wh = 0.0
    used_tariffs = {}

    def add(tariff, period: str, price: float, energy_wh: float) -> None:
        key = (tariff.pk, period)
        line = lines.get(key)
        if line is None:
            line = lines[key] = CostLine(tariff.name, tariff.currency, period, price)
        line.energy_wh += energy_wh

    rest = priced
    on_the_hour = all(m % 60 == 0 for t in resolver.tariffs for m in resolver.rules_of(t).boundary_minutes)
    if resolver.tariffs and on_the_hour:
        zone = timezone.get_current_timezone()
        hours = priced.annotate(
            hour=TruncHour("start", tzinfo=zone),
            last_hour=TruncHour(
                ExpressionWrapper(F("end") - timedelta(microseconds=1), output_field=DateTimeField()), tzinfo=zone
            ),
        )
        inside = Q(hour=F("last_hour"))
        sums = (
            hours.values("channel_id", "device_id", "hour")
            .annotate(wh=Sum("energy_wh", filter=inside), crossing=Count("id", filter=~inside))
            .order_by()
        )
        crossing = 0
        for row in sums:
            crossing += row["crossing"]
            if row["wh"] is None:
                continue
            moment = row["hour"]
            tariff = resolver.tariff_for(channel_id=row["channel_id"], device_id=row["device_id"], moment=moment)
            if tariff is None:
                unpriced_wh += row["wh"]
                continue
            used_tariffs[tariff.pk] = tariff
            period = resolver.rules_of(tariff).period_at(timezone.localtime(moment, zone))
            add(tariff, period.name, period.price_per_kwh, row["wh"])
        # Only when some interval runs past its hour (never for 1-minute records).
        rest = hours.exclude(inside) if crossing else priced.none()
    intervals = rest.only("channel_id", "device_id", "start", "end", "energy_wh").iterator(chunk_size=5000)
    for interval in intervals:
        tariff = resolver.tariff_for(
            channel_id=interval.channel_id, device_id=interval.device_id, moment=interval.start
        )
        if tariff is None:
            unpriced_wh += interval.energy_wh
            continue
        used_tariffs[tariff.pk] = tariff
        rules = resolver.rules_of(tariff)
        for piece in split_by_tariff_period(
            start=interval.start, end=interval.end, energy_wh=interval.energy_wh, rules=rules
        ):
            add(tariff, piece.period, piece.price_per_kwh, piece.energy_wh)
    standing = {
        tariff.name: standing_charge(start=start, end=end, rules=resolver.rules_of(tariff))
        for tariff in used_tariffs.values()
    }
    return list(lines.values()), standing, unpriced_wh, resolver.tariffs


def energy_summary(*, device: Device, period: str, day: date) -> dict:
    """kWh per channel and in total over a local period, and its cost when tariffs exist."""
    start, end = period_bounds(period, day)
    return {"period": period, **energy_between(device=device, start=start, end=end)}


def energy_between(*, device: Device, start: datetime, end: datetime) -> dict:
    """kWh per channel and in total of the intervals starting in [start, end), and their cost.

    The standing charge counts the local days that [start, end) touches, so a
    month so far pays for the days so far.
    """
    keys = dict(device.channels.values_list("pk", "key"))
    rows = (
        EnergyInterval.objects.filter(device=device, start__gte=start, start__lt=end)
        .values("channel_id")  # grouped on the id: no join to the channel table
        .annotate(energy=Sum("energy_wh"), returned=Sum("returned_energy_wh"), intervals=Count("id"))
        .order_by()
    )
    channels = {
        keys[r["channel_id"]]: {
            "energy_kwh": round(r["energy"] / 1000.0, 6),
            "returned_kwh": round(r["returned"] / 1000.0, 6),
            "intervals": r["intervals"],
        }
        for r in sorted(rows, key=lambda r: keys[r["channel_id"]])
    }
    totals = [key for key in channels if _is_total(key)] or list(channels)
    total_wh = sum(channels[key]["energy_kwh"] for key in totals) * 1000.0
    returned_wh = sum(channels[key]["returned_kwh"] for key in totals) * 1000.0
    summary = {
        "device": device.device_id,
        "start": start,
        "end": end,
        "channels": channels,
        "total": {"energy_kwh": round(total_wh / 1000.0, 6), "returned_kwh": round(returned_wh / 1000.0, 6)},
        "cost": None,
    }
    total_ids = [pk for pk, key in keys.items() if key in totals]
    priced = EnergyInterval.objects.filter(device=device, start__gte=start, start__lt=end, channel_id__in=total_ids)
    lines, standing, unpriced_wh, tariffs = _costs(priced, start, end)
    if not tariffs:
        summary["cost_note"] = "no tariff configured"
        return summary
    currencies = {line.currency for line in lines}
    summary["cost"] = {
        "currency": currencies.pop() if len(currencies) == 1 else None,
        "by_period": [
            {
                "tariff": line.tariff,
                "period": line.period,
                "price_per_kwh": line.price_per_kwh,
                "energy_kwh": round(line.energy_wh / 1000.0, 6),
                "cost": round(line.cost, 4),
            }
            for line in sorted(lines, key=lambda line: (line.tariff, line.period))
        ],
        "energy_cost": round(sum(line.cost for line in lines), 4),
        "standing_charge": round(sum(standing.values()), 4),
        "total": round(sum(line.cost for line in lines) + sum(standing.values()), 4),
        "unpriced_kwh": round(unpriced_wh / 1000.0, 6),
    }
    return summary


def energy_per_bucket(*, device: Device, bucket: str, start: datetime, end: datetime) -> list[dict]:
    """kWh per local day or month over [start, end): per channel key and in total, oldest first.

    The total is the device's `:total` channel, or its channels summed when it
    has none (em1 meters). Buckets without intervals are left out.
    """
    truncate = BUCKETS[bucket]
    keys = dict(device.channels.values_list("pk", "key"))
    rows = (
        EnergyInterval.objects.filter(device=device, start__gte=start, start__lt=end)
        .annotate(bucket=truncate("start", tzinfo=timezone.get_current_timezone()))
        .values("bucket", "channel_id")  # grouped on the id: no join to the channel table
        .annotate(energy=Sum("energy_wh"))
        .order_by("bucket")
    )
    buckets: dict = {}
    for row in rows:
        moment = timezone.localtime(row["bucket"])
        channels = buckets.setdefault(moment.date(), {})
        channels[keys[row["channel_id"]]] = row["energy"] / 1000.0
    return [_bucket_row(day, channels) for day, channels in buckets.items()]


def _bucket_row(first_day: date, channels: dict[str, float]) -> dict:
    totals = [kwh for key, kwh in channels.items() if _is_total(key)]
    return {
        "start": first_day,
        "channels": dict(sorted(channels.items())),
        "total_kwh": sum(totals) if totals else sum(channels.values()),
    }


def months_of(days: list[dict]) -> list[dict]:
    """Rows of `energy_per_bucket(bucket="day")` added up per calendar month (one query for both charts)."""
    months: dict[date, dict[str, float]] = {}
    for row in days:
        channels = months.setdefault(row["start"].replace(day=1), {})
        for key, kwh in row["channels"].items():
            channels[key] = channels.get(key, 0.0) + kwh
    return [_bucket_row(first_day, channels) for first_day, channels in months.items()]
