"""End to end against a real Homebridge (versions of HOMEBRIDGE.md), started with -I on loopback.

For each path (http-webhooks, Config UI X API, MQTT): simulated samples over
the real device WebSocket → a rule fires in the web process → the worker
(qcluster) sends ON, then OFF after the pulse → the sensor's MotionDetected,
read through Config UI X `GET /api/accessories`, goes 1 then 0.

Slow and it needs npm (≈470 packages): it runs only with RUN_HOMEBRIDGE=1,
i.e. `make test-homebridge`, and skips with the reason when npm or the
registry is unavailable. The rig is installed once into HOMEBRIDGE_RIG_DIR
(default /tmp/shelly-homebridge-rig).
"""

import asyncio
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from alerts.models import AlertRule, Notifier
from collector.models import Channel, Device, IngestToken
from tests.servers import free_port, manage_argv, process_env, running, running_daphne, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PACKAGES = [
    "homebridge@1.11.4",
    "homebridge-config-ui-x@4.76.0",
    "homebridge-http-webhooks@0.2.0",
    "homebridge-mqtt-unifi-protect@3.4.23",
]
RIG_DIR = Path(os.environ.get("HOMEBRIDGE_RIG_DIR", "/tmp/shelly-homebridge-rig"))

# Config UI X finds bridges by mDNS only: keep its queries on loopback (HOMEBRIDGE.md, pitfall 1).
MDNS_PRELOAD = """
const Module = require('module');
const load = Module._load;
Module._load = function (request, parent, isMain) {
  const loaded = load.apply(this, arguments);
  if (request === 'multicast-dns' && typeof loaded === 'function' && !loaded.__loopback) {
    const wrapped = function (opts) {
      return loaded(Object.assign({}, opts || {}, {interface: '127.0.0.1', bind: '0.0.0.0'}));
    };
    wrapped.__loopback = true;
    return wrapped;
  }
  if (request === 'bonjour-service' && loaded.Browser && !loaded.Browser.prototype.__loopback) {
    // ciao on lo answers without A records: take the answer's source address (hap-client needs one).
    const emit = loaded.Browser.prototype.emit;
    loaded.Browser.prototype.emit = function (event, service, ...rest) {
      if (event === 'up' && service && (!service.addresses || !service.addresses.length)) {
        service.addresses = [(service.referer && service.referer.address) || '127.0.0.1'];
      }
      return emit.call(this, event, service, ...rest);
    };
    loaded.Browser.prototype.__loopback = true;
  }
  return loaded;
};
"""


def install_rig() -> Path:
    if os.environ.get("RUN_HOMEBRIDGE") != "1":
        pytest.skip("needs Node/npm and ~470 npm packages: run `make test-homebridge`")
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node and npm are not installed")
    marker = RIG_DIR / "node_modules" / "homebridge-mqtt-unifi-protect" / "package.json"
    if not marker.exists():
        RIG_DIR.mkdir(parents=True, exist_ok=True)
        (RIG_DIR / "package.json").write_text('{"name": "shelly-homebridge-rig", "private": true}')
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", *PACKAGES],
            cwd=RIG_DIR,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            pytest.skip(f"npm install failed (registry unreachable?): {done.stderr[-500:]}")
    (RIG_DIR / "mdns-loopback.js").write_text(MDNS_PRELOAD)
    return RIG_DIR


class Rig:
    def __init__(self, suffix, ui_port, hooks_port, topic):
        self.motion = f"Power Alert Motion {suffix}"
        self.trigger = f"Power Alert Trigger {suffix}"
        self.mqtt_motion = f"MQTT Power Alert Motion {suffix}"
        self.ui_url = f"http://127.0.0.1:{ui_port}"
        self.hooks_url = f"http://127.0.0.1:{hooks_port}/"
        self.topic = topic
        self.token = None

    def login(self):
        answer = httpx.post(f"{self.ui_url}/api/auth/login", json={"username": "admin", "password": "admin"})
        answer.raise_for_status()
        self.token = answer.json()["access_token"]

    def value(self, service_name, characteristic="MotionDetected"):
        services = httpx.get(
            f"{self.ui_url}/api/accessories", headers={"Authorization": f"Bearer {self.token}"}, timeout=10
        ).json()
        for service in services:
            if service.get("serviceName") == service_name:
                return service["values"].get(characteristic)
        return None


def homebridge_config(rig: Rig, storage: Path, suffix: str, hap_port: int, ui_port: int, hooks_port: int) -> dict:
    hooks = rig.hooks_url
    return {
        "bridge": {
            "name": f"Shelly Test {suffix}",
            "username": "0E:4C:AB:" + ":".join(f"{b:02X}" for b in os.urandom(3)),
            "port": hap_port,
            "pin": "031-45-154",
            "bind": ["lo"],
        },
        "accessories": [],
        "platforms": [
            {"platform": "config", "name": "Config", "port": ui_port, "host": "127.0.0.1", "auth": "form"},
            {
                "platform": "HttpWebHooks",
                "webhook_port": str(hooks_port),
                "webhook_listen_host": "127.0.0.1",
                "cache_directory": str(storage / "webhooks"),
                "sensors": [{"id": f"motion_{suffix}", "name": rig.motion, "type": "motion"}],
                "switches": [
                    {
                        "id": f"trigger_{suffix}",
                        "name": rig.trigger,
                        "on_url": f"{hooks}?accessoryId=motion_{suffix}&state=true",
                        "on_method": "GET",
                        "off_url": f"{hooks}?accessoryId=motion_{suffix}&state=false",
                        "off_method": "GET",
                    }
                ],
            },
            {
                # The only Homebridge MQTT plugin in the reachable registry; its "mac" is a topic substring filter.
                "platform": "MqttUnifiProtectPlatform",
                "alarmName": f"MQTT Power Alarm {suffix}",
                "mqttHost": "127.0.0.1",
                "mqttPort": 1883,
                "devices": [{"name": rig.mqtt_motion, "mac": rig.topic, "type": "motion"}],
            },
        ],
    }


