"""/api/v1 cycles, impact, config versions, tariffs and pump models."""

import pytest

from configs.impact import recompute_cycle_impacts
from configs.models import ChannelConfigVersion, PumpModel, Tariff
from configs.services import open_new_config_version
from tests.api_base import *  # noqa: F403
from tests.configs.stories import closed_cycle, configured_channel, factor_set
from tests.scenarios import at

pytestmark = pytest.mark.django_db

FLAT = {"periods": [{"name": "flat", "days": "all", "start": "00:00", "end": "24:00", "price_per_kwh": 0.20}]}


@pytest.fixture
def plant():
    factor_set(grid=0.052)
    Tariff.objects.create(name="flat", rules=FLAT, is_site_default=True)
    channel = configured_channel(flow_m3h=12, bod5_mg_l=300, cod_mg_l=600, tss_mg_l=250)
    cycles = [
        closed_cycle(channel, start=at(0), minutes=15, energy_wh=400),
        closed_cycle(channel, start=at(minutes=60 * 24 * 40), minutes=15, energy_wh=400),  # next month
        closed_cycle(channel, start=at(minutes=60), minutes=1, energy_wh=5),
    ]
    cycles[2].is_noise = True
    cycles[2].save()
    recompute_cycle_impacts(cycle_ids=[c.pk for c in cycles])
    return channel


def test_cycles_list_has_impact_and_cost_inline_and_hides_noise(reader_api, plant):
    response = reader_api.get("/api/v1/cycles", {"channel": plant.pk})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["started_at"][:10] for r in results] == ["2026-04-11", "2026-03-02"]
    impact = results[1]["impact"]
    assert impact["volume_m3"] == pytest.approx(3.0)
    assert impact["net_co2e_kg"] == pytest.approx(0.9 * 0.6 * 0.49 * 27 - 0.4 * 0.052)
    assert (impact["energy_cost"], impact["currency"]) == (pytest.approx(0.08), "EUR")
    assert results[1]["impact_parts"][0]["config_version"] == plant.config_versions.get().pk

    with_noise = reader_api.get("/api/v1/cycles/", {"channel": plant.pk, "include_noise": "true"}).json()
    assert len(with_noise["results"]) == 3
    in_range = reader_api.get("/api/v1/cycles/", {"from": at(0).isoformat(), "to": at(minutes=30).isoformat()})
    assert len(in_range.json()["results"]) == 1


def test_cycles_csv(staff_api, plant):
    response = staff_api.get("/api/v1/cycles/", {"format": "csv"})
    assert response.status_code == 200
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0].startswith("id,channel,device_id,started_at,ended_at,duration_s,energy_wh")
    assert len(lines) == 1 + 2
    assert ",EUR" in lines[1]


def test_bad_filters_answer_in_the_error_shape(reader_api):
    response = reader_api.get("/api/v1/cycles", {"from": "yesterday"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert reader_api.get("/api/v1/impact", {"period": "decade"}).status_code == 400


def test_impact_totals_per_channel_and_month(reader_api, plant):
    body = reader_api.get("/api/v1/impact", {"period": "month"}).json()
    assert body["period"] == "month" and body["timezone"] == "Europe/Paris"
    march, april = body["results"]
    assert (march["channel"], march["cycles"]) == (plant.pk, 1)  # the noise cycle is left out
    assert march["period_start"].startswith("2026-03-01T00:00:00+01:00")
    assert march["volume_m3"] == pytest.approx(3.0)
    assert march["running_hours"] == pytest.approx(0.25)
    assert april["energy_kwh"] == pytest.approx(0.4)
    with_noise = reader_api.get("/api/v1/impact", {"period": "year", "include_noise": "1"}).json()
    assert with_noise["results"][0]["cycles"] == 3


def test_config_versions_history_and_creation_need_write_permission(reader_api, writer_api, plant):
    url = f"/api/v1/channels/{plant.pk}/config-versions"
    history = reader_api.get(url)
    assert history.status_code == 200 and len(history.json()) == 1
    assert reader_api.post(url, {"flow_m3h": 20}, format="json").status_code == 403

    created = writer_api.post(url, {"flow_m3h": 20, "effective_from": at(minutes=5).isoformat()}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["effective_to"] is None
    assert ChannelConfigVersion.objects.get(channel=plant, effective_to=at(minutes=5)).flow_m3h == 12

    overlapping = writer_api.post(url, {"flow_m3h": 30, "effective_from": at(0).isoformat()}, format="json")
    assert overlapping.status_code == 409
    assert "may not overlap" in overlapping.json()["error"]["message"]


def test_tariffs_pump_models_and_factor_sets_are_readable(reader_api, anonymous_api, plant):
    PumpModel.objects.create(name="DRO 50", maker="Acme", nominal_flow_m3h=14.5)
    assert reader_api.get("/api/v1/tariffs").json()[0]["rules"] == FLAT
    assert reader_api.get("/api/v1/pump-models").json()[0]["nominal_flow_m3h"] == 14.5
    factors = reader_api.get("/api/v1/emission-factor-sets").json()[0]
    assert factors["gwp_ch4_source"].startswith("IPCC AR6")
    assert anonymous_api.get("/api/v1/tariffs").status_code == 401


def test_endpoints_are_in_the_openapi_schema(staff_api):
    schema = staff_api.get("/api/v1/schema/", {"format": "json"}).json()
    for path in (
        "/api/v1/cycles",
        "/api/v1/impact",
        "/api/v1/channels/{channel_id}/config-versions",
        "/api/v1/tariffs",
        "/api/v1/pump-models",
    ):
        assert any(p.rstrip("/") == path for p in schema["paths"]), path


def test_new_version_through_the_api_is_the_same_rule_as_admin(writer_api, plant):
    open_new_config_version(channel=plant, effective_from=at(minutes=10), flow_m3h=15)
    response = writer_api.post(
        f"/api/v1/channels/{plant.pk}/config-versions", {"flow_m3h": 1, "effective_from": at(minutes=9).isoformat()}
    )
    assert response.status_code == 409


@pytest.mark.parametrize("path", ["/api/v1/cycles/", "/api/v1/impact/"])
def test_a_channel_id_beyond_the_database_range_is_a_clear_400(reader_api, path):
    response = reader_api.get(path, {"channel": "99999999999999999999"})
    assert response.status_code == 400
    assert "channel" in response.json()["error"]["details"]


@pytest.mark.parametrize("field", ["flow_m3h", "bod5_mg_l", "cod_mg_l", "tss_mg_l"])
def test_an_absurd_config_value_is_refused_by_the_api_the_service_and_the_model(writer_api, plant, field):
    from django.core.exceptions import ValidationError

    from configs.services import ConfigVersionError

    before = ChannelConfigVersion.objects.count()
    values = {"flow_m3h": 12, field: 1e308}
    response = writer_api.post(
        f"/api/v1/channels/{plant.pk}/config-versions",
        {**values, "effective_from": at(minutes=90).isoformat()},
        format="json",
    )
    assert response.status_code == 400 and field in response.json()["error"]["details"]
    with pytest.raises(ConfigVersionError):
        open_new_config_version(channel=plant, effective_from=at(minutes=90), **values)
    version = ChannelConfigVersion(channel=plant, effective_from=at(minutes=90), **values)
    with pytest.raises(ValidationError) as refused:
        version.full_clean()
    assert field in refused.value.message_dict
    assert ChannelConfigVersion.objects.count() == before
    assert writer_api.get("/api/v1/cycles/").status_code == 200
    assert writer_api.get("/api/v1/impact/").status_code == 200
