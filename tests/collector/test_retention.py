"""Retention: raw `every` rows go after RAW_RETENTION_DAYS in batches, rollups stay; charts and cycles survive it."""

import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from collector import retention, rollups, tasks
from collector.cycles import rebuild_cycles, sync_cycles
from collector.models import Channel, Cycle, PowerLog, PowerRollup, WritePolicy
from tests.api_base import *  # noqa: F403
from tests.collector.test_rollups import METER, add_rows
from tests.servers import BASE_DIR, process_env

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(second=0, microsecond=0)


def meter(key="em:0:a"):
    from tests.scenarios import make_channel

    return make_channel(device_id=METER, key=key, policy=WritePolicy.EVERY)


def every_10_s(channel, start, minutes, power=lambda i: 100.0 + i % 7, energy0=1000.0):
    add_rows(
        channel,
        [
            (start + timedelta(seconds=10 * i), power(i), 230.0 + i % 3, power(i) / 230.0, energy0 + i * 0.3)
            for i in range(minutes * 6)
        ],
    )


@pytest.fixture
def retention_settings(settings):
    settings.RAW_RETENTION_DAYS = 30
    settings.ROLLUP_RETENTION_DAYS = 365
    settings.RETENTION_BATCH_ROWS = 25
    return settings


def test_old_raw_rows_of_every_channels_go_in_batches_and_leave_rollups(retention_settings, caplog):
    channel = meter()
    switch = Channel.objects.create(device=channel.device, key="switch:0", policy=WritePolicy.EVENTS)
    old, recent = NOW - timedelta(days=35), NOW - timedelta(days=2)
    every_10_s(channel, old, 10)  # 60 rows
    every_10_s(channel, recent, 10)
    add_rows(switch, [(old, 500.0, 230.0, 2.0, 10.0)])
    very_old = NOW - timedelta(days=400)
    every_10_s(channel, very_old, 1)

    with caplog.at_level(logging.INFO, logger="collector.retention"):
        result = retention.apply_retention(now=NOW)

    assert result.finished and result.raw_deleted == 66
    assert not PowerLog.objects.filter(channel=channel, timestamp__lt=NOW - timedelta(days=30)).exists()
    assert PowerLog.objects.filter(channel=channel).count() == 60  # the recent ones
    assert PowerLog.objects.filter(channel=switch).count() == 1  # events rows are kept
    # Each old minute kept its rollup; the 400-day-old one went with rollup retention.
    old_rollups = PowerRollup.objects.filter(channel=channel, minute__lt=NOW - timedelta(days=30))
    assert list(old_rollups.values_list("samples", flat=True)) == [6] * 10
    assert result.rollups_deleted == 1
    channel.refresh_from_db()
    assert channel.raw_kept_from == NOW - timedelta(days=30)
    switch.refresh_from_db()
    assert switch.raw_kept_from is None
    batches = [r.getMessage() for r in caplog.records if getattr(r, "event", "") == "retention_batch"]
    assert batches == [
        f"retention: deleted 25 raw rows of channel {channel.pk} (25 so far)",
        f"retention: deleted 25 raw rows of channel {channel.pk} (50 so far)",
        f"retention: deleted 16 raw rows of channel {channel.pk} (66 so far)",
        f"retention: deleted 1 rollups of channel {channel.pk} (1 so far)",
    ]
    assert any(getattr(r, "event", "") == "retention_pass" for r in caplog.records)

    again = retention.apply_retention(now=NOW)  # nothing left to do
    assert (again.raw_deleted, again.rollups_deleted) == (0, 0)


def test_a_pass_that_runs_out_of_time_stops_and_the_next_one_continues(retention_settings):
    channel = meter()
    every_10_s(channel, NOW - timedelta(days=40), 20)  # 120 rows
    first = retention.apply_retention(now=NOW, batch_rows=10, budget_s=0)
    assert not first.finished and first.raw_deleted == 10
    second = retention.apply_retention(now=NOW, batch_rows=1000)
    assert second.finished and second.raw_deleted == 110


def test_no_row_goes_while_its_minute_still_waits_for_its_rollup(retention_settings, monkeypatch):
    channel = meter()
    every_10_s(channel, NOW - timedelta(days=40), 20)  # 20 marked minutes
    monkeypatch.setattr(rollups, "PENDING_BATCH", 5)
    result = retention.apply_retention(now=NOW, budget_s=0)  # the rollup backlog alone spends it
    assert not result.finished and result.raw_deleted == 0
    assert PowerLog.objects.filter(channel=channel).count() == 120
    assert retention.apply_retention(now=NOW).raw_deleted == 120
    assert PowerRollup.objects.filter(channel=channel).count() == 20


def test_retention_off_keeps_everything(retention_settings):
    retention_settings.RAW_RETENTION_DAYS = 0
    retention_settings.ROLLUP_RETENTION_DAYS = 0
    channel = meter()
    every_10_s(channel, NOW - timedelta(days=800), 1)
    rollups.update_rollups()
    result = retention.apply_retention(now=NOW)
    assert (result.raw_deleted, result.rollups_deleted) == (0, 0)
    assert PowerLog.objects.count() == 6 and PowerRollup.objects.count() == 1


