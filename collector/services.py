"""Collector services (plain functions): token use, polled-device registration, device info, health."""

import logging
from datetime import datetime, timedelta

from django.db.models import F, Q
from django.utils import timezone

from collector.models import Device, Transport

log = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 500
TOKEN_USE_RESOLUTION = timedelta(minutes=1)


def mark_token_used(token) -> None:
    """Record that an ingest or API token was used, at most once a minute.

    Every device of a site may share one token: writing its row on each
    connect or request made a reconnect burst queue on that row's lock. The
    update is conditional so concurrent users of the same token write once.
    """
    now = timezone.now()
    if token.last_used_at and now - token.last_used_at < TOKEN_USE_RESOLUTION:
        return
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - TOKEN_USE_RESOLUTION)
    type(token).objects.filter(stale, pk=token.pk).update(last_used_at=now)
    token.last_used_at = now


def placeholder_device_id(host: str) -> str:
    # The real id (`shellypro3em-<mac>`) is only known after GetDeviceInfo;
    # the first successful contact renames the device (apply_device_info).
    return f"rpc-{host}"[:100]


def ensure_device_from_env(*, host: str, password: str = "") -> Device | None:
    """SHELLY_HOST (seed 004's env-only setup): create or update the polled device at that host."""
    host = host.strip()
    if not host:
        return None
    device = Device.objects.filter(transport=Transport.RPC_POLL, host=host).order_by("pk").first()
    if device is None:
        device, _ = Device.objects.get_or_create(
            device_id=placeholder_device_id(host),
            defaults={"transport": Transport.RPC_POLL, "host": host, "password": password, "name": f"Meter at {host}"},
        )
    changed = {"enabled": True, "password": password, "host": host, "transport": Transport.RPC_POLL}
    if any(getattr(device, name) != value for name, value in changed.items()):
        Device.objects.filter(pk=device.pk).update(**changed)
        for name, value in changed.items():
            setattr(device, name, value)
    return device


def apply_device_info(device_pk: int, info: dict, *, now: datetime | None = None) -> Device:
    """Shelly.GetDeviceInfo → model, generation, firmware, MAC, app, profile (and the real id)."""
    device = Device.objects.get(pk=device_pk)
    fields = {
        "model": str(info.get("model") or device.model)[:50],
        "generation": info.get("gen") if isinstance(info.get("gen"), int) else device.generation,
        "firmware": str(info.get("fw_id") or info.get("ver") or device.firmware)[:100],
        "mac": str(info.get("mac") or device.mac)[:20],
        "app": str(info.get("app") or device.app)[:50],
        "profile": str(info.get("profile") or device.profile or "")[:30],
        "info_fetched_at": now or timezone.now(),
    }
    real_id = info.get("id")
    if isinstance(real_id, str) and real_id and real_id != device.device_id:
        if Device.objects.filter(device_id=real_id).exclude(pk=device.pk).exists():
            log.error(
                "device id already used by another device",
                extra={"event": "device_id_conflict", "device_id": real_id},
            )
            fields["last_error"] = f"the device reports id {real_id}, which another device already has"
            fields["last_error_at"] = fields["info_fetched_at"]
        else:
            fields["device_id"] = real_id[:100]
    if not device.name and info.get("name"):
        fields["name"] = str(info["name"])[:200]
    Device.objects.filter(pk=device.pk).update(**fields)
    for name, value in fields.items():
        setattr(device, name, value)
    return device


def record_poll_success(device_pk: int, *, at: datetime) -> None:
    Device.objects.filter(pk=device_pk).update(last_live_poll_at=at, last_seen=at, consecutive_failures=0)


def record_poll_failure(device_pk: int, error: str, *, at: datetime) -> None:
    Device.objects.filter(pk=device_pk).update(
        consecutive_failures=F("consecutive_failures") + 1,
        last_error=error[:MAX_ERROR_LENGTH],
        last_error_at=at,
    )


def polled_devices():
    """Enabled devices reached by local RPC polling that have a host."""
    return Device.objects.filter(transport=Transport.RPC_POLL, enabled=True).exclude(host="")
