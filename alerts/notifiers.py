"""Where alerts go (SPEC §8): one small interface, one class per kind, a registry.

A kind's `send(config, step, message)` does one attempt and returns a
`Result`; `alerts.delivery` records it and retries transient failures.
`step` is "on" / "off" (the two halves of a HomeKit pulse) or "clear".
"""

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.mail import send_mail


@dataclass
class Result:
    ok: bool
    status_code: int | None = None
    detail: str = ""
    retry: bool = False  # a transient failure worth another attempt

    @classmethod
    def from_response(cls, response: httpx.Response) -> "Result":
        code = response.status_code
        if code < 400:
            return cls(True, code, f"HTTP {code}")
        # 5xx, 408 and 401 may pass next time; any other 4xx is our mistake: retrying would not help.
        return cls(False, code, f"HTTP {code}: {response.text[:200]}", retry=code >= 500 or code in (401, 408))

    @classmethod
    def from_error(cls, error: Exception) -> "Result":
        return cls(False, None, f"{type(error).__name__}: {error}"[:300], retry=True)


class NotifierKind:
    """One way of telling someone. `fields` maps each config key to (required, help)."""

    key = ""
    label = ""
    pulse = False  # HomeKit kinds: ON, then OFF after pulse_seconds
    sends_clear = False
    fields: dict[str, tuple[bool, str]] = {}

    def validate(self, config: dict) -> dict[str, str]:
        errors = {}
        for name, (required, _help) in self.fields.items():
            if required and not config.get(name):
                errors[name] = "required"
        for name in config:
            if name not in self.fields:
                errors[name] = f"unknown key (known: {', '.join(self.fields)})"
        return errors

    def send(self, config: dict, step: str, message: dict) -> Result:
        raise NotImplementedError


def _timeout() -> float:
    return settings.NOTIFIER_TIMEOUT_SECONDS


def _check_url(config, name, errors, schemes=("http", "https")):
    url = config.get(name)
    if url and urlsplit(str(url)).scheme not in schemes:
        errors[name] = f"a URL starting with {' or '.join(s + '://' for s in schemes)}"


class MqttNotifier(NotifierKind):
    key = "mqtt"
    label = "MQTT (Homebridge mqttthing)"
    pulse = True
    fields = {
        "url": (True, "mqtt://[user:password@]host:1883 or mqtts:// for TLS"),
        "topic": (True, "e.g. shelly/alerts/motion"),
        "payload_on": (False, "default true"),
        "payload_off": (False, "default false"),
        "events_prefix": (False, "JSON events go to <prefix>/events; default: the topic's first part"),
    }

    def validate(self, config):
        errors = super().validate(config)
        _check_url(config, "url", errors, schemes=("mqtt", "mqtts"))
        if any(ch in str(config.get("topic", "")) for ch in "#+"):
            errors["topic"] = "a topic to publish to, without wildcards"
        return errors

    def send(self, config, step, message):
        import paho.mqtt.client as mqtt

        url = urlsplit(config["url"])
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        if url.username:
            client.username_pw_set(url.username, url.password)
        if url.scheme == "mqtts":
            client.tls_set()
        payload = config.get("payload_on", "true") if step == "on" else config.get("payload_off", "false")
        prefix = config.get("events_prefix") or config["topic"].split("/")[0]
        try:
            client.connect(url.hostname or "127.0.0.1", url.port or (8883 if url.scheme == "mqtts" else 1883), 30)
            client.loop_start()
            try:
                # QoS 1 and not retained: a retained ON would re-trigger the sensor after a Homebridge restart.
                infos = [client.publish(config["topic"], payload, qos=1, retain=False)]
                if step == "on":
                    infos.append(client.publish(f"{prefix}/events", json.dumps(message), qos=1, retain=False))
                for info in infos:
                    info.wait_for_publish(timeout=_timeout())
                    if not info.is_published():
                        return Result(False, None, "broker did not acknowledge (QoS 1)", retry=True)
            finally:
                client.disconnect()
                client.loop_stop()
        except (OSError, ValueError, RuntimeError) as error:
            return Result.from_error(error)
        return Result(True, None, f"published {payload!r} to {config['topic']}")


