"""The per-connection frame limit and the per-token registration budget (SPEC §4.1)."""

from collector.limits import FrameRateLimiter, NewDeviceBudget


def test_frames_over_the_rate_are_refused_and_a_second_later_allowed_again():
    limiter = FrameRateLimiter(5, clock=lambda: 0.0)
    assert [limiter.allow(0.0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert limiter.dropped == 2
    assert limiter.allow(0.2)  # one frame's worth refilled
    assert not limiter.allow(0.2)


def test_a_connection_that_keeps_flooding_is_told_to_pause_for_a_refill():
    limiter = FrameRateLimiter(5, clock=lambda: 0.0)
    for _ in range(5):
        limiter.allow(0.0)
    for _ in range(4):
        assert not limiter.allow(0.0)
        assert limiter.pause_seconds() == 0.0  # a burst over the rate: dropped, not paused
    assert not limiter.allow(0.0)
    assert limiter.pause_seconds() == 1.0  # a full second's worth dropped in a row
    assert limiter.pause_seconds() == 0.0  # once per run of drops


def test_an_allowed_frame_ends_a_run_of_drops():
    limiter = FrameRateLimiter(5, clock=lambda: 0.0)
    for _ in range(9):
        limiter.allow(0.0)
    assert limiter.allow(0.2)
    assert not limiter.allow(0.2)
    assert limiter.pause_seconds() == 0.0


def test_a_rate_of_zero_turns_the_limit_off():
    limiter = FrameRateLimiter(0, clock=lambda: 0.0)
    assert all(limiter.allow(0.0) for _ in range(1000))
    assert limiter.pause_seconds() == 0.0


def test_a_token_registers_at_most_its_limit_per_minute():
    now = [0.0]
    budget = NewDeviceBudget(clock=lambda: now[0])
    assert [budget.take("t", 2) for _ in range(3)] == [True, True, False]
    assert budget.take("other", 2)
    now[0] = 60.0
    assert budget.take("t", 2)
