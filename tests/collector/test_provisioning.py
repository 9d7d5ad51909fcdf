"""Provisioning a Shelly over its local RPC, against the simulator over real sockets."""

import asyncio
import threading
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import override_settings

from collector.models import Device, IngestToken, PowerLog
from collector.provisioning import ProvisioningError, provision, ws_server_url
from collector.simulators.pro4pm_local import LocalRpcPro4PM
from tests.servers import free_port, running_daphne, wait_for

PASSWORD = "pump-room-7"


class SimulatorThread:
    """A LocalRpcPro4PM on its own event loop in a thread: the test stays synchronous like the admin."""

    def __init__(self, **options):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sim = LocalRpcPro4PM(**options)
        self.run(self.sim.start())

    def run(self, coroutine, timeout=15):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self):
        self.run(self.sim.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


@pytest.fixture
def shelly():
    simulator = SimulatorThread(index=3, seed=7, password=PASSWORD, rate=4.0, start_running=True, run_s=3600)
    yield simulator.sim
    simulator.close()


@pytest.fixture
def open_shelly():
    simulator = SimulatorThread(index=4, seed=7, rate=4.0)
    yield simulator.sim
    simulator.close()


def test_server_url_gets_the_device_path():
    assert ws_server_url("wss://monitor.example.org", "ing_x") == "wss://monitor.example.org/ws/shelly/ing_x/"
    assert ws_server_url("ws://10.0.0.2:8000/base/", "ing_x") == "ws://10.0.0.2:8000/base/ws/shelly/ing_x/"
    with pytest.raises(ProvisioningError, match="must start with ws:// or wss://"):
        ws_server_url("https://monitor.example.org", "ing_x")


# -- end to end: a real server process, the simulator connects with the new token ---------------


@pytest.fixture
def server(transactional_db, tmp_path):
    with running_daphne(tmp_path, scheme="ws", COLLECTOR_TIMER_SECONDS="1", COLLECTOR_AUTO_REGISTER="false") as url:
        yield url


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_provisioned_shelly_connects_with_its_new_token_and_its_rows_appear(server, shelly):
    result = provision(shelly.address, password=PASSWORD, server=server, confirm_s=20)

    device = Device.objects.get(device_id=shelly.device_id)
    assert result.created and result.restarted and result.connected
    assert (device.model, device.generation, device.host, device.transport) == (
        "SPSW-004PE16EU",
        2,
        shelly.address,
        "websocket",
    )
    configured = shelly.device.ws_config
    assert configured["enable"] is True
    assert configured["server"].startswith(f"{server}/ws/shelly/ing_")
    raw = configured["server"].removeprefix(f"{server}/ws/shelly/").rstrip("/")
    token = IngestToken.objects.matching(raw).get()
    assert token.pk == result.token.pk and token.device_id == device.pk
    assert shelly.connected_to == [configured["server"]]
    rows = wait_for(lambda: list(PowerLog.objects.filter(device=device)), timeout=15)
    assert rows and rows[0].reason == "start" and rows[0].apower_w > 0
    assert wait_for(lambda: IngestToken.objects.get(pk=token.pk).last_used_at is not None, timeout=5)

    # Re-provisioning: a new token, the old one disabled, the device reconnects with the new one.
    again = provision(shelly.address, password=PASSWORD, server=server, confirm_s=20)
    assert not again.created and again.tokens_disabled == 1 and again.connected
    assert not IngestToken.objects.get(pk=token.pk).enabled
    assert IngestToken.objects.matching(raw).count() == 0
    new_raw = shelly.device.ws_config["server"].removeprefix(f"{server}/ws/shelly/").rstrip("/")
    assert new_raw != raw and IngestToken.objects.matching(new_raw).get().pk == again.token.pk
    assert len(shelly.connected_to) == 2
    assert Device.objects.count() == 1


# -- failures: a clear message, nothing created ------------------------------------------------


@pytest.mark.django_db
def test_wrong_password_is_a_clear_error_and_nothing_is_created(shelly):
    with pytest.raises(ProvisioningError, match="refused the password"):
        provision(shelly.address, password="wrong", server="ws://127.0.0.1:9/", confirm_s=0)
    assert not Device.objects.exists() and not IngestToken.objects.exists()
    assert shelly.device.ws_config["enable"] is False and shelly.connected_to == []


@pytest.mark.django_db
def test_no_password_for_a_protected_device_is_the_same_clear_error(shelly):
    with pytest.raises(ProvisioningError, match="refused the password"):
        provision(shelly.address, server="ws://127.0.0.1:9/", confirm_s=0)
    assert not Device.objects.exists()


@pytest.mark.django_db
@override_settings(SHELLY_TIMEOUT_MS=500)
def test_unreachable_device_is_a_clear_error_and_nothing_is_created():
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(ProvisioningError, match=f"Cannot reach a Shelly at {address}"):
        provision(address, server="ws://127.0.0.1:9/", confirm_s=0)
    assert not Device.objects.exists() and not IngestToken.objects.exists()


@pytest.mark.django_db
@override_settings(PUBLIC_WS_URL="")
def test_without_a_server_address_nothing_is_touched(open_shelly):
    with pytest.raises(ProvisioningError, match="Set PUBLIC_WS_URL"):
        provision(open_shelly.address)
    assert open_shelly.device.ws_config["enable"] is False
    assert not Device.objects.exists()


@pytest.mark.django_db
@override_settings(PUBLIC_WS_URL="wss://monitor.example.org", SHELLY_WS_SSL_CA="user_ca.pem")
def test_wss_server_sets_the_ssl_ca_and_unconfirmed_is_reported_not_an_error(open_shelly):
    result = provision(open_shelly.address, confirm_s=0)
    config = open_shelly.device.ws_config
    assert config["server"].startswith("wss://monitor.example.org/ws/shelly/ing_")
    assert config["ssl_ca"] == "user_ca.pem"
    assert result.restarted and not result.connected
    assert result.token.prefix in result.server_shown and config["server"] not in result.server_shown


@pytest.mark.django_db
def test_earlier_device_bound_tokens_are_disabled_but_site_tokens_are_not(open_shelly):
    first = provision(open_shelly.address, server="ws://127.0.0.1:9/", confirm_s=0)
    site_token = IngestToken(name="site-wide")
    site_token.set_new_secret()
    site_token.save()

    second = provision(open_shelly.address, server="ws://127.0.0.1:9/", confirm_s=0)

    assert second.tokens_disabled == 1
    assert list(IngestToken.objects.filter(enabled=True).order_by("pk")) == [site_token, second.token]
    assert not IngestToken.objects.get(pk=first.token.pk).enabled


# -- the command and the admin ----------------------------------------------------------------


@pytest.mark.django_db
def test_command_provisions_and_reports(open_shelly):
    out = StringIO()
    call_command("provision_shelly", open_shelly.address, "--server", "ws://127.0.0.1:9", "--wait", "0", stdout=out)
    text = out.getvalue()
    assert f"Created {open_shelly.device_id} (SPSW-004PE16EU)" in text
    assert "ws://127.0.0.1:9/ws/shelly/ing_" in text and "not connected yet" in text
    assert open_shelly.device.ws_config["server"] not in text  # the secret is never printed


@pytest.mark.django_db
@override_settings(SHELLY_TIMEOUT_MS=300)
def test_command_error_is_one_clear_line():
    with pytest.raises(CommandError, match="Cannot reach a Shelly"):
        call_command("provision_shelly", f"127.0.0.1:{free_port()}", "--server", "ws://127.0.0.1:9", "--wait", "0")


@pytest.fixture
def staff_client(client):
    user = User.objects.create_superuser("admin", "admin@example.org", "pw")
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_admin_add_by_ip_form(staff_client, open_shelly):
    page = staff_client.get("/admin/collector/device/")
    assert b"/admin/collector/device/provision/" in page.content

    response = staff_client.post(
        "/admin/collector/device/provision/",
        {"host": open_shelly.address, "password": "", "name": "Lift station 2", "server": "ws://127.0.0.1:9"},
    )

    assert response.status_code == 200
    device = Device.objects.get(device_id=open_shelly.device_id)
    assert device.name == "Lift station 2"
    body = response.content.decode()
    assert "Device created:" in body and device.device_id in body
    assert open_shelly.device.ws_config["server"] not in body


@pytest.mark.django_db
@override_settings(SHELLY_TIMEOUT_MS=300)
def test_admin_form_shows_an_unreachable_device_as_a_form_error(staff_client):
    response = staff_client.post(
        "/admin/collector/device/provision/", {"host": f"127.0.0.1:{free_port()}", "server": "ws://127.0.0.1:9"}
    )
    assert response.status_code == 200
    assert "Cannot reach a Shelly" in response.content.decode()
    assert "Traceback" not in response.content.decode()
    assert not Device.objects.exists()


@pytest.mark.django_db
def test_admin_action_provisions_a_device_with_a_host(staff_client, shelly):
    device = Device.objects.create(device_id=shelly.device_id, host=shelly.address, password=PASSWORD)
    bare = Device.objects.create(device_id="shellyplus1-nohost")
    with override_settings(PUBLIC_WS_URL="ws://127.0.0.1:9", PROVISION_CONFIRM_SECONDS=0):
        response = staff_client.post(
            "/admin/collector/device/",
            {"action": "provision_over_local_rpc", "_selected_action": [device.pk, bare.pk]},
            follow=True,
        )
    body = response.content.decode()
    assert "now sends to ws://127.0.0.1:9/ws/shelly/ing_" in body
    assert "hellyplus1-nohost has no host: set its IP address first." in body
    assert IngestToken.objects.filter(device=device, enabled=True).count() == 1
    assert shelly.device.ws_config["enable"] is True
