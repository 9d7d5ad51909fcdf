"""The dashboard in a real browser: Debian's Chromium driven by Playwright against a live daphne.

The server, the RPC poller and the simulators run as their own processes on
the test database (SQLite and the in-memory channel layer, or PostgreSQL and
Redis in the second half of `make test`), as in production. Screenshots of
every page (desktop and 375 px phone, English and French) are written to
`screenshots/` (git-ignored) for a human to look at.
"""

import csv
import io
import os
import re
import shutil
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from collector.models import Channel, Device, EnergyInterval, IngestToken, PowerLog
from collector.simulators.pro4pm import device_identity
from collector.simulators.rpc3em import Rpc3emSimulator
from configs.models import Tariff
from tests.dashboard.stories import FLAT_TARIFF, configured_pump, cycles_at, user
from tests.servers import free_port, manage, running_daphne, stop

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", Path(settings.BASE_DIR) / "screenshots"))
PASSWORD = "pw-for-tests"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 375, "height": 740}
WAIT_MS = 30_000

if not Path(CHROMIUM).exists():
    pytest.skip(
        "Chromium is not installed (apt-get install -y chromium; `make test` does it when it can)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (requirements-dev.txt)")
expect = sync_api.expect


@pytest.fixture
def server(transactional_db, tmp_path):
    with running_daphne(tmp_path, DASHBOARD_REFRESH_SECONDS="1", COLLECTOR_TIMER_SECONDS="1") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    # Playwright's sync API keeps an event loop in this thread while it runs;
    # the ORM calls the tests (and their database teardown) make between
    # browser steps are plain sync code.
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_api.sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking"]
            )
            yield chromium
            chromium.close()
    finally:
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture
def open_page(browser, server):
    """open_page(viewport, locale) → a logged-in page; contexts are closed at teardown."""
    user("operator", staff=True)
    contexts = []

    def open_(viewport=DESKTOP, locale="en-GB"):
        context = browser.new_context(
            viewport=viewport, locale=locale, device_scale_factor=1, accept_downloads=True, base_url=server
        )
        contexts.append(context)
        page = context.new_page()
        errors = []
        if not contexts[1:]:
            page.goto("/accounts/login/")
            shoot(page, f"login-{locale[:2]}-{'phone' if viewport == PHONE else 'desktop'}")
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.errors = errors
        page.goto("/accounts/login/")
        page.fill("#id_username", "operator")
        page.fill("#id_password", PASSWORD)
        page.click(".login button[type=submit]")
        page.wait_for_url(f"{server}/")
        return page

    yield open_
    for context in contexts:
        context.close()


def shoot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def mark_page(page):
    """A flag in the page's JavaScript world: gone if the page reloads."""
    page.evaluate("window.__notReloaded = true")


def not_reloaded(page) -> bool:
    return page.evaluate("window.__notReloaded === true")


def card(page, channel):
    return page.locator(f'.card[data-channel-id="{channel.pk}"]')


def switch_device():
    device_id, mac = device_identity(0, 42)
    device = Device.objects.create(device_id=device_id, mac=mac, name="Lift station", transport="websocket")
    channels = {n: Channel.objects.create(device=device, key=f"switch:{n}", policy="events") for n in range(4)}
    Channel.objects.filter(pk=channels[2].pk).update(name="Aerator")
    token = IngestToken(name="browser test", device=device)
    raw = token.set_new_secret()
    token.save()
    return channels[2], raw


def polled_meter(port):
    meter = Rpc3emSimulator(index=0)
    device = Device.objects.create(device_id=meter.device_id, transport="rpc_poll", host=f"127.0.0.1:{port}")
    total = Channel.objects.create(device=device, key="em:0:total", policy="every", name="Meter total")
    return total


def test_log_in_and_see_the_named_pumps(open_page):
    pump = configured_pump(name="Pump P1 — feed pump")
    cycles_at(pump, [timezone.now() - timedelta(minutes=30)], minutes=10)
    page = open_page()
    expect(page.locator("h1")).to_contain_text("Today")
    expect(card(page, pump)).to_contain_text("Pump P1 — feed pump")
    expect(page.locator("#livestatus")).to_have_attribute("data-state", "live", timeout=WAIT_MS)
    assert page.errors == []


