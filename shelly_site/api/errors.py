"""One error shape for the whole API: `{"error": {"code", "message", "details"?}}`.

DRF exceptions go through `api_exception_handler`; anything unexpected is
logged and answered with a bare 500 in the same shape (never a traceback or
SQL). Django's own 404/500 pages (an unknown URL under /api/) are answered in
JSON by `page_not_found` / `server_error`, wired as handler404/handler500.
"""

import logging

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import set_rollback

log = logging.getLogger(__name__)

API_PREFIX = "/api/"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "payload_too_large"


def error_body(code: str, message: str, details=None) -> dict:
    error = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def _message_and_details(exc: exceptions.APIException):
    detail = exc.detail
    if isinstance(detail, dict | list):
        # Field errors (a serializer or a filter): the summary goes to
        # `message`, the per-field list to `details`.
        return "Invalid request.", detail
    return str(detail), None


def _code(exc: exceptions.APIException) -> str:
    codes = exc.get_codes()
    if isinstance(codes, str):
        return codes
    return "invalid" if isinstance(exc, exceptions.ValidationError) else exc.default_code


def _answer_in_json(context) -> None:
    # Whatever the view renders (YAML schema, CSV, HTML), an error is JSON.
    request = context.get("request")
    if request is not None:
        request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type


def api_exception_handler(exc, context):
    _answer_in_json(context)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        # Django's DATA_UPLOAD_MAX_MEMORY_SIZE fired while DRF read the body.
        exc = PayloadTooLarge()

    if isinstance(exc, (OperationalError, InterfaceError)):
        # The database is unreachable (restart, outage): a relay should retry
        # later, and the client sees no driver message.
        log.warning("API request while the database is unreachable", extra={"event": "api_database_down"})
        set_rollback()
        return Response(
            error_body("database_unavailable", "The database is unreachable; retry later."),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "10"},
        )
    if not isinstance(exc, exceptions.APIException):
        view = context.get("view")
        log.exception("unhandled API error", extra={"event": "api_error", "view": type(view).__name__})
        set_rollback()
        return Response(
            error_body("server_error", "Internal server error."), status=status.HTTP_500_INTERNAL_SERVER_ERROR
        )

    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    message, details = _message_and_details(exc)
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        headers["Retry-After"] = str(int(exc.wait))
        details = {"retry_after_s": int(exc.wait)}
    set_rollback()
    return Response(error_body(_code(exc), message, details), status=exc.status_code, headers=headers)


def error_response(code: str, message: str, status_code: int, details=None) -> JsonResponse:
    return JsonResponse(error_body(code, message, details), status=status_code)


def _is_api(request) -> bool:
    return request.path.startswith(API_PREFIX)


def page_not_found(request, exception=None):
    if _is_api(request):
        return error_response("not_found", "Not found.", 404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        return error_response("server_error", "Internal server error.", 500)
    return defaults.server_error(request)


def bad_request(request, exception=None):
    if _is_api(request):
        return error_response("bad_request", "Bad request.", 400)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if _is_api(request):
        return error_response("permission_denied", "You do not have permission to perform this action.", 403)
    return defaults.permission_denied(request, exception)
