"""Tariffs (§7): validated rules, period lookup in the site time zone, energy split by time.

Rules JSON::

    {"standing_charge_per_day": 0.45,
     "periods": [
        {"name": "peak", "days": "weekday", "start": "07:00", "end": "23:00", "price_per_kwh": 0.27},
        {"name": "off-peak", "days": "weekday", "start": "23:00", "end": "07:00", "price_per_kwh": 0.20},
        {"name": "weekend", "days": "weekend", "start": "00:00", "end": "24:00", "price_per_kwh": 0.18}]}

Times are local wall-clock times. A period whose end is before its start
wraps midnight and covers, on each of its days, [start, 24:00) and
[00:00, end): every local calendar day is evaluated on its own, so Friday
00:00–07:00 is "weekday" and Saturday 00:00–07:00 "weekend". Every minute of
the week must be covered by exactly one period.

Splitting works on real instants: the cut points are local boundary times
turned into instants, and each piece's period is read at its middle, so a
23 h or 25 h DST day gets 23 or 25 hours of energy.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.dates import WEEKDAYS
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

DAY_SETS = {"all": frozenset(range(7)), "weekday": frozenset(range(5)), "weekend": frozenset({5, 6})}
MINUTES_PER_DAY = 24 * 60
OVERLAP_MESSAGE = gettext_noop(
    "%(day)s %(time)s is covered by both “%(first)s” and “%(second)s”: periods may not overlap."
)


@dataclass(frozen=True, slots=True)
class TariffPeriod:
    name: str
    days: frozenset
    start_minute: int
    end_minute: int
    price_per_kwh: float

    def minute_ranges(self):
        if self.start_minute < self.end_minute:
            return [(self.start_minute, self.end_minute)]
        return [(self.start_minute, MINUTES_PER_DAY), (0, self.end_minute)]


@dataclass(frozen=True, slots=True)
class TariffRules:
    periods: tuple
    standing_charge_per_day: float
    week: tuple  # period index for each minute of the week, Monday 00:00 first
    boundary_minutes: tuple  # minutes of the day where some period starts or ends (0 always)

    def period_at(self, local: datetime) -> TariffPeriod:
        return self.periods[self.week[local.weekday() * MINUTES_PER_DAY + local.hour * 60 + local.minute]]


@dataclass(frozen=True, slots=True)
class TariffSlice:
    start: datetime
    end: datetime
    period: str
    price_per_kwh: float
    energy_wh: float

    @property
    def cost(self) -> float:
        return self.energy_wh / 1000.0 * self.price_per_kwh


def _day_name(day: int) -> str:
    return str(WEEKDAYS[day])


def _minute_of(value, *, where, label) -> int:
    problem = _("%(where)s: the %(label)s “%(value)s” is not a time like 07:30 (00:00 to 24:00).")
    try:
        hours, minutes = str(value).split(":")
        minute = int(hours) * 60 + int(minutes)
    except ValueError:
        raise ValidationError(problem % {"where": where, "label": label, "value": value}) from None
    if not 0 <= minute <= MINUTES_PER_DAY or not 0 <= int(minutes) < 60:
        raise ValidationError(problem % {"where": where, "label": label, "value": value})
    return minute


def _days_of(value, *, where) -> frozenset:
    if isinstance(value, str) and value in DAY_SETS:
        return DAY_SETS[value]
    if isinstance(value, list) and value and all(isinstance(d, int) and 0 <= d <= 6 for d in value):
        return frozenset(value)
    raise ValidationError(
        _("%(where)s: choose its days (every day, weekdays, weekend, or some of Monday to Sunday).") % {"where": where}
    )


def _number(value, *, message) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or value != value:
        raise ValidationError(message)
    return float(value)


def parse_tariff_rules(data) -> TariffRules:
    """Validate tariff rules JSON and compile it; raises ValidationError with a message naming the field."""
    if not isinstance(data, dict) or not isinstance(data.get("periods"), list) or not data["periods"]:
        raise ValidationError(_("A tariff needs at least one period with its days, times and price per kWh."))
    unknown = set(data) - {"periods", "standing_charge_per_day"}
    if unknown:
        raise ValidationError(_("Unknown tariff rule keys: %(keys)s") % {"keys": ", ".join(sorted(unknown))})
    standing = _number(
        data.get("standing_charge_per_day", 0),
        message=_("The standing charge per day must be a number of 0 or more."),
    )
    periods = []
    for index, raw in enumerate(data["periods"]):
        if not isinstance(raw, dict):
            raise ValidationError(_("Period %(n)d cannot be read.") % {"n": index + 1})
        name = str(raw.get("name") or "").strip() or str(_("period %(n)d") % {"n": index + 1})
        where = _("Period %(n)d (%(name)s)") % {"n": index + 1, "name": name}
        start = _minute_of(raw.get("start"), where=where, label=_("start time"))
        end = _minute_of(raw.get("end"), where=where, label=_("end time"))
        if start == end or start == MINUTES_PER_DAY:
            raise ValidationError(
                _("%(where)s: the start and end times must differ (00:00 to 24:00 for a whole day).") % {"where": where}
            )
        periods.append(
            TariffPeriod(
                name=name,
                days=_days_of(raw.get("days", "all"), where=where),
                start_minute=start,
                end_minute=end,
                price_per_kwh=_number(
                    raw.get("price_per_kwh"),
                    message=_("%(where)s: the price per kWh must be a number of 0 or more.") % {"where": where},
                ),
            )
        )
    week = [None] * (7 * MINUTES_PER_DAY)
    for index, period in enumerate(periods):
        for day in period.days:
            for first, last in period.minute_ranges():
                for minute in range(first, last):
                    slot = day * MINUTES_PER_DAY + minute
                    if week[slot] is not None:
                        overlap = _(
                            "%(day)s %(time)s is covered by both “%(first)s” and “%(second)s”: periods may not overlap."
                        )
                        raise ValidationError(
                            overlap
                            % {
                                "day": _day_name(day),
                                "time": f"{minute // 60:02d}:{minute % 60:02d}",
                                "first": periods[week[slot]].name,
                                "second": period.name,
                            }
                        )
                    week[slot] = index
    if None in week:
        slot = week.index(None)
        day, minute = divmod(slot, MINUTES_PER_DAY)
        raise ValidationError(
            _("%(day)s %(time)s is not covered by any period: every minute of the week needs a price.")
            % {"day": _day_name(day), "time": f"{minute // 60:02d}:{minute % 60:02d}"}
        )
    boundaries = {0}
    for period in periods:
        boundaries.update({period.start_minute % MINUTES_PER_DAY, period.end_minute % MINUTES_PER_DAY})
    return TariffRules(
        periods=tuple(periods),
        standing_charge_per_day=standing,
        week=tuple(week),
        boundary_minutes=tuple(sorted(boundaries)),
    )


def site_zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def _local_instant(day: date, minute: int, zone: ZoneInfo) -> datetime:
    # A wall time that does not exist (spring forward) resolves with the
    # pre-change offset; one that exists twice (fall back) to its first
    # occurrence. Periods are read at each piece's middle, so either is safe.
    # UTC out: arithmetic between two datetimes of one zone is wall-clock,
    # which would make a DST day 24 h long.
    return datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone).astimezone(UTC)


def split_by_tariff_period(
    *, start: datetime, end: datetime, energy_wh: float, rules: TariffRules, zone: ZoneInfo | None = None
) -> list[TariffSlice]:
    """Split the energy used over [start, end) across tariff periods, proportionally to time."""
    zone = zone or site_zone()
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    total_s = (end - start).total_seconds()
    if total_s <= 0:
        period = rules.period_at(start.astimezone(zone))
        return [TariffSlice(start, end, period.name, period.price_per_kwh, energy_wh)]
    cuts = [start]
    day = start.astimezone(zone).date()
    last_day = end.astimezone(zone).date()
    while day <= last_day:
        for minute in rules.boundary_minutes:
            instant = _local_instant(day, minute, zone)
            if start < instant < end:
                cuts.append(instant)
        day += timedelta(days=1)
    cuts = sorted(set(cuts)) + [end]
    slices: list[TariffSlice] = []
    for piece_start, piece_end in zip(cuts, cuts[1:], strict=False):
        middle = piece_start + (piece_end - piece_start) / 2
        period = rules.period_at(middle.astimezone(zone))
        share = energy_wh * (piece_end - piece_start).total_seconds() / total_s
        if slices and slices[-1].period == period.name:
            previous = slices.pop()
            slices.append(
                TariffSlice(previous.start, piece_end, period.name, period.price_per_kwh, previous.energy_wh + share)
            )
        else:
            slices.append(TariffSlice(piece_start, piece_end, period.name, period.price_per_kwh, share))
    return slices


def energy_cost(*, start: datetime, end: datetime, energy_wh: float, rules: TariffRules, zone=None) -> float:
    return sum(
        s.cost for s in split_by_tariff_period(start=start, end=end, energy_wh=energy_wh, rules=rules, zone=zone)
    )


def standing_charge(*, start: datetime, end: datetime, rules: TariffRules, zone=None) -> float:
    """Standing charge for the local calendar days that [start, end) touches."""
    zone = zone or site_zone()
    first = start.astimezone(zone).date()
    last = (end - timedelta(microseconds=1)).astimezone(zone).date()
    return rules.standing_charge_per_day * ((last - first).days + 1)


class TariffResolver:
    """Which tariff applies to a channel at a moment: channel's, else device's, else site default.

    Loads every tariff and assignment once, so costing thousands of cycles
    costs two queries.
    """

    def __init__(self):
        from configs.models import Tariff, TariffAssignment

        self.tariffs = list(Tariff.objects.all())
        by_id = {t.pk: t for t in self.tariffs}
        self.by_channel, self.by_device = {}, {}
        for a in TariffAssignment.objects.all():
            target = self.by_channel.setdefault(a.channel_id, []) if a.channel_id else None
            if target is None:
                target = self.by_device.setdefault(a.device_id, [])
            target.append(by_id[a.tariff_id])
        self.defaults = [t for t in self.tariffs if t.is_site_default]
        self._compiled = {}

    def tariff_for(self, *, channel_id: int, device_id: int, moment: datetime):
        for candidates in (self.by_channel.get(channel_id, ()), self.by_device.get(device_id, ()), self.defaults):
            valid = [t for t in candidates if t.is_valid_at(moment)]
            if valid:
                return max(valid, key=lambda t: (t.valid_from or datetime.min.replace(tzinfo=moment.tzinfo), t.pk))
        return None

    def rules_of(self, tariff) -> TariffRules:
        if tariff.pk not in self._compiled:
            self._compiled[tariff.pk] = parse_tariff_rules(tariff.rules)
        return self._compiled[tariff.pk]
