"""Every push to the live dashboard goes through here, after the commit."""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

DASHBOARD_GROUP = "dashboard"


def channels_changed(channel_ids) -> None:
    """Tell dashboards that these channels have new rows or a new running state."""
    if not channel_ids:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "channels.changed", "channel_ids": sorted(channel_ids)}
    try:
        async_to_sync(layer.group_send)(DASHBOARD_GROUP, message)
    except Exception:  # a dashboard push must never break ingestion
        log.warning("dashboard push failed", exc_info=True, extra={"event": "realtime_push_failed"})
