from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from alerts import views as alert_views
from collector.api import views as api_views
from dashboard import views as dashboard_views
from shelly_site import views

# Unknown URLs and crashes under /api/ answer in the API's JSON error shape.
handler400 = "shelly_site.views.bad_request"  # says which setting an unknown host name needs
handler403 = "shelly_site.api.errors.permission_denied"
handler404 = "shelly_site.api.errors.page_not_found"
handler500 = "shelly_site.api.errors.server_error"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("api/v1/", include("shelly_site.api.urls")),
    # §4.2 alias for relays configured with the short path.
    re_path(r"^api/ingest/batch/?$", api_views.BatchIngestView.as_view(schema=None), name="ingest-batch-alias"),
    path("alarm/<slug:slug>/state", alert_views.rule_state, name="alarm-state"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("favicon.ico", dashboard_views.favicon),
    path("", include("dashboard.urls")),
]
