import pytest
from django.conf import settings


def pytest_collection_modifyitems(config, items):
    if settings.DATABASE_IS_POSTGRES:
        return
    skip = pytest.mark.skip(reason="PostgreSQL only (run by `make test-postgres`)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)
