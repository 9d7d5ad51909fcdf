"""Property-based: generated requests against our own OpenAPI schema never get a 5xx
or a response that breaks the schema; generated batches never break the batch contract."""

import json
from datetime import timedelta

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from collector.models import IngestToken
from collector.pipeline import ingest_samples
from tests.api_base import *  # noqa: F403
from tests.api_base import api_token
from tests.scenarios import make_channel, sample

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 15


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    # As Django's test client does: a request must not close the connection
    # that holds the test's transaction.
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def credentials(db):
    channel = make_channel(policy="every")
    now = timezone.now()
    ingest_samples([sample(now - timedelta(minutes=m), 100.0 + m, channel=channel) for m in range(5)])
    _, read_raw = api_token()
    token = IngestToken(name="relay")
    ingest_raw = token.set_new_secret()
    token.save()
    return {"Authorization": f"Token {read_raw}", "X-API-Key": ingest_raw}


# Loaded at collection: generating the schema needs no database.
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", get_wsgi_application())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_honours_its_schema(case, credentials):
    case.call_and_validate(headers=credentials, checks=CHECKS)


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