def series(api, channel, start, end, bucket=None):
    query = {"channel": channel.pk, "from": start.isoformat(), "to": end.isoformat()}
    if bucket:
        query["bucket"] = bucket
    response = api.get("/api/v1/series/", query)
    assert response.status_code == 200, response.content
    return response.json()


def assert_same_series(after, before):
    assert after.keys() == before.keys()
    assert (after["bucket_s"], len(after["points"])) == (before["bucket_s"], len(before["points"]))
    for a, b in zip(after["points"], before["points"], strict=True):
        assert a.keys() == b.keys()
        assert a["t"] == b["t"] and a["rows"] == b["rows"]
        for name in ("avg_power_w", "min_power_w", "max_power_w", "avg_current_a"):
            assert a[name] == pytest.approx(b[name]), name


@pytest.mark.parametrize("bucket", [None, 60, 300])
def test_35_day_old_data_is_still_charted_from_rollups(retention_settings, reader_api, bucket):
    channel = meter()
    start = NOW - timedelta(days=35)
    every_10_s(channel, start, 90, power=lambda i: float(i % 50) * 20)
    end = start + timedelta(hours=1, minutes=30)
    # Raw rows allow 5 s buckets here; rollups give whole minutes.
    before = series(reader_api, channel, start, end, bucket or 60)

    retention.apply_retention(now=NOW)
    assert not PowerLog.objects.filter(channel=channel).exists()

    after = series(reader_api, channel, start, end, bucket)
    assert len(after["points"]) >= 18
    assert_same_series(after, before)


def test_a_range_across_the_raw_window_joins_rollups_and_raw_rows(retention_settings, reader_api):
    channel = meter()
    boundary = NOW - timedelta(days=30)
    # Two hours of rows around the boundary; a 1-hour bucket straddles it.
    every_10_s(channel, boundary - timedelta(minutes=30), 120)
    start, end = boundary - timedelta(hours=2), boundary + timedelta(hours=2)
    before = series(reader_api, channel, start, end, 3600)

    retention.apply_retention(now=NOW)
    assert PowerLog.objects.filter(channel=channel).count() == 540  # the 30 minutes before it went

    after = series(reader_api, channel, start, end, 3600)
    assert_same_series(after, before)


def test_a_year_from_rollups_stays_within_the_point_limit(retention_settings, reader_api):
    channel = meter()
    for days in (300, 200, 40):
        every_10_s(channel, NOW - timedelta(days=days), 2)
    retention.apply_retention(now=NOW)
    body = series(reader_api, channel, NOW - timedelta(days=365), NOW)
    assert body["bucket_s"] % 60 == 0
    assert [p["rows"] for p in body["points"]] == [12, 12, 12]


def test_a_short_old_range_widens_its_buckets_to_whole_minutes(retention_settings, reader_api):
    channel = meter()
    start = NOW - timedelta(days=35)
    every_10_s(channel, start, 5)
    retention.apply_retention(now=NOW)
    body = series(reader_api, channel, start, start + timedelta(minutes=5), 10)
    assert body["bucket_s"] == 60
    assert [p["rows"] for p in body["points"]] == [6] * 5


def test_cycles_keep_their_energy_after_their_rows_are_gone(retention_settings):
    channel = meter()
    channel.min_cycle_s = 60
    channel.save()
    start = NOW - timedelta(days=40)
    # idle, 10 minutes at 1 kW with a counter, idle
    add_rows(channel, [(start, 0.0, 230.0, 0.0, 5000.0)])
    add_rows(
        channel,
        [(start + timedelta(seconds=10 * i), 1000.0, 230.0, 4.3, 5000.0 + i * 10 / 3.6) for i in range(1, 61)],
    )
    add_rows(channel, [(start + timedelta(seconds=610), 0.0, 230.0, 0.0, 5000.0 + 60 * 10 / 3.6)])
    sync_cycles(channel, start=start - timedelta(hours=1), end=start + timedelta(hours=1))
    cycle = Cycle.objects.get(channel=channel)
    stored = (cycle.started_at, cycle.ended_at, cycle.energy_wh, cycle.energy_method)
    assert cycle.energy_wh == pytest.approx(59 * 10 / 3.6)

    retention.apply_retention(now=NOW)
    assert not PowerLog.objects.filter(channel=channel).exists()

    channel.refresh_from_db()
    rebuild_cycles(channels=[channel], with_impact=False)  # a full rebuild finds no rows there
    cycle = Cycle.objects.get(channel=channel)
    assert (cycle.started_at, cycle.ended_at, cycle.energy_wh, cycle.energy_method) == stored


