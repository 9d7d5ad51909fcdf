"""Simulated Shelly Pro 4PM over outbound WebSocket (§4.1, §4.4).

`SimulatedPro4PM` is the device: four `switch:N` outputs driven by load
models (`pump.py`), a status whose field names and types follow a real
Pro 4PM dump (aioshelly fixture, fw 1.0.3), RPC answers, and partial
NotifyStatus frames carrying only what changed since the last frame.

`run_devices()` connects N of them to a URL with the `websockets` library and
keeps them talking: NotifyFullStatus on connect (what a real device sends
unsolicited), NotifyStatus at `rate` frames/s, answers to the server's
requests, a disconnect every `disconnect_every` seconds (a real proxy in
front of our plants drops idle sockets after 300 s) and reconnects with
exponential backoff and jitter. It is used by `manage.py simulate_shelly`,
the end-to-end test and `bench/ingest_ws.py`.

`params.ts` is the wall-clock send time (two decimals, like the device), so a
benchmark can measure frame-to-row latency from `PowerLog.created_at`.
"""

import asyncio
import copy
import hashlib
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field, fields

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from collector.simulators.pump import PUMP_POWER_RANGE_W, LoadModel, LoadProfile
from shelly_site.logging import redact_secrets

log = logging.getLogger(__name__)

MODEL = "SPSW-004PE16EU"
APP = "Pro4PM"
FW_ID = "20230912-082358/1.0.3-g6176478"
FW_VER = "1.0.3"
SWITCH_COUNT = 4
NOMINAL_VOLTAGE = 230.0
FREQ = 50.0

SCENARIOS = {
    "pumps": "two pumps cycling (550–1100 W, inrush spike, on a quarter of the time), an aerator, one idle output",
    "steady": "four outputs always on (100–2000 W with noise): a frame changes power on every channel",
    "glitchy": "pumps with frequent erratic 0 W readings and abrupt disconnects every minute",
    "burst": "every device switches all four pumps on and off in the same second (power restored after an outage)",
}
DEFAULT_DISCONNECT_EVERY = {"pumps": 300.0, "steady": 300.0, "glitchy": 60.0, "burst": 300.0}

# Error answers as the device gives them (SHELLY.md §6).
ERR_NOT_FOUND = -105
ERR_NO_HANDLER = 404
ERR_INVALID_ARGUMENT = -103


def device_identity(index: int, seed: int) -> tuple[str, str]:
    """(device id, MAC) for the index-th simulated device; stable for a seed."""
    mac = hashlib.sha256(f"shelly-sim:{seed}:{index}".encode()).hexdigest()[:12].upper()
    return f"shellypro4pm-{mac.lower()}", mac


