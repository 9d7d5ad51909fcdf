"""Read-side queries shared by the dashboard pages, its live socket and the API."""

from django.db.models import OuterRef, Subquery

from collector.models import Channel, PowerLog


def channels_with_state(channel_ids=None):
    latest = PowerLog.objects.filter(channel=OuterRef("pk")).order_by("-timestamp", "-id")
    qs = (
        Channel.objects.select_related("device", "state")
        .annotate(
            last_row_at=Subquery(latest.values("timestamp")[:1]),
            last_row_power_w=Subquery(latest.values("apower_w")[:1]),
            last_row_reason=Subquery(latest.values("reason")[:1]),
        )
        .order_by("device__device_id", "key")
    )
    if channel_ids is not None:
        qs = qs.filter(pk__in=channel_ids)
    return qs


def channel_overview(*, channel_ids=None):
    result = []
    for channel in channels_with_state(channel_ids):
        state = getattr(channel, "state", None)
        last_values = state.last_values if state else {}
        result.append(
            {
                "id": channel.pk,
                "device_id": channel.device.device_id,
                "key": channel.key,
                "name": str(channel),
                "running": bool(state and state.running),
                "running_since": state.run_started_at.isoformat() if state and state.running else None,
                "live_power_w": last_values.get("p"),
                "last_sample_at": state.last_sample_at.isoformat() if state and state.last_sample_at else None,
                "last_row_at": channel.last_row_at.isoformat() if channel.last_row_at else None,
                "last_row_power_w": channel.last_row_power_w,
                "last_row_reason": channel.last_row_reason,
            }
        )
    return result
