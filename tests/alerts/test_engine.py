"""The rule engine on scripted samples, through the real ingestion pipeline."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from alerts.models import AlertState, Kind
from collector.models import ChannelState
from collector.pipeline import ingest_samples
from tests.alerts.stories import events, feed, make_channel, rule
from tests.scenarios import at, sample

pytestmark = pytest.mark.django_db


def every(seconds_from, seconds_to, step, watts):
    return [(at(s), watts) for s in range(seconds_from, seconds_to, step)]


def test_sustain_not_reached_fires_nothing():
    channel = make_channel()
    r = rule(channel)
    feed(channel, every(0, 60, 10, 1500) + every(60, 120, 10, 200))
    assert events(r) == []
    assert not AlertState.objects.filter(active=True).exists()


def test_sustain_reached_fires_one_event_with_the_value():
    channel = make_channel()
    r = rule(channel)
    feed(channel, every(0, 300, 10, 1500))
    assert events(r) == [("fired", True)]
    state = AlertState.objects.get(rule=r)
    assert state.active and state.since == at(60) and state.version == 1
    event = r.events.get()
    assert event.value == 1500 and event.details["threshold"] == 1000


def test_flapping_inside_the_hysteresis_band_stays_one_event():
    channel = make_channel()
    r = rule(channel)  # clears below 900 W (90 %)
    points = every(0, 70, 10, 1500)
    points += [(at(s), 950 if (s // 10) % 2 else 1100) for s in range(70, 400, 10)]
    feed(channel, points)
    assert events(r) == [("fired", True)]
    feed(channel, [(at(400), 800)])
    assert events(r) == [("fired", True), ("cleared", False)]


def test_a_re_exceed_inside_the_cooldown_notifies_nothing():
    channel = make_channel()
    r = rule(channel, cooldown_s=900)
    feed(channel, every(0, 70, 10, 1500) + [(at(80), 100)])  # fire, clear at 80 s
    feed(channel, every(200, 300, 10, 1500))  # again, 120 s after the clear
    assert events(r) == [("fired", True), ("cleared", False), ("fired", False)]
    assert r.events.filter(action="fired").order_by("ts").last().details["suppressed"] == "cooldown"
    # After the cooldown, a new episode notifies again.
    feed(channel, [(at(400), 100)] + every(1400, 1500, 10, 1500))  # cooldown: 900 s after the clear at 400 s
    assert events(r)[-1] == ("fired", True)


def test_minimum_firing_time_keeps_a_short_dip_from_clearing():
    channel = make_channel()
    r = rule(channel, min_firing_s=120)
    feed(channel, every(0, 70, 10, 1500) + [(at(90), 100), (at(100), 1500), (at(300), 100)])
    assert events(r) == [("fired", True), ("cleared", False)]
    assert r.events.get(action="cleared").ts == at(300)


def test_low_power_only_while_running():
    channel = make_channel(threshold_w=10)
    r = rule(channel, kind=Kind.LOW_POWER, threshold=300)
    # Idle at 0 W: below the threshold but not running → nothing.
    feed(channel, every(0, 300, 10, 0))
    assert events(r) == []
    # Running at 100 W (a dry pump) for longer than the sustain → fires; back to 500 W → clears.
    feed(channel, every(300, 420, 10, 100) + [(at(430), 500)])
    assert events(r) == [("fired", True), ("cleared", False)]


def test_a_batch_replaying_old_data_fires_nothing_unless_asked():
    channel = make_channel()
    r = rule(channel, evaluate_past=False)
    feed(channel, every(0, 300, 10, 1500))  # March: long past
    assert events(r) == []
    now = timezone.now().replace(microsecond=0)
    ingest_samples([sample(now - timedelta(seconds=70 - s), 1500, channel=channel) for s in range(0, 70, 10)])
    assert events(r) == [("fired", True)]


def test_a_restart_neither_loses_nor_refires_an_active_alert():
    from alerts import engine

    channel = make_channel()
    r = rule(channel)
    feed(channel, every(0, 100, 10, 1500))
    engine.reset()  # a new process
    feed(channel, every(100, 300, 10, 1500))
    assert events(r) == [("fired", True)]
    feed(channel, [(at(300), 100)])
    assert events(r) == [("fired", True), ("cleared", False)]


def test_a_stale_engine_adopts_the_other_process_transition():
    from alerts import engine

    channel = make_channel()
    r = rule(channel)
    feed(channel, every(0, 50, 10, 1500))
    other = engine.Engine()  # a second process on the same stream
    live = [
        engine.LiveSample(channel.pk, channel.device_id, sample(at(s), 1500, channel=channel), True, "batch")
        for s in range(0, 80, 10)
    ]
    other.observe(live)
    feed(channel, every(50, 80, 10, 1500))
    assert events(r) == [("fired", True)]
    assert AlertState.objects.get(rule=r).version == 1


def test_windows_and_per_window_thresholds_across_midnight():
    channel = make_channel()
    # Nights from Monday 22:00 to 06:00 (Paris), with a lower threshold then; daytime not watched.
    r = rule(channel, windows=[{"days": [0], "start": "22:00", "end": "06:00", "threshold": 500}])
    monday_2330_paris = datetime(2026, 3, 2, 22, 30, tzinfo=UTC)  # UTC+1 in March before the change
    feed(channel, [(monday_2330_paris + timedelta(seconds=s), 700) for s in range(0, 70, 10)])
    assert events(r) == [("fired", True)]
    # Tuesday 03:00 Paris is the same window (the morning after a listed day): still active, no refire.
    AlertState.objects.update(active=False, cooldown_until=None)
    from alerts import engine

    engine.reset()
    tuesday_0300 = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)
    feed(channel, [(tuesday_0300 + timedelta(seconds=s), 700) for s in range(0, 70, 10)])
    assert len(events(r)) == 2
    # Tuesday 12:00: outside every window, 5000 W fires nothing.
    engine.reset()
    AlertState.objects.update(active=False)
    feed(channel, [(datetime(2026, 3, 3, 11, 0, tzinfo=UTC) + timedelta(seconds=s), 5000) for s in range(0, 200, 10)])
    assert len(events(r)) == 2


def test_windows_follow_the_site_clock_across_a_dst_change():
    from alerts.windows import effective_threshold, parse_windows, site_zone

    windows = parse_windows([{"days": [6], "start": "01:00", "end": "04:00", "threshold": 50}])
    zone = site_zone()  # Europe/Paris: 2026-03-29 02:00 → 03:00
    # 00:30 UTC = 01:30 CET (window); 01:30 UTC = 03:30 CEST (window); 02:30 UTC = 04:30 CEST (outside).
    assert effective_threshold(windows, 100, datetime(2026, 3, 29, 0, 30, tzinfo=UTC), zone) == 50
    assert effective_threshold(windows, 100, datetime(2026, 3, 29, 1, 30, tzinfo=UTC), zone) == 50
    assert effective_threshold(windows, 100, datetime(2026, 3, 29, 2, 30, tzinfo=UTC), zone) is None
    # The same UTC hour a week earlier (no DST yet) is 03:30 CET → inside; 03:00 UTC = 04:00 CET → outside.
    assert effective_threshold(windows, 100, datetime(2026, 3, 22, 2, 30, tzinfo=UTC), zone) == 50
    assert effective_threshold(windows, 100, datetime(2026, 3, 22, 3, 0, tzinfo=UTC), zone) is None


def test_a_device_rule_on_a_3em_uses_its_total():
    total = make_channel(device_id="shellypro3em-aa", key="em:0:total")
    phase = make_channel(device_id="shellypro3em-aa", key="em:0:a")
    r = rule(device=total.device)
    feed(phase, every(0, 200, 10, 5000))
    assert events(r) == []
    feed(total, every(0, 200, 10, 5000))
    assert events(r) == [("fired", True)]
    assert r.events.get().channel_id == total.pk


def test_time_based_kinds():
    from alerts.services import check_time_rules
    from collector.models import Cycle

    channel = make_channel()
    now = timezone.now()
    long_cycle = rule(channel, slug="long", kind=Kind.LONG_CYCLE, threshold=30)  # minutes
    no_cycle = rule(channel, slug="none", kind=Kind.NO_CYCLE, threshold=24 * 60)
    offline = rule(device=channel.device, slug="offline", kind=Kind.DEVICE_OFFLINE, threshold=10)
    ChannelState.objects.update_or_create(
        channel=channel, defaults={"running": True, "run_started_at": now - timedelta(minutes=45)}
    )
    channel.device.last_seen = now - timedelta(minutes=20)
    channel.device.save()
    Cycle.objects.create(channel=channel, started_at=now - timedelta(days=2), ended_at=now - timedelta(days=2))
    check_time_rules(now)
    # Running 45 min > 30: long cycle. A run started 45 min ago: no_cycle is fine. Seen 20 min ago: offline.
    assert events(long_cycle) == [("fired", True)]
    assert events(no_cycle) == []
    assert events(offline) == [("fired", True)]
    assert offline.states.get().subject == f"dev:{channel.device_id}"
    check_time_rules(now)  # nothing new
    assert len(events()) == 2
    # The run ends, the device speaks again; a day later no run has started.
    ChannelState.objects.filter(channel=channel).update(running=False)
    channel.device.last_seen = now
    channel.device.save()
    check_time_rules(now + timedelta(minutes=1))
    assert events(long_cycle)[-1] == ("cleared", False)
    assert events(offline)[-1] == ("cleared", False)
    channel.device.last_seen = now + timedelta(days=1, minutes=1)
    channel.device.save()
    check_time_rules(now + timedelta(days=1, minutes=1))
    assert events(no_cycle) == [("fired", True)]


def test_rules_that_cannot_be_loaded_are_retried_after_a_pause_and_logged_once(monkeypatch, caplog):
    # Database away: every sample used to try again and log a traceback (531 in a 20 s outage).
    import asyncio

    from alerts import engine as engine_mod
    from collector.samples import LiveSample, Sample

    fresh = engine_mod.Engine()
    attempts = []

    def unreachable():
        attempts.append(1)
        raise OSError("database unreachable")

    monkeypatch.setattr(fresh, "load", unreachable)
    now = timezone.now()
    reading = Sample(device_id="d", channel_key="switch:0", ts=now, apower_w=1.0)
    live = [LiveSample(channel_id=1, device_pk=1, sample=reading, running=False, transport="websocket")]

    async def many_samples():
        for _ in range(200):
            fresh.observe(live)
            await asyncio.sleep(0)
        fresh.drain()

    with caplog.at_level("WARNING", logger="alerts.engine"):
        asyncio.run(many_samples())
    assert len(attempts) == 1 and fresh.failed_loads == 1
    failures = [r for r in caplog.records if getattr(r, "event", "") == "alert_rules_load_failed"]
    assert len(failures) == 1 and failures[0].exc_info is None

    # After the pause the next sample tries again.
    fresh.retry_at = 0.0
    asyncio.run(many_samples())
    assert len(attempts) == 2 and fresh.failed_loads == 2
