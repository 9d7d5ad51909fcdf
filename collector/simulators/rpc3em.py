"""Simulated Shelly Pro 3EM / 3EM-63 Gen3 over local HTTP RPC (SPEC §4.4).

Serves what the poller and aioshelly read from a real meter:

- `GET /shelly` and `Shelly.GetDeviceInfo` (never behind auth, as on the device);
- `GET /rpc/<Method>?k=v` (bare result) and `POST /rpc` (JSON-RPC envelope);
- `GET /rpc` upgraded to a WebSocket (aioshelly's transport), with the
  device's JSON-in-a-string 401 challenge (SHELLY.md §5);
- `Shelly.GetStatus`, `Shelly.GetConfig`, `Shelly.GetComponents`,
  `EMData.GetRecords`, `EMData.GetData` (chunked, `next_record_ts`; a power
  loss splits the history into several blocks), `/emdata/0/data.csv`;
- monophase profile: `em1:0..2` + `em1data:0..2` and `EM1Data.*`.

Payload shapes follow the real Pro 3EM dump (aioshelly fixture, fw 1.1.0).
Assumptions where no real capture exists (SHELLY.md says "not found"):
the 3EM-63 Gen3 status is the Pro 3EM shape with gen 3 and its model id; the
EM1Data.GetData column list is the per-phase EMData list without the prefix;
the HTTP `WWW-Authenticate` header is RFC 7616 with qop "auth".

The load is deterministic: power per phase is constant within 10 s steps,
so the energy truth (`MeterLoad.energy_wh`) is an exact sum the tests compare
the stored 1-minute intervals against.
"""

import asyncio
import json
import math
import time
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from collector.simulators.digest import DigestGuard
from collector.simulators.serving import serve

STEP_S = 10
RECORD_PERIOD_S = 60
PHASES = "abc"
PHASE_COLUMNS = (
    "total_act_energy", "fund_act_energy", "total_act_ret_energy", "fund_act_ret_energy",
    "lag_react_energy", "lead_react_energy", "max_act_power", "min_act_power",
    "max_aprt_power", "min_aprt_power", "max_voltage", "min_voltage", "avg_voltage",
    "max_current", "min_current", "avg_current",
)  # fmt: skip
# The 51 EMData columns in the device's order (SHELLY.md §3, real CSV header).
EMDATA_KEYS = [f"{p}_{c}" for p in PHASES for c in PHASE_COLUMNS] + ["n_max_current", "n_min_current", "n_avg_current"]
# Assumption (no capture found): EM1Data uses the per-phase columns unprefixed.
EM1DATA_KEYS = list(PHASE_COLUMNS)

MODELS = {
    # model key: (model id, gen, app, id prefix, fw_id, ver)
    "pro3em": ("SPEM-003CEBEU", 2, "Pro3EM", "shellypro3em", "20231219-134001/1.1.0-g34b5d4f", "1.1.0"),
    # Assumption: shape of the Pro 3EM with the Gen3 model id (SHELLY.md §3).
    "3em63g3": ("S3EM-003CXCEU63", 3, "S3EM", "shelly3em63g3", "20241011-114455/1.4.4-g6d2a586", "1.4.4"),
}


def _noise(index: int, salt: float) -> float:
    """Deterministic pseudo-random number in [0, 1) for a step (no RNG state to keep)."""
    x = math.sin(index * 12.9898 + salt * 78.233) * 43758.5453
    return x - math.floor(x)


