"""Every push to the live dashboard goes through here, after the commit."""

import asyncio
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

DASHBOARD_GROUP = "dashboard"


def channels_changed(channel_ids, *, loop=None) -> None:
    """Tell dashboards that these channels have new rows or a new running state.

    Called after commit from sync code. With `loop` (the running event loop of
    an async caller, e.g. a device consumer whose write ran in a thread) the
    push is handed to that loop and not waited for: waiting held a database
    thread for each push while the loop was busy with a reconnect burst.
    """
    if not channel_ids:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "channels.changed", "channel_ids": sorted(channel_ids)}
    if loop is not None and loop.is_running():
        future = asyncio.run_coroutine_threadsafe(layer.group_send(DASHBOARD_GROUP, message), loop)
        future.add_done_callback(_log_failure)
        return
    try:
        async_to_sync(layer.group_send)(DASHBOARD_GROUP, message)
    except Exception:  # a dashboard push must never break ingestion
        log.warning("dashboard push failed", exc_info=True, extra={"event": "realtime_push_failed"})


def _log_failure(future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("dashboard push failed: %s", future.exception(), extra={"event": "realtime_push_failed"})


def samples_seen(live, *, loop=None) -> None:
    """Every accepted sample (a list of `collector.samples.LiveSample`), written or not.

    The live cards are refreshed from committed rows and states today
    (`channels_changed`); pushing live values per sample is the dashboard issue's.
    """
