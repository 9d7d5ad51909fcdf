"""A simulated Pro 4PM reachable over its local HTTP RPC, to be provisioned (`--kind pro4pm-local`).

What a factory-fresh Shelly on the plant's network offers before anyone has
pointed it at us: `GET /shelly` and `Shelly.GetDeviceInfo` (never behind
auth), `GET /rpc/<Method>` and `POST /rpc` for every method the WebSocket
simulator answers (`SimulatedPro4PM.answer`), with digest auth when it has a
password. `Ws.SetConfig` is stored and answers `restart_required: true`;
`Shelly.Reboot` restarts the device a moment later, and when its outbound
WebSocket is enabled it then connects to the configured server with the
WebSocket simulator's `DeviceRunner`, which is how provisioning is tested end
to end over real sockets.
"""

import asyncio
import json
import time

from aiohttp import web

from collector.simulators.digest import DigestGuard
from collector.simulators.pro4pm import DeviceRunner, SimStats, SimulatedPro4PM
from collector.simulators.serving import serve

REBOOT_DELAY_S = 0.3


class LocalRpcPro4PM(DigestGuard):
    """One device: a SimulatedPro4PM behind a local HTTP RPC server."""

    def __init__(self, index: int = 0, *, seed: int = 0, password: str = "", rate: float = 2.0, **profile):
        self.device = SimulatedPro4PM(index, seed=seed, **profile)
        self.device_id = self.device.device_id
        self.password = password
        self.rate = rate
        self.clock = time.time
        self._nonces: dict[int, float] = {}
        self.stats = SimStats(devices=1)
        self.boots = 1
        self.connected_to: list[str] = []  # servers it started a WebSocket client for, in order
        self._runner_task: asyncio.Task | None = None
        self._runner_stop: asyncio.Event | None = None
        self._http = None
        self.port = None
        self.host = "127.0.0.1"

    # -- RPC -------------------------------------------------------------------
    def _needs_auth(self, method: str) -> bool:
        return bool(self.password) and method.lower() != "shelly.getdeviceinfo"

    def _call(self, method: str, params: dict | None, request_id=1) -> dict:
        self.device.step(time.time())
        frame = {"id": request_id, "method": method, "params": params or {}}
        reply = self.device.answer(frame)
        if method.lower() == "shelly.reboot":
            asyncio.get_running_loop().call_later(REBOOT_DELAY_S, lambda: asyncio.ensure_future(self.reboot()))
        if method.lower() == "shelly.getdeviceinfo":
            reply["result"]["auth_en"] = bool(self.password)
            reply["result"]["auth_domain"] = self.device_id if self.password else None
        return reply

    async def _handle_shelly(self, request):
        return web.json_response(self._call("Shelly.GetDeviceInfo", None)["result"])

    async def _handle_get_rpc(self, request):
        method = request.match_info["method"]
        if self._needs_auth(method) and not self._http_authorized(request):
            return self._challenge_response()
        params = {}
        for name, raw in request.query.items():
            try:
                params[name] = json.loads(raw)
            except ValueError:
                params[name] = raw
        reply = self._call(method, params)
        if "error" in reply:
            status = 404 if reply["error"]["code"] == 404 else 400
            return web.json_response(reply["error"], status=status)
        return web.json_response(reply["result"])

    async def _handle_post_rpc(self, request):
        try:
            frame = await request.json()
        except ValueError:
            return web.json_response({"code": -103, "message": "Invalid JSON"}, status=400)
        if not isinstance(frame, dict) or not isinstance(frame.get("method"), str):
            return web.json_response({"code": -103, "message": "Missing method"}, status=400)
        if self._needs_auth(frame["method"]) and not self._http_authorized(request):
            return self._challenge_response()
        reply = self._call(frame["method"], frame.get("params"), frame.get("id"))
        envelope = {"id": frame.get("id"), "src": self.device_id}
        if "src" in frame:
            envelope["dst"] = frame["src"]
        envelope.update({key: reply[key] for key in ("result", "error") if key in reply})
        return web.json_response(envelope)

    # -- the reboot: the new WebSocket config takes effect ---------------------
    async def reboot(self) -> None:
        await self._stop_runner()
        self.boots += 1
        self.device.restart_required = False
        config = self.device.ws_config
        if config.get("enable") and config.get("server"):
            self.connected_to.append(config["server"])
            self._runner_stop = asyncio.Event()
            runner = DeviceRunner(
                self.device,
                config["server"],
                rate=self.rate,
                stats=self.stats,
                stop=self._runner_stop,
                disconnect_every=None,
            )
            self._runner_task = asyncio.create_task(runner.run())

    async def _stop_runner(self) -> None:
        if self._runner_task is not None:
            self._runner_stop.set()
            await asyncio.gather(self._runner_task, return_exceptions=True)
            self._runner_task = None

    # -- serving ----------------------------------------------------------------
    def web_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/shelly", self._handle_shelly)
        app.router.add_post("/rpc", self._handle_post_rpc)
        app.router.add_get("/rpc/{method}", self._handle_get_rpc)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._http, self.port = await serve(self.web_app(), host, port)
        self.host = host
        return self.port

    async def stop(self) -> None:
        await self._stop_runner()
        if self._http is not None:
            await self._http.cleanup()
            self._http = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


# -- `manage.py simulate_shelly --kind pro4pm-local` -----------------------------------


def add_arguments(parser) -> None:
    group = parser.add_argument_group("pro4pm-local (a Pro 4PM on the LAN, to provision over local RPC)")
    group.add_argument("--local-host", default="127.0.0.1", help="Address its local RPC listens on.")
    group.add_argument("--local-port", type=int, default=8090, help="Port of the first device (0: any free port).")
    group.add_argument("--local-password", default="", help="Enable digest auth with this password.")


async def run_command(options: dict, *, stdout, stop: asyncio.Event) -> str:
    devices = []
    for n in range(options.get("devices") or 1):
        device = LocalRpcPro4PM(n, seed=options.get("seed") or 0, password=options["local_password"])
        port = options["local_port"] + n if options["local_port"] else 0
        await device.start(options["local_host"], port)
        devices.append(device)
        stdout.write(
            f"{device.device_id} (Pro 4PM, not yet pointed at any server) on http://{device.address}/ — "
            f"provision it: python manage.py provision_shelly {device.address}"
        )
    try:
        duration = options.get("duration")
        try:
            await asyncio.wait_for(stop.wait(), timeout=duration)
        except TimeoutError:
            pass
    finally:
        for device in devices:
            await device.stop()
    frames = sum(device.stats.frames_sent for device in devices)
    return f"{len(devices)} local Pro 4PM stopped: {frames} frames sent after provisioning"
