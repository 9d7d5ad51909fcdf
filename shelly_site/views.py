import hmac

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from shelly_site.api import errors
from shelly_site.health import health_report
from shelly_site.logging import escape_control_characters
from shelly_site.prometheus import CONTENT_TYPE_LATEST, exposition


def _has_monitoring_token(request) -> bool:
    """No MONITORING_TOKEN: everything is public. Else `Authorization: Bearer <token>` is required."""
    expected = settings.MONITORING_TOKEN
    if not expected:
        return True
    scheme, _space, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected.encode())


@require_GET
def healthz(request):
    healthy, report = health_report()
    status = 200 if healthy else 503
    if not _has_monitoring_token(request):
        # Liveness stays public (a load balancer or uptime probe needs no
        # secret); which devices exist and when they were seen does not.
        public = {"status": report["status"]}
        if not report["checks"]["database"]["ok"]:
            public["reason"] = report["checks"]["database"]["reason"]
        return JsonResponse(public, status=status)
    return JsonResponse(report, status=status)


@require_GET
def metrics(request):
    if not _has_monitoring_token(request):
        response = HttpResponse(_("A monitoring token is required.\n"), status=401, content_type="text/plain")
        response["WWW-Authenticate"] = "Bearer"
        return response
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)


def login_locked_out(request, original_response=None, credentials=None):
    """django-axes' answer to a login while the user and address are locked out (AXES_LOCKOUT_CALLABLE)."""
    minutes = max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60))
    return render(request, "registration/locked_out.html", {"lockout_minutes": minutes}, status=429)


def bad_request(request, exception=None):
    """400; for a host name the server was not told about, say which setting to change."""
    if not isinstance(exception, DisallowedHost):
        return errors.bad_request(request, exception)
    host = escape_control_characters(request.META.get("HTTP_HOST", ""))[:200]
    message = _(
        "This server does not answer to the name “%(host)s”. Its administrator must add it to ALLOWED_HOSTS "
        "(in .env, names separated by commas) and restart the server."
    ) % {"host": host}
    if request.path.startswith(errors.API_PREFIX):
        return errors.error_response("bad_request", message, 400)
    return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
