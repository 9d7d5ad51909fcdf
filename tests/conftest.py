import pytest
from django.conf import settings


def pytest_collection_modifyitems(config, items):
    if settings.DATABASE_IS_POSTGRES:
        return
    skip = pytest.mark.skip(reason="PostgreSQL only (run by `make test-postgres`)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _no_database_session_left_open(django_db_setup):
    """Close, before the test database is dropped, the connections other threads still hold.

    Django keeps one connection per thread: the thread pools of async code
    (`run_in_db_thread` on PostgreSQL, asgiref's sync thread, the interval
    writer's thread, the ASGI application in the schema test) each keep theirs
    open after their last test (CONN_MAX_AGE), and dropping the database then
    warns "is being accessed by other users". Requesting `django_db_setup`
    makes this teardown run before the database's.
    """
    yield
    import gc

    from django.db.backends.base.base import BaseDatabaseWrapper

    # type(), not isinstance(): a dead weak proxy among the objects raises on isinstance.
    for wrapper in [obj for obj in gc.get_objects() if issubclass(type(obj), BaseDatabaseWrapper)]:
        if wrapper.connection is None:
            continue
        try:
            # The driver's connection, not wrapper.close(): that one refuses a
            # call from a thread other than its owner's, and the owner is idle.
            wrapper.connection.close()
        except Exception:  # already broken: nothing left to close
            pass
        wrapper.connection = None


@pytest.fixture(autouse=True)
def _default_language():
    """A request with Accept-Language: fr leaves French active in the test thread; each test starts in English."""
    from django.utils import translation

    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _fresh_alert_engine():
    """The alert engine keeps rules and states in memory: each test starts with one that knows nothing."""
    from alerts import engine

    engine.reset()
    yield
    engine.engine.drain()
    engine.reset()


@pytest.fixture(autouse=True)
def _no_failed_authentications_carried_over():
    # Failed authentications are counted per client address in the cache:
    # every test client is 127.0.0.1, so one test's bad tokens must not
    # throttle the next test.
    from django.core.cache import cache

    cache.clear()
    yield
