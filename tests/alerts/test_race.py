"""Two processes evaluating the same stream fire one episode once (conditional UPDATE on the state's version)."""

import subprocess
import sys
import textwrap
import time

import pytest

from alerts.models import AlertEvent, AlertState
from tests.alerts.stories import make_channel, rule
from tests.servers import BASE_DIR, process_env

EVALUATOR = textwrap.dedent(
    """
    import sys, time
    from datetime import UTC, datetime, timedelta
    import django
    django.setup()
    from alerts import engine
    from collector.samples import LiveSample, Sample

    channel_pk, device_pk, start_at = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    t0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    live = [
        LiveSample(channel_pk, device_pk, Sample("dev", "switch:0", t0 + timedelta(seconds=s), 1500.0), True, "ws")
        for s in range(0, 300, 5)
    ]
    engine.engine.load()
    while time.time() < start_at:  # both processes start evaluating at the same instant
        time.sleep(0.001)
    for item in live:
        engine.observe_samples([item])
    print("done", flush=True)
    """
)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_processes_on_the_same_stream_fire_one_event():
    channel = make_channel()
    r = rule(channel, sustain_s=0)  # the very first sample fires: both processes race for it
    start_at = time.time() + 4.0
    argv = [sys.executable, "-c", EVALUATOR, str(channel.pk), str(channel.device_id), str(start_at)]
    env = process_env(DJANGO_SETTINGS_MODULE="shelly_site.settings")
    processes = [
        subprocess.Popen(argv, cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        assert "done" in out
    assert list(AlertEvent.objects.filter(rule=r).values_list("action", flat=True)) == ["fired"]
    state = AlertState.objects.get(rule=r)
    assert state.active and state.version == 1
