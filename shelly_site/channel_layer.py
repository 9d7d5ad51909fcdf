"""The Redis channel layer, with one fix for a receive that ignored its cancellation.

A receive cancelled within a few milliseconds of its first Redis command
(the connection still being set up, e.g. a dashboard socket refused or
closed at once) could lose the cancellation inside redis-py; channels-redis
then polled Redis forever (BZPOPMIN every 5 s) on behalf of a consumer that
was gone: one leaked task and connection per such socket, and a process
that never finished shutting down. The task still says it is being
cancelled (`Task.cancelling()`), so the next poll honours it.
"""

import asyncio

from channels_redis.core import RedisChannelLayer as BaseRedisChannelLayer


class RedisChannelLayer(BaseRedisChannelLayer):
    async def _brpop_with_clean(self, index, channel, timeout):
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError()
        return await super()._brpop_with_clean(index, channel, timeout)
