"""Property-based: generated requests against our own OpenAPI schema never get a 5xx
or a response that breaks the schema; generated batches never break the batch contract."""

import json
from datetime import timedelta

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.models import Cycle, IngestToken
from collector.pipeline import ingest_samples
from collector.validation import CURRENT_MAX_A, ENERGY_MAX_WH, POWER_MAX_W, VOLTAGE_MAX_V
from configs.models import (
    MAX_CONCENTRATION_MG_L,
    MAX_FLOW_M3H,
    ChannelConfigVersion,
    PumpModel,
)
from shelly_site.asgi import application
from tests.api_base import *  # noqa: F403
from tests.api_base import api_token
from tests.scenarios import make_channel, sample

# Per operation and per token: bounded so the suite stays fast.
EXAMPLES_PER_OPERATION = 8
# A device id at its pattern's limit, names at their columns' length with
# characters outside ASCII: what a plant can legitimately hold.
LONG_DEVICE_ID = "shellypro4pm-" + "a" * 51
LONG_NAME = ("Pompe relevage é€ " * 20)[:200]


def _awkward_but_valid_data():
    now = timezone.now()
    channel = make_channel(device_id=LONG_DEVICE_ID, key="em:999:total", name=LONG_NAME, policy="every")
    channel.device.name = LONG_NAME
    channel.device.save(update_fields=["name"])
    other = make_channel(device_id=LONG_DEVICE_ID, key="switch:999", name=LONG_NAME, policy="every")
    ingest_samples(
        [
            sample(
                now - timedelta(minutes=m),
                POWER_MAX_W,
                channel=channel,
                v=VOLTAGE_MAX_V,
                i=CURRENT_MAX_A,
                e=ENERGY_MAX_WH - 10 + m,
            )
            for m in range(10, 0, -1)
        ]
        + [sample(now - timedelta(minutes=m), -POWER_MAX_W, channel=other, v=0.0, i=0.0, e=0.0) for m in range(5)]
    )
    # One finished cycle with extreme figures, one still running.
    Cycle.objects.create(
        channel=channel,
        started_at=now - timedelta(days=400),
        ended_at=now - timedelta(days=399),
        duration_s=86400.0,
        energy_wh=ENERGY_MAX_WH,
        energy_method=Cycle.EnergyMethod.COUNTER,
        avg_power_w=POWER_MAX_W,
        peak_power_w=POWER_MAX_W,
    )
    Cycle.objects.create(channel=channel, started_at=now - timedelta(hours=2), ended_at=None, peak_power_w=POWER_MAX_W)
    pump = PumpModel.objects.create(name=LONG_NAME, maker=LONG_NAME, nominal_power_w=POWER_MAX_W)
    ChannelConfigVersion.objects.create(
        channel=channel,
        effective_from=now - timedelta(days=500),
        pump_model=pump,
        flow_m3h=MAX_FLOW_M3H,
        bod5_mg_l=MAX_CONCENTRATION_MG_L,
        cod_mg_l=MAX_CONCENTRATION_MG_L,
        tss_mg_l=MAX_CONCENTRATION_MG_L,
        note=LONG_NAME,
        created_by=None,
    )


@pytest.fixture(params=["read-only", "can-write"])
def credentials(request, transactional_db):
    # Transactional: the ASGI application serves each request on its own
    # thread (and connection), which must see the data committed.
    _awkward_but_valid_data()
    _, api_raw = api_token(can_write=request.param == "can-write")
    token = IngestToken(name="relay")
    ingest_raw = token.set_new_secret()
    token.save()
    return {"Authorization": f"Token {api_raw}", "X-API-Key": ingest_raw}


# Loaded at collection, through the ASGI application production serves:
# generating the schema needs no database.
# Every check, with two expectations widened: a batch over its item limit is
# refused with 413 (the schema says so), and a schema-valid request can still
# break a rule no schema states (a channel id that does not exist, `to`
# before `from`, a notifier that is gone): that is a 400 with details.
REJECTIONS = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "negative_data_rejection": {"expected-statuses": REJECTIONS},
            "positive_data_acceptance": {"expected-statuses": ["2XX", "3XX", 400, 401, 403, 404, 409, 429]},
        }
    }
)
# Collection comes before pytest-django's test environment adds the test
# client's host to ALLOWED_HOSTS (production settings on the PostgreSQL half).
with override_settings(ALLOWED_HOSTS=[*django_settings.ALLOWED_HOSTS, "testserver"]):
    schema = schemathesis.openapi.from_asgi("/api/v1/schema/?format=json", application, config=CONFIG)


# Derandomized: CI must fail on what changed, not on the draw of the day; the
# examples still cover every operation and both credentials.
@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_honours_its_schema(case, credentials):
    # Every check schemathesis has (no `checks=`): server errors, status
    # codes, content types, response schemas, headers, auth enforcement…
    # A cursor is opaque: only the one from a `next` link is valid, which no
    # schema can state (test_api_read checks forged cursors get a 400).
    if isinstance(case.query, dict):
        case.query.pop("cursor", None)
    case.call_and_validate(headers=credentials)


