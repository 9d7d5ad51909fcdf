"""Read endpoints: devices, channels with state, power logs (filters, cursor pages, CSV), series."""

import csv
import io
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from collector.models import PowerLog
from collector.pipeline import ingest_samples
from collector.selectors import MAX_SERIES_POINTS, automatic_bucket_s
from tests.api_base import *  # noqa: F403
from tests.scenarios import T0, at, make_channel, sample

pytestmark = pytest.mark.django_db

DEVICE = "shellypro4pm-aabbccddeeff"


def add_rows(channel, rows):
    """rows: (seconds after T0, power, voltage, current, energy) → PowerLog rows."""
    PowerLog.objects.bulk_create(
        PowerLog(
            timestamp=at(s),
            device=channel.device,
            channel=channel,
            apower_w=p,
            voltage_v=v,
            current_a=i,
            energy_total_wh=e,
            reason="sample",
        )
        for s, p, v, i, e in rows
    )


def test_devices_list_and_detail_by_shelly_id(reader_api):
    channel = make_channel()
    listed = reader_api.get("/api/v1/devices/").json()
    assert [d["device_id"] for d in listed] == [DEVICE]
    assert "password" not in listed[0]
    detail = reader_api.get(f"/api/v1/devices/{DEVICE}/").json()
    assert detail["id"] == channel.device.pk


def test_channels_show_running_state_and_last_row(reader_api):
    channel = make_channel(policy="events")
    ingest_samples([sample(at(0), 500, channel=channel), sample(at(70), 620, channel=channel)])
    body = reader_api.get("/api/v1/channels/", {"device": DEVICE}).json()
    assert len(body) == 1
    assert body[0]["state"]["running"] is True
    assert datetime.fromisoformat(body[0]["state"]["running_since"]) == at(0)
    assert body[0]["state"]["live_power_w"] == 620
    assert body[0]["last_row"]["reason"] == "delta" and body[0]["last_row"]["apower_w"] == 620


def test_channel_list_queries_do_not_grow_with_channels(reader_api):
    for n in range(3):
        make_channel(key=f"switch:{n}")
    reader_api.get("/api/v1/channels/")  # the token's last_used_at is written once
    with CaptureQueriesContext(connection) as few:
        reader_api.get("/api/v1/channels/")
    for n in range(3, 10):
        make_channel(key=f"switch:{n}")
    with CaptureQueriesContext(connection) as many:
        assert len(reader_api.get("/api/v1/channels/").json()) == 10
    assert len(many) == len(few)


def test_power_logs_filter_by_device_channel_and_time(reader_api):
    pump = make_channel(key="switch:0")
    other = make_channel(key="switch:1")
    add_rows(pump, [(s, 100.0 + s, 230.0, 0.5, 10.0) for s in range(0, 600, 60)])
    add_rows(other, [(30, 5.0, 230.0, 0.1, 1.0)])
    body = reader_api.get(
        "/api/v1/power-logs/",
        {"device": DEVICE, "channel": pump.pk, "from": at(120).isoformat(), "to": at(300).isoformat()},
    ).json()
    assert [row["apower_w"] for row in body["results"]] == [220.0, 280.0, 340.0]
    keys = reader_api.get("/api/v1/power-logs/", {"channel_key": "switch:1"}).json()["results"]
    assert [row["channel_key"] for row in keys] == ["switch:1"]