def test_a_cycle_cut_by_the_retention_boundary_is_not_found_twice(retention_settings):
    channel = meter()
    channel.min_cycle_s = 60
    channel.save()
    boundary = NOW - timedelta(days=30)
    start = boundary - timedelta(minutes=5)
    add_rows(channel, [(start - timedelta(seconds=10), 0.0, 230.0, 0.0, 100.0)])
    add_rows(channel, [(start + timedelta(seconds=10 * i), 800.0, 230.0, 3.5, 100.0 + i) for i in range(60)])
    add_rows(channel, [(start + timedelta(seconds=600), 0.0, 230.0, 0.0, 160.0)])
    sync_cycles(channel, start=start - timedelta(hours=1), end=start + timedelta(hours=1))
    stored = list(Cycle.objects.values_list("started_at", "ended_at", "energy_wh"))
    assert len(stored) == 1

    retention.apply_retention(now=NOW)
    assert PowerLog.objects.filter(channel=channel).exists()  # the half after the boundary
    channel.refresh_from_db()
    rebuild_cycles(channels=[channel], with_impact=False)
    assert list(Cycle.objects.values_list("started_at", "ended_at", "energy_wh")) == stored


def test_the_tasks_are_scheduled_and_report_what_they_did(retention_settings):
    call_command("setup_schedules")
    funcs = set(Schedule.objects.values_list("func", flat=True))
    assert {"collector.tasks.update_rollups", "collector.tasks.apply_retention"} <= funcs
    channel = meter()
    every_10_s(channel, NOW - timedelta(days=31), 1)
    assert tasks.update_rollups() == "1 minute(s) recomputed, 1 rollup(s) written"
    assert tasks.apply_retention() == "6 raw row(s), 0 rollup(s) deleted; finished"


@pytest.mark.parametrize(
    "env, message",
    [
        ({"RAW_RETENTION_DAYS": "-1"}, "RAW_RETENTION_DAYS must be at least 0"),
        ({"RETENTION_BATCH_ROWS": "0"}, "RETENTION_BATCH_ROWS must be at least 1"),
        ({"RAW_RETENTION_DAYS": "90", "ROLLUP_RETENTION_DAYS": "30"}, "at least RAW_RETENTION_DAYS"),
        ({"ROLLUP_RETENTION_DAYS": "a year"}, "ROLLUP_RETENTION_DAYS"),
    ],
)
def test_bad_retention_settings_stop_the_start_with_a_clear_message(env, message):
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=BASE_DIR,
        env={**process_env(**env), "DJANGO_SETTINGS_MODULE": "shelly_site.settings"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_inside_the_raw_window_rolled_up_minutes_give_the_raw_figures(retention_settings, reader_api):
    channel = meter()
    start = NOW - timedelta(days=2, seconds=25)  # not on a minute: the partial first minute comes from raw rows
    every_10_s(channel, start, 180, power=lambda i: float(i % 13) * 40)
    end = start + timedelta(hours=3)
    raw = series(reader_api, channel, start, end, 300)

    rollups.update_rollups()
    add_rows(channel, [(start + timedelta(hours=2, seconds=3), 9999.0, 230.0, 1.0, None)])  # marks one minute again
    after_late_row = series(reader_api, channel, start, end, 300)

    late_bucket = [p for p in after_late_row["points"] if p["max_power_w"] == 9999.0]
    assert len(late_bucket) == 1  # the marked minute is read from raw rows
    expected = [dict(p) for p in raw["points"]]
    for point in expected:
        if point["t"] == late_bucket[0]["t"]:
            point.update(rows=point["rows"] + 1, max_power_w=9999.0)
            point["avg_power_w"] = late_bucket[0]["avg_power_w"]
            point["avg_current_a"] = late_bucket[0]["avg_current_a"]
    assert_same_series(after_late_row, raw | {"points": expected})

    rollups.update_rollups()
    assert_same_series(series(reader_api, channel, start, end, 300), after_late_row)
    # And it is the rollups that answered, not the raw rows.
    PowerRollup.objects.filter(channel=channel, minute=rollups.floor_minute(start + timedelta(minutes=30))).update(
        max_power_w=12345.0
    )
    assert 12345.0 in [p["max_power_w"] for p in series(reader_api, channel, start, end, 300)["points"]]


def test_a_pump_chart_older_than_the_rollups_reads_the_raw_rows_kept(retention_settings, reader_api):
    pump = Channel.objects.create(device=meter().device, key="switch:0", policy=WritePolicy.EVENTS)
    old, recent = NOW - timedelta(days=400), NOW - timedelta(days=100)
    add_rows(pump, [(old, 700.0, 230.0, 3.0, None), (recent, 500.0, 230.0, 2.0, None)])
    rollups.update_rollups()
    assert retention.apply_retention(now=NOW).rollups_deleted == 1  # the 400-day-old minute's rollup

    body = series(reader_api, pump, NOW - timedelta(days=420), NOW - timedelta(days=50), 86400)

    assert [(p["max_power_w"], p["rows"]) for p in body["points"]] == [(700.0, 1), (500.0, 1)]