class HttpWebhooksNotifier(NotifierKind):
    key = "http_webhooks"
    label = "Homebridge http-webhooks"
    pulse = True
    fields = {
        "url": (True, "http://HOST:51828/"),
        "accessory_id": (True, "the accessoryId in the plugin's config"),
        "invert": (False, "true for a contact sensor (its state=true means closed)"),
        "username": (False, "basic auth"),
        "password": (False, "basic auth"),
    }

    def validate(self, config):
        errors = super().validate(config)
        _check_url(config, "url", errors)
        return errors

    def send(self, config, step, message):
        state = (step == "on") != bool(config.get("invert"))
        auth = (config["username"], config.get("password", "")) if config.get("username") else None
        params = {"accessoryId": config["accessory_id"], "state": "true" if state else "false"}
        try:
            response = httpx.get(config["url"], params=params, auth=auth, timeout=_timeout())
        except httpx.HTTPError as error:
            return Result.from_error(error)
        return Result.from_response(response)


_tokens: dict[str, str] = {}
_tokens_lock = threading.Lock()


class HomebridgeUiNotifier(NotifierKind):
    """Config UI X REST API: sensors are read-only there, so this flips a writable switch linked to the sensor."""

    key = "homebridge_ui"
    label = "Homebridge Config UI X API"
    pulse = True
    fields = {
        "url": (True, "http://HOST:8581"),
        "username": (False, "for POST /api/auth/login"),
        "password": (False, "for POST /api/auth/login"),
        "token": (False, "a fixed bearer token instead of username/password"),
        "accessory": (True, "the switch's service name, e.g. Power Alert Trigger"),
        "characteristic": (False, "default On"),
    }

    def validate(self, config):
        errors = super().validate(config)
        _check_url(config, "url", errors)
        if not config.get("token") and not config.get("username"):
            errors["username"] = "username and password, or a token"
        return errors

    def _login(self, client, config) -> str:
        response = client.post("/api/auth/login", json={"username": config["username"], "password": config["password"]})
        if response.status_code >= 400:
            raise _HttpFailure(response)
        return response.json()["access_token"]

    def _token(self, client, config, *, fresh=False) -> str:
        key = f"{config['url']}|{config.get('username', '')}"
        with _tokens_lock:
            if not fresh and key in _tokens:
                return _tokens[key]
        if config.get("token") and not config.get("username"):
            return config["token"]
        token = self._login(client, config)
        with _tokens_lock:
            _tokens[key] = token
        return token

    def _call(self, client, config, method, path, **kwargs) -> httpx.Response:
        response = client.request(
            method, path, headers={"Authorization": f"Bearer {self._token(client, config)}"}, **kwargs
        )
        if response.status_code == 401 and config.get("username"):
            # The cached token expired (8 h) or Homebridge restarted: log in again once.
            token = self._token(client, config, fresh=True)
            response = client.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
        return response

    def send(self, config, step, message):
        try:
            with httpx.Client(base_url=config["url"].rstrip("/"), timeout=_timeout()) as client:
                listing = self._call(client, config, "GET", "/api/accessories")
                if listing.status_code >= 400:
                    return Result.from_response(listing)
                # By name: the uniqueId changes with the Homebridge setup.
                matches = [s for s in listing.json() if s.get("serviceName") == config["accessory"]]
                if not matches:
                    return Result(False, 404, f"no accessory named {config['accessory']!r}")
                body = {"characteristicType": config.get("characteristic") or "On", "value": step == "on"}
                response = self._call(client, config, "PUT", f"/api/accessories/{matches[0]['uniqueId']}", json=body)
        except _HttpFailure as failure:
            return Result.from_response(failure.response)
        except (httpx.HTTPError, ValueError, KeyError) as error:
            return Result.from_error(error)
        return Result.from_response(response)


