"""The monthly self-monitoring report of the pumps: figures, CSV, PDF and the e-mail on the 1st.

Every figure comes from `dashboard.kpis` (`channel_kpis`, `total_kpis`,
`cost_by_tariff_period`) over the local calendar month, i.e. the code the
dashboard pages and the API use, so the report says what the dashboard says
for the same month. The site's figures are the pumps' figures added up with
the overview's rule (configured channels, or every switch when none is).
The alerts column comes from `dashboard.selectors.alert_counts`.

The PDF (fpdf2, pure Python) is in the recipient's language: a first page
with the site and a table of every pump, then one page per pump with its
figures, its cost by tariff period and a bar chart of its daily runtime.
The core PDF fonts only cover Latin-1, so subscripts are written plainly
(CO2e, BOD5) there; the CSV keeps machine-readable English column names.

`send_monthly_reports` (django-q2 schedule on the 1st) sends the previous
month to every active recipient once: a delivery row per (month, address)
is written with the send, so a retried or duplicated task sends nothing twice.
"""

import csv
import io
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import formats, timezone, translation
from django.utils.dates import MONTHS
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from collector.models import Channel
from dashboard.kpis import Kpis, channel_kpis, cost_by_tariff_period, total_kpis
from dashboard.models import MonthlyReportDelivery, ReportRecipient
from dashboard.selectors import alert_counts, channel_label, configured_channel_ids, is_meter, local_day_bounds

log = logging.getLogger(__name__)

# (key, label, unit, decimals): the figures of the site and of every pump, in report order.
FIGURES = (
    ("runtime_h", gettext_lazy("Runtime"), "h", 1),
    ("starts", gettext_lazy("Starts"), "", 0),
    ("cycles", gettext_lazy("Cycles"), "", 0),
    ("energy_kwh", gettext_lazy("Energy"), "kWh", 2),
    ("volume_m3", gettext_lazy("Volume pumped"), "m³", 1),
    ("kwh_per_m3", gettext_lazy("Energy per volume"), "kWh/m³", 3),
    ("bod5_kg", gettext_lazy("BOD5 load"), "kg", 2),
    ("cod_kg", gettext_lazy("COD load"), "kg", 2),
    ("tss_kg", gettext_lazy("TSS load"), "kg", 2),
    ("electricity_co2e_kg", gettext_lazy("Electricity CO₂e"), "kg", 2),
    ("avoided_co2e_kg", gettext_lazy("Avoided CO₂e"), "kg", 2),
    ("net_co2e_kg", gettext_lazy("Net CO₂e"), "kg", 2),
    ("cost", gettext_lazy("Energy cost"), "", 2),
    ("alerts", gettext_lazy("Alerts"), "", 0),
)
CSV_COLUMNS = ("scope", "channel_id", "label", *(key for key, *_ in FIGURES), "currency")
SUMMARY_COLUMNS = ("runtime_h", "starts", "energy_kwh", "volume_m3", "net_co2e_kg", "cost", "alerts")


@dataclass
class ReportScope:
    """The site or one pump: its figures over the month."""

    label: str
    channel_id: int | None
    kpis: Kpis
    alerts: int
    cost_by_period: dict = field(default_factory=dict)  # period name → {"energy_kwh", "cost"}
    daily_runtime_h: list = field(default_factory=list)  # one value per day of the month

    def value(self, key: str):
        return self.alerts if key == "alerts" else getattr(self.kpis, key)


@dataclass
class MonthlyReport:
    plant_name: str
    month: date  # first day
    start: datetime
    end: datetime
    site: ReportScope
    pumps: list
    generated_at: datetime

    @property
    def currency(self) -> str:
        return self.site.kpis.currency


class ReportMonthError(ValueError):
    """A month the report cannot be made for (badly written, or not begun yet)."""


def _days_in_month(month: date) -> int:
    return (next_month(month) - month).days


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def previous_month(month: date) -> date:
    return date(month.year - (month.month == 1), (month.month - 2) % 12 + 1, 1)


