"""Who may see the dashboard: staff, superusers and members of the read-only viewers group.

One rule for the pages, their live socket and the read API the pages call.
Viewers see figures but not the admin (they are not staff).
"""

VIEWER_GROUP = "dashboard viewers"


def can_view_dashboard(user) -> bool:
    """Staff, superusers and active members of VIEWER_GROUP; the answer is cached on the user object."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if user.is_staff or user.is_superuser:
        return True
    cached = getattr(user, "_can_view_dashboard", None)
    if cached is None:
        cached = user.groups.filter(name=VIEWER_GROUP).exists()
        user._can_view_dashboard = cached
    return cached
