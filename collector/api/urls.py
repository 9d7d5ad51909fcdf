"""URLs of /api/v1 (included by shelly_site/urls.py under `api/v1/`).

Other apps plug their endpoints in here: a viewset with `router.register(...)`
(listed in the API root), a plain view with an entry in `urlpatterns`.
"""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from collector.api import energy, views

app_name = "api"

router = DefaultRouter()
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
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
    *router.urls,
]
