"""Faults of the processes around the pipeline, with real processes (§5, §9 operations, issue 13):

- a web process killed (SIGKILL) mid-run by a device that never returns: where the stop lands;
- a Redis restart: ingestion goes on, dashboard sockets reconnect and are live again;
- two uvicorn processes sharing PostgreSQL and Redis: a device moving between them
  continues its run (one start, one stop, no duplicate rows); dashboards on either are live.

PostgreSQL and Redis are private instances of this module (tests/private_services.py).
"""

import asyncio
import os
import signal
import time

import pytest

from tests.private_services import (
    DashboardClient,
    WsDevice,
    private_postgres,
    private_redis,
    run_sweeper,
    setup_device,
    staff_session_cookie,
)
from tests.servers import free_port, kill_session, process_env, running, start, uvicorn_argv, wait_for, wait_for_port

pytestmark = [pytest.mark.slow]

INTERVAL_S = 0.25
FLUSH_S = 1.0
STOP_TIMEOUT_S = 3


@pytest.fixture(scope="module")
def cluster():
    with private_postgres() as cluster:
        yield cluster


def rows(cluster, db, device_id, key):
    return cluster.query(
        db,
        "SELECT p.timestamp, p.reason, p.idempotency_key FROM collector_powerlog p "
        "JOIN collector_channel c ON c.id = p.channel_id JOIN collector_device d ON d.id = c.device_id "
        "WHERE d.device_id = %s AND c.key = %s ORDER BY p.timestamp, p.id",
        (device_id, key),
    )


def web_env(url, **extra):
    return process_env(
        DATABASE_URL=url,
        COLLECTOR_AUTO_REGISTER="false",
        COLLECTOR_TIMER_SECONDS="0.5",
        COLLECTOR_STATE_FLUSH_SECONDS=str(FLUSH_S),
        DASHBOARD_REFRESH_SECONDS="1",
        **{"REDIS_URL": "", **extra},
    )


async def send_for(device, n, power, sent):
    for _ in range(n):
        ts = time.time()
        await device.send(ts, {0: power, 1: power})
        sent.append(round(ts, 2))
        await asyncio.sleep(INTERVAL_S)


def test_sigkill_mid_run_places_the_stop_within_the_flush_bound(cluster, tmp_path):
    """The README's bound: the stop is at most COLLECTOR_STATE_FLUSH_SECONDS (+ one sample) before the real end."""
    db, device_id = "crash", "shellypro4pm-crash0000001"
    url = cluster.create_database(db)
    token = setup_device(url, device_id, [("switch:0", "events"), ("switch:1", "every")], stop_timeout=STOP_TIMEOUT_S)
    port = free_port()
    process = start(uvicorn_argv(port), env=web_env(url), log_path=tmp_path / "uvicorn.log")
    sent: list[float] = []
    try:
        wait_for_port(port, process)

        async def scenario():
            device = WsDevice(f"ws://127.0.0.1:{port}", token, device_id)
            await device.connect()
            await send_for(device, 14, 150.0, sent)  # 3.5 s of a running pump, then the web process dies
            os.killpg(process.pid, signal.SIGKILL)
            await device.close()

        asyncio.run(scenario())
    finally:
        kill_session(process)
    real_end = sent[-1]
    time.sleep(STOP_TIMEOUT_S + 0.5)
    run_sweeper(url)  # the device never returns: the sweeper (django-q2) closes the run
    events = rows(cluster, db, device_id, "switch:0")
    assert [r[1] for r in events] == ["start", "stop"], events
    early = real_end - events[1][0].timestamp()
    assert -0.01 <= early <= FLUSH_S + INTERVAL_S + 0.3, f"stop {early:.2f} s before the run's real end"