@pytest.fixture
def homebridge(tmp_path):
    rig_dir = install_rig()
    suffix = uuid.uuid4().hex[:6]
    ui_port, hooks_port, hap_port = free_port(), free_port(), free_port()
    rig = Rig(suffix, ui_port, hooks_port, f"shelly/alerts/{suffix}/motion")
    storage = tmp_path / "homebridge"
    storage.mkdir()
    config = homebridge_config(rig, storage, suffix, hap_port, ui_port, hooks_port)
    (storage / "config.json").write_text(json.dumps(config, indent=2))
    env = {**os.environ, "NODE_OPTIONS": f"--require {rig_dir / 'mdns-loopback.js'}", "HOMEBRIDGE_INSECURE": "1"}
    argv = [
        "node",
        str(rig_dir / "node_modules" / "homebridge" / "bin" / "homebridge"),
        "-I",
        "-U",
        str(storage),
        "-P",
        str(rig_dir / "node_modules"),
        "--strict-plugin-resolution",
    ]
    with running(argv, env=env, log_path=tmp_path / "homebridge.log", port=ui_port):
        created = httpx.post(
            f"{rig.ui_url}/api/setup-wizard/create-first-user",
            json={"name": "admin", "username": "admin", "password": "admin"},
            timeout=10,
        )
        assert created.status_code in (201, 403), created.text
        rig.login()
        found = wait_for(lambda: rig.value(rig.motion) is not None and rig.value(rig.mqtt_motion) is not None, 60)
        assert found, (tmp_path / "homebridge.log").read_text()[-3000:]
        yield rig


def pump_device():
    from collector.simulators.pro4pm import device_identity

    device_id, mac = device_identity(0, 7)
    device = Device.objects.create(device_id=device_id, mac=mac, model="SPSW-004PE16EU", generation=2)
    channel = Channel.objects.create(device=device, key="switch:0", policy="events")
    token = IngestToken(name="e2e", device=device)
    raw = token.set_new_secret()
    token.save()
    return device, channel, raw


async def send_power(url, device_id, watts, seconds):
    """NotifyStatus frames of a Pro 4PM's switch:0 at the given power, one per 0.5 s, over the real WebSocket."""
    import websockets

    async with websockets.connect(url) as socket:
        end = time.time() + seconds
        while time.time() < end:
            frame = {
                "src": device_id,
                "dst": "shelly-monitor",
                "method": "NotifyStatus",
                "params": {"ts": time.time(), "switch:0": {"id": 0, "apower": watts, "voltage": 230.0, "output": True}},
            }
            await socket.send(json.dumps(frame))
            await asyncio.sleep(0.5)


@pytest.mark.parametrize("path", ["http_webhooks", "homebridge_ui", "mqtt"])
def test_a_power_alert_pulses_the_homekit_sensor(homebridge, tmp_path, path):
    rig = homebridge
    configs = {
        "http_webhooks": ({"url": rig.hooks_url, "accessory_id": rig.motion.replace("Power Alert Motion ", "motion_")}),
        "homebridge_ui": {"url": rig.ui_url, "username": "admin", "password": "admin", "accessory": rig.trigger},
        "mqtt": {"url": "mqtt://127.0.0.1:1883", "topic": rig.topic},
    }
    sensor = rig.mqtt_motion if path == "mqtt" else rig.motion
    device, channel, token = pump_device()
    notifier = Notifier.objects.create(name=path, kind=path, config=configs[path], pulse_seconds=10)
    notifier.full_clean()
    rule = AlertRule.objects.create(name="high", slug="high", channel=channel, threshold=1000, sustain_s=2)
    rule.notifiers.add(notifier)
    env = {"Q_WORKERS": 1, "COLLECTOR_AUTO_REGISTER": "false"}
    with (
        running_daphne(tmp_path, scheme="ws", **env) as server,
        running(manage_argv("qcluster"), env=process_env(**env), log_path=tmp_path / "qcluster.log"),
    ):
        assert rig.value(sensor) == 0
        asyncio.run(send_power(f"{server}/ws/shelly/{token}/", device.device_id, 2500.0, 4))
        assert wait_for(lambda: rig.value(sensor) == 1, 30), (tmp_path / "qcluster.log").read_text()[-3000:]
        on_at = time.monotonic()
        assert wait_for(lambda: rig.value(sensor) == 0, 40), (tmp_path / "qcluster.log").read_text()[-3000:]
        assert time.monotonic() - on_at >= 5  # a pulse, not a blip
    assert rule.events.filter(action="fired").count() == 1
