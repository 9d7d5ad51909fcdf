import pytest
from django.contrib.auth import get_user_model

from collector.pipeline import ingest_samples
from tests.scenarios import at, make_channel, sample

pytestmark = pytest.mark.django_db


def test_overview_requires_login(client):
    response = client.get("/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_overview_lists_channels_with_running_state_and_latest_row(client):
    staff = get_user_model().objects.create_user("staff", password="pw-for-tests", is_staff=True)
    client.force_login(staff)
    ch = make_channel(policy="events", name="Pump P2 — feed pump")
    ingest_samples([sample(at(0), 512.5, channel=ch)])
    text = client.get("/").content.decode()
    assert "Pump P2 — feed pump" in text
    assert "running" in text
    assert "512.5 W · start" in text
