"""Live polling of simulated meters: samples, device info, health, cadence with a dead meter."""

import asyncio
import copy
from datetime import UTC, datetime

import pytest
from asgiref.sync import sync_to_async

from collector import services
from collector.models import Channel, Device, PowerLog, Transport
from collector.parsing import samples_from_status
from collector.polling import DevicePoller, Poller, PollSettings
from tests.collector.meters import PRO3EM_FIXTURE, real_fixture, start_meter_fixture  # noqa: F401

NOW = datetime(2024, 2, 7, 17, 28, 47, tzinfo=UTC)


def fast_settings(**overrides):
    values = {"live_s": 0.3, "interval_s": 60, "timeout_s": 0.5, "backfill": False}
    values.update(overrides)
    return PollSettings(**values)


@sync_to_async
def env_device(meter, password=""):
    return services.ensure_device_from_env(host=meter.address, password=password)


@sync_to_async
def reload(device):
    return Device.objects.get(pk=device.pk)


def test_real_pro3em_dump_gives_the_four_channels_with_their_values():
    status = real_fixture(PRO3EM_FIXTURE)["status"]
    samples = {s.channel_key: s for s in samples_from_status("shellypro3em-aabbccddeeff", status, NOW)}
    assert set(samples) == {"em:0:a", "em:0:b", "em:0:c", "em:0:total"}
    a, total = samples["em:0:a"], samples["em:0:total"]
    assert (a.apower_w, a.voltage_v, a.current_a, a.pf, a.freq) == (375.5, 229.0, 2.392, 0.76, 50.0)
    assert a.energy_total_wh == 2034616.71 and a.returned_energy_wh == 0.0
    assert samples["em:0:c"].returned_energy_wh == 985.91
    # n_current is null (no neutral CT): the total carries no made-up value.
    assert (total.apower_w, total.current_a, total.voltage_v) == (558.965, 3.856, None)
    assert total.energy_total_wh == 2589773.39 and total.returned_energy_wh == 1026.61


def test_negative_power_factor_is_accepted():
    status = copy.deepcopy(real_fixture(PRO3EM_FIXTURE)["status"])
    status["em:0"]["b_pf"] = -0.93
    samples = {s.channel_key: s for s in samples_from_status("shellypro3em-aabbccddeeff", status, NOW)}
    assert samples["em:0:b"].pf == -0.93


@pytest.mark.django_db(transaction=True)
async def test_first_poll_fills_device_info_and_stores_the_four_channels(start_meter):
    meter = await start_meter()
    device = await env_device(meter)
    assert device.device_id == f"rpc-{meter.address}"
    poller = DevicePoller(device, fast_settings())
    assert await poller.poll_live()
    await poller.client.aclose()
    device = await reload(device)
    assert device.device_id == meter.device_id  # renamed to the id the meter reports
    assert (device.model, device.generation, device.profile) == ("SPEM-003CEBEU", 2, "triphase")
    assert device.mac == meter.mac and device.firmware.endswith("1.1.0-g34b5d4f")
    assert device.last_live_poll_at is not None and device.consecutive_failures == 0
    keys = await sync_to_async(lambda: sorted(PowerLog.objects.values_list("channel__key", flat=True)))()
    assert keys == ["em:0:a", "em:0:b", "em:0:c", "em:0:total"]
    policies = await sync_to_async(lambda: set(Channel.objects.values_list("policy", flat=True)))()
    assert policies == {"every"}


@pytest.mark.django_db(transaction=True)
async def test_wrong_password_is_recorded_as_a_clear_error(start_meter):
    meter = await start_meter(password="right")
    device = await env_device(meter, password="wrong")
    poller = DevicePoller(device, fast_settings())
    assert not await poller.poll_live()
    assert not await poller.poll_live()
    await poller.client.aclose()
    device = await reload(device)
    assert device.consecutive_failures == 2
    assert "refused the credentials" in device.last_error
    assert len(meter.requests) == 1 + 2 * 2  # device info once, then challenge + signed try per poll


@pytest.mark.django_db(transaction=True)
async def test_recovery_after_failures_triggers_a_catch_up_pull(start_meter):
    meter = await start_meter(history_s=600)
    device = await env_device(meter)
    poller = DevicePoller(device, fast_settings(timeout_s=0.2))
    meter.hang = True
    assert not await poller.poll_live()
    meter.hang = False
    assert await poller.poll_live()
    assert poller.pull_now.is_set()
    result = await poller.pull_intervals()  # after refresh of the info on the next poll
    assert result is None and poller.needs_info
    assert await poller.poll_live()
    result = await poller.pull_intervals()
    await poller.client.aclose()
    assert result.records >= 9
    assert (await reload(device)).consecutive_failures == 0


@pytest.mark.django_db(transaction=True)
async def test_dead_meter_does_not_delay_the_others(start_meter):
    healthy = [await start_meter(index=1), await start_meter(index=2)]
    dead = await start_meter(index=3, hang=True)
    for meter in [*healthy, dead]:
        await env_device(meter)
    period = 0.3
    poller = Poller(fast_settings(live_s=period, timeout_s=0.5), refresh_s=60)
    stop = asyncio.Event()
    runner = asyncio.create_task(poller.run(stop))
    await asyncio.sleep(3.3)
    stop.set()
    await runner
    stats = poller.all_stats()
    dead_stats = stats[f"rpc-{dead.address}"]  # never answered: it keeps its placeholder id
    assert dead_stats.polls_ok == 0 and dead_stats.polls_failed >= 1
    for meter in healthy:
        s = stats[meter.device_id]
        # Counts, not clock readings (the suite shares two cores): a healthy
        # meter polled in step with a meter that hangs on every poll would
        # answer at most as often as the dead one was tried. Its own pace is
        # measured by bench/poll.py.
        assert s.polls_ok > dead_stats.polls_failed, (s, dead_stats)
        assert s.polls_ok >= 2, s
        # In order: every poll of this meter came after the one before.
        assert list(s.poll_times) == sorted(s.poll_times)
    dead_device = await sync_to_async(Device.objects.get)(host=dead.address)
    assert dead_device.consecutive_failures >= 1 and "no answer" in dead_device.last_error


@pytest.mark.django_db(transaction=True)
async def test_shelly_host_device_is_created_once_and_updated():
    first = await sync_to_async(services.ensure_device_from_env)(host="127.0.0.1:9", password="a")
    again = await sync_to_async(services.ensure_device_from_env)(host="127.0.0.1:9", password="b")
    assert first.pk == again.pk and again.password == "b" and again.transport == Transport.RPC_POLL
    assert await sync_to_async(Device.objects.count)() == 1


@pytest.mark.django_db(transaction=True)
async def test_device_without_emdata_is_not_a_failing_device(start_meter):
    meter = await start_meter(profile="monophase")
    device = await env_device(meter)
    poller = DevicePoller(device, fast_settings())
    poller.needs_info = False
    poller.device.profile = "triphase"  # as if the meter had been switched since
    assert await poller.pull_intervals() is None
    requests = len(meter.requests)
    assert await poller.pull_intervals() is None  # not asked again for the same profile
    await poller.client.aclose()
    assert len(meter.requests) == requests
    assert (await reload(device)).consecutive_failures == 0 and not poller.failing
