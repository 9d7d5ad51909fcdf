"""Who may call /api/v1 and what every failure looks like (one error shape)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIRequestFactory
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from collector.models import ApiToken
from shelly_site.api.errors import api_exception_handler
from shelly_site.api.permissions import ApiWriteAccess
from tests.api_base import *  # noqa: F403
from tests.api_base import api_token

pytestmark = pytest.mark.django_db

DEVICES = "/api/v1/devices/"


def assert_error_shape(response, status, code=None):
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    if code:
        assert error["code"] == code
    body = response.content.decode()
    assert "Traceback" not in body and "SELECT" not in body


def test_no_token_is_401(anonymous_api):
    response = anonymous_api.get(DEVICES)
    assert_error_shape(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Token")


def test_wrong_token_is_401(anonymous_api):
    anonymous_api.credentials(HTTP_AUTHORIZATION="Token api_not-a-real-token")
    assert_error_shape(anonymous_api.get(DEVICES), 401, "authentication_failed")


def test_malformed_authorization_header_is_401(anonymous_api):
    anonymous_api.credentials(HTTP_AUTHORIZATION="Token two parts")
    assert_error_shape(anonymous_api.get(DEVICES), 401)


def test_disabled_token_is_401(reader_api):
    ApiToken.objects.update(enabled=False)
    assert_error_shape(reader_api.get(DEVICES), 401)


def test_bearer_keyword_works_too(anonymous_api):
    _, raw = api_token()
    anonymous_api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert anonymous_api.get(DEVICES).status_code == 200


@pytest.mark.parametrize(
    ("persona", "status"),
    [("anonymous", 401), ("outsider", 403), ("staff", 200), ("admin", 200), ("reader", 200), ("writer", 200)],
)
def test_who_may_read(api_personas, persona, status):
    assert api_personas[persona].get(DEVICES).status_code == status


@pytest.mark.parametrize("persona", ["reader", "writer", "staff", "admin"])
def test_read_endpoints_refuse_writes(api_personas, persona):
    response = api_personas[persona].post(DEVICES, {"device_id": "x"}, format="json")
    assert_error_shape(response, 405, "method_not_allowed")


def test_read_only_token_cannot_use_a_write_endpoint():
    class WritableView(APIView):
        permission_classes = [ApiWriteAccess]

        def get(self, request):
            from rest_framework.response import Response

            return Response({})

        post = get

    factory, view = APIRequestFactory(), WritableView.as_view()
    _, read_raw = api_token()
    _, write_raw = api_token(can_write=True, name="writer")

    def status(method, raw):
        request = getattr(factory, method)("/x", HTTP_AUTHORIZATION=f"Token {raw}")
        return view(request).status_code

    assert status("get", read_raw) == 200
    assert status("post", read_raw) == 403
    assert status("post", write_raw) == 200


def test_token_acting_as_a_user_is_refused_when_the_user_is_inactive(staff_api, anonymous_api):
    staff_api.user.is_active = False
    staff_api.user.save()
    _, raw = api_token(user=staff_api.user)
    anonymous_api.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    assert_error_shape(anonymous_api.get(DEVICES), 401)


def test_last_used_is_written_at_most_once_a_minute(reader_api):
    reader_api.get(DEVICES)
    first = ApiToken.objects.get().last_used_at
    assert first is not None
    reader_api.get(DEVICES)
    assert ApiToken.objects.get().last_used_at == first
    ApiToken.objects.update(last_used_at=timezone.now() - timedelta(minutes=2))
    reader_api.get(DEVICES)
    assert ApiToken.objects.get().last_used_at > first


def test_unknown_api_url_is_404_in_the_error_shape(reader_api):
    assert_error_shape(reader_api.get("/api/v1/no-such-thing/"), 404, "not_found")
    assert_error_shape(reader_api.get("/api/nothing-here"), 404, "not_found")


def test_unknown_object_is_404_in_the_error_shape(reader_api):
    assert_error_shape(reader_api.get(f"{DEVICES}shellypro4pm-missing/"), 404, "not_found")


def test_invalid_filter_is_400_with_details(reader_api):
    response = reader_api.get("/api/v1/power-logs/", {"from": "last tuesday"})
    assert_error_shape(response, 400, "invalid")
    assert "from" in response.json()["error"]["details"]


def test_unhandled_exception_becomes_a_bare_500():
    response = api_exception_handler(RuntimeError("SELECT secret FROM x"), {"view": None})
    assert response.status_code == 500
    assert response.data == {"error": {"code": "server_error", "message": "Internal server error."}}


def test_unauthenticated_requests_are_throttled(anonymous_api, monkeypatch):
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {"anon": "2/min"})
    for _ in range(2):
        assert anonymous_api.get("/api/v1/schema/").status_code == 200
    response = anonymous_api.get("/api/v1/schema/")
    assert_error_shape(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0


def test_ingest_is_throttled_per_key(ingest_api, monkeypatch):
    from shelly_site.api.throttling import IngestRateThrottle

    monkeypatch.setattr(IngestRateThrottle, "THROTTLE_RATES", {"ingest": "1/min"})
    assert ingest_api.post("/api/v1/ingest/batch", {"messages": []}, format="json").status_code == 200
    assert_error_shape(ingest_api.post("/api/v1/ingest/batch", {"messages": []}, format="json"), 429, "throttled")


def test_schema_and_docs_are_served_without_a_cdn(anonymous_api):
    schema = anonymous_api.get("/api/v1/schema/", {"format": "json"})
    assert schema.status_code == 200
    assert "/api/v1/ingest/batch" in schema.json()["paths"]
    for page in ("/api/v1/docs/", "/api/v1/redoc/"):
        html = anonymous_api.get(page).content.decode()
        assert "/static/drf_spectacular_sidecar/" in html
        assert "cdn." not in html and "unpkg" not in html


def test_api_root_lists_every_app_endpoint(reader_api):
    root = reader_api.get("/api/v1/").json()
    expected = {
        "device-list": "devices/",
        "channel-list": "channels/",
        "power-log-list": "power-logs/",
        "series": "series/",
        "energy-summary": "energy/summary/",
        "ingest-batch": "ingest/batch",
        "cycle-list": "cycles/",
        "impact": "impact/",
        "channel-config-versions": "channels/{channel_id}/config-versions/",
        "schema": "schema/",
    }
    for name, path in expected.items():
        assert root[name] == f"http://testserver/api/v1/{path}"
    assert not any(name.endswith("-detail") for name in root)