class _HttpFailure(Exception):
    def __init__(self, response):
        self.response = response


class StateEndpointNotifier(NotifierKind):
    """Nothing is pushed: HTTP accessory plugins poll `/alarm/<rule-slug>/state?token=…`."""

    key = "state_endpoint"
    label = "State endpoint (polled by HTTP accessory plugins)"
    fields = {"token": (True, "the plugin sends it as ?token= or Authorization: Bearer")}

    def validate(self, config):
        errors = super().validate(config)
        if config.get("token") and len(str(config["token"])) < 16:
            errors["token"] = "at least 16 characters"
        return errors

    def send(self, config, step, message):
        return Result(True, None, "state served at /alarm/<rule>/state")


class WebhookNotifier(NotifierKind):
    key = "webhook"
    label = "JSON webhook (POST)"
    sends_clear = True
    fields = {
        "url": (True, "https://…"),
        "secret": (False, "signs the body: X-Signature-SHA256 = hex HMAC-SHA256"),
    }

    def validate(self, config):
        errors = super().validate(config)
        _check_url(config, "url", errors)
        return errors

    def send(self, config, step, message):
        body = json.dumps({**message, "step": step}, sort_keys=True).encode()
        headers = {"Content-Type": "application/json"}
        if config.get("secret"):
            headers["X-Signature-SHA256"] = sign(config["secret"], body)
        try:
            response = httpx.post(config["url"], content=body, headers=headers, timeout=_timeout())
        except httpx.HTTPError as error:
            return Result.from_error(error)
        return Result.from_response(response)


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class EmailNotifier(NotifierKind):
    key = "email"
    label = "E-mail"
    sends_clear = True
    fields = {"to": (True, "comma-separated addresses")}

    def validate(self, config):
        errors = super().validate(config)
        if config.get("to") and not all("@" in a for a in str(config["to"]).split(",")):
            errors["to"] = "e-mail addresses separated by commas"
        return errors

    def send(self, config, step, message):
        subject = f"[shelly-monitor] {message.get('rule', '')}: {message.get('action', step)}"
        body = json.dumps(message, indent=2, ensure_ascii=False)
        try:
            send_mail(subject, body, None, [a.strip() for a in config["to"].split(",")], fail_silently=False)
        except OSError as error:
            return Result.from_error(error)
        return Result(True, None, "sent")


REGISTRY: dict[str, NotifierKind] = {
    kind.key: kind
    for kind in (
        MqttNotifier(),
        HttpWebhooksNotifier(),
        HomebridgeUiNotifier(),
        StateEndpointNotifier(),
        WebhookNotifier(),
        EmailNotifier(),
    )
}


def get_kind(key: str) -> NotifierKind:
    return REGISTRY[key]


def kind_choices() -> list[tuple[str, str]]:
    return [(kind.key, kind.label) for kind in REGISTRY.values()]


def backoff_delays(attempts: int, base: float) -> list[float]:
    """1×, 2×, 4× … the base between attempts."""
    return [base * 2**i for i in range(max(attempts - 1, 0))]


def attempt_with_retries(kind: NotifierKind, config, step, message, *, attempts, base_delay, on_attempt=None):
    """Send, retrying transient failures with backoff; never a 4xx other than 401."""
    result = Result(False, None, "not attempted")
    delays = backoff_delays(attempts, base_delay)
    for number in range(1, attempts + 1):
        try:
            result = kind.send(config, step, message)
        except Exception as error:  # a kind's bug must not stop the others
            result = Result.from_error(error)
        if on_attempt:
            on_attempt(number, result)
        if result.ok or not result.retry or number == attempts:
            return result
        time.sleep(delays[number - 1])
    return result
