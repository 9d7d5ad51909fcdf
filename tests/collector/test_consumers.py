"""The device WebSocket (§4.1) end to end: ASGI app, real database, real channel layer."""

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from prometheus_client import REGISTRY

from collector.models import Channel, ChannelState, Device, IngestToken, PowerLog
from collector.transports import orphaned_runs
from shelly_site.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "shelly"
DEVICE = "shellypro4pm-aabbccddeeff"
OTHER = "shellypro4pm-001122334455"


@pytest.fixture(autouse=True)
async def collector_settings(settings):
    settings.COLLECTOR_AUTO_REGISTER = True
    settings.COLLECTOR_SERVER_SRC = "shelly-monitor"
    settings.COLLECTOR_MAX_FRAME_BYTES = 64 * 1024
    yield settings
    orphaned_runs.clear()
    # The consumer's queries ran in asgiref's worker thread: close its
    # connection, or PostgreSQL refuses to drop the test database.
    await sync_to_async(connections.close_all)()


@sync_to_async
def make_token(*, device_id=None, enabled=True):
    token = IngestToken(name="site", enabled=enabled)
    if device_id:
        token.device, _ = Device.objects.get_or_create(device_id=device_id)
    raw = token.set_new_secret()
    token.save()
    return raw


@sync_to_async
def power_logs(device_id=DEVICE):
    return [
        (row.channel.key, row.reason, row.apower_w, row.voltage_v, row.energy_total_wh)
        for row in PowerLog.objects.filter(device__device_id=device_id).select_related("channel").order_by("id")
    ]


@sync_to_async
def device_ids():
    return sorted(Device.objects.values_list("device_id", flat=True))


@sync_to_async
def make_channel(**fields):
    device, _ = Device.objects.get_or_create(device_id=DEVICE)
    return Channel.objects.create(device=device, **fields)


def full_status(**switch0):
    status = json.loads((FIXTURES / "aioshelly_pro4pm_SPSW-004PE16EU_fw1.0.3_full.json").read_text())["status"]
    status["switch:0"].update(switch0)
    return status


def notify(method, params, *, src=DEVICE, ts=None):
    return json.dumps(
        {"src": src, "dst": "shelly-monitor", "method": method, "params": {"ts": ts or time.time(), **params}}
    )


async def connected(raw_token, *, path=None, subprotocols=None):
    communicator = WebsocketCommunicator(application, path or f"/ws/shelly/{raw_token}/", subprotocols=subprotocols)
    ok, subprotocol = await communicator.connect()
    assert ok
    communicator.subprotocol = subprotocol
    return communicator


async def bootstrapped(raw_token, **kwargs):
    communicator = await connected(raw_token, **kwargs)
    await communicator.receive_from()
    await communicator.receive_from()
    return communicator


async def processed(communicator, request_id=900):
    """Frames are handled in order: the reply to a device request proves the frames before it are done."""
    await communicator.send_to(text_data=json.dumps({"id": request_id, "src": DEVICE, "method": "Shelly.Ping"}))
    return json.loads(await communicator.receive_from(timeout=5))


def rejected(reason):
    return REGISTRY.get_sample_value("shelly_frames_rejected_total", {"reason": reason}) or 0.0


async def eventually(check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.05)


# -- authentication ------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ws/shelly/ing_wrong/", "/ws/shelly/ing_wrong", "/ws", "/ws?token=ing_wrong"])
async def test_bad_or_missing_token_closes_with_4401_and_stores_nothing(path):
    communicator = await connected(None, path=path)

    assert await communicator.receive_output() == {"type": "websocket.close", "code": 4401}
    await communicator.send_to(text_data=notify("NotifyFullStatus", full_status(apower=480.0)))
    await communicator.wait()
    assert await device_ids() == []


async def test_disabled_token_is_refused():
    raw = await make_token(enabled=False)
    communicator = await connected(raw)

    assert (await communicator.receive_output())["code"] == 4401


