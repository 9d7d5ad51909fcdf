"""The token-protected state endpoint that HTTP accessory plugins poll."""

import pytest

from alerts.models import Notifier
from tests.alerts.stories import feed, make_channel, rule
from tests.scenarios import at

pytestmark = pytest.mark.django_db

TOKEN = "a-long-enough-token-123"


@pytest.fixture
def watched(db):
    channel = make_channel()
    r = rule(channel, slug="pump-high")
    r.notifiers.add(Notifier.objects.create(name="poll", kind="state_endpoint", config={"token": TOKEN}))
    return channel, r


def test_state_follows_the_rule(client, watched):
    channel, _ = watched
    assert client.get("/alarm/pump-high/state", {"token": TOKEN}).json() == {"state": False}
    feed(channel, [(at(s), 1500) for s in range(0, 70, 10)])
    assert client.get("/alarm/pump-high/state", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").json() == {"state": True}
    plain = client.get("/alarm/pump-high/state", {"token": TOKEN, "format": "plain"})
    assert plain.content == b"1" and plain["Content-Type"].startswith("text/plain")
    feed(channel, [(at(100), 0)])
    assert client.get("/alarm/pump-high/state", {"token": TOKEN}).json() == {"state": False}


def test_wrong_or_missing_token_and_unknown_rule_look_the_same(client, watched):
    for path, query in [
        ("/alarm/pump-high/state", {}),
        ("/alarm/pump-high/state", {"token": "wrong"}),
        ("/alarm/nope/state", {"token": TOKEN}),
    ]:
        response = client.get(path, query)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"
    assert client.post("/alarm/pump-high/state", {"token": TOKEN}).status_code == 405
