"""/ws/dashboard/: who may connect, the snapshot, live samples (written or not), run changes, database refresh."""

import asyncio
import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.db import connections
from django.utils import timezone

from collector.models import ChannelState, Device, PowerLog
from collector.pipeline import Pipeline, ingest_samples
from dashboard import realtime
from dashboard.consumers import LiveDashboardConsumer
from tests.dashboard.stories import user
from tests.scenarios import make_channel, sample

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_coalescer(monkeypatch):
    """Each test starts with no push pending or recently made in this process."""
    monkeypatch.setattr(realtime, "_coalescer", realtime.LiveCoalescer())


@pytest.fixture(autouse=True)
async def close_consumer_connections():
    yield
    # The consumer queried from asgiref's worker thread: close that
    # connection, or PostgreSQL refuses to drop the test database.
    await sync_to_async(connections.close_all)()


def communicator(account=None):
    comm = WebsocketCommunicator(LiveDashboardConsumer.as_asgi(), "/ws/dashboard/")
    comm.scope["user"] = account if account is not None else AnonymousUser()
    return comm


async def connected(account):
    comm = communicator(account)
    ok, _ = await comm.connect()
    assert ok
    snapshot = json.loads(await comm.receive_from(timeout=5))
    assert snapshot["type"] == "states"
    return comm, snapshot


async def next_of(comm, kind, timeout=5.0):
    """The next message of a type, skipping others (e.g. a periodic refresh)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        message = json.loads(await comm.receive_from(timeout=max(remaining, 0.01)))
        if message["type"] == kind:
            return message


async def test_anonymous_visitor_is_closed_with_4401():
    connected_, code = await communicator().connect()
    assert not connected_ and code == 4401


async def test_a_user_neither_staff_nor_viewer_is_closed_with_4401():
    outsider = await sync_to_async(user)("outsider")
    connected_, code = await communicator(outsider).connect()
    assert not connected_ and code == 4401


async def test_a_viewer_gets_the_snapshot_of_every_channel():
    viewer = await sync_to_async(user)("viewer", viewer=True)
    channel = await sync_to_async(make_channel)(policy="events", name="Pump P1")
    await sync_to_async(ingest_samples)([sample(timezone.now(), 700, channel=channel)])
    await sync_to_async(Device.objects.filter(pk=channel.device_id).update)(last_seen=timezone.now())
    comm, snapshot = await connected(viewer)
    (state,) = snapshot["channels"]
    assert (state["channel"], state["running"], state["p"]) == (channel.pk, True, 700)
    assert snapshot["devices"][0]["device"] == channel.device_id
    await comm.disconnect()


async def test_a_sample_that_writes_no_row_is_still_pushed_live():
    staff = await sync_to_async(user)("staff", staff=True)
    channel = await sync_to_async(make_channel)(policy="events", name="Pump P1")
    # Both samples in one minute: a new minute may write an `events` sample row.
    now = timezone.now().replace(second=10, microsecond=0) - timedelta(minutes=1)
    pipeline = Pipeline()
    await pipeline.aingest([sample(now, 700, channel=channel)])  # start row
    comm, _ = await connected(staff)
    rows_before = await sync_to_async(PowerLog.objects.count)()

    await pipeline.aingest([sample(now + timedelta(seconds=5), 703.5, channel=channel, i=3.1)])

    live = await next_of(comm, "live")
    assert await sync_to_async(PowerLog.objects.count)() == rows_before  # nothing written
    (item,) = [s for s in live["samples"] if s["channel"] == channel.pk and s["p"] == 703.5]
    assert item["running"] is True and item["i"] == 3.1 and item["device"] == channel.device_id
    await comm.disconnect()


async def test_a_burst_is_coalesced_and_the_latest_value_wins():
    staff = await sync_to_async(user)("staff", staff=True)
    channel = await sync_to_async(make_channel)(policy="events")
    comm, _ = await connected(staff)
    start = timezone.now()
    pipeline = Pipeline()
    for n in range(200):
        await pipeline.aingest([sample(start + timedelta(milliseconds=10 * n), 600 + n, channel=channel)])

    values = []
    while not values or values[-1] != 799:
        message = await next_of(comm, "live")
        values.extend(s["p"] for s in message["samples"] if s["channel"] == channel.pk)
    assert values[-1] == 799  # the last sample's value arrives
    assert len(values) <= 10  # 200 samples, a handful of pushes (one per second at most)
    await comm.disconnect()


async def test_a_run_start_tells_pages_to_refresh_their_figures():
    staff = await sync_to_async(user)("staff", staff=True)
    channel = await sync_to_async(make_channel)(policy="events")
    comm, _ = await connected(staff)
    await sync_to_async(ingest_samples)([sample(timezone.now(), 900, channel=channel)])
    changed = await next_of(comm, "changed")
    assert changed["channels"] == [channel.pk]
    await comm.disconnect()


async def test_a_state_written_by_another_process_reaches_the_page_from_the_database(settings):
    """The embedded poller runs in its own process: its samples only reach the page through the database."""
    settings.DASHBOARD_REFRESH_SECONDS = 0.2
    staff = await sync_to_async(user)("staff", staff=True)
    channel = await sync_to_async(make_channel)(key="em:0:total", policy="every")
    await sync_to_async(ChannelState.objects.create)(channel=channel)
    comm, _ = await connected(staff)

    seen = timezone.now()
    await sync_to_async(ChannelState.objects.filter(pk=channel.pk).update)(
        last_values={"p": 1234.5, "i": 5.4, "v": 229.0}, last_sample_at=seen, running=True, updated_at=seen
    )
    await sync_to_async(Device.objects.filter(pk=channel.device_id).update)(last_seen=seen)

    while True:
        states = await next_of(comm, "states")
        mine = [s for s in states["channels"] if s["channel"] == channel.pk]
        if mine and mine[0]["p"] == 1234.5:
            break
    assert mine[0]["running"] is True and mine[0]["ts"] == seen.isoformat()
    assert {"device": channel.device_id, "last_seen": seen.isoformat()} in states["devices"]
    await comm.disconnect()


async def test_a_burst_written_behind_reaches_the_page_with_its_latest_value_and_one_change_per_flush():
    from collector import writebehind
    from collector.transports import DeviceStream

    staff = await sync_to_async(user)("staff", staff=True)
    channel = await sync_to_async(make_channel)(policy="every")
    comm, _ = await connected(staff)
    stream = DeviceStream(allowed_device_id=channel.device.device_id)
    start = timezone.now().timestamp() - 60
    for n in range(300):  # a device streaming every sample, as fast as it can
        frame = {"src": channel.device.device_id, "method": "NotifyStatus"}
        frame["params"] = {"ts": start + n * 0.1, "switch:0": {"id": 0, "apower": 100.0 + n}}
        await stream.handle(json.dumps(frame))
    assert await stream.pipeline.committed() is True
    flushes = writebehind.stage().flushes

    values, changes = [], 0
    while not values or values[-1] != 399.0:
        message = json.loads(await comm.receive_from(timeout=5))
        if message["type"] == "live":
            values.extend(s["p"] for s in message["samples"] if s["channel"] == channel.pk)
        elif message["type"] == "changed":
            changes += 1
    assert values[-1] == 399.0  # the latest value wins
    assert len(values) <= 10  # coalesced: not one push per sample
    assert 1 <= changes <= flushes  # "rows changed" once per flush, never once per row
    assert await sync_to_async(PowerLog.objects.filter(channel=channel).count)() == 300
    await stream.close()
    await comm.disconnect()
