"""The dashboard's alerts page and badge, in English and French."""

import pytest

from alerts.models import Delivery, Notifier
from tests.alerts.stories import feed, rule
from tests.dashboard.stories import user
from tests.scenarios import at, make_channel

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(user("staff", staff=True))
    return client


@pytest.fixture
def alerting():
    channel = make_channel(name="Pompe relevage")
    r = rule(channel, name="Surpuissance")
    hook = Notifier.objects.create(name="Phone hook", kind="webhook", config={"url": "http://127.0.0.1:9/"})
    r.notifiers.add(hook)
    feed(channel, [(at(s), 1500) for s in range(0, 70, 10)])
    Delivery.objects.filter(notifier=hook).update(status="failed", attempts=4)
    return channel, r


def test_alerts_page_lists_active_alerts_events_and_deliveries(staff_client, alerting):
    page = staff_client.get("/alerts/").content.decode()
    active = page[page.index('id="active-alerts"') : page.index('id="recent-events"')]
    assert "Surpuissance" in active and "Pompe relevage" in active and "1500" in active
    recent = page[page.index('id="recent-events"') :]
    assert "fired" in recent and "Phone hook on: failed (4 attempts)" in recent
    assert "No alerts" not in page


def test_the_badge_counts_active_alerts_on_every_page(staff_client, alerting):
    channel, _ = alerting
    overview = staff_client.get("/").content.decode()
    assert 'id="alert-badge"' in overview and "1 active alert" in overview
    assert '<span class="badge badge-alert">1</span>' in overview
    feed(channel, [(at(200), 0)])
    overview = staff_client.get("/").content.decode()
    assert 'id="alert-badge"' not in overview and "badge-alert" not in overview


def test_alerts_page_in_french(staff_client, alerting):
    page = staff_client.get("/alerts/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "Alertes actives" in page and "Événements récents" in page
    overview = staff_client.get("/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "1 alerte active" in overview
