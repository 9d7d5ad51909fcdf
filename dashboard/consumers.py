"""The dashboard's live socket (`/ws/dashboard/`): thin edge over `dashboard.realtime` and the selectors.

Messages to the page (JSON, `type` first):

- `states`: channel states and device `last_seen` — everything on connect,
  then what changed in the database every DASHBOARD_REFRESH_SECONDS (this is
  how samples of another process reach the page when the channel layer is
  the in-memory one: the embedded poller);
- `live`: the latest values of channels that just had samples (at most one a
  second per channel, `dashboard.realtime`);
- `changed`: channels with newly committed rows or a run start/stop: the page
  refreshes its figures.
"""

import asyncio
import json
import logging
from datetime import timedelta

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from dashboard import realtime, selectors
from shelly_site.access import can_view_dashboard

CLOSE_UNAUTHORIZED = 4401
CLOSE_LAYER_LOST = 1011

log = logging.getLogger(__name__)


class LiveDashboardConsumer(AsyncWebsocketConsumer):
    refresher: asyncio.Task | None = None
    joined = False

    async def connect(self):
        if not await database_sync_to_async(can_view_dashboard)(self.scope.get("user")):
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        await self.channel_layer.group_add(realtime.DASHBOARD_GROUP, self.channel_name)
        self.joined = True
        await self.accept()
        self.refreshed_at = None
        await self._send_states()
        self.refresher = asyncio.create_task(self._refresh_forever())

    async def disconnect(self, code):
        if self.refresher is not None:
            self.refresher.cancel()
            await asyncio.gather(self.refresher, return_exceptions=True)
        if self.joined:
            await self.channel_layer.group_discard(realtime.DASHBOARD_GROUP, self.channel_name)

    async def live_samples(self, event):
        await self.send(text_data=json.dumps({"type": "live", "samples": event["samples"]}))

    async def channels_changed(self, event):
        await self.send(text_data=json.dumps({"type": "changed", "channels": event["channel_ids"]}))

    async def _send_states(self):
        # Overlap the previous read: a state stamped just before it may commit just after.
        overlap = timedelta(seconds=settings.DASHBOARD_REFRESH_SECONDS + 5)
        since = self.refreshed_at - overlap if self.refreshed_at else None
        self.refreshed_at = timezone.now()
        states, devices = await database_sync_to_async(selectors.live_states_since)(since)
        if states or devices or since is None:
            await self.send(text_data=json.dumps({"type": "states", "channels": states, "devices": devices}))

    async def _refresh_forever(self):
        while True:
            await asyncio.sleep(settings.DASHBOARD_REFRESH_SECONDS)
            try:
                # Join again each time: a Redis restart empties the group (and
                # channels-redis expires memberships after a day), after which
                # this socket would stay open but never get a push.
                await self.channel_layer.group_add(realtime.DASHBOARD_GROUP, self.channel_name)
            except Exception:
                # The channel layer is down: close, the page reconnects (every
                # 5 s) and is live again as soon as it is back.
                log.warning("dashboard socket closed: channel layer down", extra={"event": "dashboard_layer_lost"})
                await self.close(code=CLOSE_LAYER_LOST)
                return
            await self._send_states()
