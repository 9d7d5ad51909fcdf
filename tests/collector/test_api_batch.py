"""HTTP batch ingest (§4.2): validation per item, idempotency, limits, parity with the WebSocket."""

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.utils import timezone

from collector.models import Channel, Device, IngestToken, PowerLog
from tests.api_base import *  # noqa: F403
from tests.api_base import api_token

URL = "/api/v1/ingest/batch"
DEVICE = "shellypro4pm-aabbccddeeff"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "shelly"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def auto_register(settings):
    settings.COLLECTOR_AUTO_REGISTER = True


def reading(ts, power, *, device_id=DEVICE, channel="switch:0", **extra):
    return {
        "device_id": device_id,
        "channel": channel,
        "ts": ts.isoformat() if isinstance(ts, datetime) else ts,
        "apower_w": power,
        "voltage_v": 230.0,
        "current_a": round(power / 230, 3) if isinstance(power, float | int) else None,
        "energy_total_wh": 1000.0,
        **extra,
    }


def minutes_ago(minutes, *, base=None):
    base = base or timezone.now().replace(microsecond=0)
    return base - timedelta(minutes=minutes)


def push(client, messages, **kwargs):
    return client.post(URL, {"messages": messages}, format="json", **kwargs)


def every_channel(device_id=DEVICE, key="switch:0"):
    device, _ = Device.objects.get_or_create(device_id=device_id)
    return Channel.objects.create(device=device, key=key, policy="every")


# -- authentication -------------------------------------------------------------------


def test_batch_without_key_is_401_in_the_error_shape(anonymous_api):
    response = push(anonymous_api, [])
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_batch_with_wrong_key_is_401(anonymous_api):
    response = push(anonymous_api, [], HTTP_X_API_KEY="ing_wrong")
    assert response.status_code == 401
    assert set(response.json()["error"]) >= {"code", "message"}


def test_batch_with_an_api_token_is_401(anonymous_api, db):
    _, raw = api_token(can_write=True)
    assert push(anonymous_api, [], HTTP_AUTHORIZATION=f"Token {raw}").status_code == 401
    assert push(anonymous_api, [], HTTP_X_API_KEY=raw).status_code == 401


def test_disabled_ingest_key_is_401(ingest_api):
    IngestToken.objects.update(enabled=False)
    assert push(ingest_api, []).status_code == 401


def test_alias_path_takes_batches(ingest_api):
    every_channel()
    response = ingest_api.post("/api/ingest/batch", {"messages": [reading(minutes_ago(1), 100.0)]}, format="json")
    assert response.status_code == 200
    assert response.json()["accepted"] == 1


# -- validation --------------------------------------------------------------------


def test_mixed_batch_stores_valid_items_and_lists_invalid_ones_by_index(ingest_api):
    channel = every_channel()
    t = minutes_ago(10)
    messages = [
        reading(t, 100.0),
        reading(t + timedelta(seconds=10), "lots"),  # wrong type
        reading(t + timedelta(seconds=20), 120.0, channel="relay:0"),  # bad channel key
        reading("yesterday-ish", 130.0),  # unparseable ts
        reading(timezone.now() + timedelta(hours=1), 140.0),  # future
        "not an object",
        {"device_id": DEVICE, "channel": "switch:0", "ts": t.timestamp() + 30},  # no power
        reading(int(t.timestamp()) + 40, 150.0),  # epoch seconds are fine
        reading(t + timedelta(seconds=50), 160.0, device_id="bad id with spaces"),
        {"device_id": DEVICE, "frame": "not an object"},
        reading(t + timedelta(seconds=60), 170.0, voltage_v=True),  # bool is not a number
    ]
    response = push(ingest_api, messages)
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 2 and body["duplicates"] == 0
    assert [r["index"] for r in body["rejected"]] == [1, 2, 3, 4, 5, 6, 8, 9, 10]
    assert all(isinstance(r["error"], str) and r["error"] for r in body["rejected"])
    assert list(PowerLog.objects.filter(channel=channel).values_list("apower_w", flat=True)) == [100.0, 150.0]


