"""Tariffs (§7): validated rules, splits across periods, weekends and DST days (Europe/Paris)."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from configs.impact import recompute_cycle_impacts
from configs.models import CycleImpact, Tariff, TariffAssignment
from configs.tariffs import parse_tariff_rules, split_by_tariff_period, standing_charge
from tests.configs.stories import closed_cycle
from tests.scenarios import make_channel

PARIS = ZoneInfo("Europe/Paris")
PEAK_OFFPEAK = {
    "standing_charge_per_day": 0.50,
    "periods": [
        {"name": "peak", "days": "weekday", "start": "07:00", "end": "23:00", "price_per_kwh": 0.30},
        {"name": "off-peak", "days": "weekday", "start": "23:00", "end": "07:00", "price_per_kwh": 0.20},
        {"name": "weekend", "days": "weekend", "start": "00:00", "end": "24:00", "price_per_kwh": 0.15},
    ],
}
ALL_DAYS = {
    "periods": [
        {"name": "day", "days": "all", "start": "07:00", "end": "23:00", "price_per_kwh": 0.30},
        {"name": "night", "days": "all", "start": "23:00", "end": "07:00", "price_per_kwh": 0.20},
    ]
}


def paris(*args):
    # In UTC: Python subtracts two datetimes of one zone as wall-clock times.
    return datetime(*args, tzinfo=PARIS).astimezone(UTC)


def split(rules, start, end, energy_wh):
    slices = split_by_tariff_period(start=start, end=end, energy_wh=energy_wh, rules=parse_tariff_rules(rules))
    return [(s.period, round(s.energy_wh, 6), round(s.cost, 6)) for s in slices]


def test_rules_must_cover_every_minute_of_the_week_exactly_once():
    with pytest.raises(ValidationError, match="Saturday 00:00 is not covered"):
        parse_tariff_rules({"periods": PEAK_OFFPEAK["periods"][:2]})
    overlapping = [
        *ALL_DAYS["periods"],
        {"name": "x", "days": [0], "start": "12:00", "end": "13:00", "price_per_kwh": 1},
    ]
    with pytest.raises(ValidationError, match="Monday 12:00 is covered by both “day” and “x”"):
        parse_tariff_rules({"periods": overlapping})
    with pytest.raises(ValidationError, match="not a time"):
        parse_tariff_rules({"periods": [{"name": "p", "start": "7h", "end": "24:00", "price_per_kwh": 1}]})
    with pytest.raises(ValidationError, match="price per kWh must be a number"):
        parse_tariff_rules({"periods": [{"name": "p", "start": "00:00", "end": "24:00", "price_per_kwh": "1"}]})


def test_tariff_model_validation_uses_the_rules_parser():
    with pytest.raises(ValidationError, match="at least one period"):
        Tariff(name="bad", rules={}).full_clean()


def test_cycle_crossing_the_peak_boundary_is_split_by_time():
    # Monday 2026-03-02, 22:30 → 23:30 Paris: 30 min peak, 30 min off-peak; 1000 Wh at constant power.
    assert split(PEAK_OFFPEAK, paris(2026, 3, 2, 22, 30), paris(2026, 3, 2, 23, 30), 1000) == [
        ("peak", 500.0, 0.5 * 0.30),
        ("off-peak", 500.0, 0.5 * 0.20),
    ]


def test_weekend_rule_applies_from_saturday_midnight():
    # Friday 23:00 → Saturday 01:00: one hour off-peak (Friday), one hour weekend.
    assert split(PEAK_OFFPEAK, paris(2026, 3, 6, 23, 0), paris(2026, 3, 7, 1, 0), 2000) == [
        ("off-peak", 1000.0, 0.20),
        ("weekend", 1000.0, 0.15),
    ]


def test_spring_forward_day_has_23_hours():
    # 2026-03-29 Paris: 02:00 → 03:00 does not exist. Night = 00–07 (6 real hours) + 23–24 (1 h) = 7 h.
    start, end = paris(2026, 3, 29, 0, 0), paris(2026, 3, 30, 0, 0)
    assert (end - start).total_seconds() == 23 * 3600
    by_period = {}
    for period, energy, _ in split(ALL_DAYS, start, end, 23_000):  # 1 kW all day
        by_period[period] = by_period.get(period, 0) + energy
    assert by_period == {"night": pytest.approx(7000), "day": pytest.approx(16000)}


def test_fall_back_day_has_25_hours():
    # 2026-10-25 Paris: 02:00 → 03:00 happens twice. Night = 00–07 (8 real hours) + 23–24 = 9 h.
    start, end = paris(2026, 10, 25, 0, 0), paris(2026, 10, 26, 0, 0)
    assert (end - start).total_seconds() == 25 * 3600
    slices = split(ALL_DAYS, start, end, 25_000)
    assert slices == [("night", 8000.0, 1.6), ("day", 16000.0, 4.8), ("night", 1000.0, 0.2)]


def test_standing_charge_counts_local_days():
    rules = parse_tariff_rules(PEAK_OFFPEAK)
    march = standing_charge(start=paris(2026, 3, 1), end=paris(2026, 4, 1), rules=rules)
    assert march == pytest.approx(31 * 0.50)


@pytest.mark.django_db
def test_cycle_cost_uses_the_channel_tariff_before_the_site_default():
    Tariff.objects.create(name="site", rules=ALL_DAYS, is_site_default=True)
    special = Tariff.objects.create(name="pump", currency="CHF", rules=PEAK_OFFPEAK)
    channel = make_channel()
    other = make_channel(key="switch:1")
    TariffAssignment.objects.create(tariff=special, channel=channel)
    start = datetime(2026, 3, 2, 21, 30, tzinfo=UTC)  # 22:30 Paris, Monday
    mine = closed_cycle(channel, start=start, minutes=60, energy_wh=1000)
    theirs = closed_cycle(other, start=start, minutes=60, energy_wh=1000)

    recompute_cycle_impacts(cycle_ids=[mine.pk, theirs.pk])

    mine_impact, theirs_impact = CycleImpact.objects.get(cycle=mine), CycleImpact.objects.get(cycle=theirs)
    assert (mine_impact.energy_cost, mine_impact.currency) == (pytest.approx(0.5 * 0.30 + 0.5 * 0.20), "CHF")
    assert (theirs_impact.energy_cost, theirs_impact.currency) == (pytest.approx(0.5 * 0.30 + 0.5 * 0.20), "EUR")
    assert theirs_impact.tariff.name == "site"
