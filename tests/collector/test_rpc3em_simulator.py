"""The simulated 3EM speaks the real device's shapes and is accepted by aioshelly."""

import aiohttp
import httpx
import pytest
from aioshelly.common import ConnectionOptions, get_info
from aioshelly.rpc_device import RpcDevice

from collector.simulators.rpc3em import EMDATA_KEYS, RECORD_PERIOD_S, MeterLoad
from tests.collector.meters import FakeClock, real_fixture, start_meter_fixture  # noqa: F401

NOW = 1_707_326_940  # a minute boundary


def type_names(component: dict) -> dict:
    return {key: type(value).__name__ for key, value in component.items()}


async def get_json(meter, path, **params):
    async with httpx.AsyncClient(base_url=f"http://{meter.address}") as client:
        response = await client.get(path, params=params)
    return response


async def test_status_has_the_real_pro3em_field_names_and_types(start_meter):
    real = real_fixture("aioshelly_pro3em_SPEM-003CEBEU_fw1.1.0_full.json")
    meter = await start_meter()
    status = (await get_json(meter, "/rpc/Shelly.GetStatus")).json()
    for component in ("em:0", "emdata:0", "temperature:0"):
        assert type_names(status[component]) == type_names(real["status"][component]), component
    assert set(real["status"]["sys"]) <= set(status["sys"])
    assert set(real["status"]) <= set(status)


async def test_device_info_has_the_real_fields(start_meter):
    real = real_fixture("aioshelly_pro3em_SPEM-003CEBEU_fw1.1.0_full.json")["shelly"]
    meter = await start_meter()
    info = (await get_json(meter, "/shelly")).json()
    assert type_names(info) == type_names(real) | {"auth_domain": "NoneType"}
    assert info["id"] == meter.device_id and info["profile"] == "triphase"


async def test_negative_power_exports_with_negative_pf():
    load = MeterLoad(origin_ts=NOW, seed=1)
    steps = [load.step_power(i)["c"] for i in range(0, 720)]
    assert min(steps) < 0 < max(steps)
    assert load.power_factor("c", -50.0) < 0
    assert load.energy_wh(NOW, NOW + 7200, "c", returned=True) > 0


async def test_getdata_is_chunked_with_next_record_ts(start_meter):
    clock = FakeClock(NOW)
    meter = await start_meter(clock=clock, history_s=3600, chunk_records=25)
    first = (await get_json(meter, "/rpc/EMData.GetData", id=0, ts=0)).json()
    assert first["keys"] == EMDATA_KEYS and len(EMDATA_KEYS) == 51
    assert len(first["data"]) == 1 and first["data"][0]["period"] == 60
    assert len(first["data"][0]["values"]) == 25
    assert all(len(row) == 51 for row in first["data"][0]["values"])
    assert first["next_record_ts"] == first["data"][0]["ts"] + 25 * RECORD_PERIOD_S
    last = (await get_json(meter, "/rpc/EMData.GetData", id=0, ts=NOW - 5 * 60)).json()
    assert "next_record_ts" not in last
    # The last record is the last complete minute.
    assert last["data"][-1]["ts"] + len(last["data"][-1]["values"]) * 60 - 60 == NOW - 60


async def test_power_loss_splits_history_into_two_blocks(start_meter):
    clock = FakeClock(NOW)
    outage = (NOW - 1800, NOW - 1500)
    meter = await start_meter(clock=clock, history_s=3600, power_losses=[outage])
    records = (await get_json(meter, "/rpc/EMData.GetRecords", id=0)).json()
    blocks = records["data_blocks"]
    assert [b["ts"] for b in blocks] == [NOW - 3600, NOW - 1500]
    assert [b["records"] for b in blocks] == [30, 25]
    data = (await get_json(meter, "/rpc/EMData.GetData", id=0, ts=NOW - 1900, end_ts=NOW - 1200)).json()
    assert [item["ts"] for item in data["data"]] == [NOW - 1920 + 60, NOW - 1500]


async def test_record_energies_add_up_to_the_energy_truth():
    load = MeterLoad(origin_ts=NOW - 3600, seed=3)
    minutes = list(load.record_minutes(NOW))
    for phase in "abc":
        stored = sum(load.record(ts)[f"{phase}_total_act_energy"] for ts in minutes)
        assert stored == pytest.approx(load.energy_wh(NOW - 3600, NOW, phase), abs=len(minutes) * 5e-5)


async def test_status_counters_grow_by_the_energy_truth(start_meter):
    clock = FakeClock(NOW)
    meter = await start_meter(clock=clock)
    before = (await get_json(meter, "/rpc/Shelly.GetStatus")).json()["emdata:0"]
    clock.advance(600)
    after = (await get_json(meter, "/rpc/Shelly.GetStatus")).json()["emdata:0"]
    assert after["total_act"] - before["total_act"] == pytest.approx(meter.load.energy_wh(NOW, NOW + 600), abs=0.02)


async def test_csv_download_has_the_real_header(start_meter):
    meter = await start_meter(clock=FakeClock(NOW), history_s=600)
    response = await get_json(meter, "/emdata/0/data.csv", add_keys="true", ts=0)
    lines = response.text.strip().splitlines()
    assert lines[0].split(",") == ["timestamp", *EMDATA_KEYS]
    assert len(lines) == 11
    assert len(lines[1].split(",")) == 52


async def test_monophase_profile_serves_em1_channels(start_meter):
    meter = await start_meter(profile="monophase")
    status = (await get_json(meter, "/rpc/Shelly.GetStatus")).json()
    assert {"em1:0", "em1:1", "em1:2", "em1data:0"} <= set(status) and "em:0" not in status
    assert set(status["em1:0"]) == {"id", "current", "voltage", "act_power", "aprt_power", "pf", "freq", "calibration"}
    missing = await get_json(meter, "/rpc/EMData.GetRecords", id=0)
    assert missing.status_code == 404


@pytest.mark.parametrize("password", ["", "s3cret!"])
async def test_aioshelly_reads_device_info_and_status(start_meter, password):
    meter = await start_meter(password=password)
    async with aiohttp.ClientSession() as session:
        info = await get_info(session, "127.0.0.1", port=meter.port)
        options = ConnectionOptions("127.0.0.1", "admin" if password else None, password or None, port=meter.port)
        device = await RpcDevice.create(session, None, options)
        try:
            await device.initialize()
            assert device.initialized
            status, shelly, model = device.status, device.shelly, device.model
        finally:
            await device.shutdown()
    assert info["id"] == meter.device_id
    assert shelly["model"] == model == "SPEM-003CEBEU"
    assert status["em:0"]["total_act_power"] == pytest.approx(
        sum(status["em:0"][f"{p}_act_power"] for p in "abc"), abs=0.01
    )
    assert "total_act" in status["emdata:0"]