def scenario_profiles(scenario: str, rng: random.Random, **overrides) -> list[LoadProfile]:
    """The four switch profiles of one device; `overrides` apply to every pump-like output."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")

    def pump(run_s, idle_s, **kw):
        values = {"steady_w": round(rng.uniform(*PUMP_POWER_RANGE_W), 1), "run_s": run_s, "idle_s": idle_s, **kw}
        values.update(overrides)
        return LoadProfile(kind="pump", **values)

    if scenario == "pumps":
        return [
            pump(180.0, 540.0),
            pump(120.0, 360.0),
            LoadProfile(kind="steady", steady_w=round(rng.uniform(45.0, 90.0), 1), noise=0.02, pf=0.65),
            LoadProfile(kind="off"),
        ]
    if scenario == "glitchy":
        return [
            pump(120.0, 240.0, glitch_p=0.15),
            pump(90.0, 180.0, glitch_p=0.15),
            pump(60.0, 120.0),
            LoadProfile(kind="off"),
        ]
    if scenario == "burst":
        profiles = []
        for _ in range(SWITCH_COUNT):
            values = {"steady_w": round(rng.uniform(*PUMP_POWER_RANGE_W), 1), "run_s": 60.0, "idle_s": 60.0}
            values.update({k: v for k, v in overrides.items() if k not in ("start_running",)})
            profiles.append(LoadProfile(kind="synchronized", **values))
        return profiles
    return [
        LoadProfile(kind="steady", steady_w=round(rng.uniform(100.0, 2000.0), 1), noise=0.004)
        for _ in range(SWITCH_COUNT)
    ]


class SwitchMeter:
    """One `switch:N` output: readings → status dict, energy counter, per-minute energy."""

    def __init__(self, switch_id: int, load: LoadModel, *, t0: float, temperature_c: float):
        self.id = switch_id
        self.load = load
        self.energy_wh = 0.0
        self.minute_start = int(t0 // 60 * 60)
        self.minute_mwh = 0.0
        self.by_minute = [0.0, 0.0, 0.0]
        self.last_t = t0
        self.apower = 0.0
        self.current = 0.0
        self.pf = 0.0
        self.output = False
        self.source = "init"
        self.temperature_c = temperature_c

    def _integrate(self, t: float) -> None:
        # The reported power is held until the next reading: the counter is
        # the exact integral of what was reported (tests rely on it).
        start = self.last_t
        while start < t:
            minute_end = self.minute_start + 60
            end = min(t, minute_end)
            self.minute_mwh += self.apower * (end - start) / 3.6
            self.energy_wh += self.apower * (end - start) / 3600.0
            start = end
            if end >= minute_end:
                self.by_minute = [round(self.minute_mwh, 3), *self.by_minute[:2]]
                self.minute_mwh = 0.0
                self.minute_start = minute_end
        self.last_t = max(self.last_t, t)

    def step(self, t: float, voltage: float, rng: random.Random) -> None:
        self._integrate(t)
        reading = self.load.read(t)
        if reading.output != self.output:
            self.source = "init" if self.source == "init" and not reading.output else "SHC"
        self.output = reading.output
        self.apower = round(reading.apower, 1)
        self.pf = round(reading.pf, 2)
        self.current = round(self.apower / (voltage * reading.pf), 3) if reading.pf > 0 and self.apower > 0 else 0.0
        # Windings warm up while running, cool down when idle.
        target = 45.0 if self.output and self.apower > 0 else 30.0
        self.temperature_c += (target - self.temperature_c) * 0.002 + rng.uniform(-0.02, 0.02)

    def status(self, voltage: float) -> dict:
        tc = round(self.temperature_c, 1)
        return {
            "id": self.id,
            "source": self.source,
            "output": self.output,
            "apower": float(self.apower),
            "voltage": float(voltage),
            "current": float(self.current),
            "freq": FREQ,
            "pf": float(self.pf),
            "aenergy": {
                "total": round(self.energy_wh, 3),
                "by_minute": [float(v) for v in self.by_minute],
                "minute_ts": self.minute_start,
            },
            "temperature": {"tC": tc, "tF": round(tc * 9 / 5 + 32, 1)},
        }


class SimulatedPro4PM:
    """A Pro 4PM: status, RPC answers and notification frames. Time is passed in (epoch seconds)."""

    def __init__(
        self,
        index: int = 0,
        *,
        seed: int = 0,
        scenario: str = "pumps",
        t0: float | None = None,
        step_hint_s: float = 1.0,
        **profile_overrides,
    ):
        t0 = time.time() if t0 is None else t0
        self.index = index
        self.device_id, self.mac = device_identity(index, seed)
        self.rng = random.Random(f"{seed}:{index}:device")
        self.started_at = t0
        self.voltage = round(NOMINAL_VOLTAGE + self.rng.uniform(-4.0, 4.0), 1)
        self.server_src = None
        profiles = scenario_profiles(scenario, random.Random(f"{seed}:{index}:profiles"), **profile_overrides)
        self.switches = [
            SwitchMeter(
                n,
                LoadModel(profile, random.Random(f"{seed}:{index}:switch:{n}"), t0=t0, step_hint_s=step_hint_s),
                t0=t0,
                temperature_c=self.rng.uniform(24.0, 28.0),
            )
            for n, profile in enumerate(profiles)
        ]
        self.last_sent: dict[str, dict] = {}
        # Outbound WebSocket config (Ws.GetConfig/Ws.SetConfig): a change takes
        # effect at the next reboot, as the device says with restart_required.
        self.ws_config = {"enable": False, "server": None, "ssl_ca": "ca.pem"}
        self.ws_connected = False
        self.restart_required = False
        self.reboots_requested = 0
        self.now = t0
        self.step(t0)

    # -- model ---------------------------------------------------------------
    def step(self, t: float) -> None:
        self.now = t
        # Mains voltage wanders slowly around its mean.
        self.voltage = round(min(253.0, max(207.0, self.voltage + self.rng.gauss(0.0, 0.05))), 1)
        for switch in self.switches:
            switch.step(t, self.voltage, self.rng)

    def switch_status(self, n: int) -> dict:
        return self.switches[n].status(round(self.voltage + 0.1 * (n % 2), 1))

    def full_status(self) -> dict:
        t = self.now
        status = {
            "ble": {},
            "cloud": {"connected": False},
            "eth": {"ip": None},
            **{f"input:{n}": {"id": n, "state": False} for n in range(SWITCH_COUNT)},
            "mqtt": {"connected": False},
            **{f"switch:{n}": self.switch_status(n) for n in range(len(self.switches))},
            "sys": {
                "available_updates": {},
                "cfg_rev": 7,
                "fs_free": 204800,
                "fs_size": 524288,
                "kvs_rev": 0,
                "mac": self.mac,
                "ram_free": 80320 - (self.index % 7) * 512,
                "ram_size": 256388,
                "restart_required": self.restart_required,
                "schedule_rev": 0,
                "time": time.strftime("%H:%M", time.localtime(t)),
                "unixtime": int(t),
                "uptime": int(t - self.started_at) + 3600,
                "webhook_rev": 0,
            },
            "ui": {},
            "wifi": {"rssi": -60 - self.index % 15, "ssid": "plant-wifi", "sta_ip": None, "status": "got ip"},
            "ws": {"connected": self.ws_connected},
        }
        status["wifi"]["sta_ip"] = f"192.168.{10 + self.index // 250 % 200}.{10 + self.index % 240}"
        return status

    def device_info(self) -> dict:
        return {
            "name": f"Simulated Pro 4PM {self.index}",
            "id": self.device_id,
            "mac": self.mac,
            "slot": 0,
            "model": MODEL,
            "gen": 2,
            "fw_id": FW_ID,
            "ver": FW_VER,
            "app": APP,
            "auth_en": False,
            "auth_domain": None,
        }

    def set_ws_config(self, config) -> str | None:
        """Ws.SetConfig: None when accepted, else the device's error message (code -103)."""
        if not isinstance(config, dict):
            return "Missing required argument 'config'!"
        unknown = set(config) - set(self.ws_config)
        if unknown:
            return f"Invalid argument '{sorted(unknown)[0]}'!"
        server = config.get("server", self.ws_config["server"])
        if server is not None and (not isinstance(server, str) or not server.startswith(("ws://", "wss://"))):
            return "Invalid argument 'server'!"
        if "enable" in config and not isinstance(config["enable"], bool):
            return "Invalid argument 'enable'!"
        self.ws_config.update(config)
        self.restart_required = True
        return None

    # -- frames ----------------------------------------------------------------
    def _envelope(self, method: str, params: dict) -> dict:
        return {"src": self.device_id, "dst": self.server_src or "ws", "method": method, "params": params}

    def notify_full_status(self) -> dict:
        status = self.full_status()
        self.last_sent = {key: copy.deepcopy(value) for key, value in status.items() if key.startswith("switch:")}
        return self._envelope("NotifyFullStatus", {"ts": round(self.now, 2), **status})

    def notify_status(self) -> dict | None:
        """A partial NotifyStatus with the fields that changed since the last frame, or None."""
        params = {}
        for n in range(len(self.switches)):
            key = f"switch:{n}"
            current = self.switch_status(n)
            previous = self.last_sent.get(key, {})
            changed = {name: value for name, value in current.items() if previous.get(name) != value}
            if changed:
                # Real partial frames always name the component's id.
                params[key] = {"id": n, **changed}
                self.last_sent[key] = current
        if not params:
            return None
        return self._envelope("NotifyStatus", {"ts": round(self.now, 2), **params})

    def answer(self, request: dict) -> dict | None:
        """The response frame to a request from the server (None for anything that is not a request)."""
        if not isinstance(request, dict) or "method" not in request or "id" not in request:
            return None
        if isinstance(request.get("src"), str):
            self.server_src = request["src"]
        method = str(request["method"])
        params = request.get("params") if isinstance(request.get("params"), dict) else {}
        reply = {"id": request["id"], "src": self.device_id}
        if self.server_src:
            reply["dst"] = self.server_src
        lowered = method.lower()
        if lowered == "shelly.getstatus":
            reply["result"] = self.full_status()
        elif lowered == "shelly.getdeviceinfo":
            reply["result"] = self.device_info()
        elif lowered == "notifystatus":
            reply["result"] = None
        elif lowered == "switch.getstatus":
            switch_id = params.get("id")
            if not isinstance(switch_id, int) or not 0 <= switch_id < len(self.switches):
                reply["error"] = {"code": ERR_NOT_FOUND, "message": f"Bad id={switch_id}"}
            else:
                reply["result"] = self.switch_status(switch_id)
        elif lowered in ("sys.getstatus", "wifi.getstatus", "ws.getstatus"):
            reply["result"] = self.full_status()[lowered.split(".")[0]]
        elif lowered == "ws.getconfig":
            reply["result"] = dict(self.ws_config)
        elif lowered == "ws.setconfig":
            error = self.set_ws_config(params.get("config"))
            if error:
                reply["error"] = {"code": ERR_INVALID_ARGUMENT, "message": error}
            else:
                reply["result"] = {"restart_required": True}
        elif lowered == "shelly.reboot":
            self.reboots_requested += 1
            reply["result"] = None
        else:
            reply["error"] = {"code": ERR_NO_HANDLER, "message": f"No handler for {method}"}
        return reply


