"""Recently validated ingest tokens, so devices can reconnect while the database is away (§9 operations).

Only consulted when the database lookup fails: while the database answers it
stays the authority, so a disabled or deleted token is refused at once. An
entry lives COLLECTOR_TOKEN_CACHE_SECONDS after its last successful lookup and
is dropped at once when its token is saved disabled or deleted in this process
(signals below); another process's cache forgets it within the same bound.
The cache keys on the token's SHA-256 (as stored), never on the secret itself.
"""

import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from collector.models import IngestToken, hash_secret


@dataclass(frozen=True)
class CachedToken:
    """What a connection needs of its token (the shape `authenticate_ingest_token` returns)."""

    pk: int
    prefix: str
    device_id: int | None  # the Device pk the token is restricted to, if any
    device_device_id: str | None

    @property
    def device(self):
        return _DeviceRef(self.device_device_id)


@dataclass(frozen=True)
class _DeviceRef:
    device_id: str | None


class TokenCache:
    def __init__(self, clock=time.monotonic):
        self._entries: dict[str, tuple[float, CachedToken]] = {}
        self._lock = threading.Lock()  # filled from database threads, read from the event loop
        self._clock = clock

    @staticmethod
    def ttl() -> float:
        return settings.COLLECTOR_TOKEN_CACHE_SECONDS

    def remember(self, raw: str, token: IngestToken) -> None:
        if self.ttl() <= 0:
            return
        entry = CachedToken(
            pk=token.pk,
            prefix=token.prefix,
            device_id=token.device_id,
            device_device_id=token.device.device_id if token.device_id else None,
        )
        with self._lock:
            self._entries[hash_secret(raw)] = (self._clock() + self.ttl(), entry)

    def get(self, raw: str | None) -> CachedToken | None:
        if not raw:
            return None
        key = hash_secret(raw)
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            expires, entry = found
            if self._clock() >= expires:
                del self._entries[key]
                return None
            return entry

    def forget_token(self, pk: int) -> None:
        with self._lock:
            for key in [k for k, (_, entry) in self._entries.items() if entry.pk == pk]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


token_cache = TokenCache()


@receiver(post_save, sender=IngestToken, dispatch_uid="token_cache_saved")
def _token_saved(sender, instance, **kwargs):
    # Any change (disabled, secret rotated, device restriction changed) drops
    # the entry; an enabled token is cached again at its next lookup.
    token_cache.forget_token(instance.pk)


@receiver(post_delete, sender=IngestToken, dispatch_uid="token_cache_deleted")
def _token_deleted(sender, instance, **kwargs):
    token_cache.forget_token(instance.pk)
