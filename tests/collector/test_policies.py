"""Write policies on scripted sample sequences, with the exact rows expected (§5)."""

from datetime import timedelta

import pytest

from collector.models import ChannelState, PowerLog
from collector.pipeline import Pipeline, close_expired_runs, ingest_samples
from collector.policies import ChannelRules
from tests.scenarios import at, make_channel, rows, sample

pytestmark = pytest.mark.django_db


def feed(channel, *pairs, **kw):
    return ingest_samples([sample(ts, power, channel=channel, **kw) for ts, power in pairs])


# --- events ---------------------------------------------------------------


def test_events_writes_start_delta_and_clock_aligned_sample_rows():
    ch = make_channel(policy="events", sample_minutes=5)
    feed(
        ch,
        (at(0), 500),  # start
        (at(20), 503),  # same minute: nothing
        (at(70), 530),  # delta >= 10 W, minute 1
        (at(130), 532),  # minute 2, small change, not a sample minute: nothing
        (at(200), 531),  # minute 3: nothing
        (at(minutes=5, seconds=3), 533),  # 08:05 is a sample minute
        (at(minutes=5, seconds=40), 800),  # delta, but minute 5 already has a row
    )
    assert rows(ch) == [
        (at(0), "start", 500),
        (at(70), "delta", 530),
        (at(minutes=5, seconds=3), "sample", 533),
    ]


def test_erratic_zero_inside_a_run_writes_nothing_and_does_not_stop_it():
    ch = make_channel(policy="events", stop_timeout_s=120)
    feed(ch, (at(0), 500), (at(10), 0), (at(20), 502), (at(100), 0), (at(110), 505), (at(200), 501))
    close_expired_runs(now=at(200 + 60))  # only 60 s after the last active sample
    assert rows(ch) == [(at(0), "start", 500)]
    assert ChannelState.objects.get(pk=ch.pk).running


def test_inactive_samples_do_not_restart_the_stop_timer():
    ch = make_channel(policy="events", stop_timeout_s=120)
    # Active until 30 s; then 0 W readings keep coming every 30 s.
    feed(ch, (at(0), 500), (at(30), 500), *[(at(30 + 30 * k), 0) for k in range(1, 8)])
    # Third inactive sample at 180 s is > 120 s after the last active (30 s):
    # the run was closed by sample time, its stop at the first inactive sample.
    assert rows(ch) == [(at(0), "start", 500), (at(60), "stop", 0.0)]


def test_silence_gives_one_stop_at_the_runs_end_with_last_values():
    ch = make_channel(policy="events", stop_timeout_s=120)
    ingest_samples(
        [
            sample(at(0), 500, channel=ch, v=231.0, i=2.2, e=1000.0),
            sample(at(45), 510, channel=ch, v=232.5, i=2.3, e=1006.0),
        ]
    )
    assert close_expired_runs(now=at(45 + 100)).rows_written == 0  # not yet
    close_expired_runs(now=at(45 + 121))
    close_expired_runs(now=at(45 + 500))  # a later sweep adds nothing
    stop = PowerLog.objects.get(channel=ch, reason="stop")
    assert (stop.timestamp, stop.apower_w, stop.voltage_v, stop.current_a, stop.energy_total_wh) == (
        at(45),
        0.0,
        232.5,
        2.3,
        1006.0,
    )
    assert PowerLog.objects.filter(channel=ch).count() == 2


def test_stop_is_at_first_inactive_sample_with_its_values():
    ch = make_channel(policy="events", stop_timeout_s=120)
    ingest_samples(
        [
            sample(at(0), 500, channel=ch, e=10.0),
            sample(at(60), 500, channel=ch, e=18.0),
            sample(at(75), 0, channel=ch, v=229.0, i=0.0, e=20.0),
            sample(at(90), 0, channel=ch, e=20.0),
        ]
    )
    close_expired_runs(now=at(300))
    stop = PowerLog.objects.get(channel=ch, reason="stop")
    assert (stop.timestamp, stop.voltage_v, stop.current_a, stop.energy_total_wh) == (at(75), 229.0, 0.0, 20.0)


def test_disconnect_of_90_s_followed_by_activity_continues_the_run():
    ch = make_channel(policy="events", stop_timeout_s=120)
    feed(ch, (at(0), 500), (at(30), 500))
    close_expired_runs(now=at(30 + 90))  # device away for 90 s: sweeper runs, nothing to close
    feed(ch, (at(120), 505), (at(150), 505))
    close_expired_runs(now=at(150 + 121))
    assert rows(ch) == [(at(0), "start", 500), (at(150), "stop", 0.0)]


