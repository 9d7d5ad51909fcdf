"""collector.writebehind: group commit of all connections' writes, all or nothing, in order, retried."""

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async

from collector import pipeline as pl
from collector import writebehind
from collector.models import ChannelState, Device, PowerLog
from collector.pipeline import Pipeline
from tests.scenarios import at, make_channel, rows, sample

pytestmark = pytest.mark.django_db(transaction=True)


def stored_rows(channel):
    return list(PowerLog.objects.filter(channel=channel).order_by("id").values_list("timestamp", "reason", "apower_w"))


async def test_rows_of_a_channel_are_stored_in_sample_order_across_flushes():
    channel = await sync_to_async(make_channel)(policy="every")
    stage = writebehind.stage()
    stage.max_rows = 7  # many small flushes
    pipeline = Pipeline()
    for n in range(300):
        await pipeline.aingest([sample(at(n), 100 + n, channel=channel)], wait=False)
        if n % 20 == 0:
            await asyncio.sleep(0)  # let the stage flush while samples keep coming
        if n % 50 == 49:
            await pipeline.committed()  # at least one flush boundary every 50 samples
    assert await pipeline.committed() is True

    stored = await sync_to_async(stored_rows)(channel)
    assert [r[0] for r in stored] == [at(n) for n in range(300)]  # by insertion id: sample order
    assert [r[2] for r in stored] == [100 + n for n in range(300)]
    assert stage.flushes >= 6
    state = await ChannelState.objects.aget(pk=channel.pk)
    assert state.last_sample_at == at(299)


@pytest.fixture
def database_down(monkeypatch):
    """The stage's writes fail as if the database were gone while `switch["down"]`."""
    from collector import outage

    real = Pipeline.persist
    switch = {"down": True, "calls": 0}

    def persist(self, plans, **kwargs):
        switch["calls"] += 1
        if switch["down"]:
            raise pl.psycopg.OperationalError("database is down")
        return real(self, plans, **kwargs)

    monkeypatch.setattr(Pipeline, "persist", persist)
    outage.state.reset()
    yield switch
    outage.state.reset()


async def test_a_flush_failing_midway_writes_nothing_partial_and_is_retried(monkeypatch):
    from collector import outage

    channel = await sync_to_async(make_channel)(policy="events", stop_timeout_s=120)
    other = await sync_to_async(make_channel)(policy="every", device_id="shellypro3em-000000000001", key="em:0:a")
    stage = writebehind.stage()
    stage.interval_s = 0.01
    seen_after_failure = []
    calls = []
    real_insert = pl.insert_power_logs
    real_write = pl.write_plans

    def insert_then_fail(rows_):
        real_insert(rows_)  # the rows and the state updates are in the transaction...
        calls.append(len(rows_))
        if len(calls) == 1:
            raise pl.psycopg.OperationalError("connection lost mid-flush")  # ...which then fails

    def write_plans(plans, **kw):
        try:
            return real_write(plans, **kw)
        except Exception:
            state = ChannelState.objects.get(pk=channel.pk)
            seen_after_failure.append((PowerLog.objects.count(), state.running, state.last_sample_at))
            raise

    monkeypatch.setattr(pl, "insert_power_logs", insert_then_fail)
    monkeypatch.setattr(pl, "write_plans", write_plans)
    outage.state.reset()
    pipeline = Pipeline()
    await pipeline.aingest([sample(at(0), 500, channel=channel), sample(at(0), 40, channel=other)], wait=False)
    await pipeline.aingest([sample(at(1), 41, channel=other)], wait=False)
    for _ in range(250):  # bounded: until the stage has retried on its own and written
        if len(calls) >= 2 and not stage.pending and not stage.inflight:
            break
        await asyncio.sleep(0.02)
    assert seen_after_failure == [(0, False, None)]  # nothing of the failed flush is stored
    assert stage.failures == 0 and len(calls) == 2  # retried once, then written
    assert await sync_to_async(rows)(channel) == [(at(0), "start", 500)]
    assert [r[2] for r in await sync_to_async(stored_rows)(other)] == [40, 41]
    state = await ChannelState.objects.aget(pk=channel.pk)
    assert state.running and state.last_sample_at == at(0)
    assert outage.state.held == 0 and not outage.state.database_down
    outage.state.reset()


