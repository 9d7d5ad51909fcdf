"""dashboard.realtime.LiveCoalescer: at most one release per interval, the latest value per channel wins."""

from dataclasses import dataclass

from dashboard.realtime import LiveCoalescer


@dataclass(frozen=True)
class Item:
    channel_id: int
    p: float


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_first_values_are_due_at_once_later_ones_wait_for_the_interval():
    clock = Clock()
    coalescer = LiveCoalescer(interval_s=1.0, clock=clock)
    assert coalescer.offer([Item(1, 10)]) == 0.0
    assert coalescer.take() == [Item(1, 10)]
    clock.now += 0.25
    assert coalescer.offer([Item(1, 11)]) == 0.75
    assert coalescer.offer([Item(1, 12), Item(2, 5)]) is None  # a flush is already on its way
    clock.now += 0.75
    assert coalescer.take() == [Item(1, 12), Item(2, 5)]  # one message, the latest value of each channel


def test_nothing_pending_releases_nothing():
    coalescer = LiveCoalescer(clock=Clock())
    assert coalescer.take() == []


def test_a_flush_lost_with_its_event_loop_is_scheduled_again():
    clock = Clock()
    coalescer = LiveCoalescer(interval_s=1.0, clock=clock)
    assert coalescer.offer([Item(1, 1)]) == 0.0  # scheduled on a loop that then went away
    clock.now += 10
    assert coalescer.offer([Item(1, 2)]) == 0.0
    assert coalescer.take() == [Item(1, 2)]


def test_a_sync_caller_that_cannot_wait_leaves_the_values_for_the_next_push():
    clock = Clock()
    coalescer = LiveCoalescer(interval_s=1.0, clock=clock)
    coalescer.offer([Item(1, 1)])
    coalescer.take()
    assert coalescer.offer([Item(1, 2)]) == 1.0
    coalescer.give_up_schedule()
    clock.now += 1.5
    assert coalescer.offer([Item(2, 7)]) == 0.0
    assert coalescer.take() == [Item(1, 2), Item(2, 7)]


def test_a_channel_layer_that_is_down_is_logged_once_per_interval_with_a_count(monkeypatch, caplog):
    from dashboard import realtime
    from shelly_site.logging import RepeatedFailureLog

    class DownLayer:
        async def group_send(self, group, message):
            raise ConnectionError("redis is down")

    now = [0.0]
    failures = RepeatedFailureLog(
        realtime.log, "dashboard push failed", event="realtime_push_failed", clock=lambda: now[0]
    )
    monkeypatch.setattr(realtime, "push_failures", failures)
    monkeypatch.setattr(realtime, "get_channel_layer", lambda: DownLayer())
    with caplog.at_level("WARNING", logger="dashboard.realtime"):
        for _ in range(2000):  # one per commit while the layer is down
            realtime.channels_changed({1})
        now[0] = 61.0
        realtime.channels_changed({1})
    lines = [r for r in caplog.records if r.name == "dashboard.realtime"]
    assert len(lines) == 2
    assert lines[0].count == 1 and lines[1].count == 2000