def parse_month(text: str, *, today: date | None = None) -> date:
    """'2026-03' → date(2026, 3, 1); the month must have begun (a report of the future has nothing in it)."""
    try:
        year, month = (int(part) for part in text.split("-"))
        first = date(year, month, 1)
    except (TypeError, ValueError):
        message = _("%(value)r is not a month: write it as YYYY-MM, e.g. 2026-03.") % {"value": text}
        raise ReportMonthError(message) from None
    today = today or timezone.localdate()
    if first > today:
        raise ReportMonthError(_("%(month)s has not begun yet.") % {"month": text})
    return first


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """[first local midnight of the month, first local midnight of the next) in the site time zone."""
    return local_day_bounds(month)[0], local_day_bounds(next_month(month))[0]


def month_title(month: date) -> str:
    return f"{capfirst(MONTHS[month.month])} {month.year}"


def report_channels(start: datetime, end: datetime) -> list[Channel]:
    """The pumps (switch outputs, not meters) enabled now or that ran in the month, in dashboard order."""
    ran = Q(cycles__started_at__gte=start, cycles__started_at__lt=end)
    channels = (
        Channel.objects.filter(Q(enabled=True, device__enabled=True) | ran)
        .select_related("device")
        .distinct()
        .order_by("device__name", "device__device_id", "key")
    )
    return [channel for channel in channels if not is_meter(channel.key)]


def build_report(month: date, *, now: datetime | None = None) -> MonthlyReport:
    start, end = month_bounds(month)
    now = now or timezone.now()
    channels = report_channels(start, end)
    ids = [channel.pk for channel in channels]
    kpis = channel_kpis(channel_ids=ids, start=start, end=end, now=now)
    periods = cost_by_tariff_period(channel_ids=ids, start=start, end=end)
    alerts = alert_counts(ids, start=start, end=end)
    daily: dict[int, list[float]] = {pk: [] for pk in ids}
    day = month
    while day < next_month(month):
        day_start, day_end = local_day_bounds(day)
        for pk, figures in channel_kpis(channel_ids=ids, start=day_start, end=day_end, now=now).items():
            daily[pk].append(figures.runtime_h if day_start < now else 0.0)
        day += timedelta(days=1)
    pumps = [
        ReportScope(
            label=channel_label(channel),
            channel_id=channel.pk,
            kpis=kpis[channel.pk],
            alerts=alerts.get(channel.pk, 0),
            cost_by_period=periods.get(channel.pk, {}),
            daily_runtime_h=daily[channel.pk],
        )
        for channel in channels
    ]
    configured = configured_channel_ids(ids)
    counted = [pump for pump in pumps if pump.channel_id in configured or not configured]
    site_periods: dict[str, dict] = {}
    for pump in counted:
        for name, totals in pump.cost_by_period.items():
            into = site_periods.setdefault(name, {"energy_kwh": 0.0, "cost": 0.0})
            into["energy_kwh"] += totals["energy_kwh"]
            into["cost"] += totals["cost"]
    site = ReportScope(
        label=_("Site"),
        channel_id=None,
        kpis=total_kpis(pump.kpis for pump in counted),
        alerts=sum(pump.alerts for pump in counted),
        cost_by_period=site_periods,
        daily_runtime_h=[sum(values) for values in zip(*(p.daily_runtime_h for p in counted), strict=True)]
        if counted
        else [0.0] * _days_in_month(month),
    )
    return MonthlyReport(
        plant_name=settings.PLANT_NAME,
        month=month,
        start=start,
        end=end,
        site=site,
        pumps=pumps,
        generated_at=now,
    )


# -- CSV --------------------------------------------------------------------------


def _csv_number(value):
    return "" if value is None else value


def report_csv(report: MonthlyReport) -> str:
    """One row for the site, then one per pump; empty cell: not configured. Full precision (no rounding)."""
    periods = sorted({name for scope in (report.site, *report.pumps) for name in scope.cost_by_period})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            *CSV_COLUMNS,
            *(f"energy_kwh_{name}" for name in periods),
            *(f"cost_{name}" for name in periods),
            "month",
            "plant",
        ]
    )
    for scope in (report.site, *report.pumps):
        by_period = scope.cost_by_period
        writer.writerow(
            [
                "site" if scope.channel_id is None else "channel",
                scope.channel_id or "",
                scope.label,
                *(_csv_number(scope.value(key)) for key, *_ in FIGURES),
                scope.kpis.currency,
                *(_csv_number(by_period.get(name, {}).get("energy_kwh")) for name in periods),
                *(_csv_number(by_period.get(name, {}).get("cost")) for name in periods),
                f"{report.month:%Y-%m}",
                report.plant_name,
            ]
        )
    return out.getvalue()


