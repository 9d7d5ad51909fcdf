"""Out-of-range query values are a 400 in the error shape, never a 404 or a 500 (SPEC §9, issue 9)."""

import pytest

from collector.models import Channel, Device
from tests.api_base import *  # noqa: F403

pytestmark = pytest.mark.django_db


@pytest.fixture
def channel(db):
    device = Device.objects.create(device_id="shellypro3em-aabbccddeeff")
    return Channel.objects.create(device=device, key="em:0:a")


@pytest.mark.parametrize(
    "url, params",
    [
        ("/api/v1/energy/summary", {"date": "0001-01-01"}),
        ("/api/v1/energy/summary", {"date": "9999-12-31"}),
        ("/api/v1/power-logs/", {"from": "9999-12-31T23:59:59-14:00"}),
        ("/api/v1/power-logs/", {"to": "0001-01-01T00:00:00+14:00"}),
        ("/api/v1/energy-intervals/", {"from": "9999-12-31T23:59:59-14:00"}),
        ("/api/v1/series/", {"to": "0001-01-01T00:00:01Z"}),
        ("/api/v1/series/", {"from": "9999-12-31T23:59:59-14:00"}),
        ("/api/v1/power-logs/", {"cursor": "forged"}),
        ("/api/v1/power-logs/", {"cursor": "cD05OTk5LTEyLTMx"}),
        ("/api/v1/cycles/", {"cursor": "forged"}),
        ("/api/v1/cycles/", {"cursor": "cD0wMDAxLTAxLTAx"}),
    ],
)
def test_an_out_of_range_query_value_is_a_400_in_the_error_shape(reader_api, channel, url, params):
    if url.endswith(("series/", "summary")) or "power-logs" in url or "intervals" in url:
        params = {"channel": channel.pk, **params}
    response = reader_api.get(url, params)
    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert set(response.json()["error"]) >= {"code", "message"}