def test_the_overview_follows_a_switch_and_a_polled_meter_without_reloading(open_page, server, tmp_path):
    """The switch's samples arrive in the server process; the meter's in the poller's, another process."""
    aerator, token = switch_device()
    meter_port = free_port()
    meter_total = polled_meter(meter_port)
    page = open_page()
    expect(card(page, aerator).locator("[data-power]")).to_have_text("—W")
    expect(card(page, meter_total).locator("[data-power]")).to_have_text("—W")
    mark_page(page)

    ws_url = server.replace("http://", "ws://") + f"/ws/shelly/{token}/"
    processes = [
        manage("simulate_shelly", "--devices", "1", "--seed", "42", "--rate", "2", "--url", ws_url,
               log_path=tmp_path / "switch.log"),
        manage("simulate_shelly", "--kind", "rpc3em", "--devices", "1", "--rpc-port", str(meter_port),
               "--history-hours", "1", log_path=tmp_path / "meter.log"),
        manage("run_poller", "--live-seconds", "1", "--refresh-seconds", "1", "--interval-seconds", "3600",
               log_path=tmp_path / "poller.log"),
    ]  # fmt: skip
    try:
        expect(card(page, aerator).locator("[data-power]")).to_have_text(re.compile(r"^\d+W$"), timeout=WAIT_MS)
        expect(card(page, meter_total).locator("[data-power]")).to_have_text(re.compile(r"^[\d,.]+W$"), timeout=WAIT_MS)
        first = card(page, meter_total).locator("[data-power]").inner_text()
        expect(card(page, meter_total).locator("[data-power]")).not_to_have_text(first, timeout=WAIT_MS)
        expect(page.locator(f'.device[data-device-id="{aerator.device_id}"] [data-device-online]')).to_have_text(
            "Online", timeout=WAIT_MS
        )
        assert not_reloaded(page)
        shoot(page, "overview-live-en-desktop")
    finally:
        for process in processes:
            stop(process)
        for name in ("switch", "meter", "poller"):
            print(name, (tmp_path / f"{name}.log").read_text()[-1500:])
    assert page.errors == []


def channel_with_a_month_of_rows():
    pump = configured_pump(name="Pump P2 — recirculation")
    end = timezone.now().replace(second=0, microsecond=0)
    rows = []
    for minute in range(0, 30 * 24 * 60, 20):  # a row every 20 min for 30 days: runs and stops
        at = end - timedelta(minutes=minute)
        running = (minute // 20) % 3 != 0
        power = 640.0 + (minute % 7) * 3 if running else 0.0
        rows.append(
            PowerLog(
                timestamp=at,
                device_id=pump.device_id,
                channel=pump,
                apower_w=power,
                voltage_v=231.0,
                current_a=round(power / 230.0, 3),
                energy_total_wh=100000.0 - minute,
                reason="sample" if running else "stop",
            )
        )
    PowerLog.objects.bulk_create(rows)
    cycles_at(pump, [end - timedelta(hours=h) for h in (1, 3, 5, 30)], minutes=20, energy_wh=210.0)
    return pump


def drawn_for(page) -> str:
    canvas = page.locator("#power-chart")
    expect(canvas).to_have_attribute("data-drawn-for", re.compile(r".+"), timeout=WAIT_MS)
    expect(page.locator("#chart-overlay")).to_be_hidden(timeout=WAIT_MS)
    return canvas.get_attribute("data-drawn-for")


def test_the_channel_chart_redraws_for_24_hours_7_days_and_a_chosen_day(open_page):
    pump = channel_with_a_month_of_rows()
    page = open_page()
    page.goto(f"/channels/{pump.pk}/")
    first = drawn_for(page)
    assert int(page.locator("#power-chart").get_attribute("data-points")) > 50

    page.click('[data-range="7d"]')
    expect(page.locator('[data-range="7d"]')).to_have_attribute("aria-current", "true")
    seven_days = drawn_for(page)
    assert seven_days != first
    start, end = (datetime.fromisoformat(t) for t in seven_days.split("/"))
    assert end - start == timedelta(days=7)

    day = timezone.localdate() - timedelta(days=3)
    page.fill("#day-picker", day.isoformat())
    page.dispatch_event("#day-picker", "change")
    page.wait_for_url(f"**/channels/{pump.pk}/?range=day&date={day.isoformat()}")
    chosen = drawn_for(page)
    start, end = (datetime.fromisoformat(t) for t in chosen.split("/"))
    assert timezone.localtime(start).date() == day and end - start in (timedelta(hours=h) for h in (23, 24, 25))
    expect(page.locator(".panel h2").first).to_contain_text(str(day.day))
    assert page.errors == []


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_png_and_csv_downloads_are_the_chart_and_the_apis_rows(open_page):
    pump = channel_with_a_month_of_rows()
    page = open_page()
    page.goto(f"/channels/{pump.pk}/?range=24h")
    drawn_for(page)

    with page.expect_download() as download:
        page.click("#download-png")
    png = Path(download.value.path()).read_bytes()
    canvas = page.locator("#power-chart")
    size = (int(canvas.get_attribute("width")), int(canvas.get_attribute("height")))
    assert png_size(png) == size and size[0] > 300 and size[1] > 200
    assert download.value.suggested_filename == f"channel-{pump.pk}-24h.png"

    with page.expect_download() as download:
        page.click("#download-csv")
    lines = list(csv.reader(io.StringIO(Path(download.value.path()).read_text())))
    header, rows = lines[0], lines[1:]
    assert header[:3] == ["timestamp_iso", "device_id", "channel"]
    api_url = page.locator("#download-csv").get_attribute("href").replace("&format=csv", "&page_size=1000")
    api_rows = []
    while api_url:
        body = page.request.get(api_url).json()
        api_rows.extend(body["results"])
        api_url = body["next"]
    assert len(rows) == len(api_rows) == 24 * 3
    for row, api in zip(rows, api_rows, strict=True):
        assert datetime.fromisoformat(row[0]) == datetime.fromisoformat(api["timestamp"].replace("Z", "+00:00"))
        assert float(row[3]) == api["apower_w"] and float(row[5]) == api["current_a"]
    assert page.errors == []


def test_french_labels_and_date_formats(open_page):
    pump = channel_with_a_month_of_rows()
    page = open_page(locale="fr-FR")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.locator(".mainnav")).to_contain_text("Vue d’ensemble")
    expect(page.locator("h1")).to_contain_text("Aujourd’hui")
    page.goto(f"/channels/{pump.pk}/?range=day&date=2026-03-02")
    expect(page.locator(".panel h2").first).to_contain_text("lundi 2 mars 2026")
    expect(page.locator('[data-kpi="energy"] .value')).to_have_text("—")
    page.goto(f"/channels/{pump.pk}/?range=24h")
    expect(page.locator('[data-kpi="energy"] .value')).to_have_text("0,63kWh")  # 3 cycles × 210 Wh
    expect(page.locator("#cycles-table")).to_contain_text("Durée")

    # The switcher brings English back, on the same page.
    page.click('.langswitch button[value="en"]', force=True)
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator('[data-kpi="energy"] .value')).to_have_text("0.63kWh")
    assert page.errors == []


