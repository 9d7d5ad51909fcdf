"""Who may do what on `/api/v1/`.

Reading is for API tokens and the dashboard's users (staff and the read-only
viewers group, `shelly_site.access`). Writing is
allowed only on endpoints that opt in with `ApiWriteAccess`, and there only for
a token with `can_write` or a superuser.
"""

from rest_framework.permissions import SAFE_METHODS, BasePermission

from collector.models import ApiToken, IngestToken
from shelly_site.access import can_view_dashboard


def is_api_token(request) -> bool:
    return isinstance(request.auth, ApiToken)


def may_read(request) -> bool:
    if is_api_token(request):
        return True
    return can_view_dashboard(request.user)


def may_write(request) -> bool:
    if is_api_token(request):
        return request.auth.can_write
    user = request.user
    return bool(user and user.is_authenticated and user.is_superuser)


class ApiReadAccess(BasePermission):
    """Default of every API view: read only, for staff and API tokens."""

    message = "Reading the API needs a dashboard account (staff or viewer) or an API token."

    def has_permission(self, request, view):
        if request.method not in SAFE_METHODS and hasattr(view, request.method.lower()):
            return False
        # A method the view does not serve falls through to an honest 405.
        return may_read(request)


class ApiWriteAccess(BasePermission):
    """For endpoints that accept writes: reads as `ApiReadAccess`, writes need `can_write` or a superuser."""

    message = "Writing needs an API token with write permission or a superuser."

    def has_permission(self, request, view):
        if request.method in SAFE_METHODS:
            return may_read(request)
        return may_write(request)


class HasIngestKey(BasePermission):
    message = "A valid X-API-Key is required."

    def has_permission(self, request, view):
        return isinstance(request.auth, IngestToken)
