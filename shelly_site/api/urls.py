"""/api/v1: the API root, the schema and docs, and every app's endpoints (namespace `api`).

An app plugs its endpoints in by listing its `urlpatterns` here; the root view
then lists them without further registration.
"""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from alerts import api_urls as alerts_urls
from collector.api import urls as collector_urls
from configs import api_urls as configs_urls
from shelly_site.api import schema  # noqa: F401  (registers the schema extensions before any generation)
from shelly_site.api.root import ApiRootView

app_name = "api"

urlpatterns = [
    path("", ApiRootView.as_view(), name="root"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
    *collector_urls.urlpatterns,
    *configs_urls.urlpatterns,
    *alerts_urls.urlpatterns,
]
