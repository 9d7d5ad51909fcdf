"""The collector's /api/v1 endpoints (mounted by `shelly_site.api.urls`)."""

from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from collector.api import energy, views

router = SimpleRouter()
router.register("devices", views.DeviceViewSet, basename="device")
router.register("channels", views.ChannelViewSet, basename="channel")
router.register("power-logs", views.PowerLogViewSet, basename="power-log")
router.register("energy-intervals", energy.EnergyIntervalViewSet, basename="energy-interval")

urlpatterns = [
    path("series/", views.SeriesView.as_view(), name="series"),
    re_path(r"^energy/summary/?$", energy.EnergySummaryView.as_view(), name="energy-summary"),
    # The issue names the path without a slash; both work.
    re_path(r"^energy-intervals$", energy.EnergyIntervalViewSet.as_view({"get": "list"}, schema=None)),
    # No trailing slash in §4.2; relays that add one get the same view.
    path("ingest/batch", views.BatchIngestView.as_view(), name="ingest-batch"),
    path("ingest/batch/", views.BatchIngestView.as_view(schema=None)),
    *router.urls,
]