class MeterLoad:
    """Realistic three-phase load with an exact energy truth.

    Phase a: a pump of ~1.4 kW running 7 minutes in every 20 over a ~350 W
    base load; phase b: ~170 W drifting over the hour; phase c: a small load
    that exports (negative power, negative pf) for part of every two hours,
    as a meter with a PV inverter on that phase would. Power is constant within
    each 10 s step; steps inside a power loss are 0 and produce no records.
    """

    def __init__(self, *, origin_ts: int, seed: int = 1, power_losses=(), counters_wh=None):
        self.origin_ts = origin_ts - origin_ts % RECORD_PERIOD_S
        self.seed = seed
        self.power_losses = [(int(a), int(b)) for a, b in power_losses]
        self.counters_wh = counters_wh or {"a": 2034616.71, "b": 185686.89, "c": 369469.8}
        self.ret_counters_wh = {"a": 0.0, "b": 40.7, "c": 985.91}
        # Prefix sums per phase of positive and returned energy (Wh) of whole steps.
        self._cum_pos = {p: [0.0] for p in PHASES}
        self._cum_neg = {p: [0.0] for p in PHASES}

    def is_off(self, ts: float) -> bool:
        return any(a <= ts < b for a, b in self.power_losses)

    def step_power(self, index: int) -> dict:
        ts = self.origin_ts + index * STEP_S
        if self.is_off(ts):
            return {"a": 0.0, "b": 0.0, "c": 0.0}
        minute = (ts // 60 + self.seed * 7) % 20
        pump = 1400.0 + 60.0 * _noise(index, self.seed + 0.1) if minute < 7 else 0.0
        a = 350.0 + 40.0 * _noise(index, self.seed + 0.2) + pump
        b = 170.0 + 35.0 * math.sin(2 * math.pi * ts / 3600.0) + 15.0 * _noise(index, self.seed + 0.3)
        c = 60.0 - 180.0 * math.sin(2 * math.pi * ts / 7200.0 + self.seed) + 10.0 * _noise(index, self.seed + 0.4)
        return {"a": round(a, 1), "b": round(b, 1), "c": round(c, 1)}

    def voltage(self, index: int, phase: str) -> float:
        return round(229.0 + 2.0 * (_noise(index, self.seed + ord(phase)) - 0.5), 1)

    @staticmethod
    def power_factor(phase: str, power: float) -> float:
        base = {"a": 0.82 if power > 1000 else 0.76, "b": 0.78, "c": 0.53}[phase]
        return -base if power < 0 else base

    def _extend(self, steps: int) -> None:
        have = len(self._cum_pos["a"]) - 1
        for index in range(have, steps):
            power = self.step_power(index)
            for p in PHASES:
                self._cum_pos[p].append(self._cum_pos[p][-1] + max(power[p], 0.0) * STEP_S / 3600.0)
                self._cum_neg[p].append(self._cum_neg[p][-1] + max(-power[p], 0.0) * STEP_S / 3600.0)

    def _cumulative(self, ts: float, phase: str, returned: bool) -> float:
        """Energy (Wh) of `phase` from the origin to `ts`, partial step included."""
        offset = max(ts - self.origin_ts, 0.0)
        whole = int(offset // STEP_S)
        self._extend(whole + 1)
        cum = self._cum_neg if returned else self._cum_pos
        power = self.step_power(whole)[phase]
        part = max(-power if returned else power, 0.0) * (offset - whole * STEP_S) / 3600.0
        return cum[phase][whole] + part

    def energy_wh(self, start: float, end: float, phase: str = "total", *, returned: bool = False) -> float:
        """The truth: energy imported (or returned) on a phase or in total between two times."""
        phases = PHASES if phase == "total" else phase
        return sum(self._cumulative(end, p, returned) - self._cumulative(start, p, returned) for p in phases)

    def counter_wh(self, ts: float, phase: str, *, returned: bool = False) -> float:
        base = (self.ret_counters_wh if returned else self.counters_wh)[phase]
        return base + self._cumulative(ts, phase, returned)

    def record(self, minute_ts: int) -> dict:
        """Columns of the 1-minute record starting at minute_ts, by name."""
        first = (minute_ts - self.origin_ts) // STEP_S
        steps = range(first, first + RECORD_PERIOD_S // STEP_S)
        powers = [self.step_power(i) for i in steps]
        row = {}
        for p in PHASES:
            pos = self.energy_wh(minute_ts, minute_ts + RECORD_PERIOD_S, p)
            neg = self.energy_wh(minute_ts, minute_ts + RECORD_PERIOD_S, p, returned=True)
            watts = [pw[p] for pw in powers]
            volts = [self.voltage(i, p) for i in steps]
            aprt = [abs(w) / abs(self.power_factor(p, w)) for w in watts]
            amps = [va / v for va, v in zip(aprt, volts, strict=True)]
            reactive = sum(math.sqrt(max(va * va - w * w, 0.0)) for va, w in zip(aprt, watts, strict=True))
            values = {
                "total_act_energy": pos,
                "fund_act_energy": pos * 0.985,
                "total_act_ret_energy": neg,
                "fund_act_ret_energy": neg * 0.985,
                "lag_react_energy": reactive * STEP_S / 3600.0,
                "lead_react_energy": 0.0,
                "max_act_power": max(watts),
                "min_act_power": min(watts),
                "max_aprt_power": max(aprt),
                "min_aprt_power": min(aprt),
                "max_voltage": max(volts),
                "min_voltage": min(volts),
                "avg_voltage": sum(volts) / len(volts),
                "max_current": max(amps),
                "min_current": min(amps),
                "avg_current": sum(amps) / len(amps),
            }
            for name, value in values.items():
                row[f"{p}_{name}"] = round(value, 4 if name.endswith("energy") else 3)
        row.update({"n_max_current": 0.0, "n_min_current": 0.0, "n_avg_current": 0.0})
        return row

    def record_minutes(self, now: float, since: float = 0):
        """Start times of the complete 1-minute records stored by `now`, from `since`."""
        first = max(self.origin_ts, math.ceil(since / RECORD_PERIOD_S) * RECORD_PERIOD_S)
        last = int(now // RECORD_PERIOD_S) * RECORD_PERIOD_S - RECORD_PERIOD_S
        for ts in range(first, last + 1, RECORD_PERIOD_S):
            if not self.is_off(ts):
                yield ts

    def blocks(self, now: float, since: float = 0) -> list[dict]:
        """Contiguous runs of records (a power loss starts a new block)."""
        blocks = []
        for ts in self.record_minutes(now, since):
            if blocks and blocks[-1]["ts"] + blocks[-1]["records"] * RECORD_PERIOD_S == ts:
                blocks[-1]["records"] += 1
            else:
                blocks.append({"ts": ts, "period": RECORD_PERIOD_S, "records": 1})
        return blocks


class RpcError(Exception):
    def __init__(self, code: int, message: str, http_status: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status


@dataclass
class Rpc3emSimulator(DigestGuard):
    """One simulated meter: its load, identity, options and fault switches."""

    index: int = 0
    model: str = "pro3em"
    profile: str = "triphase"
    password: str = ""
    history_s: int = 6 * 3600
    chunk_records: int = 120
    power_losses: list = field(default_factory=list)
    clock: object = time.time
    # Fault switches for tests and demos.
    hang: bool = False
    delay_s: float = 0.0
    fail_next: int = 0
    fail_status: int = 503
    requests: list = field(default_factory=list)

    def __post_init__(self):
        self.mac = f"34987A67{self.index:04X}"
        model_id, gen, app, prefix, fw_id, ver = MODELS[self.model]
        self.model_id, self.gen, self.app, self.fw_id, self.ver = model_id, gen, app, fw_id, ver
        self.device_id = f"{prefix}-{self.mac.lower()}"
        now = int(self.clock())
        self.load = MeterLoad(origin_ts=now - self.history_s, seed=self.index + 1, power_losses=self.power_losses)
        self.started_at = now
        self._nonces: dict[int, float] = {}
        self._runner = None
        self.port = None

    # -- identity and status ------------------------------------------------
    def device_info(self) -> dict:
        info = {
            "name": f"Simulated 3EM {self.index}",
            "id": self.device_id,
            "mac": self.mac,
            "slot": 0,
            "model": self.model_id,
            "gen": self.gen,
            "fw_id": self.fw_id,
            "ver": self.ver,
            "app": self.app,
            "auth_en": bool(self.password),
            "auth_domain": self.device_id if self.password else None,
            "profile": self.profile,
        }
        if self.gen >= 3:
            info["matter"] = False
        return info

    def status(self) -> dict:
        now = self.clock()
        index = int((now - self.load.origin_ts) // STEP_S)
        power = self.load.step_power(index)
        status = {
            "ble": {},
            "cloud": {"connected": False},
            "eth": {"ip": "127.0.0.1"},
            "modbus": {},
            "mqtt": {"connected": False},
            "sys": {
                "available_updates": {},
                "cfg_rev": 29,
                "fs_free": 184320,
                "fs_size": 524288,
                "kvs_rev": 0,
                "mac": self.mac,
                "ram_free": 125084,
                "ram_size": 241568,
                "reset_reason": 1,
                "restart_required": False,
                "schedule_rev": 0,
                "time": time.strftime("%H:%M", time.gmtime(now)),
                "unixtime": int(now),
                "uptime": int(now - self.started_at),
                "webhook_rev": 0,
            },
            "temperature:0": {"id": 0, "tC": 46.6, "tF": 115.9},
            "wifi": {"rssi": 0, "ssid": None, "sta_ip": None, "status": "disconnected"},
            "ws": {"connected": False},
        }
        phases = {}
        for p in PHASES:
            watts = power[p]
            volts = self.load.voltage(index, p)
            pf = self.load.power_factor(p, watts)
            aprt = abs(watts) / abs(pf)
            phases[p] = {"watts": watts, "volts": volts, "pf": pf, "aprt": aprt, "amps": aprt / volts}
        if self.profile == "monophase":
            for n, p in enumerate(PHASES):
                ph = phases[p]
                status[f"em1:{n}"] = {
                    "id": n,
                    "current": round(ph["amps"], 3),
                    "voltage": ph["volts"],
                    "act_power": ph["watts"],
                    "aprt_power": round(ph["aprt"], 1),
                    "pf": ph["pf"],
                    "freq": 50.0,
                    "calibration": "factory",
                }
                status[f"em1data:{n}"] = {
                    "id": n,
                    "total_act_energy": round(self.load.counter_wh(now, p), 2),
                    "total_act_ret_energy": round(self.load.counter_wh(now, p, returned=True), 2),
                }
            return status
        em = {}
        for p in PHASES:
            ph = phases[p]
            em.update(
                {
                    f"{p}_act_power": ph["watts"],
                    f"{p}_aprt_power": round(ph["aprt"], 1),
                    f"{p}_current": round(ph["amps"], 3),
                    f"{p}_freq": 50.0,
                    f"{p}_pf": ph["pf"],
                    f"{p}_voltage": ph["volts"],
                }
            )
        em.update(
            {
                "id": 0,
                "n_current": None,
                "total_act_power": round(sum(ph["watts"] for ph in phases.values()), 3),
                "total_aprt_power": round(sum(ph["aprt"] for ph in phases.values()), 3),
                "total_current": round(sum(ph["amps"] for ph in phases.values()), 3),
                "user_calibrated_phase": [],
            }
        )
        emdata = {"id": 0}
        for p in PHASES:
            emdata[f"{p}_total_act_energy"] = round(self.load.counter_wh(now, p), 2)
            emdata[f"{p}_total_act_ret_energy"] = round(self.load.counter_wh(now, p, returned=True), 2)
        emdata["total_act"] = round(sum(self.load.counter_wh(now, p) for p in PHASES), 2)
        emdata["total_act_ret"] = round(sum(self.load.counter_wh(now, p, returned=True) for p in PHASES), 2)
        status["em:0"] = em
        status["emdata:0"] = emdata
        return status

    def config(self) -> dict:
        config = {
            "ble": {"enable": False, "observer": {"enable": False}, "rpc": {"enable": False}},
            "cloud": {"enable": False, "server": "shelly-9-eu.shelly.cloud:6022/jrpc"},
            "eth": {"enable": True, "gw": None, "ip": None, "ipv4mode": "dhcp", "nameserver": None, "netmask": None},
            "modbus": {"enable": True},
            "mqtt": {"enable": False, "server": None, "topic_prefix": self.device_id},
            "sys": {
                "cfg_rev": 29,
                "device": {
                    "addon_type": None,
                    "discoverable": True,
                    "eco_mode": True,
                    "fw_id": self.fw_id,
                    "mac": self.mac,
                    "name": f"Simulated 3EM {self.index}",
                    "profile": self.profile,
                },
                "location": {"lat": 45.45803, "lon": 7.87121, "tz": "Europe/Paris"},
            },
            "temperature:0": {"id": 0, "name": None, "offset_C": 0.0, "report_thr_C": 5.0},
            "wifi": {},
            "ws": {"enable": False, "server": None, "ssl_ca": "ca.pem"},
        }
        if self.profile == "monophase":
            for n in range(3):
                config[f"em1:{n}"] = {"id": n, "name": None, "reverse": False, "ct_type": "120A"}
                config[f"em1data:{n}"] = {}
        else:
            config["em:0"] = {
                "blink_mode_selector": "active_energy",
                "id": 0,
                "monitor_phase_sequence": False,
                "name": None,
                "phase_selector": "all",
                "reverse": {},
            }
            config["emdata:0"] = {}
        return config

    # -- EMData -------------------------------------------------------------
    def _data_columns(self, data_id: int, em1: bool):
        if em1:
            phase = PHASES[data_id]
            return EM1DATA_KEYS, lambda row: [row[f"{phase}_{k}"] for k in EM1DATA_KEYS]
        return EMDATA_KEYS, lambda row: [row[k] for k in EMDATA_KEYS]

    def _check_data_id(self, params: dict, em1: bool) -> int:
        if "id" not in params:
            raise RpcError(-103, "Missing required 'id'")
        data_id = params["id"]
        valid = range(3) if em1 else range(1)
        if not isinstance(data_id, int) or data_id not in valid or (self.profile == "monophase") != em1:
            raise RpcError(-105, f"Bad id={data_id}", http_status=404)
        return data_id

    def get_records(self, params: dict, *, em1: bool = False) -> dict:
        self._check_data_id(params, em1)
        since = params.get("ts") or 0
        return {"data_blocks": self.load.blocks(self.clock(), since)}

    def get_data(self, params: dict, *, em1: bool = False) -> dict:
        data_id = self._check_data_id(params, em1)
        if "ts" not in params:
            raise RpcError(-103, "Missing required 'ts'")
        end_ts = params.get("end_ts")
        keys, columns = self._data_columns(data_id, em1)
        minutes = []
        for ts in self.load.record_minutes(self.clock(), params["ts"]):
            if end_ts is not None and ts > end_ts:
                break
            minutes.append(ts)
            if len(minutes) > self.chunk_records:
                break
        result = {"data": []}
        if params.get("add_keys", True):
            result["keys"] = keys
        if len(minutes) > self.chunk_records:
            result["next_record_ts"] = minutes.pop()
        for ts in minutes:
            data = result["data"]
            if data and data[-1]["ts"] + len(data[-1]["values"]) * RECORD_PERIOD_S == ts:
                data[-1]["values"].append(columns(self.load.record(ts)))
            else:
                data.append({"ts": ts, "period": RECORD_PERIOD_S, "values": [columns(self.load.record(ts))]})
        return result

    def csv(self, params: dict) -> str:
        since = int(params.get("ts", 0))
        end_ts = params.get("end_ts")
        lines = [",".join(["timestamp", *EMDATA_KEYS])]
        for ts in self.load.record_minutes(self.clock(), since):
            if end_ts is not None and ts > int(end_ts):
                break
            row = self.load.record(ts)
            lines.append(",".join([str(ts), *(f"{row[k]}" for k in EMDATA_KEYS)]))
        return "\n".join(lines) + "\n"

    # -- dispatch -----------------------------------------------------------
    def call(self, method: str, params: dict | None) -> object:
        params = params or {}
        handlers = {
            "shelly.getdeviceinfo": lambda: self.device_info(),
            "shelly.getstatus": lambda: self.status(),
            "shelly.getconfig": lambda: self.config(),
            "shelly.getcomponents": lambda: {"components": [], "cfg_rev": 29, "offset": 0, "total": 0},
            "emdata.getrecords": lambda: self.get_records(params),
            "emdata.getdata": lambda: self.get_data(params),
            "em1data.getrecords": lambda: self.get_records(params, em1=True),
            "em1data.getdata": lambda: self.get_data(params, em1=True),
        }
        handler = handlers.get(method.lower())
        if handler is None:
            raise RpcError(404, f"No handler for {method}", http_status=404)
        return handler()

    # -- HTTP ---------------------------------------------------------------
    @web.middleware
    async def _faults(self, request, handler):
        self.requests.append(request.path)
        if self.hang:
            await asyncio.Event().wait()  # a meter that accepts and never answers
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=self.fail_status, text="simulated failure")
        return await handler(request)

    def _needs_auth(self, method: str) -> bool:
        return bool(self.password) and method.lower() != "shelly.getdeviceinfo"

    async def _handle_shelly(self, request):
        return web.json_response(self.device_info())

    async def _handle_get_rpc(self, request):
        method = request.match_info["method"]
        if self._needs_auth(method) and not self._http_authorized(request):
            return self._challenge_response()
        params = {name: _query_value(value) for name, value in request.query.items()}
        try:
            return web.json_response(self.call(method, params))
        except RpcError as exc:
            return web.json_response({"code": exc.code, "message": exc.message}, status=exc.http_status)

    async def _handle_post_rpc(self, request):
        try:
            frame = await request.json()
        except ValueError:
            return web.json_response({"code": -103, "message": "Invalid JSON"}, status=400)
        if not isinstance(frame, dict) or not isinstance(frame.get("method"), str):
            return web.json_response({"code": -103, "message": "Missing method"}, status=400)
        envelope = {"id": frame.get("id"), "src": self.device_id}
        if "src" in frame:
            envelope["dst"] = frame["src"]
        if self._needs_auth(frame["method"]) and not self._http_authorized(request):
            return self._challenge_response()
        try:
            envelope["result"] = self.call(frame["method"], frame.get("params"))
        except RpcError as exc:
            envelope["error"] = {"code": exc.code, "message": exc.message}
        return web.json_response(envelope)

    async def _handle_ws(self, request):
        ws = web.WebSocketResponse(protocols=["json-rpc"])
        if not ws.can_prepare(request).ok:
            return web.json_response({"code": 404, "message": "No handler for rpc"}, status=404)
        await ws.prepare(request)
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                frame = json.loads(message.data)
            except ValueError:
                continue
            if not isinstance(frame, dict) or "method" not in frame:
                continue
            envelope = {"id": frame.get("id"), "src": self.device_id, "dst": frame.get("src")}
            if self._needs_auth(frame["method"]) and not self._ws_authorized(frame.get("auth")):
                envelope["error"] = self._ws_challenge()
            else:
                try:
                    envelope["result"] = self.call(frame["method"], frame.get("params"))
                except RpcError as exc:
                    envelope["error"] = {"code": exc.code, "message": exc.message}
            await ws.send_str(json.dumps(envelope))
        return ws

    async def _handle_csv(self, request):
        if self.password and not self._http_authorized(request):
            return self._challenge_response()
        if self.profile != "triphase" or request.match_info["data_id"] != "0":
            return web.json_response({"code": -105, "message": "Bad id"}, status=404)
        return web.Response(text=self.csv(request.query), content_type="text/csv")

    def web_app(self) -> web.Application:
        app = web.Application(middlewares=[self._faults])
        app.router.add_get("/shelly", self._handle_shelly)
        app.router.add_get("/rpc", self._handle_ws)
        app.router.add_post("/rpc", self._handle_post_rpc)
        app.router.add_get("/rpc/{method}", self._handle_get_rpc)
        app.router.add_get("/emdata/{data_id}/data.csv", self._handle_csv)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve on host:port (0 = a free port); returns the port."""
        self._runner, self.port = await serve(self.web_app(), host, port)
        self.host = host
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _query_value(raw: str):
    # GET /rpc/X?id=0&ts=1700000000: values are JSON where they parse, else strings.
    try:
        return json.loads(raw)
    except ValueError:
        return raw


async def serve_meters(
    count: int,
    *,
    host: str = "127.0.0.1",
    base_port: int = 0,
    profile: str = "triphase",
    model: str = "pro3em",
    password: str = "",
    history_s: int = 6 * 3600,
    power_loss: bool = True,
    first_index: int = 0,
) -> list[Rpc3emSimulator]:
    """Start `count` meters on consecutive ports (or free ports when base_port is 0)."""
    meters = []
    now = int(time.time())
    for n in range(count):
        losses = []
        if power_loss and history_s >= 3600:
            # One 10-minute outage in the middle of the history: two EMData blocks.
            middle = now - history_s // 2
            middle -= middle % RECORD_PERIOD_S
            losses.append((middle, middle + 600))
        meter = Rpc3emSimulator(
            index=first_index + n,
            model=model,
            profile=profile,
            password=password,
            history_s=history_s,
            power_losses=losses,
        )
        await meter.start(host, base_port + n if base_port else 0)
        meters.append(meter)
    return meters


# -- `manage.py simulate_shelly --kind rpc3em` ---------------------------------
def add_arguments(parser) -> None:
    group = parser.add_argument_group("rpc3em (HTTP RPC energy meter, polled)")
    group.add_argument("--rpc-host", default="127.0.0.1", help="Address the meters listen on.")
    group.add_argument(
        "--rpc-port", type=int, default=8081, help="Port of the first meter (next ones count up; 0: any free ports)."
    )
    group.add_argument("--profile", choices=["triphase", "monophase"], default="triphase")
    group.add_argument("--meter-model", choices=sorted(MODELS), default="pro3em")
    group.add_argument("--meter-password", default="", help="Enable digest auth with this password.")
    group.add_argument("--history-hours", type=float, default=6.0, help="1-minute records kept before now.")
    group.add_argument("--no-power-loss", action="store_true", help="No outage in the history (one EMData block).")


async def run_command(options: dict, *, stdout, stop: asyncio.Event) -> str:
    count = options.get("devices") or 1
    meters = await serve_meters(
        count,
        host=options["rpc_host"],
        base_port=options["rpc_port"],
        profile=options["profile"],
        model=options["meter_model"],
        password=options["meter_password"],
        history_s=int(options["history_hours"] * 3600),
        power_loss=not options["no_power_loss"],
        first_index=options.get("seed") or 0,
    )
    for meter in meters:
        stdout.write(f"{meter.device_id} ({meter.model_id}, {meter.profile}) on http://{meter.address}/")
    stdout.write(
        "Point the poller at one with SHELLY_HOST=<address> (and SHELLY_PASSWORD) or add it in admin "
        "(transport 'Local RPC polling', host = the address)."
    )
    duration = options.get("duration")
    try:
        if duration is None:
            await stop.wait()
        else:
            try:
                await asyncio.wait_for(stop.wait(), timeout=duration)
            except TimeoutError:
                pass
    finally:
        for meter in meters:
            await meter.stop()
    served = sum(len(meter.requests) for meter in meters)
    return f"{count} simulated 3EM meter(s) answered {served} requests"
