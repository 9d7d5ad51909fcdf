"""The alerts' q2 tasks run by a real `manage.py qcluster` (§8): a pulse ends even if its worker is killed."""

import os
import signal
import uuid

import pytest
from django_q.models import Schedule, Success

from alerts import engine, services
from alerts.models import Delivery, Notifier
from tests.alerts.stories import feed, make_channel, rule
from tests.scenarios import at
from tests.servers import kill_session, manage_argv, process_env, start, survivors_after, wait_for

# Real processes on the test database: the rows must be committed for the cluster to see them.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PULSE_S = 10
# The cluster's scheduler looks at due schedules every 30 s: the OFF is due 12 s after the ON.
OFF_AFTER_RESTART_S = 90


def qcluster(tmp_path, name):
    process = start(manage_argv("qcluster"), env=process_env(Q_WORKERS=1), log_path=tmp_path / f"{name}.log")
    heartbeats = Success.objects.filter(func="shelly_site.tasks.worker_heartbeat").count()
    up = wait_for(
        lambda: Success.objects.filter(func="shelly_site.tasks.worker_heartbeat").count() > heartbeats, timeout=60
    )
    assert up, (tmp_path / f"{name}.log").read_text()
    return process


def test_a_worker_killed_mid_pulse_still_sends_the_off_after_restart(subscriber, tmp_path):
    topic, seen = subscriber

    def payloads():
        return [payload for _, t, payload, _ in seen if t == topic]

    n = Notifier.objects.create(
        name=f"mqtt-{uuid.uuid4().hex[:6]}",
        kind="mqtt",
        config={"url": "mqtt://127.0.0.1:1883", "topic": topic},
        pulse_seconds=PULSE_S,
    )
    channel = make_channel()
    r = rule(channel, sustain_s=0)
    r.notifiers.add(n)

    first = qcluster(tmp_path, "qcluster-1")
    second = None
    try:
        feed(channel, [(at(0), 1500.0)])  # fires: the ON is queued for the worker, the OFF is a schedule
        engine.engine.drain()
        on, off = Delivery.objects.filter(notifier=n).order_by("pk")
        assert (on.step, off.step) == ("on", "off")
        assert Schedule.objects.filter(name=services.PULSE_OFF_SCHEDULE.format(pk=off.pk)).exists()

        # The worker sent the ON (and recorded it: the subscriber can see the
        # message before the row says so) and now waits for the end of the
        # pulse: kill the whole cluster.
        assert wait_for(lambda: payloads() == ["true"] and Delivery.objects.get(pk=on.pk).status == "ok", timeout=60), (
            tmp_path / "qcluster-1.log"
        ).read_text()
        os.killpg(first.pid, signal.SIGKILL)
        assert survivors_after(first) == []
        assert Delivery.objects.get(pk=off.pk).status == "pending"  # the pulse had not ended

        second = qcluster(tmp_path, "qcluster-2")
        assert wait_for(lambda: payloads() == ["true", "false"], timeout=OFF_AFTER_RESTART_S), (
            payloads(),
            (tmp_path / "qcluster-2.log").read_text(),
        )
        assert wait_for(lambda: Delivery.objects.get(pk=off.pk).status == "ok", timeout=10)
        assert Delivery.objects.get(pk=on.pk).status == "ok"
        assert not Schedule.objects.filter(name=services.PULSE_OFF_SCHEDULE.format(pk=off.pk)).exists()
        # Nothing is sent twice: one more scheduler pass later, still one ON and one OFF.
        wait_for(lambda: len(payloads()) > 2, timeout=35)
        assert payloads() == ["true", "false"]
    finally:
        for process in (first, second):
            if process is not None:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
                    survivors_after(process)
                kill_session(process)