# -- WebSocket client ------------------------------------------------------------


@dataclass
class SimStats:
    devices: int = 0
    connected: int = 0
    connects: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    refused: int = 0
    frames_sent: int = 0
    rpc_answered: int = 0
    ticks_late: int = 0
    last_error: str = ""
    started_at: float = field(default_factory=time.monotonic)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "started_at"}


class TokenRefused(Exception):
    """The server refused the ingest token (close 4401 or a 403 on the upgrade)."""


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep; True when `stop` was set meanwhile."""
    if seconds <= 0:
        return stop.is_set()
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
        return True
    except TimeoutError:
        return False


def _is_refusal(exc: Exception) -> bool:
    if isinstance(exc, InvalidStatus):
        return exc.response.status_code in (401, 403)
    if isinstance(exc, ConnectionClosed):
        return exc.rcvd is not None and exc.rcvd.code == 4401
    return False


class DeviceRunner:
    """Keeps one simulated device connected and talking until `stop` is set."""

    def __init__(
        self,
        device: SimulatedPro4PM,
        url: str,
        *,
        rate: float,
        stats: SimStats,
        stop: asyncio.Event,
        disconnect_every: float | None,
        abrupt_disconnects: bool = False,
        start_delay: float = 0.0,
    ):
        self.device = device
        self.url = url
        self.interval = 1.0 / rate
        self.stats = stats
        self.stop = stop
        self.disconnect_every = disconnect_every
        self.abrupt = abrupt_disconnects
        self.start_delay = start_delay
        self.rng = random.Random(f"{device.device_id}:net")

    async def run(self) -> None:
        if await _sleep_or_stop(self.stop, self.start_delay):
            return
        backoff = 0.5
        first = True
        while not self.stop.is_set():
            planned = False
            try:
                async with connect(
                    self.url,
                    subprotocols=["json-rpc"],
                    open_timeout=10,
                    close_timeout=2,
                    compression=None,
                    ping_interval=None,
                    max_size=2**20,
                ) as ws:
                    self.stats.connects += 1
                    if not first:
                        self.stats.reconnects += 1
                    first = False
                    self.stats.connected += 1
                    self.device.ws_connected = True
                    try:
                        planned = await self._session(ws)
                    finally:
                        self.stats.connected -= 1
                        self.device.ws_connected = False
                backoff = 0.5
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
                if _is_refusal(exc):
                    self.stats.refused += 1
                self.stats.connect_failures += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
            if self.stop.is_set():
                return
            # After a planned drop the device comes back at once (like behind
            # the proxy); after a failure it backs off, with jitter so a
            # restarted server is not hit by every device in the same instant.
            delay = self.rng.uniform(0.2, 1.0) if planned else backoff * self.rng.uniform(0.5, 1.5)
            if not planned:
                backoff = min(backoff * 2, 30.0)
            if await _sleep_or_stop(self.stop, delay):
                return

    async def _session(self, ws) -> bool:
        """Talk until stop, the planned disconnect (returns True) or a server close."""
        device = self.device
        device.step(time.time())
        await ws.send(json.dumps(device.notify_full_status()))
        self.stats.frames_sent += 1
        reader = asyncio.create_task(self._answer_requests(ws))
        stopper = asyncio.create_task(self.stop.wait())
        deadline = math.inf
        if self.disconnect_every:
            deadline = time.monotonic() + self.disconnect_every * self.rng.uniform(0.8, 1.2)
        try:
            next_at = time.monotonic() + self.rng.uniform(0.0, self.interval)
            while True:
                wait = min(next_at, deadline) - time.monotonic()
                if wait > 0:
                    done, _ = await asyncio.wait({reader, stopper}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                    if stopper in done:
                        await ws.close()
                        return False
                    if reader in done:
                        reader.result()  # re-raise ConnectionClosed
                        return False
                now = time.monotonic()
                if now >= deadline:
                    if self.abrupt and self.rng.random() < 0.5:
                        ws.transport.abort()
                    else:
                        await ws.close()
                    return True
                device.step(time.time())
                frame = device.notify_status()
                if frame is not None:
                    await ws.send(json.dumps(frame))
                    self.stats.frames_sent += 1
                next_at += self.interval
                if next_at < now - self.interval:
                    # The load generator fell behind: drop the missed ticks
                    # instead of bursting to catch up, and count them.
                    self.stats.ticks_late += 1
                    next_at = now + self.interval
        finally:
            for task in (reader, stopper):
                task.cancel()
            await asyncio.gather(reader, stopper, return_exceptions=True)

    async def _answer_requests(self, ws) -> None:
        async for message in ws:
            try:
                frame = json.loads(message)
            except (TypeError, ValueError):
                continue
            self.device.step(time.time())
            reply = self.device.answer(frame)
            if reply is not None:
                await ws.send(json.dumps(reply))
                self.stats.rpc_answered += 1


async def run_devices(
    url: str,
    n: int,
    scenario: str = "pumps",
    *,
    duration: float | None = None,
    rate: float = 1.0,
    seed: int = 0,
    disconnect_every: float | None = -1,
    first_index: int = 0,
    stop: asyncio.Event | None = None,
    progress=None,
    progress_every: float = 5.0,
    ramp_s: float | None = None,
    stats: SimStats | None = None,
    **profile_overrides,
) -> SimStats:
    """Run `n` simulated Pro 4PM against `url`; return the counters.

    duration None runs until `stop` is set. disconnect_every -1 takes the
    scenario's default, None or 0 never disconnects. `progress(stats)` is
    called every `progress_every` seconds. Connections are spread over
    `ramp_s` (default: up to 5 s for large fleets) so a thousand devices do
    not knock at the same millisecond.
    """
    stop = stop or asyncio.Event()
    stats = stats or SimStats()
    stats.devices += n
    if disconnect_every == -1:
        disconnect_every = DEFAULT_DISCONNECT_EVERY[scenario]
    if ramp_s is None:
        ramp_s = min(5.0, n / 200.0)
    t0 = time.time()
    runners = [
        DeviceRunner(
            SimulatedPro4PM(index, seed=seed, scenario=scenario, t0=t0, step_hint_s=1.0 / rate, **profile_overrides),
            url,
            rate=rate,
            stats=stats,
            stop=stop,
            disconnect_every=disconnect_every or None,
            abrupt_disconnects=scenario == "glitchy",
            start_delay=ramp_s * (index - first_index) / max(1, n),
        )
        for index in range(first_index, first_index + n)
    ]
    tasks = [asyncio.create_task(runner.run()) for runner in runners]
    deadline = math.inf if duration is None else time.monotonic() + duration
    try:
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if await _sleep_or_stop(stop, min(progress_every, remaining)):
                break
            if progress is not None and time.monotonic() < deadline:
                progress(stats)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return stats


async def probe(url: str, *, timeout: float = 5.0) -> None:
    """Connect once and wait for the server's first request; raise with a clear reason when that fails."""
    try:
        async with connect(url, subprotocols=["json-rpc"], open_timeout=timeout, close_timeout=1) as ws:
            await asyncio.wait_for(ws.recv(), timeout=timeout)
    except TimeoutError:
        # Connected but no request: still a server, let the devices try.
        return
    except Exception as exc:
        if _is_refusal(exc):
            raise TokenRefused(str(exc)) from exc
        raise


