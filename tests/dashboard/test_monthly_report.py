"""The monthly report: figures equal the dashboard's and the API's; the PDF opens; the e-mail goes out once."""

import csv
import io
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import override_settings
from django_q.models import Schedule
from pypdf import PdfReader

from alerts.models import AlertEvent, AlertRule, AlertState
from configs.models import Tariff
from dashboard import monthly_report
from dashboard.kpis import channel_kpis, cost_by_tariff_period
from dashboard.models import MonthlyReportDelivery, ReportRecipient
from shelly_site.schedules import next_first_of_month
from tests.api_base import *  # noqa: F403
from tests.dashboard.stories import configured_pump, cycles_at, user

pytestmark = pytest.mark.django_db

PARIS = ZoneInfo("Europe/Paris")
OCTOBER = date(2026, 10, 1)
PEAK_TARIFF = {
    "periods": [
        {"name": "peak", "days": "all", "start": "07:00", "end": "23:00", "price_per_kwh": 0.30},
        {"name": "off-peak", "days": "all", "start": "23:00", "end": "07:00", "price_per_kwh": 0.15},
    ]
}


def local(day, hh, mm=0):
    return datetime(2026, 10, day, hh, mm, tzinfo=PARIS)


@pytest.fixture
def plant():
    """Two pumps with October cycles (one across the tariff boundary at 23:00), and one in November."""
    Tariff.objects.create(name="Peak / off-peak", rules=PEAK_TARIFF, currency="EUR", is_site_default=True)
    feed = configured_pump(name="Feed pump", key="switch:0", since=datetime(2026, 9, 1, tzinfo=PARIS), tariff=False)
    lift = configured_pump(name="Lift pump", key="switch:1", since=datetime(2026, 9, 1, tzinfo=PARIS), tariff=False)
    cycles_at(feed, [local(3, 8), local(10, 12)], minutes=10, energy_wh=150.0)
    cycles_at(feed, [local(3, 22, 55)], minutes=10, energy_wh=150.0)  # 5 min peak, 5 min off-peak
    cycles_at(lift, [local(5, 9)], minutes=30, energy_wh=600.0)
    cycles_at(lift, [datetime(2026, 11, 2, 9, tzinfo=PARIS)], minutes=30, energy_wh=600.0)
    return feed, lift


def test_figures_are_the_dashboards_for_the_same_month(plant):
    feed, lift = plant
    report = monthly_report.build_report(OCTOBER)
    start, end = monthly_report.month_bounds(OCTOBER)
    assert (start, end) == (datetime(2026, 10, 1, tzinfo=PARIS), datetime(2026, 11, 1, tzinfo=PARIS))
    dashboard = channel_kpis(channel_ids=[feed.pk, lift.pk], start=start, end=end)

    assert [p.label for p in report.pumps] == ["Feed pump", "Lift pump"]
    for pump in report.pumps:
        assert pump.kpis.as_dict() == dashboard[pump.channel_id].as_dict()
    feed_row = report.pumps[0]
    assert feed_row.kpis.cycles == 3 and feed_row.kpis.runtime_h == pytest.approx(0.5)
    assert feed_row.kpis.energy_kwh == pytest.approx(0.45)
    assert feed_row.kpis.volume_m3 == pytest.approx(6.0)  # 12 m³/h × 0.5 h
    assert report.site.kpis.runtime_h == pytest.approx(1.0)  # November's cycle is not in October
    assert report.site.kpis.volume_m3 == pytest.approx(12.0)
    # Cost by tariff period adds up to the stored cost.
    assert feed_row.cost_by_period["peak"]["energy_kwh"] == pytest.approx(0.375)
    assert feed_row.cost_by_period["off-peak"]["energy_kwh"] == pytest.approx(0.075)
    assert sum(p["cost"] for p in feed_row.cost_by_period.values()) == pytest.approx(feed_row.kpis.cost)
    assert feed_row.kpis.cost == pytest.approx(0.375 * 0.30 + 0.075 * 0.15)
    assert report.site.alerts == 0 and feed_row.alerts == 0
    # The daily chart: runtime of each local day of the month.
    assert len(feed_row.daily_runtime_h) == 31
    assert feed_row.daily_runtime_h[2] == pytest.approx(20 / 60) and feed_row.daily_runtime_h[9] == pytest.approx(1 / 6)
    assert sum(report.site.daily_runtime_h) == pytest.approx(1.0)


