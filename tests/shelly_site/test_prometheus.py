"""`/metrics` adds up every process of the site (§9): web workers and the poller, as real processes."""

import asyncio
import json
import subprocess
import sys

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from collector.models import Device, EnergyInterval, IngestToken, Transport
from shelly_site.prometheus import clear_multiprocess_dir
from tests.servers import BASE_DIR, free_port, manage_argv, process_env, running, uvicorn_argv, wait_for, wait_for_port

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SWITCH_FRAME = {
    "src": "shellypro4pm-a8032ab10002",
    "method": "NotifyStatus",
    "params": {"switch:0": {"id": 0, "apower": 512.0, "voltage": 230.1, "current": 2.2}},
}


def samples(metrics_text: str) -> dict:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
    }


async def send_frames(url: str, count: int) -> None:
    async with websockets.connect(url) as ws:
        for _ in range(count):
            await ws.send(json.dumps(SWITCH_FRAME))
        await asyncio.sleep(0.5)


def test_metrics_of_the_web_process_include_the_pollers_counters(tmp_path):
    metrics_dir = tmp_path / "metrics"
    web_port, meter_port = free_port(), free_port()
    Device.objects.create(
        device_id="shellypro3em-000000000002", transport=Transport.RPC_POLL, host=f"127.0.0.1:{meter_port}"
    )
    token = IngestToken(name="metrics")
    raw = token.set_new_secret()
    token.save()
    env = process_env(PROMETHEUS_MULTIPROC_DIR=metrics_dir, COLLECTOR_AUTO_REGISTER="true")

    with (
        running([*uvicorn_argv(web_port), "--workers", "2"], env=env, log_path=tmp_path / "web.log", port=web_port),
        running(
            manage_argv("simulate_shelly", "--kind", "rpc3em", "--rpc-port", str(meter_port)),
            env=env,
            log_path=tmp_path / "meter.log",
        ) as meter,
    ):
        wait_for_port(meter_port, meter)
        with running(manage_argv("run_poller", "--live-seconds", "1"), env=env, log_path=tmp_path / "poller.log"):
            assert wait_for(EnergyInterval.objects.exists, timeout=60), (tmp_path / "poller.log").read_text()
            asyncio.run(send_frames(f"ws://127.0.0.1:{web_port}/ws/shelly/{raw}/", 5))

            def scraped():
                values = samples(httpx.get(f"http://127.0.0.1:{web_port}/metrics").text)
                intervals = values.get(("shelly_energy_intervals_ingested_total", ()), 0)
                return values if intervals >= EnergyInterval.objects.count() else None

            values = wait_for(scraped, timeout=20)
        assert values, "the web process never showed the poller's intervals"
        assert values[("shelly_frames_in_total", (("transport", "rpc_poll"),))] >= 1  # the poller's
        assert values[("shelly_frames_in_total", (("transport", "websocket"),))] >= 5  # a web worker's
        # The poller has stopped: its counts stay in the sum (totals never go back).
        after = samples(httpx.get(f"http://127.0.0.1:{web_port}/metrics").text)
        assert (
            after[("shelly_energy_intervals_ingested_total", ())]
            >= values[("shelly_energy_intervals_ingested_total", ())]
        )


def test_a_command_that_counted_nothing_leaves_no_file_behind(tmp_path):
    env = process_env(PROMETHEUS_MULTIPROC_DIR=tmp_path)
    subprocess.run(manage_argv("check"), cwd=BASE_DIR, env=env, check=True, capture_output=True)
    assert list(tmp_path.iterdir()) == []


def test_an_empty_setting_means_one_process_and_no_files_anywhere(tmp_path):
    env = process_env(PROMETHEUS_MULTIPROC_DIR="")
    code = (
        "import django; django.setup(); from collector import metrics; metrics.frames_in.labels('batch').inc(); "
        "from shelly_site.prometheus import exposition; "
        "assert b'shelly_frames_in_total{transport=\"batch\"} 1.0' in exposition(), exposition()"
    )
    env["DJANGO_SETTINGS_MODULE"] = "shelly_site.settings"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**env, "PYTHONPATH": str(BASE_DIR)})
    assert result.returncode == 0
    assert list(tmp_path.iterdir()) == []


def test_clearing_the_directory_removes_every_process_file(tmp_path):
    for name in ("counter_host-1.db", "gauge_livesum_host-1.db", "counter_other-7.db"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "README").write_text("not ours")
    assert clear_multiprocess_dir(str(tmp_path)) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["README"]
