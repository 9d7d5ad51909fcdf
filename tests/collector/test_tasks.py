from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule

from collector import tasks
from collector.models import PowerLog
from collector.pipeline import ingest_samples
from tests.scenarios import make_channel, sample

pytestmark = pytest.mark.django_db


def test_sweeper_task_closes_an_expired_run_and_clears_its_follow_up():
    ch = make_channel(policy="events", stop_timeout_s=120)
    ingest_samples([sample(timezone.now() - timedelta(minutes=5), 500, channel=ch)])
    assert tasks.close_expired_runs() == "closed 1 run(s), wrote 1 row(s)"
    assert list(PowerLog.objects.filter(channel=ch).values_list("reason", flat=True)) == ["start", "stop"]
    assert not Schedule.objects.filter(name=tasks.NEXT_SWEEP_SCHEDULE).exists()


def test_sweeper_schedules_a_one_off_sweep_at_the_next_expiry():
    ch = make_channel(policy="events", stop_timeout_s=120)
    last_active = timezone.now() - timedelta(seconds=30)
    ingest_samples([sample(last_active, 500, channel=ch)])
    tasks.close_expired_runs()
    follow_up = Schedule.objects.get(name=tasks.NEXT_SWEEP_SCHEDULE)
    assert follow_up.schedule_type == Schedule.ONCE
    assert follow_up.next_run == last_active + timedelta(seconds=121)


def test_setup_schedules_is_idempotent():
    call_command("setup_schedules")
    call_command("setup_schedules")
    assert Schedule.objects.filter(name="collector: close expired runs").count() == 1
