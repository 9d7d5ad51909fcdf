import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from collector.pipeline import ingest_samples
from dashboard.consumers import LiveDashboardConsumer
from tests.scenarios import at, make_channel, sample

pytestmark = pytest.mark.django_db(transaction=True)


def communicator(user=None):
    app = LiveDashboardConsumer.as_asgi()
    comm = WebsocketCommunicator(app, "/ws/dashboard/")
    if user is not None:
        comm.scope["user"] = user
    return comm


async def test_anonymous_visitor_is_closed_with_4401():
    from django.contrib.auth.models import AnonymousUser

    comm = communicator(AnonymousUser())
    connected, code = await comm.connect()
    assert not connected and code == 4401


async def test_staff_gets_a_snapshot_then_a_push_when_a_run_starts():
    staff = await sync_to_async(get_user_model().objects.create_user)("staff", password="x", is_staff=True)
    ch = await sync_to_async(make_channel)(policy="events", name="Pump P1")
    comm = communicator(staff)
    connected, _ = await comm.connect()
    assert connected
    snapshot = json.loads(await comm.receive_from(timeout=5))
    assert snapshot["type"] == "channels"
    assert [(c["name"], c["running"]) for c in snapshot["channels"]] == [("Pump P1", False)]

    await sync_to_async(ingest_samples)([sample(at(0), 700, channel=ch)])
    pushed = json.loads(await comm.receive_from(timeout=5))
    assert pushed["channels"][0]["running"] is True
    assert pushed["channels"][0]["last_row_reason"] == "start"
    await comm.disconnect()


async def test_a_run_started_by_an_async_ingest_is_pushed_without_waiting_on_the_loop():
    from collector.pipeline import Pipeline

    staff = await sync_to_async(get_user_model().objects.create_user)("staff2", password="x", is_staff=True)
    ch = await sync_to_async(make_channel)(policy="events", name="Pump P3")
    comm = communicator(staff)
    assert (await comm.connect())[0]
    await comm.receive_from(timeout=5)  # snapshot

    await Pipeline().aingest([sample(at(0), 900, channel=ch)])
    pushed = json.loads(await comm.receive_from(timeout=5))
    assert [(c["name"], c["running"]) for c in pushed["channels"]] == [("Pump P3", True)]
    await comm.disconnect()
