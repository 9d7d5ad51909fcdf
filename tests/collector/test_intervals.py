"""EMData paging from the device cursor into EnergyInterval rows, against the simulated 3EM."""

from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db.models import Count, Sum

from collector.intervals import DataSource, backfill_previous_day, pull_intervals, rows_from_data
from collector.models import Device, EnergyInterval, Transport
from collector.rpc_client import RetryPolicy, ShellyRpcClient
from tests.collector.meters import FakeClock, start_meter_fixture  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

NOW = 1_707_357_600  # 2024-02-08 02:00 Europe/Paris, a minute boundary
HOUR = 3600


def at(ts):
    return datetime.fromtimestamp(ts, tz=UTC)


@sync_to_async
def polled_device(meter, **fields):
    return Device.objects.create(
        device_id=meter.device_id,
        transport=Transport.RPC_POLL,
        host=meter.address,
        profile=meter.profile,
        **fields,
    )


@sync_to_async
def reload(device):
    device.refresh_from_db()
    return device


@sync_to_async
def sums_by_channel(**filters):
    rows = EnergyInterval.objects.filter(**filters).values("channel__key")
    return {
        r["channel__key"]: r
        for r in rows.annotate(
            energy=Sum("energy_wh"),
            returned=Sum("returned_energy_wh"),
            n=Count("id"),
            starts=Count("start", distinct=True),
        )
    }


@sync_to_async
def interval_count(**filters):
    return EnergyInterval.objects.filter(**filters).count()


async def pull(meter, device, **options):
    async with ShellyRpcClient(meter.address, timeout_s=2, retry=RetryPolicy(attempts=1)) as client:
        return await pull_intervals(client, device, **options)


async def test_paging_follows_next_record_ts_across_chunks(start_meter):
    meter = await start_meter(clock=FakeClock(NOW), history_s=HOUR, chunk_records=25)
    device = await polled_device(meter)
    result = await pull(meter, device)
    assert (result.records, result.pages, result.blocks) == (60, 3, 1)
    assert result.inserted == 60 * 4
    assert (await reload(device)).last_interval_end == at(NOW)
    assert await interval_count(channel__key="em:0:total") == 60


async def test_power_loss_gives_two_blocks_and_nothing_in_the_gap(start_meter):
    outage = (NOW - 40 * 60, NOW - 30 * 60)
    meter = await start_meter(clock=FakeClock(NOW), history_s=HOUR, chunk_records=200, power_losses=[outage])
    device = await polled_device(meter)
    result = await pull(meter, device)
    assert (result.blocks, result.records) == (2, 50)
    assert await interval_count(start__gte=at(outage[0]), start__lt=at(outage[1])) == 0
    assert await interval_count(channel__key="em:0:a") == 50


async def test_rerunning_the_same_pull_writes_nothing_new(start_meter):
    meter = await start_meter(clock=FakeClock(NOW), history_s=HOUR, chunk_records=40)
    device = await polled_device(meter)
    first = await pull(meter, device)
    from_cursor = await pull(meter, device)
    same_range = await pull(meter, device, since=at(NOW - HOUR))
    assert first.inserted == 240
    assert from_cursor.records == 0 and from_cursor.written == 0
    assert same_range.records == 60 and same_range.written == 0 and same_range.unchanged == 240
    assert await interval_count() == 240


async def test_collector_down_six_hours_catches_up_every_minute_once(start_meter):
    clock = FakeClock(NOW - 6 * HOUR)
    meter = await start_meter(clock=clock, history_s=HOUR, chunk_records=120)
    device = await polled_device(meter)
    await pull(meter, device)
    clock.advance(6 * HOUR)  # the collector is down; the meter keeps recording
    result = await pull(meter, device)
    assert result.records == 360 and result.pages == 3
    after_downtime = await sums_by_channel(start__gte=at(NOW - 6 * HOUR))
    assert set(after_downtime) == {"em:0:a", "em:0:b", "em:0:c", "em:0:total"}
    for channel in after_downtime.values():
        assert channel["n"] == channel["starts"] == 360  # every minute, none twice
    assert (await reload(device)).last_interval_end == at(NOW)


async def test_interval_energy_sum_equals_the_simulator_energy_truth(start_meter):
    clock = FakeClock(NOW)
    meter = await start_meter(clock=clock, history_s=2 * HOUR, power_losses=[(NOW - HOUR, NOW - HOUR + 300)])
    device = await polled_device(meter)
    await pull(meter, device)
    clock.advance(HOUR)
    await pull(meter, device)
    sums = await sums_by_channel()
    start, end = NOW - 2 * HOUR, NOW + HOUR
    tolerance = 175 * 5e-5 * 3  # per-record rounding to 4 decimals
    for phase in ("a", "b", "c", "total"):
        channel = sums[f"em:0:{phase}"]
        assert channel["n"] == 175
        assert channel["energy"] == pytest.approx(meter.load.energy_wh(start, end, phase), abs=tolerance)
        truth_returned = meter.load.energy_wh(start, end, phase, returned=True)
        assert channel["returned"] == pytest.approx(truth_returned, abs=tolerance)
    assert sums["em:0:c"]["returned"] > 0  # phase c exports part of the time


async def test_backfill_refills_yesterday_and_never_moves_the_cursor_back(start_meter):
    meter = await start_meter(clock=FakeClock(NOW), history_s=27 * HOUR, chunk_records=500)
    device = await polled_device(meter)
    await pull(meter, device)
    yesterday_noon = datetime(2024, 2, 7, 11, 0, tzinfo=UTC)  # 12:00 in Paris
    deleted, _ = await sync_to_async(
        EnergyInterval.objects.filter(start__gte=yesterday_noon, start__lt=yesterday_noon + timedelta(hours=1)).delete
    )()
    assert deleted == 60 * 4
    result = await backfill_previous_day(ShellyRpcClient(meter.address, timeout_s=2), await reload(device), now=at(NOW))
    assert result.records == 24 * 60
    assert result.inserted == 60 * 4 and result.unchanged == (24 * 60 - 60) * 4
    assert await interval_count(start__gte=yesterday_noon, start__lt=yesterday_noon + timedelta(hours=1)) == 240
    assert (await reload(device)).last_interval_end == at(NOW)


async def test_monophase_records_go_to_em1_channels(start_meter):
    meter = await start_meter(clock=FakeClock(NOW), history_s=HOUR, profile="monophase")
    device = await polled_device(meter)
    result = await pull(meter, device)
    assert result.records == 3 * 60
    sums = await sums_by_channel()
    assert set(sums) == {"em1:0", "em1:1", "em1:2"}
    assert sums["em1:0"]["energy"] == pytest.approx(meter.load.energy_wh(NOW - HOUR, NOW, "a"), abs=0.01)


def test_record_with_wrong_column_count_is_skipped_not_stored_as_zero():
    answer = {"keys": ["a_total_act_energy"], "data": [{"ts": NOW, "period": 60, "values": [[1.0, 2.0]]}]}
    rows, used, skipped = rows_from_data(DataSource("EMData", 0), answer, since=0, until=None)
    assert (rows, used, skipped) == ([], 0, 1)
