"""collector.pipeline write helpers: large batches (COPY on PostgreSQL) are idempotent and complete."""

import pytest
from django.db import transaction
from django.utils import timezone

from collector.models import PowerLog
from collector.pipeline import COPY_MIN_ROWS, ingest_samples, insert_power_logs
from tests.scenarios import at, make_channel, sample

pytestmark = pytest.mark.django_db


def power_log_rows(channel, count, *, start=0):
    now = timezone.now()
    return [
        (at(n), channel.device_id, channel.pk, 100.0 + n, 230, None, None, "sample", f"k{n}", now)
        for n in range(start, start + count)
    ]


@pytest.mark.parametrize("count", [COPY_MIN_ROWS - 1, COPY_MIN_ROWS, 1000])
def test_a_batch_written_twice_is_stored_once_with_its_values(count):
    channel = make_channel(policy="every")
    with transaction.atomic():
        insert_power_logs(power_log_rows(channel, count))
    with transaction.atomic():  # again, plus ten new ones: only the new ones are added
        insert_power_logs(power_log_rows(channel, count + 10))
    stored = list(PowerLog.objects.filter(channel=channel).order_by("id").values_list("timestamp", "apower_w"))
    assert stored == [(at(n), 100.0 + n) for n in range(count + 10)]


def test_a_failed_transaction_leaves_nothing_staged_for_the_next_one():
    channel = make_channel(policy="every")
    with pytest.raises(RuntimeError), transaction.atomic():
        insert_power_logs(power_log_rows(channel, 500))
        raise RuntimeError("rolled back")
    with transaction.atomic():
        insert_power_logs(power_log_rows(channel, 300, start=1000))
    assert PowerLog.objects.filter(channel=channel).count() == 300


def test_a_1000_reading_every_batch_writes_1000_rows_and_its_state_once():
    channel = make_channel(policy="every")
    result = ingest_samples([sample(at(n), 50 + n % 7, channel=channel) for n in range(1000)])
    assert result.accepted == 1000 and result.rows_written == 1000
    assert PowerLog.objects.filter(channel=channel).count() == 1000
    assert channel.state.__class__.objects.get(pk=channel.pk).last_sample_at == at(999)
