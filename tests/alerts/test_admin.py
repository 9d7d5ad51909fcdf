"""Admin: a rule and a notifier set up from the admin alone; "send test notification" shows the result."""

import pytest
from django.contrib.auth import get_user_model

from alerts.models import AlertRule, Delivery, Notifier
from tests.alerts.homebridge_stub import Server

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


def test_admin_creates_a_rule_and_validates_windows(admin_client):
    base = {"name": "High", "slug": "high", "kind": "high_power", "threshold": "4500", "sustain_s": "120"}
    base |= {"min_firing_s": "60", "cooldown_s": "900", "enabled": "on"}
    bad = admin_client.post("/admin/alerts/alertrule/add/", {**base, "windows": '[{"start": "nope"}]'})
    assert bad.status_code == 200 and "not a time" in bad.content.decode()
    assert not AlertRule.objects.exists()
    ok = admin_client.post("/admin/alerts/alertrule/add/", {**base, "windows": "[]"})
    assert ok.status_code == 302
    assert AlertRule.objects.get().threshold == 4500


def test_admin_validates_the_notifier_config_per_kind(admin_client):
    form = {"name": "hb", "kind": "http_webhooks", "config": '{"url": "ftp://x"}', "pulse_seconds": "15"}
    response = admin_client.post("/admin/alerts/notifier/add/", {**form, "enabled": "on"})
    assert response.status_code == 200
    assert "accessory_id: required" in response.content.decode()
    assert not Notifier.objects.exists()


def test_send_test_notification_pulses_and_shows_the_result(admin_client, settings):
    settings.NOTIFIER_BACKOFF_SECONDS = 0.01
    with Server() as homebridge:
        good = Notifier.objects.create(
            name="motion", kind="http_webhooks", config={"url": homebridge.url, "accessory_id": "power_alert_motion"}
        )
        bad = Notifier.objects.create(
            name="typo", kind="http_webhooks", config={"url": homebridge.url, "accessory_id": "nope"}
        )
        response = admin_client.post(
            "/admin/alerts/notifier/",
            {"action": "send_test", "_selected_action": [good.pk, bad.pk]},
            follow=True,
        )
        page = response.content.decode()
        assert "Motion: sent (HTTP 200) — OFF in 15 s" in page
        assert "Typo: failed after 1 attempt(s): HTTP 404" in page
        assert homebridge.hb.values["Power Alert Motion"] == 1
    # The OFF is in the database for the worker.
    off = Delivery.objects.get(notifier=good, step="off")
    assert off.status == "pending" and off.is_test