async def test_disabling_a_token_closes_every_open_socket_of_it_with_4401(collector_settings):
    from collector.consumers import token_watch

    collector_settings.COLLECTOR_TOKEN_RECHECK_SECONDS = 0.2
    raw = await make_token()
    sockets = [await bootstrapped(raw) for _ in range(3)]
    await sync_to_async(IngestToken.objects.update)(enabled=False)
    codes = []
    for communicator in sockets:
        message = await communicator.receive_output(timeout=5)
        codes.append(message.get("code"))
        await communicator.disconnect()
    assert codes == [4401, 4401, 4401]
    assert token_watch.in_use == {}  # every closed socket left the watch


async def test_token_in_query_string_on_ws_works_and_is_marked_used():
    raw = await make_token()
    communicator = await bootstrapped(raw, path=f"/ws?token={raw}")

    await communicator.send_to(text_data=notify("NotifyFullStatus", full_status(apower=480.0)))
    await processed(communicator)

    assert [row[:3] for row in await power_logs()] == [("switch:0", "start", 480.0)]
    assert await sync_to_async(lambda: IngestToken.objects.get().last_used_at is not None)()
    await communicator.disconnect()


# -- bootstrap ---------------------------------------------------------------------


async def test_bootstrap_requests_are_sent_on_connect_and_json_rpc_is_accepted():
    raw = await make_token()
    communicator = await connected(raw, subprotocols=["json-rpc"])

    assert communicator.subprotocol == "json-rpc"
    first = json.loads(await communicator.receive_from())
    second = json.loads(await communicator.receive_from())
    assert first == {"id": 1, "src": "shelly-monitor", "method": "NotifyStatus", "params": {"enable": True}}
    assert second == {"id": 2, "src": "shelly-monitor", "method": "Shelly.GetStatus"}
    await communicator.disconnect()


async def test_getstatus_result_is_ingested():
    raw = await make_token()
    communicator = await bootstrapped(raw)
    status = full_status(apower=250.0, voltage=230.5)
    status["sys"]["unixtime"] = int(time.time())

    await communicator.send_to(
        text_data=json.dumps({"id": 2, "src": DEVICE, "dst": "shelly-monitor", "result": status})
    )
    await processed(communicator)

    assert await power_logs() == [("switch:0", "start", 250.0, 230.5, 0.0)]
    await communicator.disconnect()


async def test_device_requests_get_not_implemented():
    raw = await make_token()
    communicator = await bootstrapped(raw)

    reply = await processed(communicator, request_id="abc")

    assert reply == {"id": "abc", "src": "shelly-monitor", "error": {"code": 500, "message": "Not Implemented"}}
    await communicator.disconnect()


# -- frames → rows -------------------------------------------------------------------


async def test_full_then_partial_status_writes_start_and_delta_with_known_values():
    raw = await make_token()
    communicator = await bootstrapped(raw)
    status = full_status(apower=480.0, voltage=229.0, current=2.1)
    status["switch:0"]["aenergy"]["total"] = 5000.0
    t0 = time.time()

    await communicator.send_to(text_data=notify("NotifyFullStatus", status, ts=t0))
    # Only power changed: voltage and energy must be the last known ones, not 0.
    await communicator.send_to(text_data=notify("NotifyStatus", {"switch:0": {"id": 0, "apower": 10.0}}, ts=t0 + 1))
    await communicator.send_to(text_data=notify("NotifyStatus", {"switch:0": {"id": 0, "apower": 560.0}}, ts=t0 + 61))
    await processed(communicator)

    assert await power_logs() == [
        ("switch:0", "start", 480.0, 229.0, 5000.0),
        ("switch:0", "delta", 560.0, 229.0, 5000.0),
    ]
    device = await sync_to_async(Device.objects.get)(device_id=DEVICE)
    assert device.auto_registered and device.last_seen is not None
    await communicator.disconnect()


