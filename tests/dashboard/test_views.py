"""Dashboard pages: who may see them, what they show with data and without, empty and error states."""

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from collector.models import Channel, Device, EnergyInterval
from configs.models import Tariff
from dashboard.kpis import channel_kpis
from dashboard.templatetags.dashboard_tags import num
from tests.dashboard.stories import FLAT_TARIFF, configured_pump, cycles_at, running_since, user
from tests.scenarios import make_channel

pytestmark = pytest.mark.django_db

PAGES = ["/", "/channels/", "/energy/", "/alerts/", "/overview/cards"]


@pytest.fixture
def staff_client(client):
    client.force_login(user("staff", staff=True))
    return client


@pytest.fixture
def viewer_client(client):
    client.force_login(user("viewer", viewer=True))
    return client


def text_of(response) -> str:
    return response.content.decode()


def kpi_value(page: str, kpi_id: str) -> str:
    match = re.search(rf'data-kpi="{kpi_id}"><div class="label">[^<]*</div><div class="value">([^<]*)', page)
    assert match, f"no KPI {kpi_id}"
    return match.group(1)


# --- who may see the pages -------------------------------------------------------


@pytest.mark.parametrize("path", [*PAGES, "/channels/1/"])
def test_pages_require_login(client, path):
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("path", PAGES)
def test_a_user_neither_staff_nor_viewer_gets_a_403_page(client, path):
    client.force_login(user("outsider"))
    response = client.get(path)
    assert response.status_code == 403
    assert "dashboard viewers" in text_of(response)  # says how to get access, in a page, not JSON


@pytest.mark.parametrize("path", PAGES)
def test_viewers_and_staff_see_every_page(viewer_client, path):
    assert viewer_client.get(path).status_code == 200


def test_viewers_see_no_admin_link_and_cannot_open_the_admin(viewer_client):
    page = text_of(viewer_client.get("/"))
    assert 'href="/admin/"' not in page
    assert viewer_client.get("/admin/").status_code == 302  # the admin's own login


def test_staff_see_the_admin_in_the_navigation(staff_client):
    page = text_of(staff_client.get("/"))
    for link in (
        'href="/admin/"',
        'href="/channels/"',
        'href="/energy/"',
        'href="/alerts/"',
        "/api/v1/docs/",
        "/healthz",
    ):
        assert link in page


def test_viewers_may_read_the_api_the_charts_use(viewer_client):
    channel = make_channel()
    response = viewer_client.get("/api/v1/series/", {"channel": channel.pk})
    assert response.status_code == 200 and response.json()["points"] == []
    assert viewer_client.post("/api/v1/channels/1/config-versions", {}).status_code == 403


def test_the_login_page_is_styled_and_logs_in(client):
    user("op", staff=True)
    page = text_of(client.get("/accounts/login/"))
    assert "dashboard/app.css" in page and 'name="username"' in page and 'name="password"' in page
    response = client.post("/accounts/login/", {"username": "op", "password": "pw-for-tests", "next": "/energy/"})
    assert response.status_code == 302 and response["Location"] == "/energy/"


def test_a_wrong_password_says_so(client):
    response = client.post("/accounts/login/", {"username": "nobody", "password": "x"})
    assert response.status_code == 200 and "Wrong username or password" in text_of(response)


def test_favicon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("favicon.svg")


# --- overview -------------------------------------------------------------------


def test_overview_without_channels_explains_what_to_do(staff_client):
    page = text_of(staff_client.get("/"))
    assert "No pumps or meters yet" in page and "outbound WebSocket" in page


def test_overview_shows_named_cards_with_live_state_and_todays_figures(staff_client):
    now = timezone.now()
    pump = configured_pump(name="Pump P2 — feed pump")
    midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    done = [t for t in (now - timedelta(minutes=m) for m in (40, 80)) if t >= midnight]
    cycles_at(pump, done, minutes=10, energy_wh=150.0)
    running_since(pump, now - timedelta(minutes=7), power_w=812.4)

    page = text_of(staff_client.get("/"))

    assert "Pump P2 — feed pump" in page and "Acme FP-800" in page and "Lift station" in page
    assert "812" in page and "Running" in page and "Online" in page
    card = page[page.index(f'data-channel-id="{pump.pk}"') :]
    assert re.search(r"data-runtime[^>]*>(\d+ h )?\d+ min", card)  # a running cycle's time, never 0
    midnight_utc = midnight.astimezone(timezone.get_current_timezone())
    today = channel_kpis(channel_ids=[pump.pk], start=midnight_utc, end=midnight_utc + timedelta(days=1))[pump.pk]
    assert kpi_value(page, "energy") == num(today.energy_kwh, 2)
    assert kpi_value(page, "volume") == num(today.volume_m3, 1)
    assert kpi_value(page, "cost").startswith(num(today.cost, 2))