def test_non_finite_numbers_reject_only_their_item(ingest_api):
    every_channel()
    t = minutes_ago(5)
    # json.dumps writes NaN and Infinity literals, as a careless relay would.
    messages = [
        reading(t, 100.0),
        reading(t + timedelta(seconds=1), float("nan")),
        reading(t + timedelta(seconds=2), 1.0, voltage_v=float("inf")),
    ]
    body = json.dumps({"messages": messages})
    assert "NaN" in body and "Infinity" in body
    response = ingest_api.post(URL, body, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["accepted"] == 1
    assert [r["index"] for r in response.json()["rejected"]] == [1, 2]


def test_malformed_json_is_400_in_the_error_shape(ingest_api):
    response = ingest_api.post(URL, '{"messages": [', content_type="application/json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "parse_error" and error["message"]
    assert "Traceback" not in response.content.decode()


@pytest.mark.parametrize("body", [[], {"messages": {"a": 1}}, {"items": []}, "text"])
def test_body_without_a_message_list_is_400(ingest_api, body):
    response = ingest_api.post(URL, json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_1001_items_is_413_and_stores_nothing(ingest_api):
    every_channel()
    t = minutes_ago(60)
    messages = [reading(t + timedelta(seconds=i), 100.0) for i in range(1001)]
    response = push(ingest_api, messages)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert PowerLog.objects.count() == 0


def test_1000_items_are_taken(ingest_api):
    every_channel()
    t = minutes_ago(60)
    response = push(ingest_api, [reading(t + timedelta(seconds=i), 100.0 + i) for i in range(1000)])
    assert response.status_code == 200
    assert response.json()["accepted"] == 1000
    assert PowerLog.objects.count() == 1000


def test_body_over_the_byte_limit_is_413_before_parsing(ingest_api, settings):
    settings.INGEST_BATCH_MAX_BYTES = 1000
    response = ingest_api.post(URL, '{"messages": [' + " " * 2000 + "]}", content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_key_bound_to_a_device_only_pushes_that_device(ingest_api):
    bound = every_channel()
    every_channel(device_id="shellypro4pm-001122334455")
    IngestToken.objects.update(device=bound.device)
    t = minutes_ago(5)
    response = push(ingest_api, [reading(t, 100.0), reading(t, 100.0, device_id="shellypro4pm-001122334455")])
    assert response.json()["accepted"] == 1
    assert response.json()["rejected"] == [{"index": 1, "error": f"device_id: this key may only push {DEVICE}"}]
    assert list(PowerLog.objects.values_list("device__device_id", flat=True)) == [DEVICE]


def test_unknown_device_is_rejected_per_item_when_auto_register_is_off(ingest_api, settings):
    settings.COLLECTOR_AUTO_REGISTER = False
    every_channel()
    t = minutes_ago(5)
    response = push(ingest_api, [reading(t, 100.0, device_id="shellypro4pm-unknown"), reading(t, 100.0)])
    assert response.json()["accepted"] == 1
    assert [r["index"] for r in response.json()["rejected"]] == [0]
    assert not Device.objects.filter(device_id="shellypro4pm-unknown").exists()


# -- idempotency and the pipeline -----------------------------------------------------


def test_same_batch_twice_writes_no_new_rows(ingest_api):
    every_channel()
    t = minutes_ago(30)
    messages = [reading(t + timedelta(seconds=10 * i), 100.0 + i) for i in range(50)]
    first = push(ingest_api, messages).json()
    rows_after_first = PowerLog.objects.count()
    second = push(ingest_api, messages).json()
    assert (first["accepted"], first["duplicates"]) == (50, 0)
    assert (second["accepted"], second["duplicates"]) == (0, 50)
    assert rows_after_first == PowerLog.objects.count() == 50


def test_items_out_of_order_are_sorted_per_channel(ingest_api):
    channel = Channel.objects.create(device=Device.objects.create(device_id=DEVICE), key="switch:0", policy="events")
    # Minute 1 of a 5-minute slot: no clock-aligned `sample` row falls inside the run.
    t = minutes_ago(30).replace(second=0)
    t -= timedelta(minutes=t.minute % 5 - 1)
    # Newest first on purpose: the pipeline sorts by time, so the start is the earliest.
    messages = [reading(t + timedelta(minutes=m), p) for m, p in [(9, 0.0), (3, 0.0), (1, 495.0), (0, 500.0)]]
    response = push(ingest_api, messages)
    assert response.json()["accepted"] == 4
    assert list(PowerLog.objects.filter(channel=channel).values_list("reason", "timestamp")) == [
        ("start", t),
        ("stop", t + timedelta(minutes=3)),
    ]


def test_client_idempotency_key_is_stored_scoped_to_its_device_and_channel(ingest_api):
    every_channel()
    push(ingest_api, [reading(minutes_ago(3), 50.0, idempotency_key="relay-7:42")])
    assert PowerLog.objects.get().idempotency_key == "shellypro4pm-aabbccddeeff|switch:0|relay-7:42"


def test_auto_registered_device_gets_batch_transport_and_last_seen(ingest_api):
    push(ingest_api, [reading(minutes_ago(3), 50.0, device_id="shellypro4pm-newone")])
    device = Device.objects.get(device_id="shellypro4pm-newone")
    assert device.transport == "batch" and device.last_seen is not None


# -- raw frames: the same rows as over the WebSocket ------------------------------------


def _status_frames(src, t0):
    status = json.loads((FIXTURES / "aioshelly_pro4pm_SPSW-004PE16EU_fw1.0.3_full.json").read_text())["status"]
    status["switch:0"].update(apower=480.0, voltage=229.0, current=2.1)
    status["switch:0"]["aenergy"]["total"] = 5000.0
    partial = [
        (1, {"switch:0": {"id": 0, "apower": 10.0}}),
        (61, {"switch:0": {"id": 0, "apower": 560.0}}),
        (75, {"switch:0": {"id": 0, "aenergy": {"total": 5012.5}}}),
        (130, {"switch:0": {"id": 0, "apower": 0.0, "current": 0.0}}),
        (200, {"switch:0": {"id": 0, "apower": 0.5}}),
    ]
    frames = [{"src": src, "dst": "relay", "method": "NotifyFullStatus", "params": {"ts": t0, **status}}]
    for delay, params in partial:
        frames.append({"src": src, "dst": "relay", "method": "NotifyStatus", "params": {"ts": t0 + delay, **params}})
    return frames


def _rows_of(device_id):
    return [
        (r.channel.key, r.timestamp, r.reason, r.apower_w, r.voltage_v, r.current_a, r.energy_total_wh)
        for r in PowerLog.objects.filter(device__device_id=device_id).select_related("channel").order_by("id")
    ]


@pytest.mark.django_db(transaction=True)
async def test_raw_frames_in_a_batch_give_the_same_rows_as_the_websocket(settings):
    from shelly_site.asgi import application

    settings.COLLECTOR_AUTO_REGISTER = True
    # Device time within the clock-skew window, so both paths use it; and the
    # run's last active sample (t0 + 61) recent enough that the consumer's
    # wall-clock timer cannot close the run before the frame that ends it.
    t0 = round(time.time() - 100, 2)
    # The events policy also writes a "sample" row on minutes divisible by
    # sample_minutes (5): keep the frame at t0 + 75 off those minutes, or the
    # expected rows depend on the wall clock.
    if int((t0 + 75) // 60) % 5 == 0:
        t0 -= 60
    ws_device, batch_device = "shellypro4pm-aaaaaaaaaaaa", "shellypro4pm-bbbbbbbbbbbb"

    @sync_to_async
    def new_key():
        token = IngestToken(name="site")
        raw = token.set_new_secret()
        token.save()
        return raw

    raw = await new_key()
    try:
        communicator = WebsocketCommunicator(application, f"/ws/shelly/{raw}/")
        assert (await communicator.connect())[0]
        await communicator.receive_from()
        await communicator.receive_from()
        for frame in _status_frames(ws_device, t0):
            await communicator.send_to(text_data=json.dumps(frame))
        await communicator.send_to(text_data=json.dumps({"id": 900, "src": ws_device, "method": "Shelly.Ping"}))
        await communicator.receive_from(timeout=5)
        await communicator.disconnect()

        @sync_to_async
        def push_batch():
            from rest_framework.test import APIClient

            client = APIClient()
            received_at = datetime.now(tz=UTC).isoformat()
            messages = [
                {"device_id": batch_device, "received_at": received_at, "frame": f}
                for f in _status_frames(batch_device, t0)
            ]
            return client.post(URL, {"messages": messages}, format="json", HTTP_X_API_KEY=raw).json()

        result = await push_batch()
        assert result["rejected"] == []
        ws_rows, batch_rows = await sync_to_async(_rows_of)(ws_device), await sync_to_async(_rows_of)(batch_device)
        assert [r[2] for r in batch_rows] == ["start", "delta", "stop"]
        assert batch_rows == ws_rows
    finally:
        await sync_to_async(connections.close_all)()


# -- hostile and careless clients (issue 9) ------------------------------------------------


def bound_client(device_id):
    from rest_framework.test import APIClient

    token = IngestToken(name=f"bound to {device_id}")
    token.device, _ = Device.objects.get_or_create(device_id=device_id)
    raw = token.set_new_secret()
    token.save()
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    return client


def test_a_batch_over_djangos_upload_limit_but_within_ours_is_accepted(ingest_api, settings):
    every_channel()
    t0 = minutes_ago(30)
    # ~3 MiB: over Django's default 2.5 MiB, under INGEST_BATCH_MAX_BYTES (8 MiB).
    messages = [reading(t0 + timedelta(seconds=i), 50.0, note="x" * 3000) for i in range(1000)]
    response = push(ingest_api, messages)
    assert response.status_code == 200, response.content[:300]
    assert response.json()["accepted"] == 1000 and PowerLog.objects.count() == 1000


def test_a_batch_over_ingest_batch_max_bytes_is_413_and_stores_nothing(ingest_api, settings):
    every_channel()
    messages = [reading(minutes_ago(30), 50.0, note="x" * 9000) for _ in range(1000)]
    response = push(ingest_api, messages)
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"
    assert PowerLog.objects.count() == 0


def test_a_client_key_of_one_device_never_suppresses_another_devices_reading(db):
    other = "shellypro4pm-001122334455"
    every_channel(DEVICE)
    every_channel(other)
    ts = minutes_ago(5)
    first = push(bound_client(DEVICE), [reading(ts, 50.0, idempotency_key="seq-1")]).json()
    # Device B's token sends the same (predictable) key for its own reading.
    second = push(bound_client(other), [reading(ts, 60.0, device_id=other, idempotency_key="seq-1")]).json()
    assert first["accepted"] == 1 and second["accepted"] == 1
    assert sorted(PowerLog.objects.values_list("device__device_id", "apower_w")) == [(other, 60.0), (DEVICE, 50.0)]


def test_two_items_with_one_key_in_a_batch_are_one_accepted_and_one_duplicate(ingest_api):
    every_channel()
    response = push(
        ingest_api,
        [
            reading(minutes_ago(3), 50.0, idempotency_key="same"),
            reading(minutes_ago(2), 70.0, idempotency_key="same"),
        ],
    ).json()
    assert (response["accepted"], response["duplicates"]) == (1, 1)
    assert PowerLog.objects.count() == 1


def test_existing_client_keys_are_scoped_by_the_migration(db):
    from importlib import import_module

    from django.apps import apps

    migration = import_module("collector.migrations.0006_scope_idempotency_keys")
    channel = every_channel()
    ts = minutes_ago(3)
    PowerLog.objects.create(
        timestamp=ts, device=channel.device, channel=channel, apower_w=1.0, reason="every", idempotency_key="old-key"
    )
    derived = f"{DEVICE}|switch:0|{ts.isoformat()}"
    PowerLog.objects.create(
        timestamp=ts + timedelta(seconds=1),
        device=channel.device,
        channel=channel,
        apower_w=1.0,
        reason="every",
        idempotency_key=derived,
    )
    migration.scope_client_keys(apps, None)
    assert sorted(PowerLog.objects.values_list("idempotency_key", flat=True)) == sorted(
        [f"{DEVICE}|switch:0|old-key", derived]
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"frame": {"src": DEVICE, "method": "NotifyStatus", "params": {"switch:0" + "x" * 40: {"apower": 5}}}},
        {"frame": {"src": DEVICE, "method": "NotifyStatus", "params": {"switch:0\nx": {"apower": 5}}}},
        {"apower_w": 1.7e308},
        {"apower_w": 10**400},
        {"energy_total_wh": 1e13},
        {"ts": "0001-01-01T00:00:00Z"},
        {"ts": 10**400},
        {"device_id": "a" * 5000},
        {"device_id": "shelly\nforged"},
        {"frame": {"src": DEVICE, "method": "NotifyStatus", "params": json.loads("[" * 40 + "]" * 40)}},
    ],
    ids=[
        "long_key",
        "key_newline",
        "power_1e308",
        "power_huge_int",
        "energy_1e13",
        "year_1",
        "ts_huge_int",
        "long_device_id",
        "device_id_newline",
        "too_deep",
    ],
)
def test_one_bad_item_is_rejected_alone_and_the_good_ones_are_stored(ingest_api, bad):
    every_channel()
    good = [reading(minutes_ago(3), 50.0), reading(minutes_ago(2), 60.0)]
    item = {**reading(minutes_ago(1), 70.0), **bad}
    if "frame" in bad:
        item = {"device_id": DEVICE, **bad}
    body = json.dumps({"messages": [good[0], item, good[1]]})
    body = body.replace("1e+400", "1" + "0" * 400)  # huge integers, as a hostile client would send them
    response = ingest_api.post(URL, body, content_type="application/json")
    assert response.status_code == 200, response.content[:300]
    data = response.json()
    assert [r["index"] for r in data["rejected"]] == [1] and data["accepted"] == 2
    assert sorted(PowerLog.objects.values_list("apower_w", flat=True)) == [50.0, 60.0]
    assert Device.objects.count() == 1 and Channel.objects.count() == 1


def test_a_plausible_extreme_power_is_stored_and_the_series_stays_json(ingest_api, reader_api):
    channel = every_channel()
    push(ingest_api, [reading(minutes_ago(3), 999_999.0), reading(minutes_ago(2), -999_999.0)])
    assert PowerLog.objects.count() == 2
    response = reader_api.get("/api/v1/series/", {"channel": channel.pk})
    assert response.status_code == 200 and json.loads(response.content)
