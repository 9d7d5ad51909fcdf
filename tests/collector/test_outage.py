"""A database outage against a real uvicorn process and a private PostgreSQL cluster (§9 operations, issue 13).

The cluster is this test's own (tests/private_services.py): it is stopped and
started while a device keeps sending; the shared PostgreSQL is never touched.
"""

import asyncio
import time

import httpx
import pytest

from tests.private_services import WsDevice, private_postgres, setup_device
from tests.servers import free_port, manage_argv, process_env, running, uvicorn_argv, wait_for

pytestmark = [pytest.mark.slow]

DEVICE_ID = "shellypro4pm-0utage000001"
STOP_TIMEOUT_S = 3
INTERVAL_S = 0.25


@pytest.fixture(scope="module")
def cluster():
    with private_postgres() as cluster:
        yield cluster


def rows(cluster, db, key):
    return cluster.query(
        db,
        "SELECT p.timestamp, p.reason, p.apower_w FROM collector_powerlog p JOIN collector_channel c "
        "ON c.id = p.channel_id WHERE c.key = %s ORDER BY p.id",
        (key,),
    )


def test_server_rides_out_a_database_outage(cluster, tmp_path):
    db = "outage"
    url = cluster.create_database(db)
    token = setup_device(url, DEVICE_ID, [("switch:0", "events"), ("switch:1", "every")], stop_timeout=STOP_TIMEOUT_S)
    port = free_port()
    env = process_env(
        DATABASE_URL=url,
        REDIS_URL="",
        COLLECTOR_AUTO_REGISTER="false",
        COLLECTOR_TIMER_SECONDS="0.5",
        COLLECTOR_STATE_FLUSH_SECONDS="1",
        CONN_MAX_AGE="0",
    )
    base = f"http://127.0.0.1:{port}"
    sent_every: list[float] = []
    log_path = tmp_path / "uvicorn.log"

    async def scenario():
        device = WsDevice(f"ws://127.0.0.1:{port}", token, DEVICE_ID)
        await device.connect()

        async def send(n, power):
            for _ in range(n):
                ts = time.time()
                await device.send(ts, {0: power, 1: power})
                sent_every.append(round(ts, 2))
                await asyncio.sleep(INTERVAL_S)

        await send(6, 120.0)
        assert await asyncio.to_thread(wait_for, lambda: rows(cluster, db, "switch:0"), 15), "no start row"
        await asyncio.to_thread(cluster.stop)
        await send(6, 120.0)
        assert device.open, "the device socket was closed during the outage"

        async with httpx.AsyncClient() as client:
            health = await client.get(f"{base}/healthz", timeout=10)
        assert health.status_code == 503
        assert "database unreachable" in health.json()["checks"]["database"]["reason"]
        assert health.json()["checks"]["database"]["buffered_samples"] > 0

        # An HTTP batch meanwhile: 503 with Retry-After, no driver message (the relay keeps its queue).
        async with httpx.AsyncClient() as client:
            batch = await client.post(f"{base}/api/v1/ingest/batch", headers={"X-API-Key": token}, json={"items": []})
        assert batch.status_code == 503 and batch.headers["Retry-After"] == "10"
        assert batch.json()["error"]["code"] == "database_unavailable"
        assert "127.0.0.1" not in batch.text and "psycopg" not in batch.text

        # A reconnect while the database is away: the token was validated before, so it is accepted.
        await device.close()
        device = WsDevice(f"ws://127.0.0.1:{port}", token, DEVICE_ID)
        await device.connect()
        await send(6, 120.0)
        run_end = time.time()
        await send(4, 0.0)  # the run ends at the first 0 W sample
        # An unknown token meanwhile is neither accepted nor refused for good: "try again later".
        stranger = WsDevice(f"ws://127.0.0.1:{port}", "ing_not-a-token-seen-before", "x")
        import websockets

        with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
            await stranger.connect()
        assert closed.value.rcvd.code == 1013
        await asyncio.sleep(STOP_TIMEOUT_S + 1)  # the run expires while the database is still away
        assert device.open
        await asyncio.to_thread(cluster.start)
        await send(2, 0.0)
        await device.close()
        return run_end

    with running(uvicorn_argv(port), env=env, log_path=log_path, port=port):
        run_end = asyncio.run(scenario())
        stop_rows = wait_for(lambda: [r for r in rows(cluster, db, "switch:0") if r[1] == "stop"], 20)
        every = wait_for(
            lambda: len(rows(cluster, db, "switch:1")) >= len(sent_every) and rows(cluster, db, "switch:1"), 20
        )
        health = httpx.get(f"{base}/healthz", timeout=10).json()
    print(log_path.read_text()[-3000:])

    events = rows(cluster, db, "switch:0")
    # An `events` run crossing a minute boundary may also write its periodic `sample` row.
    assert [r[1] for r in events if r[1] != "sample"] == ["start", "stop"], events
    assert stop_rows[0][0].timestamp() == pytest.approx(run_end, abs=INTERVAL_S + 0.1)
    # Every sample of the `every` channel, written once, in order, though a third arrived during the outage.
    assert [round(r[0].timestamp(), 2) for r in every] == sent_every
    state = cluster.query(
        db,
        "SELECT running FROM collector_channelstate s JOIN collector_channel c ON c.id = s.channel_id "
        "WHERE c.key = 'switch:0'",
    )
    assert state == [(False,)]
    assert health["checks"]["database"]["ok"] is True
    assert health["checks"]["database"]["buffered_samples"] == 0
    assert health["checks"]["database"]["dropped_samples"] == 0


