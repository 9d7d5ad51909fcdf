"""Login throttling on the admin and the dashboard, per user and address; Django's password rules (§9)."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

pytestmark = pytest.mark.django_db

PASSWORD = "a long and fine password 42"
LOGIN_PAGES = {"admin": "/admin/login/", "dashboard": "/accounts/login/"}


@pytest.fixture(autouse=True)
def fast_hasher(settings):
    # The production hasher is slow on purpose; these tests log in a hundred times.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def boss():
    return get_user_model().objects.create_superuser("boss", password=PASSWORD)


def log_in(page, password, *, address="192.0.2.10", username="boss"):
    client = Client(REMOTE_ADDR=address)
    response = client.post(LOGIN_PAGES[page], {"username": username, "password": password})
    return response, "_auth_user_id" in client.session


@pytest.mark.parametrize("page", ["admin", "dashboard"])
def test_fifty_wrong_passwords_then_the_right_one_does_not_log_in(boss, page):
    statuses = [log_in(page, f"guess {n}")[0].status_code for n in range(50)]
    response, logged_in = log_in(page, PASSWORD)

    # The form again ("wrong password") four times; the fifth wrong one locks.
    assert statuses[:4] == [200] * 4
    assert set(statuses[4:]) == {429}
    assert response.status_code == 429 and not logged_in
    assert "Too many failed logins" in response.content.decode()


def test_the_lockout_is_per_user_and_address(boss):
    get_user_model().objects.create_user("staff", password=PASSWORD, is_staff=True)
    for n in range(10):
        log_in("admin", f"guess {n}")
    assert log_in("admin", PASSWORD, address="192.0.2.99")[1]  # the same user from elsewhere
    assert log_in("dashboard", PASSWORD, username="staff")[1]  # another user from that address
    assert not log_in("dashboard", PASSWORD)[1]  # the pair itself, on the other login page too


def test_after_the_pause_the_right_password_logs_in_again(boss, settings):
    for n in range(6):
        log_in("admin", f"guess {n}")
    assert not log_in("admin", PASSWORD)[1]
    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    assert log_in("admin", PASSWORD)[1]


def test_a_success_before_the_limit_forgets_the_failures(boss):
    for n in range(3):
        log_in("admin", f"guess {n}")
    assert log_in("admin", PASSWORD)[1]
    for n in range(4):
        log_in("admin", f"guess again {n}")
    assert log_in("admin", PASSWORD)[1]


@pytest.mark.parametrize("password", ["short1", "password123", "12345678901234"])
def test_weak_passwords_are_refused(boss, password):
    with pytest.raises(ValidationError):
        validate_password(password, user=boss)


def test_a_long_unusual_password_is_accepted(boss):
    validate_password(PASSWORD, user=boss)
