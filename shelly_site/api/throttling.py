"""Rate limits (rates in settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], env-overridable)."""

from rest_framework.throttling import SimpleRateThrottle


class IngestRateThrottle(SimpleRateThrottle):
    """Batches per ingest key (scope `ingest`): one misbehaving relay cannot starve the others."""

    scope = "ingest"

    def get_cache_key(self, request, view):
        if request.auth is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": f"{type(request.auth).__name__}:{request.auth.pk}"}
