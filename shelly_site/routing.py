import logging

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path, re_path

from collector.consumers import ShellyDeviceConsumer
from dashboard.consumers import LiveDashboardConsumer
from shelly_site.logging import redact_secrets

log = logging.getLogger(__name__)


class UnknownPathConsumer(AsyncWebsocketConsumer):
    """A handshake on a path no route serves: a plain 403 and one log line.

    Without it Channels' URLRouter raises "No route found", which the server
    answers with a 500 and a traceback in the log.
    """

    async def connect(self):
        log.warning(
            "websocket handshake on an unknown path refused",
            extra={"event": "ws_unknown_path", "path": redact_secrets(self.scope.get("path", ""))},
        )
        await self.close()  # before accept: the server answers the handshake with 403


websocket_urlpatterns = [
    path("ws/shelly/<str:token>/", ShellyDeviceConsumer.as_asgi()),
    path("ws/shelly/<str:token>", ShellyDeviceConsumer.as_asgi()),
    re_path(r"^ws/?$", ShellyDeviceConsumer.as_asgi()),
    # Browsers send an Origin; a page on another site must not ride on the
    # staff member's session cookie. (Devices send none: their routes stay open.)
    path("ws/dashboard/", AllowedHostsOriginValidator(LiveDashboardConsumer.as_asgi())),
    # Last: everything else is refused cleanly.
    re_path(r"", UnknownPathConsumer.as_asgi()),
]
