import pytest
from django_q.conf import Conf


@pytest.fixture
def q_sync(monkeypatch):
    """Run django-q2 tasks in-process, so a test sees what the worker would do."""
    monkeypatch.setattr(Conf, "SYNC", True)
