"""/api/v1/alerts/rules and /api/v1/alerts/events."""

import pytest

from alerts.models import AlertRule, Delivery, Notifier
from tests.alerts.stories import feed, make_channel, rule
from tests.api_base import *  # noqa: F403
from tests.scenarios import at

pytestmark = pytest.mark.django_db


def fire_and_clear(channel, r):
    feed(channel, [(at(s), 1500) for s in range(0, 70, 10)] + [(at(100), 10)])


def test_rules_are_read_by_readers_and_written_only_with_permission(reader_api, writer_api):
    channel = make_channel()
    rule(channel)
    listing = reader_api.get("/api/v1/alerts/rules")
    assert listing.status_code == 200
    assert [(r["kind"], r["threshold"], r["active"]) for r in listing.json()] == [("high_power", 1000.0, False)]
    new = {"name": "dry", "slug": "dry", "kind": "low_power", "threshold": 200, "channel": channel.pk}
    refused = reader_api.post("/api/v1/alerts/rules", new, format="json")
    assert refused.status_code == 403 and "error" in refused.json()
    assert AlertRule.objects.count() == 1
    created = writer_api.post("/api/v1/alerts/rules", new, format="json")
    assert created.status_code == 201, created.json()
    assert AlertRule.objects.get(slug="dry").kind == "low_power"


def test_bad_rules_are_a_400_and_change_nothing(writer_api):
    bad = [
        {"name": "x", "slug": "x", "kind": "high_power", "threshold": 100, "windows": [{"start": "25:00"}]},
        {"name": "x", "slug": "x", "kind": "high_power", "threshold": 100, "clear_threshold": 200},
        {"name": "x", "slug": "x", "kind": "nonsense", "threshold": 100},
        {"name": "x", "slug": "x", "kind": "high_power", "threshold": -1},
    ]
    for body in bad:
        response = writer_api.post("/api/v1/alerts/rules", body, format="json")
        assert response.status_code == 400, body
        assert set(response.json()) == {"error"}
        assert "Traceback" not in response.content.decode()
    assert not AlertRule.objects.exists()


def test_events_with_filters_cursor_pages_and_delivery_results(reader_api):
    channel = make_channel()
    r = rule(channel)
    n = Notifier.objects.create(name="hook", kind="webhook", config={"url": "http://127.0.0.1:9/"})
    r.notifiers.add(n)
    fire_and_clear(channel, r)
    page = reader_api.get("/api/v1/alerts/events", {"page_size": 1})
    assert page.status_code == 200
    body = page.json()
    assert [e["action"] for e in body["results"]] == ["cleared"]
    second = reader_api.get(body["next"]).json()
    fired = second["results"][0]
    assert fired["action"] == "fired" and fired["value"] == 1500 and fired["rule_slug"] == r.slug
    assert {d["notifier"] for d in fired["deliveries"]} == {"hook"}
    assert Delivery.objects.filter(event_id=fired["id"]).count() == 1
    only_fired = reader_api.get("/api/v1/alerts/events", {"action": "fired", "channel": channel.pk}).json()
    assert [e["action"] for e in only_fired["results"]] == ["fired"]
    after = reader_api.get("/api/v1/alerts/events", {"from": at(90).isoformat()}).json()
    assert [e["action"] for e in after["results"]] == ["cleared"]


def test_bad_event_filters_are_a_400(reader_api):
    for query in ({"from": "yesterday"}, {"rule": "abc"}, {"channel": 2**70}, {"cursor": "zzz"}, {"action": "x"}):
        response = reader_api.get("/api/v1/alerts/events", query)
        assert response.status_code in (400, 404), query
        assert "error" in response.json()


def test_the_api_root_lists_the_alert_endpoints(reader_api):
    root = reader_api.get("/api/v1/").json()
    assert root["alert-rule-list"].endswith("/api/v1/alerts/rules/")
    assert root["alert-event-list"].endswith("/api/v1/alerts/events/")


def test_anonymous_cannot_read_alerts(anonymous_api):
    assert anonymous_api.get("/api/v1/alerts/events").status_code in (401, 403)