def every_page(pump):
    return {
        "overview": "/",
        "channel": f"/channels/{pump.pk}/?range=7d",
        "channels": "/channels/",
        "energy": "/energy/",
        "alerts": "/alerts/",
    }


def meter_with_history():
    Tariff.objects.get_or_create(name="Flat", defaults={"rules": FLAT_TARIFF, "is_site_default": True})
    device = Device.objects.create(device_id="shellypro3em-aabbcc", name="Main meter", transport="rpc_poll")
    keys = ("em:0:a", "em:0:b", "em:0:c", "em:0:total")
    channels = {key: Channel.objects.create(device=device, key=key, policy="every") for key in keys}
    hour = timezone.now().replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    rows = []
    for n in range(24 * 70):  # hourly intervals over 70 days: two months of daily bars
        start = hour - timedelta(hours=n + 1)
        phases = {"em:0:a": 500.0 + n % 9 * 20, "em:0:b": 180.0, "em:0:c": 90.0 + n % 5 * 10}
        for key, wh in {**phases, "em:0:total": sum(phases.values())}.items():
            rows.append(
                EnergyInterval(
                    device=device, channel=channels[key], start=start, end=start + timedelta(hours=1), energy_wh=wh
                )
            )
    EnergyInterval.objects.bulk_create(rows)


@pytest.mark.parametrize(("viewport", "form"), [(DESKTOP, "desktop"), (PHONE, "phone")])
@pytest.mark.parametrize("locale", ["en-GB", "fr-FR"])
def test_every_page_fits_the_screen_and_is_captured(open_page, viewport, form, locale):
    pump = channel_with_a_month_of_rows()
    meter_with_history()
    page = open_page(viewport=viewport, locale=locale)
    lang = locale[:2]
    for name, path in every_page(pump).items():
        page.goto(path)
        page.wait_for_load_state("networkidle")
        if name == "channel":
            drawn_for(page)
        width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert width[0] <= width[1], f"{name} scrolls sideways at {viewport['width']} px: {width}"
        shoot(page, f"{name}-{lang}-{form}")
    if form == "phone":
        page.goto("/")
        page.click(".menu-button")
        expect(page.locator(".mainnav")).to_be_visible()
        shoot(page, f"menu-{lang}-phone")
    assert page.errors == []