async def test_samples_arriving_while_the_database_is_down_are_kept_behind_in_order(database_down):
    from collector import outage

    channel = await sync_to_async(make_channel)(policy="every")
    stage = writebehind.stage()
    stage.interval_s = 0.01
    pipeline = Pipeline()
    for n in range(5):
        await pipeline.aingest([sample(at(n), n + 1, channel=channel)], wait=False)
    for _ in range(100):  # bounded: until a flush has failed
        if stage.failures:
            break
        await asyncio.sleep(0.02)
    assert stage.failures and outage.state.database_down
    for n in range(5, 10):
        # Nobody waits for a database that is away: held at once.
        assert (await pipeline.aingest([sample(at(n), n + 1, channel=channel)])).rows_written == 0
    assert outage.state.held == 10
    database_down["down"] = False
    await pipeline.atick()  # retries now and waits for it
    assert [r[2] for r in await sync_to_async(stored_rows)(channel)] == [float(n + 1) for n in range(10)]
    assert outage.state.held == 0 and not outage.state.database_down


async def test_a_failure_that_is_not_an_outage_is_given_up_and_raised_to_its_connection(monkeypatch):
    channel = await sync_to_async(make_channel)(policy="every")
    stage = writebehind.stage()
    stage.interval_s = 0.001

    def broken(plans, **kw):
        raise ValueError("a bug")

    monkeypatch.setattr(pl, "write_plans", broken)
    pipeline = Pipeline()
    await pipeline.aingest([sample(at(0), 1, channel=channel)], wait=False)
    for _ in range(250):  # bounded: retried a few times, then given up (never an endless retry)
        if not stage.pending and not stage.inflight:
            break
        await asyncio.sleep(0.02)
    assert not stage.pending and stage.failures == 0
    with pytest.raises(ValueError):
        await pipeline.aingest([sample(at(1), 2, channel=channel)], wait=False)


def test_two_processes_flushing_the_same_channel_write_one_start_and_one_stop():
    """Two web processes (own event loop, stage, cache and connections) hold the same channel."""
    from django.db import connection

    channel = make_channel(policy="events", stop_timeout_s=120)
    barrier = threading.Barrier(2, timeout=30)
    errors = []

    def process(first_sample_at):
        async def run():
            pipeline = Pipeline()
            await sync_to_async(pipeline.load)([sample(at(0), 0, channel=channel)])
            barrier.wait()  # both loaded the idle state before either writes
            await pipeline.aingest([sample(at(first_sample_at), 500, channel=channel)])
            barrier.wait()
            await pipeline.atick(now=at(400))  # both see the run expired

        try:
            asyncio.run(run())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=process, args=(ts,)) for ts in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    reasons = [r[1] for r in rows(channel)]
    assert reasons == ["start", "stop"]
    state = ChannelState.objects.get(pk=channel.pk)
    assert not state.running and state.run_seq == 2


@pytest.mark.slow
def test_a_web_process_stopped_with_sigterm_writes_what_it_holds(tmp_path):
    """uvicorn as in production, with flushes far apart: only the shutdown can have written the rows."""
    import json
    import os
    import signal
    import time

    from websockets.sync.client import connect

    from collector.models import IngestToken
    from tests.servers import free_port, process_env, running, uvicorn_argv, wait_for

    channel = make_channel(policy="every", device_id="shellypro4pm-0000000000aa")
    token = IngestToken(name="sigterm", device=channel.device)
    raw = token.set_new_secret()
    token.save()
    port = free_port()
    env = process_env(COLLECTOR_WRITE_FLUSH_MS="600000", COLLECTOR_WRITE_FLUSH_ROWS="100000")
    with running(uvicorn_argv(port), env=env, log_path=tmp_path / "uvicorn.log", port=port) as server:
        with connect(f"ws://127.0.0.1:{port}/ws/shelly/{raw}/", open_timeout=20) as ws:
            ws.recv(timeout=20), ws.recv(timeout=20)  # the bootstrap requests
            now = time.time()
            for n in range(20):
                params = {"ts": now - 30 + n, "switch:0": {"id": 0, "apower": 100.0 + n, "voltage": 230.0}}
                ws.send(json.dumps({"src": channel.device.device_id, "method": "NotifyStatus", "params": params}))
            # Held, not written: the stage flushes at most every 10 minutes.
            assert wait_for(lambda: Device.objects.get(pk=channel.device.pk).last_seen is not None, 20)
            assert PowerLog.objects.filter(channel=channel).count() == 0
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    assert [r[2] for r in stored_rows(channel)] == [100.0 + n for n in range(20)]