def test_the_alerts_column_counts_episodes_fired_in_the_month(plant):
    feed, lift = plant
    rule = AlertRule.objects.create(name="Too high", slug="too-high", threshold=900.0)
    state = AlertState.objects.create(rule=rule, channel=feed, subject=f"ch:{feed.pk}")
    episodes = [
        (local(2, 9), AlertEvent.Action.FIRED),
        (local(2, 9, 20), AlertEvent.Action.CLEARED),  # the end of an episode is not another alert
        (local(20, 14), AlertEvent.Action.FIRED),
        (datetime(2026, 9, 30, 23, 50, tzinfo=PARIS), AlertEvent.Action.FIRED),  # September
        (datetime(2026, 11, 1, 0, 5, tzinfo=PARIS), AlertEvent.Action.FIRED),  # November
    ]
    for version, (ts, action) in enumerate(episodes, start=1):
        AlertEvent.objects.create(ts=ts, rule=rule, state=state, channel=feed, action=action, state_version=version)

    report = monthly_report.build_report(OCTOBER)

    assert [(pump.label, pump.alerts) for pump in report.pumps] == [("Feed pump", 2), ("Lift pump", 0)]
    assert report.site.alerts == 2


def test_cost_by_tariff_period_is_empty_without_tariff():
    feed = configured_pump(name="Feed pump", since=datetime(2026, 9, 1, tzinfo=PARIS), tariff=False)
    cycles_at(feed, [local(3, 8)])
    start, end = monthly_report.month_bounds(OCTOBER)
    assert cost_by_tariff_period(channel_ids=[feed.pk], start=start, end=end) == {}
    report = monthly_report.build_report(OCTOBER)
    assert report.pumps[0].kpis.cost is None


def test_csv_equals_the_api_figures(plant, staff_api):
    report_csv = monthly_report.report_csv(monthly_report.build_report(OCTOBER))
    rows = {row["label"]: row for row in csv.DictReader(io.StringIO(report_csv))}
    api = staff_api.get(
        "/api/v1/impact",
        {"period": "month", "from": "2026-10-01T00:00:00+02:00", "to": "2026-11-01T00:00:00+01:00"},
    ).json()["results"]
    assert {r["channel"] for r in api} == {int(rows["Feed pump"]["channel_id"]), int(rows["Lift pump"]["channel_id"])}
    for result in api:
        row = next(r for r in rows.values() if r["channel_id"] == str(result["channel"]))
        assert float(row["runtime_h"]) == pytest.approx(result["running_hours"])
        assert int(row["cycles"]) == result["cycles"]
        for name in ("energy_kwh", "volume_m3", "bod5_kg", "cod_kg", "tss_kg", "avoided_co2e_kg", "net_co2e_kg"):
            assert float(row[name]) == pytest.approx(result[name]), name
        assert float(row["cost"]) == pytest.approx(result["energy_cost"])
    site = rows["Site"]
    assert site["scope"] == "site" and float(site["volume_m3"]) == pytest.approx(sum(r["volume_m3"] for r in api))
    assert float(site["cost_peak"]) + float(site["cost_off-peak"]) == pytest.approx(float(site["cost"]))
    assert site["alerts"] == "0" and site["month"] == "2026-10"


def pdf_text(data: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]


@override_settings(PLANT_NAME="STEP de Saint-Aubin")
def test_pdf_opens_with_header_site_figures_and_a_page_per_pump_in_french(plant):
    _report, pdf, _csv = monthly_report.report_files(OCTOBER, "fr")

    assert pdf.startswith(b"%PDF-")
    pages = pdf_text(pdf)
    assert len(pages) == 3  # the site, then one page per pump
    first = pages[0]
    assert "STEP de Saint-Aubin" in first and "Octobre 2026" in first
    assert "Temps de marche" in first and "1,0 h" in first
    assert "12,0 m³" in first  # the site's volume
    assert "Feed pump" in pages[1] and "6,0 m³" in pages[1] and "0,45 kWh" in pages[1]
    assert "Coût de l'énergie par période tarifaire" in pages[1] and "off-peak" in pages[1]
    assert "Temps de marche quotidien (h)" in pages[1]
    assert "Lift pump" in pages[2] and "0,5 h" in pages[2]


def test_pdf_in_english(plant):
    _report, pdf, _csv = monthly_report.report_files(OCTOBER, "en")
    first = pdf_text(pdf)[0]
    assert "October 2026" in first and "Runtime" in first and "12.0 m³" in first and "Net CO2e" in first


def test_pdf_draws_the_daily_runtime_bars(plant):
    _report, pdf, _csv = monthly_report.report_files(OCTOBER, "en")
    page = PdfReader(io.BytesIO(pdf)).pages[1]
    content = page.get_contents().get_data().decode("latin-1")
    # Feed pump ran on 2 days: two filled rectangles ("re f") besides the table cells' none.
    assert content.count(" re f") == 2


# -- e-mail ---------------------------------------------------------------------------------


