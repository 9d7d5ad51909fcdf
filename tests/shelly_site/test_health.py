from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Success

from collector.pipeline import ingest_samples
from tests.scenarios import at, make_channel, sample

pytestmark = pytest.mark.django_db


def record_worker_task(stopped):
    Success.objects.create(
        id="a" * 32, name="sweep", func="collector.tasks.close_expired_runs", started=stopped, stopped=stopped,
        success=True,
    )  # fmt: skip


def test_healthz_is_503_without_a_worker_and_says_what_to_do(client):
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["database"]["ok"] and body["checks"]["channel_layer"]["ok"]
    assert "qcluster" in body["checks"]["worker"]["error"]


def test_healthz_is_200_with_a_recent_worker_task_and_lists_devices(client):
    record_worker_task(timezone.now() - timedelta(seconds=30))
    ch = make_channel(policy="events")
    ingest_samples([sample(at(0), 500, channel=ch)])
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["devices"][0]["device_id"] == ch.device.device_id


def test_metrics_exposes_rows_written_by_reason(client, django_capture_on_commit_callbacks):
    ch = make_channel(policy="events")
    with django_capture_on_commit_callbacks(execute=True):
        ingest_samples([sample(at(0), 500, channel=ch)])
    text = client.get("/metrics").content.decode()
    assert 'shelly_power_log_rows_written_total{reason="start"}' in text
