"""Health of the moving parts (§9 `/healthz`): database, channel layer, worker, devices."""

import asyncio
import time
from datetime import timedelta

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection
from django.utils import timezone

# The sweeper runs every minute; no successful task for longer means no worker.
WORKER_STALE_AFTER = timedelta(minutes=3)


def check_database() -> dict:
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1)}
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}


async def _layer_roundtrip(layer) -> None:
    channel = await layer.new_channel("healthz.")
    await layer.send(channel, {"type": "healthz.ping"})
    await asyncio.wait_for(layer.receive(channel), timeout=2)


def check_channel_layer() -> dict:
    layer = get_channel_layer()
    if layer is None:
        return {"ok": False, "error": "no channel layer configured"}
    try:
        async_to_sync(_layer_roundtrip)(layer)
        return {"ok": True, "backend": type(layer).__name__}
    except Exception as exc:
        return {"ok": False, "backend": type(layer).__name__, "error": type(exc).__name__}


def check_worker(now) -> dict:
    from django_q.models import Success

    last = Success.objects.order_by("-stopped").values_list("stopped", flat=True).first()
    if last is None:
        return {"ok": False, "last_task_at": None, "error": "no task has run yet: is `manage.py qcluster` running?"}
    return {"ok": now - last <= WORKER_STALE_AFTER, "last_task_at": last.isoformat()}


def device_health() -> list[dict]:
    from collector.models import Device

    fields = (
        "device_id",
        "transport",
        "last_seen",
        "last_live_poll_at",
        "last_interval_end",
        "consecutive_failures",
    )
    result = []
    for values in Device.objects.filter(enabled=True).values(*fields):
        result.append({k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in values.items()})
    return result


def database_outage_note(database: dict) -> dict:
    """The database check, with what this process holds in memory meanwhile (collector.outage)."""
    from collector import outage

    if database["ok"]:
        outage.state.database_back()
    else:
        database["reason"] = (
            "database unreachable: devices stay connected and samples are held in memory "
            "(COLLECTOR_OUTAGE_BUFFER_SAMPLES) until it returns"
        )
    database.update(outage.state.summary())
    return database


def health_report() -> tuple[bool, dict]:
    now = timezone.now()
    database = database_outage_note(check_database())
    checks = {
        "database": database,
        "channel_layer": check_channel_layer(),
        # The worker's heartbeat is in the database: unknown while it is away.
        "worker": check_worker(now) if database["ok"] else {"ok": False, "error": "unknown: database unreachable"},
    }
    healthy = checks["database"]["ok"] and checks["channel_layer"]["ok"] and checks["worker"]["ok"]
    report = {"status": "ok" if healthy else "degraded", "time": now.isoformat(), "checks": checks}
    if checks["database"]["ok"]:
        report["devices"] = device_health()
    return healthy, report
