"""/healthz and /metrics behind an optional monitoring token; an unknown host name is explained (§9)."""

import pytest
from django.test import override_settings

from tests.scenarios import make_channel

pytestmark = pytest.mark.django_db

TOKEN = "mon-0123456789abcdef"


@override_settings(MONITORING_TOKEN=TOKEN)
def test_without_the_token_healthz_says_only_ok_or_degraded(client):
    make_channel()
    response = client.get("/healthz")
    assert response.status_code == 503  # no worker in a test
    assert response.json() == {"status": "degraded"}


@override_settings(MONITORING_TOKEN=TOKEN)
def test_with_the_token_healthz_shows_checks_and_devices(client):
    ch = make_channel()
    response = client.get("/healthz", headers={"Authorization": f"Bearer {TOKEN}"})
    body = response.json()
    assert set(body["checks"]) == {"database", "channel_layer", "worker"}
    assert body["devices"][0]["device_id"] == ch.device.device_id


@override_settings(MONITORING_TOKEN=TOKEN)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Token {TOKEN}", TOKEN])
def test_metrics_need_the_token_when_one_is_set(client, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert b"shelly_" not in response.content


@override_settings(MONITORING_TOKEN=TOKEN)
def test_metrics_with_the_token(client):
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert b"shelly_frames_in" in response.content


def test_without_a_monitoring_token_both_stay_open(client):
    assert client.get("/metrics").status_code == 200
    assert "checks" in client.get("/healthz").json()


@override_settings(ALLOWED_HOSTS=["pumps.example.org"])
@pytest.mark.parametrize("path", ["/accounts/login/", "/api/v1/devices/"])
def test_a_host_name_the_server_was_not_given_gets_a_400_naming_the_setting(client, path):
    response = client.get(path, HTTP_HOST="192.168.1.20:8000")
    assert response.status_code == 400
    text = response.content.decode()
    assert "ALLOWED_HOSTS" in text and "192.168.1.20:8000" in text


@override_settings(ALLOWED_HOSTS=["pumps.example.org"])
def test_the_host_name_shown_back_cannot_inject_markup_or_lines(client):
    response = client.get("/", HTTP_HOST="<script>\nx")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert "\n" not in response.content.decode().strip()
