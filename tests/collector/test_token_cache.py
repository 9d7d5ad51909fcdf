"""The cache of recently validated ingest tokens (collector.token_cache): used only when the database is down."""

import pytest
from django.db import OperationalError

from collector import transports
from collector.models import Device, IngestToken
from collector.token_cache import TokenCache, token_cache

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def empty_cache():
    token_cache.clear()
    yield
    token_cache.clear()


def new_token(device=None):
    token = IngestToken(name="t", device=device)
    raw = token.set_new_secret()
    token.save()
    return token, raw


def database_down(monkeypatch):
    def fail(raw):
        raise OperationalError("connection refused")

    monkeypatch.setattr(transports, "authenticate_ingest_token", fail)


async def test_a_token_validated_before_the_outage_is_accepted_during_it(monkeypatch):
    device = await Device.objects.acreate(device_id="shellypro4pm-aabbccddeeff")
    token, raw = await _anew_token(device)
    assert (await transports.authenticate_ingest_token_or_cached(raw)).pk == token.pk
    database_down(monkeypatch)
    cached = await transports.authenticate_ingest_token_or_cached(raw)
    assert cached.pk == token.pk and cached.device.device_id == device.device_id and cached.device_id == device.pk


async def test_an_unseen_token_during_the_outage_raises_the_database_error(monkeypatch):
    database_down(monkeypatch)
    with pytest.raises(OperationalError):
        await transports.authenticate_ingest_token_or_cached("ing_never-seen")


async def test_disabling_or_deleting_a_token_drops_it_from_the_cache(monkeypatch):
    token, raw = await _anew_token()
    other, other_raw = await _anew_token()
    await transports.authenticate_ingest_token_or_cached(raw)
    await transports.authenticate_ingest_token_or_cached(other_raw)
    token.enabled = False
    await token.asave()
    await other.adelete()
    database_down(monkeypatch)
    for secret in (raw, other_raw):
        with pytest.raises(OperationalError):
            await transports.authenticate_ingest_token_or_cached(secret)


async def test_while_the_database_answers_a_disabled_token_is_refused_even_if_cached():
    token, raw = await _anew_token()
    await transports.authenticate_ingest_token_or_cached(raw)
    await IngestToken.objects.filter(pk=token.pk).aupdate(enabled=False)  # no signal: the cache still has it
    assert await transports.authenticate_ingest_token_or_cached(raw) is None


def test_entries_expire(settings):
    settings.COLLECTOR_TOKEN_CACHE_SECONDS = 10
    now = [100.0]
    cache = TokenCache(clock=lambda: now[0])
    token, raw = new_token()
    cache.remember(raw, token)
    assert cache.get(raw).pk == token.pk
    now[0] += 10.5
    assert cache.get(raw) is None


async def _anew_token(device=None):
    from asgiref.sync import sync_to_async

    return await sync_to_async(new_token)(device)
