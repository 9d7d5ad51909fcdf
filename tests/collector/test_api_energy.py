"""/api/v1/energy-intervals and /api/v1/energy/summary."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from collector.energy import period_bounds
from collector.models import Channel, Device, EnergyInterval, Transport
from configs.models import Tariff
from tests.api_base import *  # noqa: F403

pytestmark = pytest.mark.django_db
PARIS = ZoneInfo("Europe/Paris")
METER = "shellypro3em-34987a670001"
PEAK_OFFPEAK = {
    "periods": [
        {"name": "peak", "days": "all", "start": "07:00", "end": "23:00", "price_per_kwh": 0.30},
        {"name": "off-peak", "days": "all", "start": "23:00", "end": "07:00", "price_per_kwh": 0.20},
    ],
    "standing_charge_per_day": 0.5,
}


def meter_minutes(first_local: datetime, minutes: int, *, wh=(10.0, 5.0, 2.5)):
    """A polled 3EM with `minutes` 1-minute intervals from `first_local` (Paris time)."""
    device, _ = Device.objects.get_or_create(device_id=METER, defaults={"transport": Transport.RPC_POLL})
    channels = {
        key: Channel.objects.get_or_create(device=device, key=key, defaults={"policy": "every"})[0]
        for key in ("em:0:a", "em:0:b", "em:0:c", "em:0:total")
    }
    rows = []
    for n in range(minutes):
        start = (first_local + timedelta(minutes=n)).astimezone(ZoneInfo("UTC"))
        for key, energy in zip(("em:0:a", "em:0:b", "em:0:c", "em:0:total"), (*wh, sum(wh)), strict=True):
            rows.append(
                EnergyInterval(
                    device=device,
                    channel=channels[key],
                    start=start,
                    end=start + timedelta(minutes=1),
                    energy_wh=energy,
                    returned_energy_wh=0.0,
                    avg_power_w=energy * 60,
                    meta={"max_act_power": energy * 70},
                )
            )
    EnergyInterval.objects.bulk_create(rows)
    return device


def test_staff_lists_intervals_filtered_by_channel_and_time(staff_api):
    meter_minutes(datetime(2024, 3, 5, 10, 0, tzinfo=PARIS), 10)
    response = staff_api.get(
        "/api/v1/energy-intervals/",
        {"channel_key": "em:0:a", "from": "2024-03-05T09:02:00Z", "to": "2024-03-05T09:05:00Z"},
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["start"] for r in results] == [f"2024-03-05T10:0{m}:00+01:00" for m in (2, 3, 4)]
    assert results[0]["device"] == METER and results[0]["energy_wh"] == 10.0
    assert results[0]["meta"] == {"max_act_power": 700.0}


def test_intervals_path_without_slash_and_csv(reader_api):
    meter_minutes(datetime(2024, 3, 5, 10, 0, tzinfo=PARIS), 2)
    response = reader_api.get("/api/v1/energy-intervals", {"channel_key": "em:0:total", "format": "csv"})
    assert response.status_code == 200
    lines = b"".join(response.streaming_content).decode().strip().splitlines()
    assert lines[0] == "start_iso,end_iso,device_id,channel,energy_Wh,returned_energy_Wh,avg_power_W"
    assert lines[1].split(",")[2:] == [METER, "em:0:total", "17.5", "0.0", "1050.0"]
    assert len(lines) == 3


def test_intervals_need_read_access(anonymous_api, outsider_api):
    assert anonymous_api.get("/api/v1/energy-intervals/").status_code == 401
    assert outsider_api.get("/api/v1/energy-intervals/").status_code == 403
    assert outsider_api.get("/api/v1/energy/summary", {"device": METER}).status_code == 403


def test_day_summary_gives_kwh_per_phase_and_total_without_tariff(staff_api):
    meter_minutes(datetime(2024, 3, 5, 23, 50, tzinfo=PARIS), 20)  # 10 minutes run into the next day
    response = staff_api.get("/api/v1/energy/summary", {"device": METER, "period": "day", "date": "2024-03-05"})
    assert response.status_code == 200
    body = response.json()
    assert body["channels"]["em:0:a"] == {"energy_kwh": 0.1, "returned_kwh": 0.0, "intervals": 10}
    assert body["total"]["energy_kwh"] == pytest.approx(0.175)
    assert body["cost"] is None and body["cost_note"] == "no tariff configured"
    assert body["start"] == "2024-03-05T00:00:00+01:00" and body["end"] == "2024-03-06T00:00:00+01:00"


def test_summary_costs_each_tariff_period(staff_api):
    Tariff.objects.create(name="home", currency="EUR", rules=PEAK_OFFPEAK, is_site_default=True)
    meter_minutes(datetime(2024, 3, 5, 6, 50, tzinfo=PARIS), 20)  # 10 min off-peak, 10 min peak
    body = staff_api.get("/api/v1/energy/summary", {"device": METER, "date": "2024-03-05"}).json()
    cost = body["cost"]
    by_period = {line["period"]: line for line in cost["by_period"]}
    assert by_period["off-peak"]["energy_kwh"] == pytest.approx(0.175)
    assert by_period["peak"]["energy_kwh"] == pytest.approx(0.175)
    assert cost["energy_cost"] == pytest.approx(0.175 * 0.20 + 0.175 * 0.30)
    assert cost["standing_charge"] == 0.5 and cost["currency"] == "EUR"
    assert cost["total"] == pytest.approx(cost["energy_cost"] + 0.5)


def test_summary_takes_the_numeric_device_id_as_well_as_the_shelly_id(staff_api):
    meter_minutes(datetime(2024, 3, 5, 10, 0, tzinfo=PARIS), 3)
    device = Device.objects.get(device_id=METER)
    by_shelly_id = staff_api.get("/api/v1/energy/summary", {"device": METER, "date": "2024-03-05"}).json()
    by_number = staff_api.get("/api/v1/energy/summary", {"device": str(device.pk), "date": "2024-03-05"}).json()
    assert by_number == by_shelly_id and by_number["device"] == METER
    for unknown in ("999999", "99999999999999999999999"):
        response = staff_api.get("/api/v1/energy/summary", {"device": unknown})
        assert response.status_code == 404 and "numeric id" in response.json()["error"]["message"]


def test_summary_errors_are_json(staff_api):
    assert staff_api.get("/api/v1/energy/summary", {"device": "nope"}).status_code == 404
    bad = staff_api.get("/api/v1/energy/summary", {"device": METER, "period": "year"})
    assert bad.status_code == 400 and "error" in bad.json()


def test_periods_are_local_calendar_periods_across_dst():
    start, end = period_bounds("day", date(2024, 3, 31))
    utc = ZoneInfo("UTC")
    assert end.astimezone(utc) - start.astimezone(utc) == timedelta(hours=23)
    start, end = period_bounds("week", date(2024, 3, 28))
    assert (start.date(), end.date()) == (date(2024, 3, 25), date(2024, 4, 1))
    start, end = period_bounds("month", date(2024, 2, 10))
    assert (start.date(), end.date()) == (date(2024, 2, 1), date(2024, 3, 1))
