"""A simulated Pro 4PM against a real daphne process, through to PowerLog rows (§4.1, §4.4, §5).

The server runs as its own process on the test database (SQLite file, or
PostgreSQL + the Redis channel layer when the suite runs with DATABASE_URL
and REDIS_URL), exactly as in production; the test only looks at the rows.
"""

import asyncio
import time

import pytest

from collector.models import Channel, Device, IngestToken, PowerLog
from collector.simulators.pro4pm import device_identity, run_devices
from tests.servers import running_daphne, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SEED = 42
STOP_TIMEOUT_S = 3


@pytest.fixture
def server(transactional_db, tmp_path):
    with running_daphne(tmp_path, scheme="ws", COLLECTOR_TIMER_SECONDS="1", COLLECTOR_AUTO_REGISTER="false") as url:
        yield url


def registered_device():
    device_id, mac = device_identity(0, SEED)
    device = Device.objects.create(device_id=device_id, mac=mac, model="SPSW-004PE16EU", generation=2)
    for n in range(4):
        Channel.objects.create(device=device, key=f"switch:{n}", policy="events", stop_timeout_s=STOP_TIMEOUT_S)
    token = IngestToken(name="end-to-end", device=device)
    raw = token.set_new_secret()
    token.save()
    return device, raw


def rows(device, key):
    return list(PowerLog.objects.filter(device=device, channel__key=key).order_by("timestamp", "id"))


def test_simulated_pumps_write_start_rows_and_a_stop_after_disconnect(server):
    device, token = registered_device()

    stats = asyncio.run(
        run_devices(
            f"{server}/ws/shelly/{token}/",
            1,
            "pumps",
            duration=5,
            rate=5,
            seed=SEED,
            disconnect_every=2,  # a reconnect inside the run must continue it
            start_running=True,
            run_s=3600,
        )
    )
    stopped_at = time.time()
    assert stats.connect_failures == 0, stats.last_error
    assert stats.reconnects >= 1 and stats.frames_sent >= 15 and stats.rpc_answered >= 4

    # Both pumps and the aerator started; the idle output wrote nothing.
    for key in ("switch:0", "switch:1", "switch:2"):
        start = wait_for(lambda key=key: [r for r in rows(device, key) if r.reason == "start"], timeout=5)
        assert len(start) == 1, key
    first = rows(device, "switch:0")[0]
    assert first.reason == "start" and first.apower_w > 550  # the inrush spike at switch-on
    assert first.voltage_v > 200 and first.current_a > 0 and first.energy_total_wh is not None
    # Written while the device was connected, not at some later flush.
    assert first.timestamp <= first.created_at and first.created_at.timestamp() <= stopped_at
    assert rows(device, "switch:3") == []

    # Disconnected for good: each run is closed once, after stop_timeout.
    for key in ("switch:0", "switch:1", "switch:2"):
        stops = wait_for(
            lambda key=key: [r for r in rows(device, key) if r.reason == "stop"], timeout=STOP_TIMEOUT_S + 12
        )
        assert len(stops) == 1, (key, [(r.reason, r.timestamp) for r in rows(device, key)])
        log = rows(device, key)
        assert [r.reason for r in log].count("start") == 1
        assert log[-1].reason == "stop" and log[-1].apower_w == 0.0
        # The run's end (its last active sample, sent before the device went
        # away), not when the timer fired; 1 ms covers the float→datetime rounding.
        assert log[-1].timestamp.timestamp() < stopped_at + 0.001
        assert log[-1].energy_total_wh >= log[0].energy_total_wh