# -- `manage.py simulate_shelly --kind pro4pm` --------------------------------------


def add_arguments(parser) -> None:
    group = parser.add_argument_group("pro4pm (outbound WebSocket)")
    group.add_argument(
        "--url",
        default="ws://127.0.0.1:8000/",
        help="Server URL. With no path, /ws/shelly/<token>/ is added from --token or --create-token; "
        "a full path (e.g. ws://127.0.0.1:8765/ws) is used as given.",
    )
    group.add_argument("--token", default="", help="Ingest token (raw value, shown once when created in admin).")
    group.add_argument(
        "--create-token", action="store_true", help="Create an ingest token in this project's database and use it."
    )
    group.add_argument(
        "--scenario",
        choices=sorted(SCENARIOS),
        default="pumps",
        help="; ".join(f"{name}: {text}" for name, text in SCENARIOS.items()),
    )
    group.add_argument(
        "--disconnect-every",
        type=float,
        default=-1,
        help="Seconds between planned disconnects per device (0: never; default: 300, glitchy 60).",
    )


def _create_token() -> str:
    from collector.models import IngestToken

    token = IngestToken(name=f"simulator {time.strftime('%Y-%m-%d %H:%M')}")
    raw = token.set_new_secret()
    token.save()
    return raw


def device_url(url: str, token: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"--url must start with ws:// or wss://, got {url!r}")
    if parts.path not in ("", "/"):
        return url
    if not token:
        raise ValueError("--url has no path: give --token <ingest token> or --create-token")
    return urlunsplit((parts.scheme, parts.netloc, f"/ws/shelly/{token}/", parts.query, ""))