async def test_partial_status_without_power_does_not_zero_it():
    raw = await make_token()
    communicator = await bootstrapped(raw)
    t0 = time.time()
    await communicator.send_to(text_data=notify("NotifyFullStatus", full_status(apower=480.0), ts=t0))

    energy_only = {"switch:0": {"aenergy": {"total": 8.0, "by_minute": [0, 0, 0], "minute_ts": int(t0)}}}
    await communicator.send_to(text_data=notify("NotifyStatus", energy_only, ts=t0 + 61))
    await processed(communicator)
    await communicator.disconnect()  # writes the cached channel state

    rows = await power_logs()
    assert rows[0][:3] == ("switch:0", "start", 480.0)
    # A clock-aligned `sample` row may follow, depending on the minute: never a 0 W one.
    assert [(reason, power) for _, reason, power, _, _ in rows[1:]] in ([], [("sample", 480.0)])
    state = await sync_to_async(ChannelState.objects.get)(channel__key="switch:0")
    assert state.running and state.last_values["p"] == 480.0 and state.last_values["e"] == 8.0
    assert state.last_active_at.timestamp() == pytest.approx(t0 + 61)


async def test_binary_frames_are_handled_like_text():
    raw = await make_token()
    communicator = await bootstrapped(raw)

    await communicator.send_to(bytes_data=notify("NotifyFullStatus", full_status(apower=300.0)).encode())
    await processed(communicator)

    assert [row[:3] for row in await power_logs()] == [("switch:0", "start", 300.0)]
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("bad_frame", "reason"),
    [
        ("{not json", "invalid_json"),
        (
            '{"src": "DEV", "method": "NotifyFullStatus", "params": {"switch:0": {"id": 0, "apower": NaN}}}',
            "non_finite",
        ),
        ('{"src": "DEV", "method": "NotifyFullStatus", "params": {"switch:0": {"apower": -Infinity}}}', "non_finite"),
        (
            '{"src": "DEV", "method": "NotifyFullStatus", "params": {"switch:0": {"id": 0, "apower": "480"}}}',
            "wrong_type",
        ),
        (
            '{"src": "DEV", "method": "NotifyFullStatus", "params": {"warp:0": {"id": 0, "apower": 480}}}',
            "unknown_component",
        ),
        ('{"src": 42, "method": "NotifyFullStatus", "params": {"switch:0": {"id": 0, "apower": 480}}}', "wrong_type"),
        ('{"src": "DEV", "method": "NotifyFullStatus", "params": "switch:0"}', "wrong_type"),
        ("[1, 2, 3]", "wrong_type"),
    ],
)
async def test_bad_frames_are_dropped_counted_and_the_connection_stays_open(bad_frame, reason):
    raw = await make_token()
    communicator = await bootstrapped(raw)
    rejected_before = rejected(reason)

    await communicator.send_to(text_data=bad_frame.replace("DEV", DEVICE))
    await processed(communicator)
    assert await power_logs() == []
    assert rejected(reason) == rejected_before + 1

    await communicator.send_to(text_data=notify("NotifyFullStatus", full_status(apower=480.0)))
    await processed(communicator)
    assert [row[:3] for row in await power_logs()] == [("switch:0", "start", 480.0)]
    await communicator.disconnect()


async def test_oversize_frame_closes_with_1009():
    raw = await make_token()
    communicator = await bootstrapped(raw)

    await communicator.send_to(text_data=notify("NotifyFullStatus", {"pad": "x" * 70_000, **full_status(apower=480.0)}))

    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 1009}
    await communicator.disconnect()
    assert await power_logs() == []


async def test_unknown_device_is_refused_when_auto_register_is_off(collector_settings):
    collector_settings.COLLECTOR_AUTO_REGISTER = False
    raw = await make_token()
    communicator = await bootstrapped(raw)

    await communicator.send_to(text_data=notify("NotifyFullStatus", full_status(apower=480.0)))
    await communicator.send_to(text_data=notify("NotifyStatus", {"switch:0": {"apower": 500.0}}))
    reply = await processed(communicator)

    assert reply["error"]["code"] == 500  # still connected
    assert await device_ids() == []
    assert await sync_to_async(PowerLog.objects.count)() == 0
    await communicator.disconnect()


