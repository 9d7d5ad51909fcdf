"""Point a Shelly at this server in one step, over its local RPC (admin action, "add by IP" form, command).

Order matters so that a failure leaves nothing behind:

1. check the server address (PUBLIC_WS_URL or the one given) before any call;
2. `Shelly.GetDeviceInfo` (never behind auth): reachable, Gen2+, its id;
3. `Ws.GetConfig` (behind auth): the password works and the device has an
   outbound WebSocket; a wrong password or an unreachable device stops here
   with a clear message and nothing created;
4. create or update the device and a new device-bound ingest token;
5. `Ws.SetConfig {"config": {"enable": true, "server": <url>, "ssl_ca": …}}`
   (`ssl_ca` only for wss://); if it fails the token (and a device created
   in step 4) is removed again;
6. the device's previous device-bound tokens are disabled: the secret it was
   given before is no longer valid anywhere;
7. `Shelly.Reboot` when the device says `restart_required`;
8. confirm: the device connects to us with the new token (the token's
   `last_used_at` is set) within PROVISION_CONFIRM_SECONDS. Not confirmed is
   reported, not an error: the device is set up and may just be slower.

The RPC calls go through `collector.rpc_client.ShellyRpcClient` (digest auth,
timeouts, retries); the ORM work stays in the caller's thread, so the admin
view, the command and the tests see one database connection.
"""

import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from collector import services
from collector.models import Device, IngestToken, Transport
from collector.rpc_client import (
    AuthenticationFailed,
    DeviceUnreachable,
    MethodNotFound,
    RpcError,
    ShellyRpcClient,
)

log = logging.getLogger(__name__)

CONFIRM_POLL_S = 0.5


class ProvisioningError(Exception):
    """What went wrong, in words an operator can act on (no stack trace, no secret)."""


@dataclass
class ProvisionResult:
    device: Device
    created: bool
    token: IngestToken
    server_shown: str  # the server URL with the token as its public prefix
    restarted: bool
    connected: bool
    tokens_disabled: int


def ws_server_url(base: str, raw_token: str) -> str:
    """`ws(s)://host[:port][/prefix]` + `/ws/shelly/<token>/`."""
    parts = urlsplit(base.strip())
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise ProvisioningError(
            _(
                "The server address %(url)r must start with ws:// or wss:// and name a host, e.g. wss://monitor.example.org"
            )
            % {"url": base}
        )
    prefix = parts.path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{prefix}/ws/shelly/{raw_token}/"


def _rpc(host: str, password: str, method: str, params: dict | None = None, *, retry=None, timeout_s=None):
    async def call():
        async with ShellyRpcClient(host, password=password, retry=retry, timeout_s=timeout_s) as client:
            if params is None:
                return await client.call(method, retry=retry)
            return await client.post(method, params, retry=retry)

    try:
        return async_to_sync(call)()
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise DeviceUnreachable(f"{host!r} is not a usable address ({exc})") from None


def _explain(exc: RpcError, host: str) -> ProvisioningError:
    if isinstance(exc, DeviceUnreachable):
        return ProvisioningError(
            _("Cannot reach a Shelly at %(host)s (%(detail)s): check the address and that it is on this network.")
            % {"host": host, "detail": exc}
        )
    if isinstance(exc, AuthenticationFailed):
        return ProvisioningError(
            _("The Shelly at %(host)s refused the password (user admin): type the password set in its web UI.")
            % {"host": host}
        )
    if isinstance(exc, MethodNotFound):
        return ProvisioningError(
            _("The device at %(host)s has no outbound WebSocket (%(method)s is missing): it cannot be provisioned.")
            % {"host": host, "method": exc.method}
        )
    return ProvisioningError(_("The Shelly at %(host)s answered: %(detail)s") % {"host": host, "detail": exc})


