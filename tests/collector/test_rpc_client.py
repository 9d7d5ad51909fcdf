"""The RPC client against the simulated 3EM: both request forms, digest auth, retries, errors."""

import random
import socket

import pytest

from collector.rpc_client import (
    AuthenticationFailed,
    ComponentNotFound,
    DeviceUnreachable,
    InvalidArgument,
    MethodNotFound,
    RetryPolicy,
    ShellyRpcClient,
)
from tests.collector.meters import start_meter_fixture  # noqa: F401

FAST_RETRY = RetryPolicy(attempts=3, base_s=0.01, max_s=0.05)


class RecordingSleep:
    def __init__(self):
        self.delays = []

    async def __call__(self, seconds):
        self.delays.append(seconds)


def client_for(meter, **options):
    options.setdefault("timeout_s", 1.0)
    options.setdefault("retry", FAST_RETRY)
    return ShellyRpcClient(meter.address, **options)


async def test_get_returns_the_bare_result(start_meter):
    meter = await start_meter()
    async with client_for(meter) as client:
        status = await client.get_status()
    assert status["emdata:0"]["id"] == 0
    assert status["em:0"]["n_current"] is None


async def test_post_returns_the_envelope_result(start_meter):
    meter = await start_meter()
    async with client_for(meter) as client:
        info = await client.post("Shelly.GetDeviceInfo")
    assert info["id"] == meter.device_id
    assert info["model"] == "SPEM-003CEBEU"


async def test_digest_challenge_and_response_with_the_right_password(start_meter):
    meter = await start_meter(password="s3cret!")
    async with client_for(meter, password="s3cret!") as client:
        first = await client.get_status()
        requests_after_first = len(meter.requests)
        records = await client.emdata_records(since=0)
    assert "em:0" in first
    assert records["data_blocks"]
    # The first call met the challenge (401, then the signed request); later
    # calls reuse it and go through in one request each.
    assert requests_after_first == 2
    assert len(meter.requests) == 3


async def test_device_info_needs_no_password(start_meter):
    meter = await start_meter(password="s3cret!")
    async with client_for(meter) as client:
        info = await client.get_device_info()
    assert info["auth_en"] is True
    assert info["auth_domain"] == meter.device_id


async def test_wrong_password_is_a_clear_error_without_retry_storm(start_meter):
    meter = await start_meter(password="s3cret!")
    sleep = RecordingSleep()
    async with client_for(meter, password="wrong", sleep=sleep) as client:
        with pytest.raises(AuthenticationFailed, match="refused the credentials"):
            await client.get_status()
    # Challenge + one signed attempt; no backoff loop.
    assert len(meter.requests) == 2
    assert sleep.delays == []


async def test_missing_password_on_a_protected_device_is_an_auth_error(start_meter):
    meter = await start_meter(password="s3cret!")
    async with client_for(meter) as client:
        with pytest.raises(AuthenticationFailed):
            await client.post("Shelly.GetStatus")
    assert len(meter.requests) == 1


async def test_5xx_answers_are_retried_with_exponential_backoff(start_meter):
    meter = await start_meter()
    meter.fail_next = 2
    sleep = RecordingSleep()
    retry = RetryPolicy(attempts=4, base_s=0.2, max_s=5.0)
    async with client_for(meter, sleep=sleep, retry=retry) as client:
        status = await client.get_status()
    assert "em:0" in status
    assert len(meter.requests) == 3
    assert len(sleep.delays) == 2
    # base·2^(n-1) with ±50 % jitter: 0.1–0.3 s, then 0.2–0.6 s.
    assert 0.1 <= sleep.delays[0] <= 0.3
    assert 0.2 <= sleep.delays[1] <= 0.6


async def test_timeouts_are_retried_then_reported_as_unreachable(start_meter):
    meter = await start_meter(hang=True)
    sleep = RecordingSleep()
    async with client_for(meter, timeout_s=0.2, sleep=sleep) as client:
        with pytest.raises(DeviceUnreachable, match="no answer within 0.2 s after 3 attempt"):
            await client.get_status()
    assert len(meter.requests) == 3
    assert len(sleep.delays) == 2


async def test_refused_connection_is_unreachable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = ShellyRpcClient(f"127.0.0.1:{port}", timeout_s=0.5, retry=FAST_RETRY)
    async with client:
        with pytest.raises(DeviceUnreachable):
            await client.get_status()
    assert client.attempts_made == 3


async def test_unknown_method_is_method_not_found_on_both_forms(start_meter):
    meter = await start_meter()
    async with client_for(meter) as client:
        with pytest.raises(MethodNotFound, match="No handler for Switch.GetStatus"):
            await client.call("Switch.GetStatus", {"id": 0})
        with pytest.raises(MethodNotFound):
            await client.post("Switch.GetStatus", {"id": 0})
    assert len(meter.requests) == 2  # device errors are not retried


async def test_device_error_codes_become_their_exceptions(start_meter):
    meter = await start_meter()
    async with client_for(meter) as client:
        with pytest.raises(InvalidArgument, match="Missing required 'id'"):
            await client.post("EMData.GetRecords", {})
        with pytest.raises(ComponentNotFound, match="Bad id=7") as caught:
            await client.call("EMData.GetRecords", {"id": 7})
    assert caught.value.code == -105


def test_backoff_grows_and_is_capped():
    policy = RetryPolicy(attempts=10, base_s=0.5, max_s=3.0)
    rng = random.Random(1)
    for attempt, nominal in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (8, 3.0)]:
        delay = policy.delay(attempt, rng)
        assert nominal * 0.5 <= delay <= nominal * 1.5