def test_two_sweepers_racing_write_one_stop():
    ch = make_channel(policy="events", stop_timeout_s=120)
    feed(ch, (at(0), 500))
    # Both sweepers read the running state before either writes.
    from collector import pipeline as pl
    from collector.policies import close_run

    a = pl.Pipeline._runtime(ch)
    b = pl.Pipeline._runtime(ch)
    results = []
    for runtime in (a, b):
        outcome = close_run(runtime.rules, runtime.state, key_base=runtime.key_base)
        plan = {runtime.channel_id: pl.ChannelPlan(runtime, rows=outcome.rows, outcomes=[outcome])}
        try:
            results.append(Pipeline(auto_register=False)._persist_once(plan, pl.IngestResult()).rows_written)
        except pl._StateConflict:
            results.append("conflict")
    assert results == [1, "conflict"]
    assert [r[1] for r in rows(ch)] == ["start", "stop"]


def test_restart_mid_run_reloads_state_and_still_gives_one_stop():
    ch = make_channel(policy="events", stop_timeout_s=120)
    first_process = Pipeline()
    ingest = first_process.ingest
    ingest([sample(at(0), 500, channel=ch), sample(at(20), 500, channel=ch)])
    # The process dies; a new one (fresh cache) gets the device back 60 s later.
    second_process = Pipeline()
    second_process.ingest([sample(at(80), 520, channel=ch), sample(at(100), 0, channel=ch)])
    close_expired_runs(now=at(80 + 121))
    # An old in-memory copy in the dead process must not write a second stop.
    first_process.close_expired(at(400))
    assert rows(ch) == [(at(0), "start", 500), (at(70 + 10), "delta", 520), (at(100), "stop", 0.0)]


def test_stale_cache_replays_after_another_process_closed_the_run():
    ch = make_channel(policy="events", stop_timeout_s=120)
    holder = Pipeline()
    holder.ingest([sample(at(0), 500, channel=ch)])
    close_expired_runs(now=at(200))  # the sweeper closes it while `holder` still caches it
    holder.ingest([sample(at(300), 600, channel=ch)])  # a new run through the stale cache
    assert rows(ch) == [(at(0), "start", 500), (at(0), "stop", 0.0), (at(300), "start", 600)]


def test_replayed_history_is_not_processed_twice():
    ch = make_channel(policy="events")
    history = [sample(at(10 * k), 500 + k, channel=ch) for k in range(30)]
    first = ingest_samples(history)
    second = ingest_samples(history)
    assert first.accepted == 30 and second.accepted == 0 and second.duplicates == 30
    assert PowerLog.objects.filter(channel=ch).count() == first.rows_written


def test_batched_history_gives_the_rows_a_live_stream_gives():
    live = make_channel(policy="events", device_id="shellypro4pm-000000000001")
    batched = make_channel(policy="events", device_id="shellypro4pm-000000000002")
    script = [(at(0), 500), (at(30), 0), (at(40), 520), (at(100), 540), (at(400), 0), (at(700), 600), (at(760), 0)]
    for ts, power in script:  # one by one, sweeper between like a live stream
        close_expired_runs(now=ts)
        ingest_samples([sample(ts, power, channel=live)])
    ingest_samples([sample(ts, power, channel=batched) for ts, power in script])
    close_expired_runs(now=at(2000))
    assert [r[1:] for r in rows(live)] == [r[1:] for r in rows(batched)]
    assert [r[1] for r in rows(live)] == ["start", "delta", "stop", "start", "stop"]


# --- throttle, activity, every --------------------------------------------


def test_throttle_writes_active_samples_at_most_once_per_interval():
    ch = make_channel(policy="throttle", interval_s=60)
    feed(ch, (at(0), 100), (at(30), 100), (at(59), 100), (at(60), 0), (at(61), 120), (at(150), 130))
    assert rows(ch) == [(at(0), "sample", 100), (at(61), "sample", 120), (at(150), "sample", 130)]


def test_activity_fills_missed_minutes_with_previous_values():
    ch = make_channel(policy="activity", threshold_w=5, stop_timeout_s=900, fill_max_minutes=10)
    ingest_samples(
        [
            sample(at(5), 50, channel=ch, e=1.0),
            sample(at(40), 60, channel=ch, e=1.5),  # same minute: no row
            sample(at(minutes=4, seconds=10), 70, channel=ch, e=4.0),  # minutes 1..3 missed
        ]
    )
    assert rows(ch) == [
        (at(5), "sample", 50),
        (at(minutes=1), "fill", 60),
        (at(minutes=2), "fill", 60),
        (at(minutes=3), "fill", 60),
        (at(minutes=4, seconds=10), "sample", 70),
    ]
    fills = PowerLog.objects.filter(channel=ch, reason="fill")
    assert {f.energy_total_wh for f in fills} == {1.5}


def test_activity_fill_is_bounded_by_fill_max_minutes():
    ch = make_channel(policy="activity", threshold_w=5, stop_timeout_s=3600, fill_max_minutes=3)
    feed(ch, (at(0), 50), (at(minutes=10), 50))
    assert [r[1] for r in rows(ch)] == ["sample", "fill", "fill", "fill", "sample"]
    assert rows(ch)[3][0] == at(minutes=3)


