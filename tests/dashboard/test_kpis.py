"""dashboard.kpis: one function for the pages, the same numbers as /api/v1/cycles and /api/v1/impact."""

from datetime import timedelta

import pytest
from django.utils import timezone

from dashboard.kpis import channel_kpis, total_kpis
from tests.api_base import *  # noqa: F403
from tests.dashboard.stories import configured_pump, cycles_at, running_since

pytestmark = pytest.mark.django_db


def iso(moment):
    return moment.isoformat().replace("+00:00", "Z")


def test_kpis_equal_what_the_cycles_and_impact_api_return_for_the_same_range(staff_api):
    now = timezone.now().replace(microsecond=0)
    start, end = now - timedelta(days=2), now
    pump = configured_pump()
    cycles_at(pump, [start + timedelta(hours=h) for h in (1, 5, 9, 30)], minutes=12, energy_wh=160.0)
    cycles_at(pump, [start + timedelta(hours=2)], minutes=1, energy_wh=3.0, noise=True)
    cycles_at(pump, [start - timedelta(hours=3)], minutes=20, energy_wh=300.0)  # before the range

    kpis = channel_kpis(channel_ids=[pump.pk], start=start, end=end, now=now)[pump.pk]

    listed = staff_api.get("/api/v1/cycles", {"channel": pump.pk, "from": iso(start), "to": iso(end)}).json()
    rows = listed["results"]
    assert kpis.cycles == len(rows) == 4
    assert kpis.starts == 5  # every start, the noise cycle included
    assert kpis.runtime_s == pytest.approx(sum(r["duration_s"] for r in rows))
    assert kpis.average_cycle_s == pytest.approx(12 * 60)
    assert kpis.energy_kwh == pytest.approx(sum(r["energy_wh"] for r in rows) / 1000)
    assert kpis.starts_per_day == pytest.approx(5 / 2)

    impact = staff_api.get("/api/v1/impact", {"channel": pump.pk, "period": "year", "from": iso(start), "to": iso(end)})
    totals = impact.json()["results"]
    for name in ("volume_m3", "bod5_kg", "cod_kg", "tss_kg", "avoided_co2e_kg", "electricity_co2e_kg", "net_co2e_kg"):
        assert getattr(kpis, name) == pytest.approx(sum(r[name] for r in totals)), name
    assert kpis.cost == pytest.approx(sum(r["energy_cost"] for r in totals))
    assert kpis.currency == "EUR"
    # 4 cycles × 12 min at 12 m³/h = 9.6 m³; 0.64 kWh → 0.0667 kWh/m³
    assert kpis.volume_m3 == pytest.approx(9.6)
    assert kpis.kwh_per_m3 == pytest.approx(0.64 / 9.6)
    assert kpis.cost == pytest.approx(0.64 * 0.25)


def test_noise_counts_when_asked_for():
    now = timezone.now()
    pump = configured_pump()
    cycles_at(pump, [now - timedelta(hours=2)], minutes=1, energy_wh=3.0, noise=True)
    start = now - timedelta(days=1)
    assert channel_kpis(channel_ids=[pump.pk], start=start, end=now)[pump.pk].cycles == 0
    assert channel_kpis(channel_ids=[pump.pk], start=start, end=now, include_noise=True)[pump.pk].cycles == 1


def test_a_running_cycle_adds_its_elapsed_time_never_zero():
    now = timezone.now()
    pump = configured_pump()
    running_since(pump, now - timedelta(minutes=25))
    kpis = channel_kpis(channel_ids=[pump.pk], start=now - timedelta(hours=1), end=now + timedelta(hours=1), now=now)
    assert kpis[pump.pk].running == 1 and kpis[pump.pk].cycles == 1
    assert kpis[pump.pk].runtime_s == pytest.approx(25 * 60)


def test_a_run_across_the_start_of_the_range_counts_from_the_start():
    now = timezone.now()
    pump = configured_pump()
    running_since(pump, now - timedelta(hours=3))
    kpis = channel_kpis(channel_ids=[pump.pk], start=now - timedelta(hours=1), end=now, now=now)[pump.pk]
    assert kpis.runtime_s == pytest.approx(3600)
    assert kpis.cycles == 0  # it started before the range


def test_figures_without_a_grid_factor_or_tariff_are_missing_not_zero():
    now = timezone.now()
    pump = configured_pump(grid=None, tariff=False)
    cycles_at(pump, [now - timedelta(hours=1)], minutes=10)
    kpis = channel_kpis(channel_ids=[pump.pk], start=now - timedelta(days=1), end=now)[pump.pk]
    assert kpis.volume_m3 == pytest.approx(2.0)
    assert kpis.net_co2e_kg is None and kpis.electricity_co2e_kg is None and kpis.cost is None
    assert kpis.avoided_co2e_kg > 0


def test_a_channel_that_did_not_run_has_zeros_and_no_figures():
    pump = configured_pump()
    now = timezone.now()
    kpis = channel_kpis(channel_ids=[pump.pk], start=now - timedelta(days=1), end=now)[pump.pk]
    assert (kpis.cycles, kpis.runtime_s, kpis.energy_kwh, kpis.volume_m3, kpis.impact_parts) == (0, 0.0, None, None, 0)


def test_site_totals_add_the_channels_up():
    now = timezone.now()
    p1 = configured_pump()
    p2 = configured_pump(name="Pump P2", key="switch:1")
    cycles_at(p1, [now - timedelta(hours=1)], minutes=10, energy_wh=100)
    cycles_at(p2, [now - timedelta(hours=2)], minutes=20, energy_wh=300)
    per_channel = channel_kpis(channel_ids=[p1.pk, p2.pk], start=now - timedelta(days=1), end=now)
    total = total_kpis(per_channel.values())
    assert (total.cycles, total.runtime_s, total.energy_kwh) == (2, 1800.0, pytest.approx(0.4))
    assert total.volume_m3 == pytest.approx(6.0) and total.currency == "EUR"


def test_kpis_of_many_channels_take_a_fixed_number_of_queries(django_assert_max_num_queries):
    now = timezone.now()
    pumps = [configured_pump(name=f"P{n}", key=f"switch:{n}") for n in range(4)]
    for pump in pumps:
        cycles_at(pump, [now - timedelta(hours=1)])
    with django_assert_max_num_queries(3):
        channel_kpis(channel_ids=[p.pk for p in pumps], start=now - timedelta(days=1), end=now)
