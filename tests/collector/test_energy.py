"""collector.energy: per-period sums and costs; the hourly fast path prices exactly like the per-interval split."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from collector.energy import energy_between, energy_per_bucket, months_of
from collector.models import Channel, Device, EnergyInterval, Transport
from configs.models import Tariff
from configs.tariffs import parse_tariff_rules, split_by_tariff_period

pytestmark = pytest.mark.django_db
PARIS = ZoneInfo("Europe/Paris")
ON_THE_HOUR = {
    "periods": [
        {"name": "peak", "days": "weekday", "start": "07:00", "end": "23:00", "price_per_kwh": 0.30},
        {"name": "off-peak", "days": "weekday", "start": "23:00", "end": "07:00", "price_per_kwh": 0.20},
        {"name": "weekend", "days": "weekend", "start": "00:00", "end": "24:00", "price_per_kwh": 0.15},
    ]
}
HALF_PAST = {
    "periods": [
        {"name": "day", "days": "all", "start": "06:30", "end": "22:30", "price_per_kwh": 0.30},
        {"name": "night", "days": "all", "start": "22:30", "end": "06:30", "price_per_kwh": 0.20},
    ]
}


def meter():
    device = Device.objects.create(device_id="shellypro3em-0000aa", transport=Transport.RPC_POLL)
    return device, Channel.objects.create(device=device, key="em:0:total", policy="every")


def interval(device, channel, start, minutes, wh):
    return EnergyInterval.objects.create(
        device=device, channel=channel, start=start, end=start + timedelta(minutes=minutes), energy_wh=wh
    )


def expected_lines(intervals, rules):
    """What splitting every interval on its own gives: {period: Wh}."""
    by_period = defaultdict(float)
    for item in intervals:
        for piece in split_by_tariff_period(start=item.start, end=item.end, energy_wh=item.energy_wh, rules=rules):
            by_period[piece.period] += piece.energy_wh
    return dict(by_period)


def lines_of(summary):
    return {line["period"]: line["energy_kwh"] * 1000 for line in summary["cost"]["by_period"]}


@pytest.mark.parametrize("rules", [ON_THE_HOUR, HALF_PAST], ids=["boundaries-on-the-hour", "half-past"])
def test_costs_equal_the_per_interval_split(rules):
    Tariff.objects.create(name="t", rules=rules, is_site_default=True)
    device, channel = meter()
    first = datetime(2026, 3, 6, 5, 0, tzinfo=PARIS)  # a Friday: weekday, then the weekend from midnight
    made = [interval(device, channel, first + timedelta(minutes=n), 1, 10.0 + n % 7) for n in range(0, 20 * 60, 3)]
    made += [interval(device, channel, first + timedelta(minutes=90 + 60 * n), 60, 400.0) for n in range(3)]  # 06:30–…

    summary = energy_between(
        device=device, start=first.astimezone(UTC), end=(first + timedelta(days=1)).astimezone(UTC)
    )

    expected = expected_lines(made, parse_tariff_rules(rules))
    assert lines_of(summary).keys() == expected.keys()
    for period, wh in expected.items():
        assert lines_of(summary)[period] == pytest.approx(wh, abs=1e-3), period
    assert sum(lines_of(summary).values()) == pytest.approx(sum(i.energy_wh for i in made))


def test_the_repeated_hour_of_a_dst_change_is_priced_in_full():
    Tariff.objects.create(name="t", rules=ON_THE_HOUR, is_site_default=True)
    device, channel = meter()
    # 2026-10-25: Paris goes back from 03:00 CEST to 02:00 CET; 00:00–04:00 local is 5 hours.
    start = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)
    made = [interval(device, channel, start + timedelta(minutes=n), 1, 1.0) for n in range(5 * 60)]
    summary = energy_between(device=device, start=start, end=start + timedelta(hours=5))
    assert lines_of(summary) == {"weekend": pytest.approx(len(made))}


def test_unpriced_energy_is_reported_when_no_tariff_is_valid_yet():
    Tariff.objects.create(
        name="from March", rules=ON_THE_HOUR, is_site_default=True, valid_from=datetime(2026, 3, 1, tzinfo=UTC)
    )
    device, channel = meter()
    interval(device, channel, datetime(2026, 2, 28, 10, 0, tzinfo=UTC), 1, 50.0)
    interval(device, channel, datetime(2026, 3, 2, 10, 0, tzinfo=UTC), 1, 70.0)
    summary = energy_between(
        device=device, start=datetime(2026, 2, 27, tzinfo=UTC), end=datetime(2026, 3, 5, tzinfo=UTC)
    )
    assert summary["cost"]["unpriced_kwh"] == pytest.approx(0.05)
    assert sum(lines_of(summary).values()) == pytest.approx(70.0)


def test_energy_per_day_and_month_in_local_time():
    device, channel = meter()
    late = datetime(2026, 3, 31, 23, 30, tzinfo=PARIS)  # local March 31st, UTC March 31st 21:30
    interval(device, channel, late, 1, 100.0)
    interval(device, channel, late + timedelta(hours=1), 1, 40.0)  # local April 1st
    days = energy_per_bucket(
        device=device, bucket="day", start=datetime(2026, 3, 30, tzinfo=UTC), end=datetime(2026, 4, 3, tzinfo=UTC)
    )
    assert [(row["start"].isoformat(), row["total_kwh"]) for row in days] == [
        ("2026-03-31", pytest.approx(0.1)),
        ("2026-04-01", pytest.approx(0.04)),
    ]
    months = energy_per_bucket(
        device=device, bucket="month", start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 5, 1, tzinfo=UTC)
    )
    assert [row["start"].isoformat() for row in months] == ["2026-03-01", "2026-04-01"]
    assert months_of(days) == months  # the energy page's one query gives both charts
