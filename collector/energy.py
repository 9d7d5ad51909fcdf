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

from django.db.models import Count, Sum
from django.utils import timezone

from collector.models import Device, EnergyInterval

PERIODS = ("day", "week", "month")


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


def _costs(intervals, start: datetime, end: datetime):
    """Cost lines per (tariff, tariff period), the standing charges, and the Wh with no tariff."""
    from configs.tariffs import TariffResolver, split_by_tariff_period, standing_charge

    resolver = TariffResolver()
    lines: dict[tuple, CostLine] = {}
    unpriced_wh = 0.0
    used_tariffs = {}
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
            key = (tariff.pk, piece.period)
            line = lines.get(key)
            if line is None:
                line = lines[key] = CostLine(tariff.name, tariff.currency, piece.period, piece.price_per_kwh)
            line.energy_wh += piece.energy_wh
    standing = {
        tariff.name: standing_charge(start=start, end=end, rules=resolver.rules_of(tariff))
        for tariff in used_tariffs.values()
    }
    return list(lines.values()), standing, unpriced_wh, resolver.tariffs


def energy_summary(*, device: Device, period: str, day: date) -> dict:
    """kWh per channel and in total over a local period, and its cost when tariffs exist."""
    start, end = period_bounds(period, day)
    rows = (
        EnergyInterval.objects.filter(device=device, start__gte=start, start__lt=end)
        .values("channel__key")
        .annotate(energy=Sum("energy_wh"), returned=Sum("returned_energy_wh"), intervals=Count("id"))
        .order_by("channel__key")
    )
    channels = {
        r["channel__key"]: {
            "energy_kwh": round(r["energy"] / 1000.0, 6),
            "returned_kwh": round(r["returned"] / 1000.0, 6),
            "intervals": r["intervals"],
        }
        for r in rows
    }
    totals = [key for key in channels if _is_total(key)] or list(channels)
    total_wh = sum(channels[key]["energy_kwh"] for key in totals) * 1000.0
    returned_wh = sum(channels[key]["returned_kwh"] for key in totals) * 1000.0
    summary = {
        "device": device.device_id,
        "period": period,
        "start": start,
        "end": end,
        "channels": channels,
        "total": {"energy_kwh": round(total_wh / 1000.0, 6), "returned_kwh": round(returned_wh / 1000.0, 6)},
        "cost": None,
    }
    priced = EnergyInterval.objects.filter(
        device=device, start__gte=start, start__lt=end, channel__key__in=totals
    ).only("channel_id", "device_id", "start", "end", "energy_wh")
    lines, standing, unpriced_wh, tariffs = _costs(priced.iterator(chunk_size=5000), start, end)
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
