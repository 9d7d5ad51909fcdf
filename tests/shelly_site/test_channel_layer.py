"""The Redis channel layer honours a receive cancelled while its first Redis command is under way."""

import asyncio

import pytest
from django.conf import settings

from shelly_site.channel_layer import RedisChannelLayer

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs the real Redis of the PostgreSQL + Redis half")

ATTEMPTS = 24


def test_a_receive_cancelled_at_once_ends_instead_of_polling_redis_forever():
    async def cancel_early_receives() -> list[str]:
        layer = RedisChannelLayer(**settings.CHANNEL_LAYERS["default"]["CONFIG"])
        outcomes = []
        try:
            for attempt in range(ATTEMPTS):
                channel = await layer.new_channel()
                receive = asyncio.create_task(layer.receive(channel))
                # Cancel at different points of the connection setup and the first BZPOPMIN.
                await asyncio.sleep(attempt * 0.0005)
                receive.cancel()
                # A stuck receive blocks 5 s per poll, forever: 10 s is a bound, not a timing.
                done, _ = await asyncio.wait({receive}, timeout=10)
                outcomes.append("ended" if done else "still polling")
                if not done:
                    break
        finally:
            await layer.flush()
            await layer.close_pools()
        return outcomes

    outcomes = asyncio.run(cancel_early_receives())
    assert outcomes == ["ended"] * ATTEMPTS
