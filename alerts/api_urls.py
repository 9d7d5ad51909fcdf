"""The alerts app's /api/v1 endpoints (mounted by `shelly_site.api.urls`)."""

from rest_framework.routers import SimpleRouter

from alerts import api

router = SimpleRouter()
router.trailing_slash = "/?"
router.register("alerts/rules", api.AlertRuleViewSet, basename="alert-rule")
router.register("alerts/events", api.AlertEventViewSet, basename="alert-event")

urlpatterns = [*router.urls]
