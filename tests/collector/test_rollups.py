"""1-minute rollups: marked by the database trigger on every write path, recomputed from raw rows, idempotent."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from collector import rollups
from collector.models import PowerLog, PowerRollup, RollupPending, WritePolicy
from collector.pipeline import ingest_samples
from tests.scenarios import T0, at, make_channel, sample

pytestmark = pytest.mark.django_db

METER = "shellypro3em-aabbccddeeff"


def add_rows(channel, rows):
    """rows: (moment, power, voltage, current, energy)."""
    PowerLog.objects.bulk_create(
        PowerLog(
            timestamp=ts,
            device=channel.device,
            channel=channel,
            apower_w=p,
            voltage_v=v,
            current_a=i,
            energy_total_wh=e,
            reason="sample",
        )
        for ts, p, v, i, e in rows
    )


def powerlog_triggers() -> set[str]:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'collector_powerlog'")
        else:
            cursor.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = 'collector_powerlog'::regclass")
        return {name for (name,) in cursor.fetchall()}


def test_the_marking_triggers_survive_every_migration():
    # On SQLite a later AlterField on the power log rebuilds the table and drops its triggers.
    assert {"collector_powerlog_rollup_insert", "collector_powerlog_rollup_update"} <= powerlog_triggers()


def rollup_of(channel, minute):
    return PowerRollup.objects.get(channel=channel, minute=minute)


def test_a_minute_rollup_has_the_aggregates_of_its_raw_rows():
    channel = make_channel(device_id=METER, key="em:0:a", policy=WritePolicy.EVERY)
    add_rows(
        channel,
        [
            (at(0), 100.0, 230.0, 0.5, 1000.0),
            (at(10), 300.0, 232.0, None, 1000.5),
            (at(50), 200.0, None, 1.5, None),
            (at(60), 50.0, 231.0, 0.2, 1001.0),  # next minute
        ],
    )
    assert set(RollupPending.objects.values_list("minute", flat=True)) == {at(0), at(60)}

    result = rollups.update_rollups()

    assert (result.minutes, result.written) == (2, 2)
    first = rollup_of(channel, at(0))
    assert first.samples == 3
    assert first.avg_power_w == pytest.approx(200.0)
    assert (first.min_power_w, first.max_power_w) == (100.0, 300.0)
    assert first.avg_voltage_v == pytest.approx(231.0)  # None left out
    assert first.avg_current_a == pytest.approx(1.0)
    assert first.last_energy_total_wh == 1000.5  # the last known counter of the minute
    assert rollup_of(channel, at(60)).samples == 1
    assert not RollupPending.objects.exists()


def test_rows_written_by_the_pipeline_are_rolled_up():
    channel = make_channel(device_id=METER, key="em:0:a", policy=WritePolicy.EVERY)
    ingest_samples(
        [
            sample(at(s), 100.0 + s, channel=channel, device_id=METER, key="em:0:a", e=5000.0 + s)
            for s in range(0, 120, 10)
        ]
    )
    assert PowerLog.objects.filter(channel=channel).count() == 12
    rollups.update_rollups()
    assert list(PowerRollup.objects.filter(channel=channel).values_list("minute", "samples")) == [
        (at(0), 6),
        (at(60), 6),
    ]
    assert rollup_of(channel, at(60)).last_energy_total_wh == 5110.0


def test_recomputing_is_idempotent_and_a_late_row_updates_its_minute():
    channel = make_channel(device_id=METER, key="em:0:a", policy=WritePolicy.EVERY)
    add_rows(channel, [(at(0), 100.0, 230.0, 0.5, 10.0), (at(20), 200.0, 230.0, 0.5, 11.0)])
    rollups.update_rollups()
    before = list(PowerRollup.objects.values())

    rollups.recompute_minutes([(channel.pk, at(0))])  # again, unasked
    assert list(PowerRollup.objects.values()) == before

    add_rows(channel, [(at(40), 600.0, 230.0, 0.5, 12.0)])  # a late row in the same minute
    rollups.update_rollups()
    assert PowerRollup.objects.count() == 1
    rollup = rollup_of(channel, at(0))
    assert (rollup.samples, rollup.avg_power_w, rollup.max_power_w, rollup.last_energy_total_wh) == (
        3,
        pytest.approx(300.0),
        600.0,
        12.0,
    )


def test_a_row_landing_while_a_minute_is_recomputed_keeps_it_marked():
    channel = make_channel(device_id=METER, key="em:0:a", policy=WritePolicy.EVERY)
    add_rows(channel, [(at(0), 100.0, 230.0, 0.5, None)])
    read = list(RollupPending.objects.values_list("pk", "version"))
    rollups.recompute_minutes([(channel.pk, at(0))])
    add_rows(channel, [(at(30), 500.0, 230.0, 0.5, None)])  # bumps the mark's version
    rollups._unmark(read)
    assert RollupPending.objects.filter(channel=channel, minute=at(0)).exists()
    rollups.update_rollups()
    assert rollup_of(channel, at(0)).samples == 2


def test_an_updated_row_remarks_its_minute():
    channel = make_channel(device_id=METER, key="em:0:a", policy=WritePolicy.EVERY)
    add_rows(channel, [(at(0), 100.0, 230.0, 0.5, None)])
    rollups.update_rollups()
    PowerLog.objects.filter(channel=channel).update(apower_w=900.0)
    rollups.update_rollups()
    assert rollup_of(channel, at(0)).avg_power_w == 900.0


def test_a_minute_without_raw_rows_keeps_its_rollup_before_the_raw_window_only(settings):
    settings.RAW_RETENTION_DAYS = 30
    channel = make_channel(device_id=METER, key="em:0:a", policy=WritePolicy.EVERY)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    old, recent = now - timedelta(days=40), now - timedelta(days=1)
    add_rows(channel, [(old, 100.0, 230.0, 0.5, None), (recent, 100.0, 230.0, 0.5, None)])
    rollups.update_rollups()
    PowerLog.objects.filter(channel=channel).delete()

    rollups.recompute_minutes([(channel.pk, old), (channel.pk, recent)])

    # Before the window the rollup is all that is left (retention); inside it
    # the raw rows are the truth and they are gone.
    assert list(PowerRollup.objects.values_list("minute", flat=True)) == [old]


def test_minutes_far_apart_are_read_by_separate_ranges(django_assert_max_num_queries):
    channel = make_channel(device_id=METER, key="em:0:a", policy=WritePolicy.EVERY)
    add_rows(channel, [(T0, 1.0, None, None, None), (T0 + timedelta(days=200), 2.0, None, None, None)])
    # A row in between that is not marked must not be read or rolled up.
    PowerLog.objects.bulk_create(
        [
            PowerLog(
                timestamp=T0 + timedelta(days=100),
                device=channel.device,
                channel=channel,
                apower_w=3.0,
                reason="sample",
            )
        ]
    )
    RollupPending.objects.filter(minute=T0 + timedelta(days=100)).delete()
    rollups.update_rollups()
    assert list(PowerRollup.objects.values_list("avg_power_w", flat=True)) == [1.0, 2.0]
