"""Rate limits (rates in settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], env-overridable)."""

from rest_framework.throttling import SimpleRateThrottle


class IngestRateThrottle(SimpleRateThrottle):
    """Batches per ingest key (scope `ingest`): one misbehaving relay cannot starve the others."""

    scope = "ingest"

    def get_cache_key(self, request, view):
        if request.auth is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": f"{type(request.auth).__name__}:{request.auth.pk}"}


class FailedAuthLimiter:
    """Failed authentications per client address (API tokens, ingest keys, device WebSocket tokens).

    DRF checks permissions before throttles, so a guessed token meets a 401
    and never the anonymous rate: without this, tokens could be tried as fast
    as the server answers. Counted in the default cache (per process unless
    it is shared); a blocked address gets a 429 (WebSocket: close 4429) until
    its window ends, whatever token it sends.
    """

    cache_prefix = "failed-auth:"

    def _rate(self):
        from django.conf import settings

        rate = settings.API_THROTTLE_FAILED_AUTH
        if not rate:
            return None
        return SimpleRateThrottle.parse_rate(None, rate)

    def blocked(self, address: str | None) -> float | None:
        """Seconds to wait when this address is over its limit, else None."""
        from django.core.cache import cache

        rate = self._rate()
        if rate is None or not address:
            return None
        limit, window = rate
        count = cache.get(self.cache_prefix + address, 0)
        return float(window) if count >= limit else None

    def failed(self, address: str | None) -> None:
        from django.core.cache import cache

        rate = self._rate()
        if rate is None or not address:
            return
        key = self.cache_prefix + address
        cache.add(key, 0, timeout=rate[1])
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=rate[1])


failed_auth = FailedAuthLimiter()


def request_address(request) -> str | None:
    return request.META.get("REMOTE_ADDR")
