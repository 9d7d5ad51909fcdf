"""Impact of cycles (§7), computed by hand in each test."""

import pytest

from collector.models import Cycle
from configs.impact import recompute_cycle_impacts
from configs.models import CycleImpact, Tariff
from configs.services import open_new_config_version
from tests.configs.stories import closed_cycle, configured_channel, factor_set
from tests.scenarios import at, make_channel

pytestmark = pytest.mark.django_db

FLAT = {"periods": [{"name": "flat", "days": "all", "start": "00:00", "end": "24:00", "price_per_kwh": 0.20}]}


def test_hand_computed_impact_of_one_cycle():
    factor_set(grid=0.052)
    Tariff.objects.create(name="flat", rules=FLAT, is_site_default=True)
    channel = configured_channel(flow_m3h=12, bod5_mg_l=300, cod_mg_l=600, tss_mg_l=250)
    cycle = closed_cycle(channel, start=at(0), minutes=15, energy_wh=400)

    recompute_cycle_impacts(cycle_ids=[cycle.pk])

    impact = CycleImpact.objects.get(cycle=cycle)
    hours = 15 / 60  # 0.25 h
    volume = 12 * hours  # 3.0 m³
    assert impact.volume_m3 == pytest.approx(3.0) == pytest.approx(volume)
    assert impact.bod5_kg == pytest.approx(300 * 3.0 / 1000)  # 0.9 kg
    assert impact.cod_kg == pytest.approx(600 * 3.0 / 1000)  # 1.8 kg
    assert impact.tss_kg == pytest.approx(250 * 3.0 / 1000)  # 0.75 kg
    assert impact.energy_kwh == pytest.approx(0.4)  # 400 Wh
    assert impact.electricity_co2e_kg == pytest.approx(0.4 * 0.052)  # 0.0208 kg
    assert impact.avoided_ch4_kg == pytest.approx(0.9 * 0.6 * (0.5 - 0.01))  # 0.2646 kg CH4
    assert impact.avoided_co2e_kg == pytest.approx(0.2646 * 27)  # 7.1442 kg
    assert impact.net_co2e_kg == pytest.approx(7.1442 - 0.0208)  # 7.1234 kg
    assert impact.energy_cost == pytest.approx(0.4 * 0.20)  # 0.08 EUR
    assert impact.currency == "EUR"
    assert impact.config_version == channel.config_versions.get()
    assert impact.factor_set.name.startswith("IPCC defaults")


def test_without_grid_factor_electricity_and_net_are_not_configured():
    factor_set(grid=None)
    channel = configured_channel(flow_m3h=12, bod5_mg_l=300)
    cycle = closed_cycle(channel, start=at(0), minutes=15, energy_wh=400)
    recompute_cycle_impacts(cycle_ids=[cycle.pk])
    impact = CycleImpact.objects.get(cycle=cycle)
    assert impact.electricity_co2e_kg is None
    assert impact.net_co2e_kg is None
    assert impact.avoided_co2e_kg == pytest.approx(0.9 * 0.6 * 0.49 * 27)
    assert impact.energy_cost is None  # no tariff either


def test_cod_basis_uses_b0_of_cod_and_ar5_gwp():
    factor_set(grid=0.1, basis="cod", gwp=28.0)
    channel = configured_channel(flow_m3h=12, bod5_mg_l=300, cod_mg_l=600, baseline_treatment="anaerobic_deep")
    cycle = closed_cycle(channel, start=at(0), minutes=15, energy_wh=400)
    recompute_cycle_impacts(cycle_ids=[cycle.pk])
    impact = CycleImpact.objects.get(cycle=cycle)
    ch4 = 1.8 * 0.25 * (0.8 - 0.01)  # COD load × B0(COD) × (MCF anaerobic − MCF wetland) = 0.3555 kg
    assert impact.avoided_ch4_kg == pytest.approx(ch4)
    assert impact.net_co2e_kg == pytest.approx(ch4 * 28 - 0.4 * 0.1)


def test_cycle_spanning_a_version_change_is_split_and_each_part_uses_its_own_config():
    factor_set(grid=0.05)
    channel = make_channel()
    open_new_config_version(channel=channel, effective_from=at(minutes=-600), flow_m3h=10, bod5_mg_l=200)
    cycle = closed_cycle(channel, start=at(minutes=-20), minutes=60, energy_wh=900)
    open_new_config_version(channel=channel, effective_from=at(0), flow_m3h=30, bod5_mg_l=500)

    recompute_cycle_impacts(cycle_ids=[cycle.pk])

    first, second = CycleImpact.objects.filter(cycle=cycle).order_by("starts_at")
    assert (first.starts_at, first.ends_at, second.starts_at, second.ends_at) == (
        at(minutes=-20),
        at(0),
        at(0),
        at(minutes=40),
    )
    # Part 1: 20 min at 10 m³/h = 3.333 m³, 200 mg/L → 0.6667 kg BOD5, 1/3 of 900 Wh.
    assert first.volume_m3 == pytest.approx(10 * 20 / 60)
    assert first.bod5_kg == pytest.approx(200 * (10 * 20 / 60) / 1000)
    assert first.energy_kwh == pytest.approx(0.3)
    # Part 2: 40 min at 30 m³/h = 20 m³, 500 mg/L → 10 kg BOD5, 2/3 of 900 Wh.
    assert second.volume_m3 == pytest.approx(20.0)
    assert second.bod5_kg == pytest.approx(10.0)
    assert second.energy_kwh == pytest.approx(0.6)
    assert second.avoided_ch4_kg == pytest.approx(10.0 * 0.6 * 0.49)
    assert {first.config_version.flow_m3h, second.config_version.flow_m3h} == {10, 30}


def test_running_cycles_have_no_impact_yet():
    channel = configured_channel(flow_m3h=12)
    cycle = Cycle.objects.create(channel=channel, started_at=at(0))
    assert recompute_cycle_impacts(cycle_ids=[cycle.pk]) == 0