def test_redis_restart_ingestion_continues_and_dashboards_reconnect(cluster, tmp_path):
    db, device_id = "redis_restart", "shellypro4pm-redis000001"
    url = cluster.create_database(db)
    token = setup_device(url, device_id, [("switch:0", "events"), ("switch:1", "every")], stop_timeout=60)
    cookie = staff_session_cookie(url)
    port = free_port()
    sent: list[float] = []
    with private_redis() as redis_server:
        env = web_env(url, REDIS_URL=redis_server.url)
        with running(uvicorn_argv(port), env=env, log_path=tmp_path / "uvicorn.log", port=port):

            async def scenario():
                stop = asyncio.Event()
                dashboard = DashboardClient(f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}", cookie)
                watcher = asyncio.create_task(dashboard.run(stop))
                device = WsDevice(f"ws://127.0.0.1:{port}", token, device_id)
                await device.connect()
                await send_for(device, 12, 100.0, sent)
                assert dashboard.live_after(0), "no live push before the restart"
                await asyncio.to_thread(redis_server.stop)
                await send_for(device, 8, 110.0, sent)
                await asyncio.to_thread(redis_server.start)
                restarted = time.time()
                await send_for(device, 24, 120.0, sent)
                assert device.open, "the device socket was closed by the Redis restart"
                stop.set()
                await watcher
                await device.close()
                return dashboard, restarted

            dashboard, restarted = asyncio.run(scenario())
    every = wait_for(lambda: len(rows(cluster, db, device_id, "switch:1")) >= len(sent), 10)
    assert every, "samples were lost around the Redis restart"
    assert [round(r[0].timestamp(), 2) for r in rows(cluster, db, device_id, "switch:1")] == sent
    assert dashboard.connects >= 2, "the dashboard socket was never closed and reopened"
    assert dashboard.live_after(restarted + 1), "no live push after the restart"


def test_two_web_processes_share_a_run_and_the_dashboards(cluster, tmp_path):
    db, device_id = "scale_out", "shellypro4pm-scale000001"
    url = cluster.create_database(db)
    token = setup_device(url, device_id, [("switch:0", "events"), ("switch:1", "every")], stop_timeout=STOP_TIMEOUT_S)
    cookie = staff_session_cookie(url)
    ports = [free_port(), free_port()]
    sent: list[float] = []
    with private_redis() as redis_server:
        env = web_env(url, REDIS_URL=redis_server.url)
        with (
            running(uvicorn_argv(ports[0]), env=env, log_path=tmp_path / "a.log", port=ports[0]),
            running(uvicorn_argv(ports[1]), env=env, log_path=tmp_path / "b.log", port=ports[1]),
        ):

            async def scenario():
                stop = asyncio.Event()
                dashboards = [
                    DashboardClient(f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}", cookie) for port in ports
                ]
                watchers = [asyncio.create_task(d.run(stop)) for d in dashboards]
                await asyncio.sleep(1)
                on_a = WsDevice(f"ws://127.0.0.1:{ports[0]}", token, device_id)
                await on_a.connect()
                await send_for(on_a, 8, 100.0, sent)
                await on_a.close()
                on_b = WsDevice(f"ws://127.0.0.1:{ports[1]}", token, device_id)
                await on_b.connect()
                # Longer than the stop timeout on B: A's orphaned copy of the run must not close it.
                await send_for(on_b, 20, 100.0, sent)
                run_end = sent[-1]
                await send_for(on_b, 4, 0.0, sent)
                await asyncio.sleep(STOP_TIMEOUT_S + 1.5)
                await on_b.close()
                stop.set()
                await asyncio.gather(*watchers)
                return dashboards, run_end

            dashboards, run_end = asyncio.run(scenario())
            stop_rows = wait_for(lambda: [r for r in rows(cluster, db, device_id, "switch:0") if r[1] == "stop"], 15)
    events = rows(cluster, db, device_id, "switch:0")
    assert [r[1] for r in events] == ["start", "stop"], events
    assert stop_rows[0][0].timestamp() == pytest.approx(run_end + INTERVAL_S, abs=0.15)
    every = rows(cluster, db, device_id, "switch:1")
    assert [round(r[0].timestamp(), 2) for r in every] == sent
    assert len({r[2] for r in every}) == len(every)
    for dashboard in dashboards:
        assert len(dashboard.live_after(0)) >= 2, "a dashboard got no live pushes"