async def test_known_device_is_ingested_when_auto_register_is_off(collector_settings):
    collector_settings.COLLECTOR_AUTO_REGISTER = False
    await sync_to_async(Device.objects.create)(device_id=DEVICE)
    raw = await make_token()
    communicator = await bootstrapped(raw)

    await communicator.send_to(text_data=notify("NotifyFullStatus", full_status(apower=480.0)))
    await processed(communicator)

    assert [row[:3] for row in await power_logs()] == [("switch:0", "start", 480.0)]
    await communicator.disconnect()


async def test_token_bound_to_a_device_drops_frames_of_another_device():
    raw = await make_token(device_id=DEVICE)
    communicator = await bootstrapped(raw)

    await communicator.send_to(text_data=notify("NotifyFullStatus", full_status(apower=480.0), src=OTHER))
    await processed(communicator)
    assert await device_ids() == [DEVICE]
    assert await power_logs(OTHER) == []

    await communicator.send_to(text_data=notify("NotifyFullStatus", full_status(apower=480.0)))
    await processed(communicator)
    assert [row[:3] for row in await power_logs()] == [("switch:0", "start", 480.0)]
    await communicator.disconnect()


async def test_device_time_far_off_uses_server_time():
    raw = await make_token()
    communicator = await bootstrapped(raw)
    before = datetime.now(UTC)

    await communicator.send_to(text_data=notify("NotifyFullStatus", full_status(apower=480.0), ts=time.time() + 3600))
    await processed(communicator)

    row = await sync_to_async(PowerLog.objects.get)()
    assert before <= row.timestamp <= datetime.now(UTC)
    await communicator.disconnect()


# -- stops while connected and after a disconnect --------------------------------


async def test_timer_writes_the_stop_while_connected(collector_settings):
    collector_settings.COLLECTOR_TIMER_SECONDS = 0.1
    await make_channel(key="switch:0", stop_timeout_s=1)
    raw = await make_token()
    communicator = await bootstrapped(raw)

    await communicator.send_to(text_data=notify("NotifyFullStatus", full_status(apower=480.0)))

    async def stopped():
        return [row[1] for row in await power_logs()] == ["start", "stop"]

    assert await eventually(stopped, timeout=5)
    await communicator.disconnect()


async def test_run_of_a_disconnected_device_is_still_stopped(collector_settings):
    collector_settings.COLLECTOR_TIMER_SECONDS = 0.1
    await make_channel(key="switch:0", stop_timeout_s=1)
    raw = await make_token()
    communicator = await bootstrapped(raw)
    await communicator.send_to(text_data=notify("NotifyFullStatus", full_status(apower=480.0)))
    await processed(communicator)
    await communicator.disconnect()

    async def stopped():
        return [row[1] for row in await power_logs()] == ["start", "stop"]

    assert await eventually(stopped, timeout=5)

    async def released():  # the tick drops the pipeline just after its write commits
        return orphaned_runs.pipelines == []

    assert await eventually(released, timeout=5)


async def test_reconnect_before_the_timeout_continues_the_same_run(collector_settings):
    await make_channel(key="switch:0", stop_timeout_s=120)
    raw = await make_token()
    first = await bootstrapped(raw)
    t0 = time.time()
    await first.send_to(text_data=notify("NotifyFullStatus", full_status(apower=480.0), ts=t0))
    await processed(first)
    await first.disconnect()
    assert len(orphaned_runs.pipelines) == 1

    second = await bootstrapped(raw)
    await second.send_to(text_data=notify("NotifyFullStatus", full_status(apower=485.0), ts=t0 + 1))
    await processed(second)

    assert orphaned_runs.pipelines == []
    assert [row[:3] for row in await power_logs()] == [("switch:0", "start", 480.0)]
    await second.disconnect()


def test_token_use_is_written_at_most_once_a_minute():
    from datetime import timedelta

    from django.utils import timezone

    from collector.transports import authenticate_ingest_token

    token = IngestToken(name="site")
    raw = token.set_new_secret()
    token.save()
    first = authenticate_ingest_token(raw).last_used_at
    assert authenticate_ingest_token(raw).last_used_at == first  # a reconnect burst writes nothing
    IngestToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timedelta(minutes=2))
    assert authenticate_ingest_token(raw).last_used_at > first
    assert authenticate_ingest_token("wrong") is None
