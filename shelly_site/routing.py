from django.urls import path, re_path

from collector.consumers import ShellyDeviceConsumer
from dashboard.consumers import LiveDashboardConsumer

websocket_urlpatterns = [
    path("ws/shelly/<str:token>/", ShellyDeviceConsumer.as_asgi()),
    path("ws/shelly/<str:token>", ShellyDeviceConsumer.as_asgi()),
    re_path(r"^ws/?$", ShellyDeviceConsumer.as_asgi()),
    path("ws/dashboard/", LiveDashboardConsumer.as_asgi()),
]
