from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path, re_path

from collector.consumers import ShellyDeviceConsumer
from dashboard.consumers import LiveDashboardConsumer

websocket_urlpatterns = [
    path("ws/shelly/<str:token>/", ShellyDeviceConsumer.as_asgi()),
    path("ws/shelly/<str:token>", ShellyDeviceConsumer.as_asgi()),
    re_path(r"^ws/?$", ShellyDeviceConsumer.as_asgi()),
    # Browsers send an Origin; a page on another site must not ride on the
    # staff member's session cookie. (Devices send none: their routes stay open.)
    path("ws/dashboard/", AllowedHostsOriginValidator(LiveDashboardConsumer.as_asgi())),
]
