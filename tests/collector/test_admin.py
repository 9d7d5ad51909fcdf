import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from collector.models import ApiToken, Device, IngestToken, PowerLog
from collector.pipeline import ingest_samples
from tests.scenarios import at, make_channel, sample

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.org", "pw-for-tests")
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "model", ["device", "channel", "powerlog", "energyinterval", "cycle", "ingesttoken", "apitoken"]
)
def test_every_collector_changelist_loads(admin_client, model):
    ch = make_channel(policy="events")
    ingest_samples([sample(at(0), 500, channel=ch)])
    response = admin_client.get(reverse(f"admin:collector_{model}_changelist"))
    assert response.status_code == 200


@pytest.mark.parametrize("model, token_model", [("ingesttoken", IngestToken), ("apitoken", ApiToken)])
def test_a_new_token_is_shown_once_and_stored_hashed(admin_client, model, token_model):
    response = admin_client.post(
        reverse(f"admin:collector_{model}_add"), {"name": "relay", "enabled": "on"}, follow=True
    )
    text = response.content.decode()
    raw = re.search(r"<code>((?:ing|api)_[A-Za-z0-9_\-]+)</code>", text).group(1)
    token = token_model.objects.get(name="relay")
    assert token.token_hash != raw and raw not in token.token_hash
    assert token_model.objects.matching(raw).get() == token
    # The change page never shows it again.
    page = admin_client.get(reverse(f"admin:collector_{model}_change", args=[token.pk])).content.decode()
    assert raw not in page


def test_power_logs_are_read_only_in_admin(admin_client):
    ch = make_channel(policy="every")
    ingest_samples([sample(at(0), 500, channel=ch)])
    row = PowerLog.objects.get()
    assert admin_client.get(reverse("admin:collector_powerlog_add")).status_code == 403
    response = admin_client.post(reverse("admin:collector_powerlog_change", args=[row.pk]), {"apower_w": 1})
    assert response.status_code == 403
    row.refresh_from_db()
    assert row.apower_w == 500


def test_power_logs_filter_by_channel(admin_client):
    a = make_channel(policy="every", key="switch:0")
    b = make_channel(policy="every", key="switch:1")
    ingest_samples([sample(at(0), 111, channel=a), sample(at(0), 222, channel=b)])
    page = admin_client.get(reverse("admin:collector_powerlog_changelist"), {"channel__id__exact": b.pk})
    text = page.content.decode()
    assert "222" in text and "111.0" not in text


def test_rebuild_action_recreates_a_deleted_cycle(admin_client):
    from collector.models import Cycle
    from collector.pipeline import close_expired_runs

    ch = make_channel(policy="events")
    ingest_samples([sample(at(60 * k), 500, channel=ch) for k in range(6)])
    close_expired_runs(now=at(1000))
    cycle = Cycle.objects.get(channel=ch)
    Cycle.objects.filter(pk=cycle.pk).update(duration_s=1)
    response = admin_client.post(
        reverse("admin:collector_cycle_changelist"),
        {"action": "rebuild_selected_channels", "_selected_action": [cycle.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert Cycle.objects.get(channel=ch).duration_s == 300


def test_pull_intervals_action_queues_a_task_per_polled_meter(admin_client):
    from django_q.models import OrmQ

    from collector.models import Device

    meter = Device.objects.create(device_id="shellypro3em-aabbccddeeff", transport="rpc_poll", host="127.0.0.1:9")
    switch = Device.objects.create(device_id="shellypro4pm-aabbccddeeff")
    response = admin_client.post(
        reverse("admin:collector_device_changelist"),
        {"action": "pull_intervals_now", "_selected_action": [meter.pk, switch.pk]},
        follow=True,
    )
    assert "Queued an interval pull for 1 polled meter" in response.content.decode()
    from django.conf import settings

    if not settings.REDIS_URL:  # with Redis the queue lives in Redis, not in OrmQ
        assert OrmQ.objects.count() == 1


@pytest.mark.parametrize("model", ["ingesttoken", "apitoken"])
def test_a_new_tokens_secret_never_travels_in_a_cookie(admin_client, model):
    response = admin_client.post(reverse(f"admin:collector_{model}_add"), {"name": "relay", "enabled": "on"})
    raw = re.search(r"<code>((?:ing|api)_[A-Za-z0-9_\-]+)</code>", response.content.decode()).group(1)
    assert response.status_code == 200  # the page answering the save shows it, no redirect
    assert "no-store" in response["Cache-Control"]
    set_cookies = "".join(morsel.OutputString() for morsel in response.cookies.values())
    assert raw not in set_cookies and raw[4:12] not in set_cookies
    assert "messages" not in response.cookies
    # And nothing is waiting to be shown on the next page.
    assert raw not in admin_client.get(reverse(f"admin:collector_{model}_changelist")).content.decode()


def device_form(device, **changes):
    return {
        "device_id": device.device_id, "name": device.name, "model": device.model, "transport": "rpc_poll",
        "enabled": "on", "host": device.host, "password": "", "channels-TOTAL_FORMS": "0",
        "channels-INITIAL_FORMS": "0", "channels-MIN_NUM_FORMS": "0", "channels-MAX_NUM_FORMS": "1000",
        **changes,
    }  # fmt: skip


def test_the_device_password_is_never_shown_and_kept_when_left_empty(admin_client):
    device = Device.objects.create(device_id="shellypro3em-aabbccddee01", transport="rpc_poll", host="10.0.0.5")
    url = reverse("admin:collector_device_change", args=[device.pk])

    response = admin_client.post(url, device_form(device, password="s3cret-meter"))
    assert response.status_code == 302
    device.refresh_from_db()
    assert device.password == "s3cret-meter"

    page = admin_client.get(url).content.decode()
    assert "s3cret-meter" not in page
    assert re.search(r'<input type="password" name="password"', page)

    admin_client.post(url, device_form(device, name="renamed"))  # password left empty
    device.refresh_from_db()
    assert (device.name, device.password) == ("renamed", "s3cret-meter")

    admin_client.post(url, device_form(device, clear_password="on"))
    device.refresh_from_db()
    assert device.password == ""