# -- PDF ---------------------------------------------------------------------------

PDF_REPLACEMENTS = str.maketrans({"₂": "2", "₄": "4", "₅": "5", "…": "...", "’": "'", "–": "-", "—": "-", "→": "->"})


def _pdf_text(text) -> str:
    """What the core fonts can print: Latin-1, subscripts written plainly."""
    return str(text).translate(PDF_REPLACEMENTS).encode("latin-1", "replace").decode("latin-1")


def format_value(value, decimals: int, unit: str = "") -> str:
    if value is None:
        return _("not configured")
    text = formats.number_format(value, decimal_pos=decimals, use_l10n=True, force_grouping=True)
    return f"{text} {unit}".strip()


def _figure_unit(key: str, unit: str, currency: str) -> str:
    return currency if key == "cost" else unit


def report_pdf(report: MonthlyReport) -> bytes:
    from fpdf import FPDF

    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.set_title(_pdf_text(f"{report.plant_name} - {month_title(report.month)}"))
    pdf.set_creator("shelly-monitor")

    def header(subtitle: str) -> None:
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 15)
        pdf.cell(0, 8, _pdf_text(report.plant_name), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 11)
        pdf.cell(
            0,
            6,
            _pdf_text(_("Monthly pump report · %(month)s") % {"month": month_title(report.month)}),
            new_x="LMARGIN",
            new_y="NEXT",
        )
        pdf.set_font("Helvetica", "", 8)
        generated = formats.date_format(timezone.localtime(report.generated_at), "DATETIME_FORMAT")
        pdf.cell(0, 5, _pdf_text(_("Generated %(when)s") % {"when": generated}), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", 13)
        pdf.cell(0, 8, _pdf_text(subtitle), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1)

    def figures_table(scope: ReportScope) -> None:
        pdf.set_font("Helvetica", "", 10)
        with pdf.table(col_widths=(60, 50), width=110, align="LEFT", first_row_as_headings=False) as table:
            for key, label, unit, decimals in FIGURES:
                row = table.row()
                row.cell(_pdf_text(label))
                row.cell(_pdf_text(format_value(scope.value(key), decimals, _figure_unit(key, unit, report.currency))))
        pdf.ln(3)

    def periods_table(scope: ReportScope) -> None:
        if not scope.cost_by_period:
            return
        pdf.set_font("Helvetica", "B", 11)
        pdf.cell(0, 7, _pdf_text(_("Energy cost by tariff period")), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 10)
        with pdf.table(col_widths=(50, 30, 30), width=110, align="LEFT") as table:
            head = table.row()
            for text in (_("Tariff period"), _("Energy"), _("Energy cost")):
                head.cell(_pdf_text(text))
            for name, totals in sorted(scope.cost_by_period.items()):
                row = table.row()
                row.cell(_pdf_text(name))
                row.cell(_pdf_text(format_value(totals["energy_kwh"], 2, "kWh")))
                row.cell(_pdf_text(format_value(totals["cost"], 2, report.currency)))
        pdf.ln(3)

    header(_("Site"))
    figures_table(report.site)
    periods_table(report.site)
    if report.pumps:
        pdf.set_font("Helvetica", "B", 11)
        pdf.cell(0, 7, _pdf_text(_("Pumps")), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 8)
        labels = {key: (label, unit, decimals) for key, label, unit, decimals in FIGURES}
        with pdf.table(col_widths=(46, *(20,) * len(SUMMARY_COLUMNS))) as table:
            head = table.row()
            head.cell(_pdf_text(_("Pump")))
            for key in SUMMARY_COLUMNS:
                label, unit, _decimals = labels[key]
                unit = _figure_unit(key, unit, report.currency)
                head.cell(_pdf_text(f"{label} ({unit})" if unit else label))
            for pump in report.pumps:
                row = table.row()
                row.cell(_pdf_text(pump.label))
                for key in SUMMARY_COLUMNS:
                    _label, _unit, decimals = labels[key]
                    value = pump.value(key)
                    row.cell(_pdf_text("-" if value is None else format_value(value, decimals)))
    for pump in report.pumps:
        header(pump.label)
        figures_table(pump)
        periods_table(pump)
        _runtime_chart(pdf, report, pump)
    return bytes(pdf.output())


def _runtime_chart(pdf, report: MonthlyReport, scope: ReportScope) -> None:
    """Bars of the runtime hours of each day of the month, with its scale."""
    values = scope.daily_runtime_h
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 7, _pdf_text(_("Daily runtime (h)")), new_x="LMARGIN", new_y="NEXT")
    top = max([*values, 1.0])
    scale_max = float(int(top) + (0 if top == int(top) else 1))
    left, width, height = pdf.l_margin + 10, pdf.epw - 10, 55
    if pdf.get_y() + height + 12 > pdf.h - pdf.b_margin:
        pdf.add_page()
    y0 = pdf.get_y() + 2
    bottom = y0 + height
    pdf.set_draw_color(120, 120, 120)
    pdf.line(left, y0, left, bottom)
    pdf.line(left, bottom, left + width, bottom)
    pdf.set_font("Helvetica", "", 7)
    for fraction in (0.0, 0.5, 1.0):
        y = bottom - fraction * height
        pdf.set_xy(pdf.l_margin, y - 2)
        pdf.cell(9, 4, _pdf_text(formats.number_format(scale_max * fraction, decimal_pos=1, use_l10n=True)), align="R")
    slot = width / max(1, len(values))
    pdf.set_fill_color(46, 110, 170)
    for index, hours in enumerate(values):
        bar = height * hours / scale_max if scale_max else 0
        if bar > 0:
            pdf.rect(left + index * slot + slot * 0.15, bottom - bar, slot * 0.7, bar, style="F")
        day = index + 1
        if day == 1 or day % 5 == 0:
            pdf.set_xy(left + index * slot, bottom + 1)
            pdf.cell(slot, 4, str(day), align="C")
    pdf.set_y(bottom + 7)


