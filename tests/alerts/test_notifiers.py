"""Notifiers against real servers on loopback: the Homebridge-like HTTP stub, a webhook receiver, Mosquitto."""

import ast
import json
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pydoc import locate

import pytest
from django.core import mail

from alerts import notifiers, services
from alerts.models import Delivery, Notifier
from tests.alerts.homebridge_stub import Server

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def quick_retries(settings):
    settings.NOTIFIER_BACKOFF_SECONDS = 0.05
    settings.NOTIFIER_MAX_ATTEMPTS = 3
    notifiers._tokens.clear()


@pytest.fixture
def homebridge():
    with Server() as server:
        yield server


def notifier(kind, config, **fields):
    n = Notifier(name=f"{kind}-{uuid.uuid4().hex[:6]}", kind=kind, config=config, **fields)
    n.full_clean()
    n.save()
    return n


def send_on(n) -> Delivery:
    on = Delivery.objects.create(notifier=n, step="on", is_test=True)
    return services.deliver(on.pk, follow_pulse=False)


# -- homebridge-http-webhooks ---------------------------------------------------------
def test_webhooks_motion_on_then_off(homebridge):
    n = notifier("http_webhooks", {"url": homebridge.url + "/", "accessory_id": "power_alert_motion"})
    delivery = send_on(n)
    assert (delivery.status, delivery.status_code, delivery.attempts) == ("ok", 200, 1)
    assert homebridge.hb.values["Power Alert Motion"] == 1
    assert ("GET", "/?accessoryId=power_alert_motion&state=true") in homebridge.hb.requests
    off = Delivery.objects.create(notifier=n, step="off", is_test=True)
    services.deliver(off.pk)
    assert homebridge.hb.history == [("Power Alert Motion", 1), ("Power Alert Motion", 0)]


def test_webhooks_contact_polarity_is_configurable(homebridge):
    n = notifier("http_webhooks", {"url": homebridge.url, "accessory_id": "power_alert_contact", "invert": True})
    send_on(n)
    # Alarm ON → state=false → the contact opens (1), which is what Apple Home notifies on.
    assert ("GET", "/?accessoryId=power_alert_contact&state=false") in homebridge.hb.requests
    assert homebridge.hb.values["Power Alert Contact"] == 1


def test_webhooks_retry_5xx_then_succeed(homebridge):
    homebridge.hb.fail_next = [503, 502]
    n = notifier("http_webhooks", {"url": homebridge.url, "accessory_id": "power_alert_motion"})
    delivery = send_on(n)
    assert (delivery.status, delivery.attempts, delivery.status_code) == ("ok", 3, 200)


def test_webhooks_4xx_is_not_retried(homebridge):
    n = notifier("http_webhooks", {"url": homebridge.url, "accessory_id": "nope"})
    delivery = send_on(n)
    assert (delivery.status, delivery.attempts, delivery.status_code) == ("failed", 1, 404)
    assert "not found" in delivery.detail
    assert len(homebridge.hb.requests) == 1


def test_unreachable_host_is_retried_and_recorded():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    n = notifier("http_webhooks", {"url": f"http://127.0.0.1:{port}/", "accessory_id": "x"})
    delivery = send_on(n)
    assert (delivery.status, delivery.attempts, delivery.status_code) == ("failed", 3, None)
    assert "ConnectError" in delivery.detail


# -- Config UI X ----------------------------------------------------------------------------
def ui_config(homebridge, **extra):
    return {
        "url": homebridge.url,
        "username": "admin",
        "password": "admin",
        "accessory": "Power Alert Trigger",
        **extra,
    }


def test_config_ui_x_logs_in_finds_the_switch_by_name_and_puts_on(homebridge):
    n = notifier("homebridge_ui", ui_config(homebridge))
    delivery = send_on(n)
    assert (delivery.status, delivery.status_code) == ("ok", 200)
    assert homebridge.hb.values["Power Alert Trigger"] == 1
    assert homebridge.hb.values["Power Alert Motion"] == 1  # through the linked switch
    # The token is cached: the OFF does not log in again.
    services.deliver(Delivery.objects.create(notifier=n, step="off").pk)
    assert homebridge.hb.values["Power Alert Motion"] == 0
    assert homebridge.hb.logins == 1


def test_config_ui_x_refreshes_the_token_on_401(homebridge):
    n = notifier("homebridge_ui", ui_config(homebridge))
    send_on(n)
    homebridge.hb.tokens.clear()  # Homebridge restarted: the cached token is refused
    delivery = services.deliver(Delivery.objects.create(notifier=n, step="off").pk)
    assert (delivery.status, delivery.attempts) == ("ok", 1)
    assert homebridge.hb.logins == 2
    assert homebridge.hb.values["Power Alert Motion"] == 0


def test_config_ui_x_wrong_password_and_read_only_characteristic_are_not_retried(homebridge):
    n = notifier("homebridge_ui", ui_config(homebridge, password="wrong"))
    delivery = send_on(n)
    assert (delivery.status, delivery.attempts, delivery.status_code) == ("failed", 1, 403)
    sensor = notifier(
        "homebridge_ui", ui_config(homebridge, accessory="Power Alert Motion", characteristic="MotionDetected")
    )
    delivery = send_on(sensor)
    assert (delivery.status, delivery.attempts, delivery.status_code) == ("failed", 1, 400)
    assert "Invalid characteristicType" in delivery.detail