def test_a_channel_without_a_name_shows_its_device_and_key(staff_client):
    make_channel(device_id="shellypro4pm-0011", key="switch:3")
    assert "shellypro4pm-0011 · switch:3" in text_of(staff_client.get("/"))


def test_a_device_not_seen_for_minutes_is_offline(staff_client):
    channel = make_channel()
    Device.objects.filter(pk=channel.device_id).update(last_seen=timezone.now() - timedelta(minutes=30))
    assert "pill-offline" in text_of(staff_client.get("/"))


def test_figures_without_configuration_say_not_configured_not_zero(staff_client):
    pump = configured_pump(grid=None)
    cycles_at(pump, [timezone.now() - timedelta(minutes=5)])
    page = text_of(staff_client.get("/"))
    assert "not configured" in page


def test_the_cards_fragment_is_what_the_page_swaps_in(staff_client):
    configured_pump(name="Pump P9")
    fragment = text_of(staff_client.get("/overview/cards"))
    assert "Pump P9" in fragment and "<html" not in fragment


# --- channel page --------------------------------------------------------------------


def test_channel_page_with_data_shows_kpis_cycles_configs_and_counters(staff_client):
    now = timezone.now()
    pump = configured_pump()
    cycles_at(pump, [now - timedelta(hours=h) for h in (2, 4, 6)], minutes=15, energy_wh=200.0)
    cycles_at(pump, [now - timedelta(days=3)], minutes=15, energy_wh=200.0)

    page = text_of(staff_client.get(f"/channels/{pump.pk}/?range=24h"))

    kpis = channel_kpis(channel_ids=[pump.pk], start=now - timedelta(hours=24), end=now)[pump.pk]
    assert kpi_value(page, "cycles") == "3" == num(kpis.cycles)
    assert kpi_value(page, "energy") == num(kpis.energy_kwh, 2) == "0.60"
    assert kpi_value(page, "volume") == num(kpis.volume_m3, 2) == "9.00"
    assert kpi_value(page, "kwh_per_m3") == num(kpis.kwh_per_m3, 3)
    assert kpi_value(page, "bod5") == num(kpis.bod5_kg, 3) == "2.700"
    assert kpi_value(page, "net") == num(kpis.net_co2e_kg, 2)
    assert page.count("<tr") >= 4  # the cycles table: header + 3
    assert "Running hours" in page and "1.0 h" in page  # lifetime: 4 × 15 min
    assert "Acme FP-800" in page and "12.00" in page  # the config in force
    config = json.loads(re.search(r'<script id="page-config" type="application/json">(.*?)</script>', page).group(1))
    assert config["chart"]["seriesUrl"].startswith(f"/api/v1/series/?channel={pump.pk}&from=")
    assert f"/api/v1/power-logs/?channel={pump.pk}&amp;from=" in page and "format=csv" in page
    assert f"/api/v1/cycles?channel={pump.pk}" in page


def test_channel_page_for_a_chosen_day(staff_client):
    pump = configured_pump()
    page = text_of(staff_client.get(f"/channels/{pump.pk}/?range=day&date=2026-03-02"))
    assert "Monday 2 March 2026" in page and "No cycles in this range" in page


def test_channel_page_without_data_shows_empty_states(staff_client):
    channel = make_channel()
    page = text_of(staff_client.get(f"/channels/{channel.pk}/"))
    assert "No cycles in this range" in page
    assert "No configuration over this range" in page
    assert kpi_value(page, "energy") == "—"


@pytest.mark.parametrize(
    "query",
    ["range=day&date=yesterday", "range=day&date=1850-01-01", "range=century", "range=day&date=9999-12-31"],
)
def test_a_bad_range_falls_back_to_24_hours_with_a_note(staff_client, query):
    channel = make_channel()
    response = staff_client.get(f"/channels/{channel.pk}/?{query}")
    assert response.status_code == 200
    assert "showing the last 24 hours instead" in text_of(response)


def test_cycles_filters_minimum_duration_and_noise(staff_client):
    now = timezone.now()
    pump = configured_pump()
    cycles_at(pump, [now - timedelta(hours=1)], minutes=30)
    cycles_at(pump, [now - timedelta(hours=2)], minutes=3)
    cycles_at(pump, [now - timedelta(hours=3)], minutes=1, noise=True)

    def rows(query):
        page = text_of(staff_client.get(f"/channels/{pump.pk}/?range=24h&{query}"))
        table = page[page.index('id="cycles-table"') :]
        return table[: table.index("</table>")].count("<tr") - 1

    assert rows("") == 2
    assert rows("noise=1") == 3
    assert rows("min_minutes=10") == 1
    assert rows("min_minutes=banana") == 2  # ignored, not an error