# -- the e-mail on the 1st ---------------------------------------------------------------


def report_files(month: date, language: str, *, now: datetime | None = None) -> tuple[MonthlyReport, bytes, str]:
    with translation.override(language):
        report = build_report(month, now=now)
        return report, report_pdf(report), report_csv(report)


def file_name(month: date, extension: str) -> str:
    return f"pump-report-{month:%Y-%m}.{extension}"


def send_monthly_reports(month: date | None = None, *, now: datetime | None = None) -> int:
    """Send `month` (default: the previous one) to every active recipient not sent it yet; returns how many."""
    now = now or timezone.now()
    month = month or previous_month(timezone.localdate(now).replace(day=1))
    sent = 0
    files: dict[str, tuple] = {}
    for recipient in ReportRecipient.objects.filter(active=True).order_by("email"):
        if MonthlyReportDelivery.objects.filter(month=month, email=recipient.email).exists():
            continue
        if recipient.language not in files:
            files[recipient.language] = report_files(month, recipient.language, now=now)
        report, pdf, csv_text = files[recipient.language]
        with translation.override(recipient.language):
            subject = _("%(plant)s: pump report for %(month)s") % {
                "plant": report.plant_name,
                "month": month_title(month),
            }
            body = _(
                "The monthly report of the pumps of %(plant)s for %(month)s is attached (PDF and CSV).\n\n"
                "Runtime %(runtime)s, energy %(energy)s, volume %(volume)s."
            ) % {
                "plant": report.plant_name,
                "month": month_title(month),
                "runtime": format_value(report.site.kpis.runtime_h, 1, "h"),
                "energy": format_value(report.site.kpis.energy_kwh, 1, "kWh"),
                "volume": format_value(report.site.kpis.volume_m3, 1, "m³"),
            }
        message = EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, [recipient.email])
        message.attach(file_name(month, "pdf"), pdf, "application/pdf")
        message.attach(file_name(month, "csv"), csv_text, "text/csv")
        # The delivery row is claimed first and kept only if the mail went out:
        # two workers running the task at once cannot both send.
        try:
            with transaction.atomic():
                MonthlyReportDelivery.objects.create(month=month, email=recipient.email, sent_at=now)
                message.send()
        except IntegrityError:
            continue
        except Exception:
            log.exception("monthly report not sent", extra={"event": "report_send_failed", "month": f"{month:%Y-%m}"})
            continue
        sent += 1
    return sent
