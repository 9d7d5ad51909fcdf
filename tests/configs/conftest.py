import pytest
from django_q.conf import Conf


@pytest.fixture
def q_sync(monkeypatch):
    """Run django-q2 tasks in-process, so a test sees what the worker would do."""
    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.fixture
def admin_client(client, django_user_model):
    """A logged-in superuser on the admin."""
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client
