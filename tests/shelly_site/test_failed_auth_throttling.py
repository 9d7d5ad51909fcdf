"""Failed authentication is throttled per client address: API, batch, device WebSocket (issue 9)."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from collector.models import IngestToken
from shelly_site.asgi import application
from tests.api_base import *  # noqa: F403
from tests.api_base import api_token

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def three_a_minute(settings):
    settings.API_THROTTLE_FAILED_AUTH = "3/min"


def test_wrong_api_tokens_are_throttled_then_even_a_good_one_waits(anonymous_api):
    _, good = api_token()
    answers = [
        anonymous_api.get("/api/v1/devices/", HTTP_AUTHORIZATION="Token api_wrong").status_code for _ in range(4)
    ]
    assert answers == [401, 401, 401, 429]
    response = anonymous_api.get("/api/v1/devices/", HTTP_AUTHORIZATION=f"Token {good}")
    assert response.status_code == 429 and response.json()["error"]["code"] == "throttled"
    assert "Retry-After" in response


def test_a_good_token_is_never_counted(anonymous_api):
    _, good = api_token()
    assert {
        anonymous_api.get("/api/v1/devices/", HTTP_AUTHORIZATION=f"Token {good}").status_code for _ in range(6)
    } == {200}


def test_wrong_ingest_keys_are_throttled(anonymous_api):
    answers = [
        anonymous_api.post("/api/v1/ingest/batch", {"messages": []}, format="json", HTTP_X_API_KEY="ing_x").status_code
        for _ in range(4)
    ]
    assert answers == [401, 401, 401, 429]


@pytest.mark.django_db(transaction=True)
async def test_wrong_device_tokens_are_throttled_on_the_websocket(settings):
    settings.API_THROTTLE_FAILED_AUTH = "3/min"
    token = IngestToken(name="site")
    raw = token.set_new_secret()
    await sync_to_async(token.save)()

    async def close_code(secret):
        communicator = WebsocketCommunicator(application, f"/ws/shelly/{secret}/")
        communicator.scope["client"] = ["192.0.2.7", 5000]
        connected, _ = await communicator.connect()
        assert connected
        message = await communicator.receive_output(timeout=5)
        while message["type"] != "websocket.close":
            message = await communicator.receive_output(timeout=5)
        await communicator.disconnect()
        return message.get("code")

    try:
        codes = [await close_code("ing_wrong") for _ in range(4)]
        assert codes == [4401, 4401, 4401, 4429]
        assert await close_code(raw) == 4429
    finally:
        # The consumer's queries ran in a worker thread: close its connection.
        await sync_to_async(connections.close_all)()
