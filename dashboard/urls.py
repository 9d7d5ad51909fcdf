from django.urls import path, re_path

from dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("overview/cards", views.overview_cards, name="overview-cards"),
    path("channels/", views.channel_list, name="channels"),
    path("channels/<int:channel_id>/", views.channel_detail, name="channel"),
    path("energy/", views.energy_page, name="energy"),
    path("alerts/", views.alerts_page, name="alerts"),
    path("reports/", views.reports_page, name="reports"),
    re_path(r"^reports/(?P<month>\d{4}-\d{2})\.(?P<extension>pdf|csv)$", views.report_download, name="report"),
]