def test_unknown_channel_is_a_404_page(staff_client):
    response = staff_client.get("/channels/999999/")
    assert response.status_code == 404 and "Page not found" in text_of(response)


# --- energy and alerts ------------------------------------------------------------------


def meter_with_intervals(days=40):
    device = Device.objects.create(device_id="shellypro3em-aa", name="Main meter", transport="rpc_poll")
    channels = {key: Channel.objects.create(device=device, key=key, policy="every") for key in ("em:0:a", "em:0:total")}
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    rows = []
    for hour in range(days * 24):
        start = now - timedelta(hours=hour + 1)
        for key, wh in (("em:0:a", 400.0), ("em:0:total", 1000.0)):
            rows.append(
                EnergyInterval(
                    device=device, channel=channels[key], start=start, end=start + timedelta(hours=1), energy_wh=wh
                )
            )
    EnergyInterval.objects.bulk_create(rows)
    return device


def test_energy_page_without_meters_explains(staff_client):
    assert "No energy meter yet" in text_of(staff_client.get("/energy/"))


def test_energy_page_of_a_meter_without_intervals(staff_client):
    device = Device.objects.create(device_id="shellypro3em-bb", transport="rpc_poll")
    Channel.objects.create(device=device, key="em:0:total", policy="every")
    assert "No energy intervals yet" in text_of(staff_client.get("/energy/"))


def test_energy_page_has_daily_and_monthly_bars_costs_and_a_comparison(staff_client):
    Tariff.objects.create(name="Flat", rules=FLAT_TARIFF, is_site_default=True)
    device = meter_with_intervals()
    page = text_of(staff_client.get("/energy/"))
    config = json.loads(re.search(r'<script id="page-config" type="application/json">(.*?)</script>', page).group(1))
    energy = config["energy"]
    assert energy["phases"] == ["em:0:a"]
    assert energy["days"] and all(day["total_kwh"] <= 24.0 + 1e-9 for day in energy["days"])
    assert len(energy["months"]) >= 2
    assert "Cost per tariff period" in page and "flat" in page
    assert kpi_value(page, "month_kwh") != "—"
    assert f'value="{device.pk}"' in page


def test_energy_page_with_a_bad_month_says_so(staff_client):
    meter_with_intervals(days=2)
    response = staff_client.get("/energy/?month=March")
    assert response.status_code == 200 and "The month must look like" in text_of(response)


def test_alerts_page_is_calm_until_alerts_exist(staff_client):
    page = text_of(staff_client.get("/alerts/"))
    assert "No alerts" in page and "Nothing needs your attention" in page


# --- French ------------------------------------------------------------------------------


def test_the_pages_follow_the_browser_language(staff_client):
    configured_pump(name="Pompe P1")
    page = text_of(staff_client.get("/", HTTP_ACCEPT_LANGUAGE="fr"))
    assert '<html lang="fr">' in page
    assert "Aujourd’hui" in page or "Aujourd'hui" in page
    assert "Vue d’ensemble" in page and "Déconnexion" in page


def test_french_numbers_use_a_decimal_comma(staff_client):
    now = timezone.now()
    pump = configured_pump()
    cycles_at(pump, [now - timedelta(hours=2)], minutes=15, energy_wh=200.0)
    page = text_of(staff_client.get(f"/channels/{pump.pk}/?range=24h", HTTP_ACCEPT_LANGUAGE="fr"))
    assert kpi_value(page, "energy") == "0,20"
    assert kpi_value(page, "volume") == "3,00"


def test_a_meter_day_35_days_ago_is_still_charted_after_retention(staff_client, settings):
    """The chart reads the series API; past the raw window it answers from the 1-minute rollups."""
    from collector import retention
    from collector.models import PowerLog, WritePolicy
    from tests.collector.test_retention import every_10_s

    settings.RAW_RETENTION_DAYS = 30
    meter = make_channel(device_id="shellypro3em-aabbccddeeff", key="em:0:a", policy=WritePolicy.EVERY)
    day = timezone.localdate() - timedelta(days=35)
    noon = timezone.make_aware(timezone.datetime(day.year, day.month, day.day, 12, 0))
    every_10_s(meter, noon, 60, power=lambda i: 400.0)
    retention.apply_retention()
    assert not PowerLog.objects.filter(channel=meter).exists()

    page = text_of(staff_client.get(f"/channels/{meter.pk}/?range=day&date={day.isoformat()}"))
    config = json.loads(re.search(r'<script id="page-config" type="application/json">(.*?)</script>', page).group(1))
    series = staff_client.get(config["chart"]["seriesUrl"]).json()

    assert sum(point["rows"] for point in series["points"]) == 360
    assert {point["avg_power_w"] for point in series["points"]} == {400.0}