# -- batch bodies built from almost-valid items --------------------------------------------

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
near_valid_reading = st.fixed_dictionaries(
    {
        "device_id": st.sampled_from(["shellypro4pm-aabbccddeeff", "shellypro3em-001122334455", "", "x" * 101]),
        "channel": st.sampled_from(["switch:0", "em:0:a", "em:0:total", "em1:2", "relay:0", "switch:"]) | JSON_SCALARS,
        "ts": st.floats(min_value=-1e12, max_value=2e10)
        | st.sampled_from(["2026-03-02T08:00:00Z", "2026-02-30T00:00:00", "now", ""]),
        "apower_w": JSON_SCALARS,
    },
    optional={
        "voltage_v": JSON_SCALARS,
        "current_a": JSON_SCALARS,
        "energy_total_wh": JSON_SCALARS,
        "idempotency_key": JSON_SCALARS,
    },
)
near_valid_frame = st.fixed_dictionaries(
    {
        "device_id": st.just("shellypro4pm-aabbccddeeff"),
        "frame": st.fixed_dictionaries(
            {
                "method": st.sampled_from(["NotifyStatus", "NotifyFullStatus", "NotifyEvent", 7]),
                "params": st.dictionaries(
                    st.sampled_from(["ts", "switch:0", "em:0", "bogus:1", "sys"]),
                    JSON_SCALARS
                    | st.dictionaries(st.sampled_from(["apower", "voltage", "aenergy", "a_act_power"]), JSON_SCALARS),
                )
                | JSON_SCALARS,
            }
        ),
    },
    optional={"received_at": JSON_SCALARS},
)
batch_items = st.lists(near_valid_reading | near_valid_frame | JSON_SCALARS, max_size=15)


@given(items=batch_items)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_batch_gets_a_per_item_answer(ingest_api, items):
    # json.dumps, not the client's encoder: NaN and Infinity must reach the server too.
    body = json.dumps({"messages": items})
    response = ingest_api.post("/api/v1/ingest/batch", body, content_type="application/json")
    assert response.status_code == 200, response.content
    body = response.json()
    rejected = [r["index"] for r in body["rejected"]]
    assert rejected == sorted(set(rejected)) and all(0 <= i < len(items) for i in rejected)
    assert body["accepted"] >= 0 and body["duplicates"] >= 0


def test_the_schema_states_the_limits_the_server_enforces(staff_api):
    document = staff_api.get("/api/v1/schema/", {"format": "json"}).json()
    paths = document["paths"]
    series = {p["name"]: p["schema"] for p in paths["/api/v1/series/"]["get"]["parameters"]}
    assert series["channel"]["minimum"] == 1 and series["bucket"]["minimum"] == 1
    versions = next(ops for path, ops in paths.items() if path.endswith("/config-versions/") and "post" in ops)
    assert "application/json" in versions["post"]["responses"]["409"]["content"]
    assert document["components"]["schemas"]["ConfigVersion"]["properties"]["created_by"]["nullable"] is True
    assert "413" in paths["/api/v1/ingest/batch"]["post"]["responses"]
    events = {p["name"]: p for p in paths["/api/v1/alerts/events/"]["get"]["parameters"]}
    assert events["rule"]["schema"]["minimum"] == 1 and events["channel"]["schema"]["minimum"] == 1
    assert events["page_size"]["schema"]["minimum"] == 1 and events["page_size"]["schema"]["maximum"] == 5000
    assert events["rule"]["allowEmptyValue"] is True  # `?rule=` means no filter
    assert list(paths["/api/v1/alerts/rules/"]["post"]["requestBody"]["content"]) == ["application/json"]


@pytest.mark.parametrize(
    "query",
    [{"page_size": "0"}, {"page_size": "x"}, {"page_size": "5001"}, {"notified": "maybe"}, {"rule": "0"}],
)
def test_a_value_the_schema_refuses_is_a_400_not_ignored(reader_api, query):
    response = reader_api.get("/api/v1/alerts/events/", query)
    assert response.status_code == 400 and set(query) <= set(response.json()["error"]["details"])


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/v1/energy-intervals/", "channel"),
        ("/api/v1/power-logs/", "channel"),
        ("/api/v1/series/", "channel"),
        ("/api/v1/cycles/", "channel"),
        ("/api/v1/alerts/events/", "rule"),
        ("/api/v1/power-logs/", "page_size"),
    ],
)
@pytest.mark.parametrize("spelling", ["90.0", " 90", "+90", "9_0", "90e0"])
def test_an_integer_parameter_takes_digits_only(reader_api, path, name, spelling):
    # Django and DRF read "90.0" as 90: a client the schema told "integer"
    # would get channel 90's rows for a value it never meant as an id.
    response = reader_api.get(path, {name: spelling})
    assert response.status_code == 400, response.content
    assert name in response.json()["error"]["details"]


@pytest.mark.parametrize("query", [{"period": ""}, {"channel": ""}, {"min_duration_s": ["1", "2"]}])
def test_cycles_and_impact_refuse_empty_or_repeated_values(reader_api, query):
    path = "/api/v1/cycles/" if "min_duration_s" in query else "/api/v1/impact/"
    response = reader_api.get(path, query)
    assert response.status_code == 400 and set(query) <= set(response.json()["error"]["details"])


@pytest.mark.parametrize("path", ["/api/v1/power-logs/", "/api/v1/cycles/"])
def test_a_malformed_page_size_is_a_400_in_csv_too(reader_api, path):
    # The CSV is one stream (no pages), but it must refuse what the JSON list refuses.
    response = reader_api.get(path, {"format": "csv", "page_size": "null"})
    assert response.status_code == 400 and "page_size" in response.json()["error"]["details"]
