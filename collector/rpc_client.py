"""The one HTTP client for Shelly Gen2+ local RPC (SPEC §4.3, SHELLY.md §4–§6).

- `GET /rpc/<Method>?k=v` returns the bare result; `POST /rpc` a JSON-RPC
  envelope. Both are here; errors come back as `{"code","message"}` (bare)
  or under `error` (envelope) and become `RpcDeviceError` subclasses.
- Digest auth (RFC 7616, SHA-256, user `admin`) when a password is set;
  httpx keeps the last challenge so later calls authenticate up front.
- Every attempt has the explicit timeout `SHELLY_TIMEOUT_MS`. Timeouts,
  connection errors and 5xx answers without an RPC error are retried with
  exponential backoff and jitter; a wrong password or a device error is not
  (retrying a 401 only hammers the device and locks nothing useful open).
"""

import asyncio
import json
import random
from dataclasses import dataclass

import httpx
from django.conf import settings

USERNAME = "admin"


class RpcError(Exception):
    """Anything that went wrong talking to a device."""

    retryable = False


class DeviceUnreachable(RpcError):
    """Timeout, refused connection or 5xx after every retry."""

    retryable = True


class AuthenticationFailed(RpcError):
    """401: no password configured for a protected device, or the wrong one."""


class RpcDeviceError(RpcError):
    """The device answered with an RPC error code."""

    def __init__(self, code: int, message: str, *, method: str):
        super().__init__(f"{method}: error {code}: {message}")
        self.code = code
        self.device_message = message
        self.method = method


class InvalidArgument(RpcDeviceError):
    """-103: a parameter is missing or wrong (e.g. "Missing required 'id'")."""


class ComponentNotFound(RpcDeviceError):
    """-105: no such component instance (e.g. "Bad id=7")."""


class MethodNotFound(RpcDeviceError):
    """404 "No handler for <Method>": this device (or profile) has no such method."""


ERRORS_BY_CODE = {-103: InvalidArgument, -105: ComponentNotFound, 404: MethodNotFound}


def device_error(code, message, *, method: str) -> RpcDeviceError:
    cls = ERRORS_BY_CODE.get(code, RpcDeviceError)
    return cls(code, str(message), method=method)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    base_s: float = 0.25
    max_s: float = 4.0

    def delay(self, attempt: int, rng=random) -> float:
        """Backoff before retry number `attempt` (1-based): base·2^(n-1), capped, with ±50 % jitter.

        The jitter keeps many meters that failed together (a switch reboot)
        from coming back in lockstep.
        """
        nominal = min(self.max_s, self.base_s * 2 ** (attempt - 1))
        return nominal * rng.uniform(0.5, 1.5)


def base_url(host: str) -> str:
    host = host.strip().rstrip("/")
    return host if host.startswith(("http://", "https://")) else f"http://{host}"


def _query_value(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class ShellyRpcClient:
    """Async client of one device. Use as `async with ShellyRpcClient(host) as client:`."""

    def __init__(
        self,
        host: str,
        *,
        password: str = "",
        timeout_s: float | None = None,
        retry: RetryPolicy | None = None,
        sleep=asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.host = host
        self.timeout_s = settings.SHELLY_TIMEOUT_MS / 1000 if timeout_s is None else timeout_s
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._next_id = 1
        self.attempts_made = 0
        self._http = httpx.AsyncClient(
            base_url=base_url(host),
            auth=httpx.DigestAuth(USERNAME, password) if password else None,
            timeout=httpx.Timeout(self.timeout_s),
            transport=transport,
            limits=httpx.Limits(max_connections=2, max_keepalive_connections=1),
        )

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- the two request forms -------------------------------------------------
    async def call(self, method: str, params: dict | None = None, *, retry: RetryPolicy | None = None):
        """`GET /rpc/<method>`: the bare result."""
        query = {name: _query_value(value) for name, value in (params or {}).items()}
        response = await self._send(method, lambda: self._http.get(f"/rpc/{method}", params=query), retry)
        body = _json(response, method)
        if _looks_like_error(body):
            raise device_error(body["code"], body.get("message", ""), method=method)
        if not response.is_success:
            raise RpcError(f"{method}: HTTP {response.status_code}")
        return body

    async def post(self, method: str, params: dict | None = None, *, retry: RetryPolicy | None = None):
        """`POST /rpc` with a JSON-RPC frame: the envelope's `result`."""
        frame = {"id": self._next_id, "src": settings.COLLECTOR_SERVER_SRC, "method": method}
        self._next_id += 1
        if params:
            frame["params"] = params
        response = await self._send(method, lambda: self._http.post("/rpc", json=frame), retry)
        body = _json(response, method)
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
            raise device_error(error.get("code"), error.get("message", ""), method=method)
        if _looks_like_error(body):
            raise device_error(body["code"], body.get("message", ""), method=method)
        if not response.is_success or not isinstance(body, dict) or "result" not in body:
            raise RpcError(f"{method}: unexpected answer (HTTP {response.status_code})")
        return body["result"]

    async def _send(self, method: str, request, retry: RetryPolicy | None) -> httpx.Response:
        policy = retry or self.retry
        last_problem = ""
        for attempt in range(1, policy.attempts + 1):
            if attempt > 1:
                await self._sleep(policy.delay(attempt - 1))
            self.attempts_made += 1
            try:
                response = await request()
            except httpx.TimeoutException:
                last_problem = f"no answer within {self.timeout_s:g} s"
                continue
            except httpx.TransportError as exc:
                last_problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                continue
            if response.status_code == 401:
                raise AuthenticationFailed(
                    f"{method}: device at {self.host} refused the credentials (HTTP 401); "
                    "check the device password (user 'admin')"
                )
            if response.status_code >= 500 and not _looks_like_error(_json(response, method, strict=False)):
                last_problem = f"HTTP {response.status_code}"
                continue
            return response
        raise DeviceUnreachable(f"{method}: {self.host}: {last_problem} after {policy.attempts} attempt(s)")

    # -- the methods the poller uses ---------------------------------------------
    async def get_device_info(self) -> dict:
        return await self.call("Shelly.GetDeviceInfo")

    async def get_status(self, *, retry: RetryPolicy | None = None) -> dict:
        return await self.call("Shelly.GetStatus", retry=retry)

    async def emdata_records(self, *, component: str = "EMData", data_id: int = 0, since: int = 0) -> dict:
        return await self.post(f"{component}.GetRecords", {"id": data_id, "ts": since})

    async def emdata_data(
        self, *, component: str = "EMData", data_id: int = 0, since: int, until: int | None = None
    ) -> dict:
        params = {"id": data_id, "ts": since}
        if until is not None:
            params["end_ts"] = until
        return await self.post(f"{component}.GetData", params)


def _looks_like_error(body) -> bool:
    return isinstance(body, dict) and isinstance(body.get("code"), int) and "message" in body and len(body) <= 3


def _json(response: httpx.Response, method: str, *, strict: bool = True):
    try:
        return response.json()
    except ValueError:
        if strict and response.is_success:
            raise RpcError(f"{method}: answer is not JSON (HTTP {response.status_code})") from None
        return None
