"""Who is calling: API tools (`ApiToken`) and queue relays (`IngestToken`).

Tokens are stored hashed; `Model.objects.matching(raw)` looks the SHA-256 up
on its unique index. `last_used_at` is written at most once a minute per
token, so a busy relay does not turn every request into an UPDATE.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from collector.models import ApiToken, IngestToken
from collector.services import mark_token_used
from shelly_site.api.throttling import failed_auth, request_address


def _not_blocked(request) -> None:
    wait = failed_auth.blocked(request_address(request))
    if wait is not None:
        raise exceptions.Throttled(wait=wait, detail="Too many failed authentications from this address.")


def _failed(request, message: str):
    failed_auth.failed(request_address(request))
    return exceptions.AuthenticationFailed(message)


class TokenClient:
    """The caller of a token with no user: authenticated, never staff."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, token):
        self.token = token
        self.username = f"token:{token.prefix}"

    def __str__(self):
        return self.username

    def has_perm(self, perm, obj=None):
        return False


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Token <raw>` (or `Bearer <raw>`) → the token's user, or a `TokenClient`."""

    keywords = ("token", "bearer")

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].decode(errors="replace").lower() not in self.keywords:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header: expected 'Token <secret>'.")
        _not_blocked(request)
        try:
            raw = parts[1].decode()
        except UnicodeDecodeError:
            raise _failed(request, "Invalid token.") from None
        token = ApiToken.objects.matching(raw).select_related("user").first()
        if token is None or (token.user is not None and not token.user.is_active):
            raise _failed(request, "Invalid token.")
        mark_token_used(token)
        return (token.user or TokenClient(token), token)

    def authenticate_header(self, request):
        # Makes DRF answer 401 (not 403) to a request without credentials.
        return 'Token realm="api"'


class IngestKeyAuthentication(authentication.BaseAuthentication):
    """`X-API-Key: <raw>` of an `IngestToken` (the device/relay secret)."""

    header = "HTTP_X_API_KEY"

    def authenticate(self, request):
        raw = request.META.get(self.header)
        if not raw:
            raise exceptions.NotAuthenticated("Missing X-API-Key header.")
        _not_blocked(request)
        token = IngestToken.objects.matching(raw).select_related("device").first()
        if token is None:
            raise _failed(request, "Invalid API key.")
        mark_token_used(token)
        return (TokenClient(token), token)

    def authenticate_header(self, request):
        return 'X-API-Key realm="ingest"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = ApiTokenAuthentication
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <secret>` (or `Bearer <secret>`) of an API token created in the admin.",
        }


class IngestKeyScheme(OpenApiAuthenticationExtension):
    target_class = IngestKeyAuthentication
    name = "ingestKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "Secret of an ingest token (the same one a device uses in its WebSocket URL).",
        }
