from channels.generic.websocket import AsyncWebsocketConsumer


class ShellyDeviceConsumer(AsyncWebsocketConsumer):
    """Placeholder: replaced by the real device consumer."""

    async def connect(self):
        await self.close(code=4401)
