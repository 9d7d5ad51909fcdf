"""The API root: every named endpoint of /api/v1, found from the URL patterns themselves."""

import re

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

# A router's detail routes and format suffixes are reachable from their list.
SKIPPED_SUFFIXES = ("-detail",)
PARAMETER = re.compile(r"\(\?P<(\w+)>[^)]*\)")


def _template(pattern) -> str:
    """`^channels/(?P<channel_id>[0-9]+)/config-versions/?$` → `channels/{channel_id}/config-versions/`."""
    text = str(pattern.pattern)
    text = text.removeprefix("^").removesuffix("$").replace("/?", "/")
    text = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", PARAMETER.sub(r"{\1}", text))
    return text.replace("\\.", ".")


def endpoint_templates(patterns) -> dict[str, str]:
    """Named patterns → their path under /api/v1/, without detail and format-suffix variants."""
    endpoints = {}
    for pattern in patterns:
        name = getattr(pattern, "name", None)
        if not name or name == "root" or name.endswith(SKIPPED_SUFFIXES) or name in endpoints:
            continue
        template = _template(pattern)
        if "{format}" in template:
            continue
        endpoints[name] = template
    return endpoints


class ApiRootView(APIView):
    """Every endpoint of this API, by name, as an absolute URL (or a URL template with `{id}` parts)."""

    @extend_schema(responses={200: {"type": "object", "additionalProperties": {"type": "string"}}})
    def get(self, request):
        from shelly_site.api.urls import urlpatterns

        base = request.build_absolute_uri("/api/v1/")
        return Response({name: base + path for name, path in sorted(endpoint_templates(urlpatterns).items())})