def test_cursor_pages_return_every_row_exactly_once(reader_api):
    a, b = make_channel(key="switch:0"), make_channel(key="switch:1")
    # Equal timestamps across channels and within pages test the cursor's tie-breaking.
    add_rows(a, [(s // 2 * 10, float(s), None, None, None) for s in range(0, 47)])
    add_rows(b, [(s // 3 * 10, float(s), None, None, None) for s in range(0, 31)])
    seen, url, pages = [], "/api/v1/power-logs/?page_size=7", 0
    while url:
        body = reader_api.get(url).json()
        seen.extend(row["id"] for row in body["results"])
        url, pages = body["next"], pages + 1
    assert pages == 12
    assert sorted(seen) == sorted(PowerLog.objects.values_list("id", flat=True))
    assert len(seen) == len(set(seen)) == 78
    timestamps = [PowerLog.objects.get(pk=pk).timestamp for pk in seen]
    assert timestamps == sorted(timestamps)


def _csv_of(response):
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_csv_export_has_the_seed_header_and_values(reader_api):
    channel = make_channel()
    add_rows(channel, [(0, 512.5, 231.2, 2.23, 1234.5), (60, 0.0, None, None, None)])
    lines = _csv_of(reader_api.get("/api/v1/power-logs/", {"format": "csv", "channel": channel.pk}))
    assert lines == [
        ["timestamp_iso", "device_id", "channel", "apower_W", "voltage_V", "current_A", "energy_total_Wh"],
        ["2026-03-02T08:00:00+00:00", DEVICE, "switch:0", "512.5", "231.2", "2.23", "1234.5"],
        ["2026-03-02T08:01:00+00:00", DEVICE, "switch:0", "0.0", "", "", ""],
    ]


def test_csv_export_streams_rows_in_chunks(reader_api):
    channel = make_channel()
    add_rows(channel, [(s, 1.0, 230.0, 0.1, float(s)) for s in range(4500)])
    response = reader_api.get("/api/v1/power-logs/", {"format": "csv"})
    assert response.streaming
    chunks = list(response.streaming_content)
    assert len(chunks) == 1 + 3  # header, then blocks of CHUNK_SIZE rows
    assert sum(chunk.count(b"\n") for chunk in chunks) == 4501


def test_csv_errors_stay_json(anonymous_api):
    response = anonymous_api.get("/api/v1/power-logs/", {"format": "csv"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_series_aggregates_per_bucket(reader_api):
    channel = make_channel()
    add_rows(
        channel,
        [(0, 100.0, 230.0, 0.4, None), (30, 300.0, 230.0, 1.2, None), (60, 50.0, 230.0, 0.2, None)],
    )
    body = reader_api.get(
        "/api/v1/series/",
        {"channel": channel.pk, "from": T0.isoformat(), "to": at(120).isoformat(), "bucket": 60},
    ).json()
    assert body["bucket_s"] == 60
    for point in body["points"]:
        point["t"] = datetime.fromisoformat(point["t"])
    assert body["points"] == [
        {
            "t": at(0),
            "avg_power_w": 200.0,
            "min_power_w": 100.0,
            "max_power_w": 300.0,
            "avg_current_a": pytest.approx(0.8),
            "rows": 2,
        },
        {
            "t": at(60),
            "avg_power_w": 50.0,
            "min_power_w": 50.0,
            "max_power_w": 50.0,
            "avg_current_a": 0.2,
            "rows": 1,
        },
    ]


def test_series_never_exceeds_the_point_limit(reader_api):
    channel = make_channel()
    # 30 days with a row every 10 minutes: asking for 1 s buckets gets widened.
    add_rows(channel, [(s, 100.0, 230.0, 0.5, None) for s in range(0, 30 * 86400, 600)])
    body = reader_api.get(
        "/api/v1/series/",
        {"channel": channel.pk, "from": T0.isoformat(), "to": (T0 + timedelta(days=30)).isoformat(), "bucket": 1},
    ).json()
    assert body["bucket_s"] == automatic_bucket_s(T0, T0 + timedelta(days=30)) == 1800
    assert 0 < len(body["points"]) <= MAX_SERIES_POINTS


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"channel": "x"},
        {"channel": 1, "bucket": 0},
        {"channel": 1, "from": "2026-03-02T09:00Z", "to": "2026-03-02"},
    ],
)
def test_series_bad_query_is_400(reader_api, query):
    make_channel()
    response = reader_api.get("/api/v1/series/", query)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_series_of_unknown_channel_is_404(reader_api):
    assert reader_api.get("/api/v1/series/", {"channel": 999999}).status_code == 404


@pytest.mark.parametrize("path", ["/api/v1/power-logs/", "/api/v1/energy-intervals/"])
def test_time_bounds_with_offsets_postgres_cannot_hold_still_work(reader_api, path):
    # Python accepts "+19:52", PostgreSQL only ±15:59: the bound must be normalised to UTC.
    response = reader_api.get(path, {"from": "2026-01-09T02:00:04+19:52", "to": "2026-12-01T00:00:00-22:57"})
    assert response.status_code == 200
    assert response.json()["results"] == []


@pytest.mark.parametrize("device_id", ['=HYPERLINK("http://x")', "+1+cmd", "-2+3", "@SUM(A1)"])
def test_csv_neutralises_cells_a_spreadsheet_would_run_as_formulas(reader_api, device_id):
    channel = make_channel(device_id=device_id)
    add_rows(channel, [(0, -12.5, 230.0, None, None)])
    lines = _csv_of(reader_api.get("/api/v1/power-logs/", {"format": "csv", "channel": channel.pk}))
    assert lines[1][1] == "'" + device_id
    assert lines[1][3] == "-12.5"  # a negative number stays a number
