"""The state endpoint HTTP accessory plugins poll (seed 004's option C)."""

import hmac

from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from alerts import services
from alerts.models import AlertRule


def _token(request) -> str:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header.removeprefix("Bearer ").strip()
    return request.GET.get("token", "")


@require_GET
def rule_state(request, slug):
    """`{"state": true}` while the rule has an active alert (`?format=plain`: `1` / `0`); token-protected."""
    rule = AlertRule.objects.filter(slug=slug).first()
    given = _token(request)
    tokens = []
    if rule is not None:
        tokens = [
            str(n.config.get("token", ""))
            for n in rule.notifiers.filter(kind="state_endpoint", enabled=True)
            if n.config.get("token")
        ]
    # Same answer for an unknown rule and a wrong token: the endpoint does not reveal which rules exist.
    if not given or not any(hmac.compare_digest(given.encode(), t.encode()) for t in tokens):
        return JsonResponse(
            {"error": {"code": "not_authenticated", "message": "A valid token is required."}}, status=401
        )
    state = services.rule_state(rule)
    if request.GET.get("format") == "plain":
        return HttpResponse("1" if state else "0", content_type="text/plain")
    return JsonResponse({"state": state})