def test_config_ui_x_retries_5xx(homebridge):
    homebridge.hb.fail_next = [500]
    n = notifier("homebridge_ui", ui_config(homebridge))
    delivery = send_on(n)
    assert (delivery.status, delivery.attempts) == ("ok", 2)


# -- generic webhook and e-mail -------------------------------------------------------------
class Receiver(BaseHTTPRequestHandler):
    received: list = []
    codes: list = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        code = self.codes.pop(0) if self.codes else 204
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def receiver():
    handler = type("R", (Receiver,), {"received": [], "codes": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    httpd.shutdown()
    httpd.server_close()


def test_json_webhook_is_signed(receiver):
    handler, url = receiver
    n = notifier("webhook", {"url": url, "secret": "s3cret"})
    delivery = send_on(n)
    assert (delivery.status, delivery.status_code) == ("ok", 204)
    headers, body = handler.received[0]
    assert headers["X-Signature-SHA256"] == notifiers.sign("s3cret", body)
    assert json.loads(body)["step"] == "on"


def test_json_webhook_retries_5xx_but_not_429(receiver):
    handler, url = receiver
    handler.codes.extend([500, 429])
    delivery = send_on(notifier("webhook", {"url": url}))
    assert (delivery.status, delivery.attempts, delivery.status_code) == ("failed", 2, 429)
    assert len(handler.received) == 2


def test_email_goes_through_the_mail_backend():
    delivery = send_on(notifier("email", {"to": "ops@example.com, boss@example.com"}))
    assert delivery.status == "ok"
    assert mail.outbox[0].to == ["ops@example.com", "boss@example.com"]
    assert "test" in mail.outbox[0].subject


def test_each_kind_validates_its_config():
    from django.core.exceptions import ValidationError

    bad = [
        ("mqtt", {"url": "http://x", "topic": "a/#"}),
        ("http_webhooks", {"accessory_id": "x"}),
        ("homebridge_ui", {"url": "http://x", "accessory": "y"}),
        ("state_endpoint", {"token": "short"}),
        ("webhook", {"url": "ftp://x", "extra": 1}),
        ("email", {"to": "nobody"}),
    ]
    for kind, config in bad:
        with pytest.raises(ValidationError) as error:
            Notifier(name="x", kind=kind, config=config).full_clean()
        assert "config" in error.value.message_dict, kind
    assert not Notifier.objects.exists()
    with pytest.raises(ValidationError):
        Notifier(name="x", kind="mqtt", config={"url": "mqtt://h", "topic": "t"}, pulse_seconds=5).full_clean()


# -- MQTT against the real Mosquitto ----------------------------------------------------------
def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_mqtt_pulse_on_then_off_with_the_configured_payloads_and_length(subscriber):
    topic, seen = subscriber
    n = notifier("mqtt", {"url": "mqtt://127.0.0.1:1883", "topic": topic, "payload_on": "ON!"}, pulse_seconds=10)
    rows = services._pulse_rows(n, notifiers.get_kind("mqtt"), is_test=True)
    services.deliver(rows[0].pk)  # the worker's task: ON, wait, OFF
    assert wait_for(lambda: len([s for s in seen if s[1] == topic]) == 2)
    (t_on, _, on, on_retained), (t_off, _, off, off_retained) = [s for s in seen if s[1] == topic]
    assert (on, off, on_retained, off_retained) == ("ON!", "false", False, False)
    assert 9.5 <= t_off - t_on <= 14
    events = [json.loads(s[2]) for s in seen if s[1].endswith("/events")]
    # events_prefix defaults to the topic's first part: "test/events" — our subscriber sees only its own subtree.
    assert events == [] or events[0]["action"] == "test"
    assert Delivery.objects.get(pk=rows[1].pk).status == "ok"


def test_mqtt_json_event_goes_to_prefix_events(subscriber):
    topic, seen = subscriber
    prefix = topic.rsplit("/", 1)[0]
    n = notifier("mqtt", {"url": "mqtt://127.0.0.1:1883", "topic": topic, "events_prefix": prefix})
    send_on(n)
    assert wait_for(lambda: any(s[1] == f"{prefix}/events" for s in seen), 10)
    event = json.loads(next(s[2] for s in seen if s[1] == f"{prefix}/events"))
    assert event["rule"] == "test"


def test_a_worker_killed_mid_pulse_still_sends_the_off(subscriber):
    """The OFF lives in the database as a q2 one-shot schedule: running it after a restart sends the OFF."""
    from django_q.models import Schedule

    topic, seen = subscriber
    n = notifier("mqtt", {"url": "mqtt://127.0.0.1:1883", "topic": topic}, pulse_seconds=10)
    rows = services._pulse_rows(n, notifiers.get_kind("mqtt"), is_test=True)
    services.deliver(rows[0].pk, follow_pulse=False)  # the worker dies right after the ON
    schedule = Schedule.objects.get(name=services.PULSE_OFF_SCHEDULE.format(pk=rows[1].pk))
    assert schedule.schedule_type == Schedule.ONCE
    assert abs((schedule.next_run - rows[1].due_at).total_seconds() - 2) < 1
    # A new worker's scheduler runs the due schedule: the same function and arguments.
    locate(schedule.func)(*ast.literal_eval(schedule.args))
    assert wait_for(lambda: [s[2] for s in seen if s[1] == topic] == ["true", "false"], 10)
    assert not Schedule.objects.filter(pk=schedule.pk).exists()
    # The schedule firing again (or the original worker's wait ending) sends nothing twice.
    services.deliver(rows[1].pk)
    time.sleep(0.3)
    assert [s[2] for s in seen if s[1] == topic] == ["true", "false"]
