import pytest

from collector.pipeline import close_expired_runs, ingest_samples
from tests.scenarios import at, make_channel, rows, sample

pytestmark = pytest.mark.django_db


def test_events_start_and_stop():
    ch = make_channel(policy="events")
    ingest_samples([sample(at(0), 500, channel=ch), sample(at(30), 505, channel=ch)])
    close_expired_runs(now=at(400))
    assert rows(ch) == [(at(0), "start", 500), (at(30), "stop", 0.0)]
