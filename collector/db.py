"""How async code (consumers, the poller) reaches the ORM."""

from channels.db import database_sync_to_async
from django.conf import settings


def run_in_db_thread(func):
    """Wrap a sync ORM function for `await`.

    On PostgreSQL the work goes to a small thread pool, each thread with its
    own connection, so one device's commit (an fsync) never queues every
    other device behind it: with a single shared thread a burst of
    reconnecting devices took seconds to get its first rows in. SQLite has a
    single writer anyway, so there it stays on the one shared thread.
    Connections are checked for age and errors around each call.
    """
    return database_sync_to_async(func, thread_sensitive=not settings.DATABASE_IS_POSTGRES)
