"""Configuration from the environment (seed 004) and the alert counters of /metrics."""

import pytest
from django.core.management import call_command

from alerts.models import AlertRule, Notifier
from shelly_site.prometheus import exposition
from tests.alerts.stories import feed, make_channel, rule
from tests.scenarios import at

pytestmark = pytest.mark.django_db


def test_env_creates_then_updates_the_default_rule_and_the_notifiers(settings):
    settings.ALERT_POWER_W = 4500.0
    settings.ALERT_SUSTAIN_SECONDS = 120
    settings.ALERT_COOLDOWN_SECONDS = 900
    settings.MQTT_URL = "mqtt://127.0.0.1:1883"
    settings.MQTT_TOPIC = "shelly/alerts/motion"
    settings.HOMEBRIDGE_API_URL = "http://127.0.0.1:8581"
    settings.HOMEBRIDGE_API_USER, settings.HOMEBRIDGE_API_PASSWORD = "admin", "admin"
    settings.HOMEBRIDGE_ACCESSORY_ID = "Power Alert Trigger"
    call_command("setup_alerts")
    default = AlertRule.objects.get(slug="default-high-power")
    assert (default.kind, default.threshold, default.sustain_s, default.cooldown_s) == ("high_power", 4500, 120, 900)
    assert default.channel is None and default.device is None  # every channel
    assert set(default.notifiers.values_list("kind", flat=True)) == {"mqtt", "homebridge_ui"}
    # At the next start with other values: updated in place, nothing duplicated.
    settings.ALERT_POWER_W = 3000.0
    settings.MQTT_TOPIC = "site/alarm"
    call_command("setup_alerts")
    assert AlertRule.objects.get().threshold == 3000
    assert Notifier.objects.count() == 2
    assert Notifier.objects.get(kind="mqtt").config["topic"] == "site/alarm"


def test_an_invalid_env_notifier_is_kept_disabled(settings):
    settings.ALERT_POWER_W = None
    settings.MQTT_URL = "http://not-mqtt"
    call_command("setup_alerts")
    assert not AlertRule.objects.exists()
    assert Notifier.objects.get().enabled is False


def test_nothing_in_the_env_creates_nothing(settings):
    settings.ALERT_POWER_W = None
    call_command("setup_alerts")
    assert not AlertRule.objects.exists() and not Notifier.objects.exists()


def test_metrics_count_alerts_fired_and_notifier_failures(settings):
    from alerts import services

    settings.NOTIFIER_BACKOFF_SECONDS = 0.01
    from alerts.models import Delivery

    def value(name):
        for line in exposition().decode().splitlines():
            if line.startswith(name):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    fired = value('shelly_alerts_fired_total{kind="high_power"}')
    failures = value('shelly_notifier_failures_total{kind="webhook"}')
    channel = make_channel()
    rule(channel)
    feed(channel, [(at(s), 1500) for s in range(0, 70, 10)])
    assert value('shelly_alerts_fired_total{kind="high_power"}') == fired + 1
    hook = Notifier.objects.create(name="bad", kind="webhook", config={"url": "http://127.0.0.1:9/"})
    services.deliver(Delivery.objects.create(notifier=hook, step="on").pk)
    assert value('shelly_notifier_failures_total{kind="webhook"}') == failures + 1


def test_a_delivery_left_sending_by_a_dead_worker_is_requeued_once_and_then_sent(settings, monkeypatch):
    from datetime import timedelta

    from django.core import mail
    from django.utils import timezone

    from alerts import services, tasks
    from alerts.models import Delivery

    settings.NOTIFIER_TIMEOUT_SECONDS, settings.NOTIFIER_MAX_ATTEMPTS, settings.NOTIFIER_BACKOFF_SECONDS = 5, 4, 2
    queued = []
    monkeypatch.setattr(services, "_enqueue", queued.append)
    n = Notifier.objects.create(name="mail", kind="email", config={"to": "ops@example.com"})
    now = timezone.now()
    bound = services.stuck_after()
    assert bound >= timedelta(seconds=4 * 5 + 2 + 4 + 8)  # every attempt timing out, every backoff
    dead = Delivery.objects.create(notifier=n, status="sending", claimed_at=now - bound - timedelta(seconds=1))
    busy = Delivery.objects.create(notifier=n, status="sending", claimed_at=now - bound + timedelta(seconds=5))
    done = Delivery.objects.create(notifier=n, status="ok", claimed_at=now - timedelta(days=1))

    # The time-based task runs the check: the dead worker's delivery is queued again, the others are left alone.
    monkeypatch.setattr(services.timezone, "now", lambda: now)
    assert "1 stuck delivery(ies) re-queued" in tasks.check_time_rules()
    monkeypatch.undo()
    assert queued == [dead.pk]
    assert {d.pk: d.status for d in Delivery.objects.all()} == {dead.pk: "pending", busy.pk: "sending", done.pk: "ok"}
    assert services.requeue_stuck_deliveries(now) == 0  # nothing twice

    # The queued task sends it, once.
    services.deliver(dead.pk)
    assert [m.to for m in mail.outbox] == [["ops@example.com"]]
    dead.refresh_from_db()
    assert (dead.status, dead.attempts) == ("ok", 1)
    assert services.deliver(dead.pk) is None and len(mail.outbox) == 1


def test_a_stuck_on_whose_pulse_has_ended_is_not_sent_again(settings, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from alerts import services
    from alerts.models import Delivery

    queued = []
    monkeypatch.setattr(services, "_enqueue", queued.append)
    n = Notifier.objects.create(name="motion", kind="mqtt", config={"url": "mqtt://127.0.0.1:1883", "topic": "t/m"})
    long_ago = timezone.now() - services.stuck_after() - timedelta(minutes=1)
    # The worker published the ON and died before recording it; the OFF went out since.
    ended_on = Delivery.objects.create(notifier=n, step="on", status="sending", claimed_at=long_ago)
    Delivery.objects.create(notifier=n, step="off", status="ok", claimed_at=long_ago)
    # Another pulse whose OFF is still to come: its ON is sent again.
    open_on = Delivery.objects.create(notifier=n, step="on", status="sending", claimed_at=long_ago, is_test=True)
    Delivery.objects.create(notifier=n, step="off", status="pending", is_test=True)

    assert services.requeue_stuck_deliveries() == 1
    assert queued == [open_on.pk]
    ended_on.refresh_from_db()
    assert ended_on.status == "failed" and "pulse has ended" in ended_on.detail
    assert Delivery.objects.get(pk=open_on.pk).status == "pending"
