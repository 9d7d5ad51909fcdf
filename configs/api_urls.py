"""The configs app's /api/v1 endpoints (mounted by `shelly_site.api.urls`)."""

from django.urls import re_path
from rest_framework.routers import SimpleRouter

from configs import api

# "/?": the issue names the paths without a slash (/api/v1/cycles); both work.
router = SimpleRouter()
router.trailing_slash = "/?"
router.register("cycles", api.CycleViewSet, basename="cycle")
router.register("tariffs", api.TariffViewSet, basename="tariff")
router.register("pump-models", api.PumpModelViewSet, basename="pump-model")
router.register("emission-factor-sets", api.EmissionFactorSetViewSet, basename="emission-factor-set")

urlpatterns = [
    re_path(r"^impact/?$", api.ImpactView.as_view(), name="impact"),
    re_path(
        r"^channels/(?P<channel_id>[0-9]+)/config-versions/?$",
        api.ChannelConfigVersionsView.as_view(),
        name="channel-config-versions",
    ),
    *router.urls,
]
