"""Helpers that make an alert test read as a story."""

from alerts.models import AlertEvent, AlertRule, Kind
from collector.pipeline import ingest_samples
from tests.scenarios import make_channel, sample


def rule(channel=None, **fields) -> AlertRule:
    values = {
        "name": "too much",
        "slug": f"rule-{AlertRule.objects.count() + 1}",
        "kind": Kind.HIGH_POWER,
        "threshold": 1000.0,
        "sustain_s": 60,
        "min_firing_s": 0,
        "cooldown_s": 900,
        "evaluate_past": True,  # the scripted times are in the past
        "channel": channel,
    }
    values.update(fields)
    return AlertRule.objects.create(**values)


def feed(channel, points):
    """(ts, watts) pairs through the real pipeline (the batch path)."""
    return ingest_samples([sample(ts, watts, channel=channel) for ts, watts in points])


def events(r=None):
    qs = AlertEvent.objects.order_by("ts", "id")
    if r is not None:
        qs = qs.filter(rule=r)
    return [(e.action, e.notified) for e in qs]


__all__ = ["make_channel", "rule", "feed", "events"]