def test_activity_never_fills_across_an_idle_period():
    ch = make_channel(policy="activity", threshold_w=5, stop_timeout_s=3600)
    feed(ch, (at(0), 50), (at(minutes=2), 0), (at(minutes=5), 55))
    assert rows(ch) == [(at(0), "sample", 50), (at(minutes=5), "sample", 55)]


def test_activity_never_fills_across_a_closed_run():
    ch = make_channel(policy="activity", threshold_w=5, stop_timeout_s=120)
    feed(ch, (at(0), 50), (at(minutes=6), 55))
    assert rows(ch) == [(at(0), "sample", 50), (at(minutes=6), "sample", 55)]


def test_every_writes_every_sample_including_inactive_and_negative():
    ch = make_channel(key="em:0:a", policy="every")
    feed(ch, (at(0), 0), (at(10), -120.5), (at(20), 300))
    assert rows(ch) == [(at(0), "sample", 0), (at(10), "sample", -120.5), (at(20), "sample", 300)]
    assert not ChannelState.objects.get(pk=ch.pk).running or rows(ch)[-1][2] > ch.effective_threshold_w


def test_negative_power_is_inactive():
    ch = make_channel(policy="events")
    feed(ch, (at(0), -500))
    assert rows(ch) == []
    assert not ChannelState.objects.get(pk=ch.pk).running


def test_no_stop_without_a_start():
    ch = make_channel(policy="events")
    feed(ch, (at(0), 0), (at(60), 0))
    close_expired_runs(now=at(1000))
    assert rows(ch) == []


# --- pipeline plumbing ------------------------------------------------------


def test_unknown_device_is_refused_when_auto_register_is_off():
    from collector.models import Device

    result = ingest_samples([sample(at(0), 500, device_id="shellypro4pm-ffffffffffff")], auto_register=False)
    assert result.refused == 1
    assert not Device.objects.filter(device_id="shellypro4pm-ffffffffffff").exists()


def test_auto_register_creates_device_and_channel_with_default_policy():
    from collector.models import Channel

    ingest_samples(
        [
            sample(at(0), 500, device_id="shellypro3em-aabbccddeeff", key="em:0:a"),
            sample(at(0), 500, device_id="shellypro4pm-aabbccddee00", key="switch:3"),
        ],
        auto_register=True,
    )
    assert Channel.objects.get(key="em:0:a").policy == "every"
    assert Channel.objects.get(key="switch:3").policy == "events"


def test_disabled_channel_writes_nothing():
    ch = make_channel(policy="every", enabled=False)
    result = feed(ch, (at(0), 500))
    assert result.refused == 1 and rows(ch) == []


@pytest.mark.django_db(transaction=True)
async def test_connected_pipeline_keeps_decisions_in_memory_and_flushes_state():
    from asgiref.sync import sync_to_async

    ch = await sync_to_async(make_channel)(policy="events")
    pipeline = Pipeline(flush_seconds=3600)
    await pipeline.aingest([sample(at(0), 500, channel=ch)])
    await pipeline.aingest([sample(at(5), 502, channel=ch)])  # nothing to write, flush not due
    state = await ChannelState.objects.aget(pk=ch.pk)
    assert state.last_sample_at == at(0)
    await pipeline.atick(now=at(6), flush_all=True)
    state = await ChannelState.objects.aget(pk=ch.pk)
    assert state.last_sample_at == at(5) and state.last_active_at == at(5)
    await pipeline.atick(now=at(5) + timedelta(seconds=121))
    reasons = [r async for r in PowerLog.objects.filter(channel=ch).values_list("reason", flat=True)]
    assert reasons == ["start", "stop"]


@pytest.mark.django_db(transaction=True)
def test_two_sweeper_processes_at_the_same_moment_write_one_stop():
    import threading

    from django.db import connection

    ch = make_channel(policy="events", stop_timeout_s=120)
    feed(ch, (at(0), 500))
    barrier = threading.Barrier(4)
    results = []

    def sweeper():
        try:
            barrier.wait()
            results.append(close_expired_runs(now=at(500)).rows_written)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweeper) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == [0, 0, 0, 1]
    assert [r[1] for r in rows(ch)] == ["start", "stop"]


@pytest.mark.django_db
def test_an_activity_channel_without_its_own_threshold_gets_5_w_and_others_10_w():
    from collector.models import Channel, Device

    device = Device.objects.create(device_id="shellypro4pm-aabbccddeeff")
    activity = Channel.objects.create(device=device, key="switch:0", policy="activity")
    events = Channel.objects.create(device=device, key="switch:1", policy="events")
    own = Channel.objects.create(device=device, key="switch:2", policy="activity", threshold_w=20.0)
    assert ChannelRules.from_channel(activity).threshold_w == 5.0
    assert ChannelRules.from_channel(events).threshold_w == 10.0
    assert ChannelRules.from_channel(own).threshold_w == 20.0
