import json

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from dashboard import realtime, selectors


class LiveDashboardConsumer(AsyncWebsocketConsumer):
    """Pushes channel snapshots to logged-in staff pages."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_staff:
            await self.close(code=4401)
            return
        await self.channel_layer.group_add(realtime.DASHBOARD_GROUP, self.channel_name)
        await self.accept()
        await self._send_snapshot(None)

    async def disconnect(self, code):
        await self.channel_layer.group_discard(realtime.DASHBOARD_GROUP, self.channel_name)

    async def channels_changed(self, event):
        await self._send_snapshot(event.get("channel_ids"))

    async def _send_snapshot(self, channel_ids):
        rows = await database_sync_to_async(selectors.channel_overview)(channel_ids=channel_ids)
        await self.send(text_data=json.dumps({"type": "channels", "channels": rows}, default=str))
