"""Template context every page's navigation needs."""

from shelly_site.access import can_view_dashboard


def navigation(request):
    user = getattr(request, "user", None)
    return {
        "can_view_dashboard": can_view_dashboard(user),
        # The nav's badge: one COUNT on an indexed flag, only for those who see the dashboard.
        "active_alert_count": _active_alert_count(user),
    }


def _active_alert_count(user):
    if not can_view_dashboard(user):
        return None
    from alerts.services import active_count

    return active_count()