def provision(
    host: str,
    *,
    password: str = "",
    name: str = "",
    server: str | None = None,
    ssl_ca: str | None = None,
    confirm_s: float | None = None,
) -> ProvisionResult:
    host = host.strip()
    if not host:
        raise ProvisioningError(_("Give the Shelly's IP address or host name."))
    base = (server if server is not None else settings.PUBLIC_WS_URL).strip()
    if not base:
        raise ProvisioningError(
            _("Set PUBLIC_WS_URL (e.g. wss://monitor.example.org), the address devices use to reach this server.")
        )
    ws_server_url(base, "check")  # a bad address fails before any device is touched
    confirm_s = settings.PROVISION_CONFIRM_SECONDS if confirm_s is None else confirm_s

    try:
        info = _rpc(host, password, "Shelly.GetDeviceInfo")
    except RpcError as exc:
        raise _explain(exc, host) from None
    if not isinstance(info, dict) or not isinstance(info.get("id"), str) or not isinstance(info.get("gen"), int):
        raise ProvisioningError(_("The device at %(host)s did not answer as a Shelly Gen2+ does.") % {"host": host})
    if info["gen"] < 2:
        raise ProvisioningError(_("%(id)s is a Gen1 device: it has no outbound WebSocket.") % {"id": info["id"]})
    try:
        _rpc(host, password, "Ws.GetConfig")
    except RpcError as exc:
        raise _explain(exc, host) from None

    device, created, token, raw = _register(host, password, name, info)
    url = ws_server_url(base, raw)
    config = {"enable": True, "server": url}
    if url.startswith("wss://"):
        config["ssl_ca"] = ssl_ca or settings.SHELLY_WS_SSL_CA
    try:
        answer = _rpc(host, password, "Ws.SetConfig", {"config": config})
    except RpcError as exc:
        _unregister(device, created, token)
        raise _explain(exc, host) from None

    tokens_disabled = IngestToken.objects.filter(device=device, enabled=True).exclude(pk=token.pk).update(enabled=False)
    restarted = bool(isinstance(answer, dict) and answer.get("restart_required"))
    if restarted:
        try:
            _rpc(host, password, "Shelly.Reboot", {})
        except RpcError as exc:
            raise ProvisioningError(
                _("%(id)s is configured but did not accept the reboot (%(detail)s): restart it from its web UI.")
                % {"id": device.device_id, "detail": exc}
            ) from None
    connected = _wait_connected(token, timeout_s=confirm_s)
    shown = url.replace(raw, token.prefix + "…")
    log.info(
        "device provisioned",
        extra={"event": "device_provisioned", "device_id": device.device_id, "token": token.prefix},
    )
    return ProvisionResult(
        device=device,
        created=created,
        token=token,
        server_shown=shown,
        restarted=restarted,
        connected=connected,
        tokens_disabled=tokens_disabled,
    )


def _register(host: str, password: str, name: str, info: dict):
    with transaction.atomic():
        device, created = Device.objects.get_or_create(
            device_id=info["id"][:100], defaults={"transport": Transport.WEBSOCKET, "host": host}
        )
        fields = {"transport": Transport.WEBSOCKET, "host": host, "password": password, "enabled": True}
        if name:
            fields["name"] = name
        Device.objects.filter(pk=device.pk).update(**fields)
        device = services.apply_device_info(device.pk, info)
        label = f"{device.device_id} (provisioned {timezone.now():%Y-%m-%d %H:%M})"
        token = IngestToken(name=label[:100], device=device)
        raw = token.set_new_secret()
        token.save()
    return device, created, token, raw


def _unregister(device: Device, created: bool, token: IngestToken) -> None:
    with transaction.atomic():
        token.delete()
        if created:
            device.delete()


def _wait_connected(token: IngestToken, *, timeout_s: float) -> bool:
    """The device connected with its new token (the consumer marks a token used on connect).

    Not `Ws.GetStatus.connected` nor `last_seen`: when re-provisioning, the
    connection made with the old token answers those until the reboot.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if IngestToken.objects.filter(pk=token.pk, last_used_at__isnull=False).exists():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(CONFIRM_POLL_S)


__all__ = ["ProvisionResult", "ProvisioningError", "provision", "ws_server_url"]