def _unreachable_message(url: str, exc: Exception) -> str:
    if isinstance(exc, TokenRefused):
        return (
            f"The server at {url} refused the ingest token. Create one in the admin (Ingest tokens) and pass "
            "--token <value>, or use --create-token (same database as the server)."
        )
    if isinstance(exc, InvalidStatus):
        return (
            f"{url} answered HTTP {exc.response.status_code} to the WebSocket upgrade: it is not a device "
            "endpoint. Use ws://HOST:PORT/ws/shelly/<token>/ (or ws://HOST:PORT/ with --token)."
        )
    return (
        f"Cannot connect to {url} ({type(exc).__name__}: {exc}). Start the server first "
        "(`python manage.py demo`, or `uvicorn shelly_site.asgi:application` as in the README), "
        "check host and port, or pass --url."
    )


async def run_command(options: dict, *, stdout, stop: asyncio.Event) -> str:
    from asgiref.sync import sync_to_async
    from django.core.management.base import CommandError

    token = options["token"]
    if options["create_token"]:
        token = await sync_to_async(_create_token)()
        stdout.write(f"Created ingest token {token[:12]}… (name 'simulator …')")
    try:
        url = device_url(options["url"], token)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    shown = redact_secrets(url)  # the token, in the URL or given apart, shows as its public prefix
    try:
        await probe(url)
    except Exception as exc:
        raise CommandError(_unreachable_message(shown, exc)) from exc

    devices, rate = options["devices"], options["rate"]
    duration = options["duration"]
    # The ids, so a server without auto-registration can be told about them (admin → Devices).
    ids = ", ".join(device_identity(n, options["seed"])[0] for n in range(min(devices, 3)))
    ids += ", …" if devices > 3 else ""
    stdout.write(
        f"Simulating {devices} Pro 4PM ({options['scenario']}: {ids}) → {shown}, {rate:g} frames/s per device, "
        f"seed {options['seed']}, " + ("until Ctrl-C" if duration is None else f"for {duration:g} s")
    )
    last = {"t": time.monotonic(), "frames": 0}

    def progress(stats: SimStats) -> None:
        now = time.monotonic()
        per_s = (stats.frames_sent - last["frames"]) / max(1e-6, now - last["t"])
        last.update(t=now, frames=stats.frames_sent)
        line = (
            f"[{now - stats.started_at:7.0f} s] connected {stats.connected}/{stats.devices}, "
            f"frames sent {stats.frames_sent} ({per_s:.0f}/s), reconnects {stats.reconnects}, "
            f"rpc answered {stats.rpc_answered}"
        )
        if stats.connect_failures:
            line += f", connect failures {stats.connect_failures} (last: {stats.last_error[:80]})"
        stdout.write(line)

    stats = await run_devices(
        url,
        devices,
        options["scenario"],
        duration=duration,
        rate=rate,
        seed=options["seed"],
        disconnect_every=options["disconnect_every"],
        stop=stop,
        progress=progress,
        progress_every=options["progress_every"],
    )
    return (
        f"Stopped: {stats.frames_sent} frames sent, {stats.connects} connections, {stats.reconnects} reconnects, "
        f"{stats.connect_failures} failed connects, {stats.rpc_answered} RPC answers."
    )