@override_settings(DEFAULT_FROM_EMAIL="reports@plant.example")
def test_email_goes_out_once_per_month_with_both_attachments(plant):
    ReportRecipient.objects.create(email="chef@plant.example", language="fr")
    ReportRecipient.objects.create(email="auditor@agency.example", language="en")
    ReportRecipient.objects.create(email="former@plant.example", active=False)
    now = datetime(2026, 11, 1, 6, 0, tzinfo=PARIS)

    assert monthly_report.send_monthly_reports(now=now) == 2
    assert monthly_report.send_monthly_reports(now=now) == 0  # a second run sends nothing

    assert len(mail.outbox) == 2
    by_address = {message.to[0]: message for message in mail.outbox}
    french = by_address["chef@plant.example"]
    assert french.from_email == "reports@plant.example"
    assert "octobre 2026" in french.subject.lower()
    names = [name for name, _content, _type in french.attachments]
    assert names == ["pump-report-2026-10.pdf", "pump-report-2026-10.csv"]
    pdf = french.attachments[0][1]
    assert "Octobre 2026" in pdf_text(pdf)[0]
    assert "October 2026" in pdf_text(by_address["auditor@agency.example"].attachments[0][1])[0]
    assert "Feed pump" in french.attachments[1][1]
    assert set(MonthlyReportDelivery.objects.values_list("month", "email")) == {
        (OCTOBER, "chef@plant.example"),
        (OCTOBER, "auditor@agency.example"),
    }
    # The next month is a new report.
    assert monthly_report.send_monthly_reports(now=datetime(2026, 12, 1, 6, tzinfo=PARIS)) == 2
    assert len(mail.outbox) == 4


def test_a_failed_send_is_retried_next_run(plant, monkeypatch):
    ReportRecipient.objects.create(email="chef@plant.example", language="fr")
    now = datetime(2026, 11, 1, 6, 0, tzinfo=PARIS)

    def refuse(self, fail_silently=False):
        raise OSError("smtp down")

    monkeypatch.setattr("django.core.mail.EmailMessage.send", refuse)
    assert monthly_report.send_monthly_reports(now=now) == 0
    assert not MonthlyReportDelivery.objects.exists()
    monkeypatch.undo()
    assert monthly_report.send_monthly_reports(now=now) == 1
    assert len(mail.outbox) == 1


def test_schedule_on_the_first_of_the_month():
    call_command("setup_schedules")
    call_command("setup_schedules")
    schedule = Schedule.objects.get(name="dashboard: monthly report")
    assert schedule.func == "dashboard.tasks.send_monthly_reports"
    assert schedule.schedule_type == Schedule.MONTHLY
    assert next_first_of_month(now=datetime(2026, 11, 25, 17, tzinfo=PARIS)) == datetime(2026, 12, 1, 6, tzinfo=PARIS)
    assert next_first_of_month(now=datetime(2026, 12, 1, 3, tzinfo=PARIS)) == datetime(2026, 12, 1, 6, tzinfo=PARIS)
    assert next_first_of_month(now=datetime(2026, 12, 15, tzinfo=PARIS)) == datetime(2027, 1, 1, 6, tzinfo=PARIS)


# -- the dashboard's download -------------------------------------------------------------------


def test_staff_and_viewers_download_any_past_month(plant, client):
    for account in (user("staff", staff=True), user("viewer", viewer=True)):
        client.force_login(account)
        page = client.get("/reports/")
        assert page.status_code == 200 and b"/reports/2026-10.pdf" in page.content
        pdf = client.get("/reports/2026-10.pdf")
        assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
        assert 'filename="pump-report-2026-10.pdf"' in pdf["Content-Disposition"]
        assert "October 2026" in pdf_text(pdf.content)[0]
        got = client.get("/reports/2026-10.csv")
        assert got.status_code == 200 and "Feed pump" in got.content.decode()


def test_download_in_french_follows_the_page_language(plant, client):
    client.force_login(user("staff", staff=True))
    pdf = client.get("/reports/2026-10.pdf", HTTP_ACCEPT_LANGUAGE="fr")
    assert "Octobre 2026" in pdf_text(pdf.content)[0]


def test_others_cannot_download(plant, client):
    assert client.get("/reports/2026-10.pdf").status_code == 302  # to the login page
    client.force_login(user("nobody"))
    assert client.get("/reports/2026-10.pdf").status_code == 403


def test_bad_or_future_month_is_a_clean_404(plant, client):
    client.force_login(user("staff", staff=True))
    for path in ("/reports/2026-13.pdf", "/reports/2999-01.csv", "/reports/20261.pdf", "/reports/2026-10.xls"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert b"Traceback" not in response.content
