"""The live dashboard socket as served by the real servers (§9): Origin check, long life over Redis."""

import asyncio
import json

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from collector.pipeline import ingest_samples
from tests.scenarios import at, make_channel, sample
from tests.servers import daphne_argv, free_port, process_env, running, uvicorn_argv

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# channels-redis blocks 5 s per receive; redis-py's default read timeout was 5 s too.
LONGER_THAN_THE_REDIS_TIMEOUT_S = 16


def staff_session_cookie() -> str:
    staff = get_user_model().objects.create_user("staff", password="unused-here", is_staff=True)
    client = Client()
    client.force_login(staff)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def dashboard(port: int, *, cookie: str, origin: str):
    return websockets.connect(
        f"ws://127.0.0.1:{port}/ws/dashboard/", origin=origin, additional_headers={"Cookie": cookie}
    )


async def next_message(ws, matches, timeout: float = 15.0) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if matches(message):
                return message


def pushed_running(channel_id: int):
    """A `live` push (it came over the channel layer, not the database refresh) saying the channel runs."""

    def matches(message: dict) -> bool:
        samples = message.get("samples", []) if message["type"] == "live" else []
        return any(item["channel"] == channel_id and item["running"] for item in samples)

    return matches


def start_the_pump(channel) -> None:
    try:
        ingest_samples([sample(at(0), 700, channel=channel)])
    finally:
        connection.close()  # this runs in a worker thread: leave no session open on the test database


def test_the_dashboard_socket_refuses_a_page_from_another_site(tmp_path):
    cookie = staff_session_cookie()
    port = free_port()
    env = process_env(ALLOWED_HOSTS="127.0.0.1,localhost")

    async def connect_from(origin):
        try:
            async with dashboard(port, cookie=cookie, origin=origin) as ws:
                return json.loads(await asyncio.wait_for(ws.recv(), 10))["type"]
        except websockets.InvalidStatus as exc:
            return exc.response.status_code

    with running(uvicorn_argv(port), env=env, log_path=tmp_path / "uvicorn.log", port=port):
        assert asyncio.run(connect_from("http://evil.example")) == 403
        assert asyncio.run(connect_from(f"http://localhost:{port}")) == "states"


@pytest.mark.skipif(not settings.REDIS_URL, reason="the Redis channel layer runs in the PostgreSQL + Redis half")
def test_a_dashboard_socket_over_redis_outlives_the_redis_timeout_and_still_gets_pushes(tmp_path):
    cookie = staff_session_cookie()
    channel = make_channel(policy="events", name="Pump P7 — feed")
    ports = {"uvicorn": free_port(), "daphne": free_port()}
    env = process_env(ALLOWED_HOSTS="127.0.0.1")

    async def hold_then_push():
        sockets = {
            name: await dashboard(port, cookie=cookie, origin=f"http://127.0.0.1:{port}")
            for name, port in ports.items()
        }
        try:
            for ws in sockets.values():
                await next_message(ws, lambda message: message["type"] == "states")  # the snapshot
            await asyncio.sleep(LONGER_THAN_THE_REDIS_TIMEOUT_S)
            await sync_to_async(start_the_pump)(channel)
            return {name: await next_message(ws, pushed_running(channel.pk)) for name, ws in sockets.items()}
        finally:
            for ws in sockets.values():
                await ws.close()

    with (
        running(uvicorn_argv(ports["uvicorn"]), env=env, log_path=tmp_path / "uvicorn.log", port=ports["uvicorn"]),
        running(daphne_argv(ports["daphne"]), env=env, log_path=tmp_path / "daphne.log", port=ports["daphne"]),
    ):
        pushed = asyncio.run(hold_then_push())
    assert set(pushed) == {"uvicorn", "daphne"}
    for name in ("uvicorn", "daphne"):
        assert "TimeoutError" not in (tmp_path / f"{name}.log").read_text()
