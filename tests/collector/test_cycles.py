"""Cycle detection (§6): scripted rows → cycles, live hook == rebuild_cycles."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from collector.cycles import CycleRules, counter_energy_wh, detect_cycles
from collector.models import Cycle, PowerLog
from collector.pipeline import close_expired_runs, ingest_samples
from tests.scenarios import at, make_channel, sample

RULES = CycleRules(threshold_w=10, gap_threshold_s=240, min_cycle_s=120, max_power_w=25000)
EVENTS_RULES = CycleRules(threshold_w=10, gap_threshold_s=480, min_cycle_s=120, max_power_w=25000)


def row(seconds, power, energy=None, *, minutes=0, reason="sample"):
    return (at(seconds, minutes=minutes), power, energy, reason)


def spans(cycles):
    return [(c.started_at, c.ended_at) for c in cycles]


# --- the detector on scripted rows, per policy ---------------------------------


def test_events_run_ends_at_its_stop_row_with_counter_energy():
    rows = [
        row(0, 500, 1000.0),  # start
        row(70, 530, 1000.9),  # delta
        row(0, 532, 1042.0, minutes=5),  # sample minute
        row(30, 0, 1079.0, minutes=9, reason="stop"),
    ]
    [cycle] = detect_cycles(rows, rules=EVENTS_RULES)
    assert (cycle.started_at, cycle.ended_at) == (at(0), at(30, minutes=9))
    assert cycle.duration_s == 570
    assert cycle.energy_method == "counter"
    assert cycle.energy_wh == pytest.approx(79.0)
    assert cycle.avg_power_w == pytest.approx(79.0 * 3600 / 570)
    assert cycle.peak_power_w == 532
    assert cycle.is_noise is False


def test_run_with_only_start_and_stop_rows():
    with_counter = [row(0, 600, 200.0, reason="start"), row(0, 0, 300.0, minutes=10, reason="stop")]
    [cycle] = detect_cycles(with_counter, rules=EVENTS_RULES)
    assert (cycle.duration_s, cycle.energy_wh, cycle.energy_method) == (600, 100.0, "counter")

    without_counter = [row(0, 600, reason="start"), row(0, 0, minutes=10, reason="stop")]
    [cycle] = detect_cycles(without_counter, rules=EVENTS_RULES)
    # Step integration: 600 W held for 600 s until the stop row = 100 Wh.
    assert (cycle.energy_wh, cycle.energy_method) == (pytest.approx(100.0), "integration")
    assert cycle.avg_power_w == pytest.approx(600.0)


def test_throttle_rows_split_at_a_gap_and_end_at_the_last_active_row():
    rows = [row(0, 300, minutes=m) for m in range(0, 6)]  # 08:00 … 08:05, one a minute
    rows += [row(0, 310, minutes=m) for m in range(12, 15)]  # gap of 7 min ≥ 4 min
    first, second = detect_cycles(rows, rules=RULES)
    assert spans([first, second]) == [(at(0), at(minutes=5)), (at(minutes=12), at(minutes=14))]
    assert first.energy_method == "integration"
    assert first.energy_wh == pytest.approx(300 * 5 * 60 / 3600)


def test_activity_fill_rows_belong_to_the_run_and_a_short_gap_does_not_split():
    rows = [row(0, 200, minutes=0), row(0, 200, minutes=1), row(0, 200, minutes=2)]
    rows += [row(0, 220, minutes=5), row(0, 220, minutes=6)]  # 3 min gap < 4 min: same cycle
    [cycle] = detect_cycles(rows, rules=RULES)
    assert spans([cycle]) == [(at(0), at(minutes=6))]


def test_every_policy_cycle_ends_at_the_first_inactive_row():
    rows = [row(s, 0.0) for s in (0, 10)]
    rows += [row(s, 450) for s in range(20, 400, 10)]
    rows += [row(s, 0.0) for s in (400, 410, 420)]
    [cycle] = detect_cycles(rows, rules=RULES)
    assert spans([cycle]) == [(at(20), at(400))]
    assert cycle.energy_wh == pytest.approx(450 * 380 / 3600)


def test_short_cycles_are_kept_and_flagged_noise():
    rows = [row(0, 500), row(60, 0), row(0, 500, minutes=10), row(0, 0, minutes=13)]
    short, long = detect_cycles(rows, rules=RULES)
    assert (short.duration_s, short.is_noise) == (60, True)
    assert (long.duration_s, long.is_noise) == (180, False)


def test_run_crossing_midnight_is_one_cycle():
    before = datetime(2026, 3, 2, 23, 50, tzinfo=UTC)
    rows = [(before + timedelta(minutes=m), 800, 5000.0 + m * 13.3, "sample") for m in range(0, 25, 5)]
    rows.append((before + timedelta(minutes=25), 0, 5000.0 + 25 * 13.3, "stop"))
    [cycle] = detect_cycles(rows, rules=EVENTS_RULES)
    assert cycle.started_at.date() != cycle.ended_at.date()
    assert cycle.duration_s == 25 * 60
    assert cycle.energy_wh == pytest.approx(25 * 13.3)


def test_a_cycle_left_open_by_the_rows_is_running():
    rows = [row(0, 500), row(60, 520)]
    [cycle] = detect_cycles(rows, rules=RULES, still_running=True)
    assert cycle.ended_at is None
    assert cycle.is_noise is False


# --- counter faults -----------------------------------------------------------


def readings(*values, step_s=60):
    return [(at(i * step_s), v) for i, v in enumerate(values)]


def test_counter_reset_mid_run_starts_a_new_segment_and_sums_increments():
    # 1000→1010→1020 (+20), reboot: 3 starts a new segment, 3→13 (+10).
    energy, method = counter_energy_wh(readings(1000, 1010, 1020, 3, 13), max_power_w=25000)
    assert (energy, method) == (30, "counter")


def test_counter_tiny_decrease_is_rounding_noise():
    energy, _ = counter_energy_wh(readings(100.0, 110.0, 109.6, 120.0), max_power_w=25000)
    assert energy == pytest.approx(20.0)


def test_counter_zero_followed_by_the_old_value_is_a_missing_reading():
    energy, _ = counter_energy_wh(readings(500, 510, 0, 512, 520), max_power_w=25000)
    assert energy == pytest.approx(20.0)


def test_counter_zero_followed_by_small_values_is_a_reset_to_zero():
    energy, _ = counter_energy_wh(readings(500, 510, 0, 4, 9), max_power_w=25000)
    assert energy == pytest.approx(10 + 9)


def test_counter_spike_beyond_max_power_is_discarded():
    # +1,000,000 Wh in a minute would be 60 MW: a spike, ignored.
    energy, _ = counter_energy_wh(readings(100, 110, 1_000_110, 120, 130), max_power_w=25000)
    assert energy == pytest.approx(30.0)


def test_counter_lasting_jump_resumes_from_the_new_value():
    energy, _ = counter_energy_wh(readings(100, 110, 900_000, 900_010, 900_020), max_power_w=25000)
    assert energy == pytest.approx(10 + 10 + 10)


def test_counter_with_one_reading_is_not_usable():
    assert counter_energy_wh(readings(100), max_power_w=25000) == (None, "none")


# --- live hook and rebuild ----------------------------------------------------


def stored(channel):
    return [
        (
            c.started_at,
            c.ended_at,
            c.duration_s,
            c.energy_wh,
            c.energy_method,
            c.avg_power_w,
            c.peak_power_w,
            c.is_noise,
        )
        for c in Cycle.objects.filter(channel=channel).order_by("started_at")
    ]


def pump_day(channel):
    """Three runs (one short), a counter that resets during the second run, erratic 0 W glitches."""
    samples, energy = [], 1000.0
    for start_min, length_min, power in ((0, 12, 600), (40, 20, 900), (90, 1, 300)):
        for s in range(0, length_min * 60, 10):
            ts = at(s, minutes=start_min)
            if start_min == 40 and s == 600:
                energy = 2.0  # reboot: counter restarts
            energy += power * 10 / 3600
            glitch = s == 300  # an erratic 0 W reading inside the run
            samples.append(sample(ts, 0.0 if glitch else power, channel=channel, e=round(energy, 2)))
        samples.append(sample(at(length_min * 60, minutes=start_min), 0.0, channel=channel, e=round(energy, 2)))
    return samples


@pytest.mark.django_db
@pytest.mark.parametrize("policy", ["events", "throttle", "activity", "every"])
def test_live_cycles_equal_rebuild_cycles_for_every_policy(policy):
    channel = make_channel(policy=policy)
    day = pump_day(channel)
    for offset in range(0, len(day), 37):  # batches, like a relay would send them
        ingest_samples(day[offset : offset + 37])
    close_expired_runs(now=at(minutes=200))
    live = stored(channel)
    assert live, "the live hook created cycles"
    assert all(c[1] is not None for c in live)
    live_ids = sorted(Cycle.objects.filter(channel=channel).values_list("pk", flat=True))

    call_command("rebuild_cycles", channel=[channel.pk], stdout=StringIO())
    assert stored(channel) == live
    assert sorted(Cycle.objects.filter(channel=channel).values_list("pk", flat=True)) == live_ids


@pytest.mark.django_db
def test_events_day_gives_three_cycles_one_noise_and_counter_energy_across_the_reset():
    channel = make_channel(policy="events")
    ingest_samples(pump_day(channel))
    close_expired_runs(now=at(minutes=200))
    cycles = list(Cycle.objects.filter(channel=channel).order_by("started_at"))
    assert [(c.started_at, c.ended_at) for c in cycles] == [
        (at(minutes=0), at(minutes=12)),
        (at(minutes=40), at(minutes=60)),
        (at(minutes=90), at(minutes=91)),
    ]
    assert [c.is_noise for c in cycles] == [False, False, True]
    assert cycles[1].energy_method == "counter"
    # Rows at :40 (start), :45, :50, :55 (sample minutes) and :60 (stop), 75 Wh apart
    # at 900 W; the reboot falls between :45 and :50, so that increment is unknown
    # and the segments before and after it are summed: 75 + 75 + 75 = 225 Wh.
    assert cycles[1].energy_wh == pytest.approx(225.0)


@pytest.mark.django_db
def test_a_running_cycle_is_visible_from_the_start_row():
    channel = make_channel(policy="events")
    ingest_samples([sample(at(0), 500, channel=channel), sample(at(30), 505, channel=channel)])
    cycle = Cycle.objects.get(channel=channel)
    assert cycle.started_at == at(0)
    assert cycle.running

    close_expired_runs(now=at(400))
    cycle.refresh_from_db()
    assert cycle.ended_at == at(30)  # the stop row's time: the last active sample
    assert cycle.is_noise  # 30 s < min_cycle


@pytest.mark.django_db
def test_rebuild_from_inside_a_cycle_does_not_cut_it_and_is_idempotent():
    channel = make_channel(policy="events")
    ingest_samples(pump_day(channel))
    close_expired_runs(now=at(minutes=200))
    before = stored(channel)
    PowerLog.objects.filter(channel=channel, timestamp__gt=at(minutes=80)).delete()  # drop the short run's rows

    out = StringIO()
    call_command("rebuild_cycles", channel=[channel.pk], start=at(minutes=45).isoformat(), stdout=out)
    call_command("rebuild_cycles", channel=[channel.pk], start=at(minutes=45).isoformat(), stdout=out)
    assert stored(channel) == before[:2]
    assert f"channel {channel.pk}" in out.getvalue()
    assert "0 created, 0 updated, 0 deleted" in out.getvalue().splitlines()[-2]


@pytest.mark.django_db
def test_rebuild_cycles_explains_bad_arguments():
    with pytest.raises(CommandError, match="not a date"):
        call_command("rebuild_cycles", start="yesterday")
    with pytest.raises(CommandError, match="is after --to"):
        call_command("rebuild_cycles", start="2026-03-05", end="2026-03-01")
    with pytest.raises(CommandError, match="no channel with id 999"):
        call_command("rebuild_cycles", channel=[999])