def test_poller_keeps_its_schedule_and_samples_through_an_outage(cluster, tmp_path):
    """`manage.py run_poller` (real process) polls a simulated Pro 3EM while the database stops and starts."""
    import threading

    from collector.simulators.rpc3em import Rpc3emSimulator

    db = "outage_poller"
    url = cluster.create_database(db)
    loop = asyncio.new_event_loop()
    meter = Rpc3emSimulator(history_s=600)
    ready = threading.Event()

    def serve():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(meter.start("127.0.0.1", 0))
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    period = 0.5
    env = process_env(DATABASE_URL=url, REDIS_URL="", SHELLY_HOST=meter.address, CONN_MAX_AGE="0")
    argv = [*manage_argv("run_poller", "--live-seconds", str(period))]

    def sample_times():
        return [
            r[0].timestamp()
            for r in cluster.query(
                db,
                "SELECT p.timestamp FROM collector_powerlog p JOIN collector_channel c ON c.id = p.channel_id "
                "WHERE c.key = (SELECT min(key) FROM collector_channel) ORDER BY p.timestamp",
            )
        ]

    try:
        with running(argv, env=env, log_path=tmp_path / "poller.log") as poller:
            assert wait_for(lambda: len(sample_times()) >= 4, 30), (tmp_path / "poller.log").read_text()[-3000:]
            cluster.stop()
            outage_started = time.time()
            time.sleep(4)
            cluster.start()
            outage_ended = time.time()
            assert wait_for(lambda: any(t > outage_ended + 1 for t in sample_times()), 30)
            assert poller.poll() is None, "the poller died during the outage"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    during = [t for t in sample_times() if outage_started + 0.5 < t < outage_ended - 0.5]
    # Polls every 0.5 s kept their samples while the database was away (loose: a shared machine).
    assert len(during) >= 3, during


# -- the buffer itself (any database: the outage is simulated at the write) ----------------------------------


@pytest.fixture
def failing_writes(monkeypatch):
    """`persist` fails as if the database were gone until `.restore()`."""
    from django.db import OperationalError

    from collector import outage
    from collector.pipeline import Pipeline

    real = Pipeline.persist
    switch = {"down": True}

    def persist(self, plans, **kwargs):
        if switch["down"]:
            raise OperationalError("server closed the connection unexpectedly")
        return real(self, plans, **kwargs)

    monkeypatch.setattr(Pipeline, "persist", persist)
    outage.state.reset()
    yield switch
    outage.state.reset()


@pytest.mark.django_db(transaction=True)
async def test_a_full_buffer_drops_ordinary_rows_but_keeps_starts_and_stops(failing_writes, settings):
    from datetime import timedelta

    from django.utils import timezone

    from collector import outage
    from collector.models import Channel, Device, PowerLog
    from collector.pipeline import Pipeline
    from collector.samples import Sample

    settings.COLLECTOR_OUTAGE_BUFFER_SAMPLES = 5
    device = await Device.objects.acreate(device_id="shellypro4pm-0utage0000b1")
    await Channel.objects.acreate(device=device, key="switch:0", policy="every", stop_timeout_s=60)
    await Channel.objects.acreate(device=device, key="switch:1", policy="events", stop_timeout_s=60)
    pipeline = Pipeline(auto_register=False)
    t0 = timezone.now() - timedelta(minutes=5)
    # Loaded while the database answers (the fixture only fails writes).
    for n in range(8):
        power = 100.0 if n < 6 else 0.0
        ts = t0 + timedelta(seconds=n)
        await pipeline.aingest(
            [Sample(device.device_id, "switch:0", ts, power), Sample(device.device_id, "switch:1", ts, power)]
        )
    # Counted per sample, frame after frame: five fit, the other eleven are dropped.
    assert outage.state.held == 5 and outage.state.dropped == 11
    assert await PowerLog.objects.acount() == 0
    failing_writes["down"] = False
    await pipeline.atick(t0 + timedelta(seconds=100))  # the run of switch:1 expires: its stop
    reasons = [
        r
        async for r in PowerLog.objects.filter(channel__key="switch:1")
        .order_by("timestamp")
        .values_list("reason", flat=True)
    ]
    assert reasons == ["start", "stop"]
    every = [
        r
        async for r in PowerLog.objects.filter(channel__key="switch:0")
        .order_by("timestamp")
        .values_list("timestamp", flat=True)
    ]
    assert every == [t0 + timedelta(seconds=n) for n in range(3)]  # held in order; the rest dropped and counted
    assert outage.state.held == 0 and not outage.state.database_down
