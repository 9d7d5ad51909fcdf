"""Personas for API tests: each fixture is a ready `APIClient`.

Use in a test module with `from tests.api_base import *  # noqa: F403`, then
ask for the persona by name:

    def test_outsider_cannot_list_cycles(outsider_api):
        assert outsider_api.get("/api/v1/cycles/").status_code == 403

| fixture          | who                                                  |
|------------------|------------------------------------------------------|
| `anonymous_api`  | nobody (no credentials)                              |
| `outsider_api`   | logged-in user who is not staff                      |
| `staff_api`      | logged-in staff user (the dashboard's session)       |
| `admin_api`      | logged-in superuser                                  |
| `reader_api`     | `Authorization: Token …` of a read-only ApiToken     |
| `writer_api`     | `Authorization: Token …` of an ApiToken with can_write |
| `ingest_api`     | `X-API-Key: …` of an IngestToken (batch relays)      |

`api_personas` maps those names to clients for table-driven permission tests.
Throttle counters live in the cache; it is cleared before every test.
"""

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from rest_framework.test import APIClient

from collector.models import ApiToken, IngestToken

__all__ = [
    "_clear_throttle_counters",
    "admin_api",
    "anonymous_api",
    "api_personas",
    "api_token",
    "ingest_api",
    "ingest_key",
    "outsider_api",
    "reader_api",
    "staff_api",
    "writer_api",
]


@pytest.fixture(autouse=True)
def _clear_throttle_counters():
    cache.clear()
    yield
    cache.clear()


def _session_client(username, **flags):
    user = get_user_model().objects.create_user(username=username, password="pw-not-used", **flags)
    client = APIClient()
    client.force_login(user)
    client.user = user
    return client


def api_token(*, can_write=False, user=None, name="tool") -> tuple[ApiToken, str]:
    """Create an API token; returns (token, raw secret)."""
    token = ApiToken(name=name, can_write=can_write, user=user)
    raw = token.set_new_secret()
    token.save()
    return token, raw


def _token_client(raw):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    return client


@pytest.fixture
def anonymous_api(db):
    return APIClient()


@pytest.fixture
def outsider_api(db):
    return _session_client("outsider")


@pytest.fixture
def staff_api(db):
    return _session_client("staff", is_staff=True)


@pytest.fixture
def admin_api(db):
    return _session_client("admin", is_staff=True, is_superuser=True)


@pytest.fixture
def reader_api(db):
    token, raw = api_token(name="reader")
    client = _token_client(raw)
    client.token = token
    return client


@pytest.fixture
def writer_api(db):
    token, raw = api_token(name="writer", can_write=True)
    client = _token_client(raw)
    client.token = token
    return client


@pytest.fixture
def ingest_key(db) -> tuple[IngestToken, str]:
    token = IngestToken(name="relay")
    raw = token.set_new_secret()
    token.save()
    return token, raw


@pytest.fixture
def ingest_api(ingest_key):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=ingest_key[1])
    client.token = ingest_key[0]
    return client


@pytest.fixture
def api_personas(anonymous_api, outsider_api, staff_api, admin_api, reader_api, writer_api):
    return {
        "anonymous": anonymous_api,
        "outsider": outsider_api,
        "staff": staff_api,
        "admin": admin_api,
        "reader": reader_api,
        "writer": writer_api,
    }
