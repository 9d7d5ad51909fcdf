"""Dashboard pages: parse the request, call selectors and `dashboard.kpis`, render.

Pages are for staff and the read-only viewers group (`shelly_site.access`).
Figures are rendered by the server (Django's French or English number and
date formats, in the site time zone); the pages' scripts only draw the
charts from the API and apply live values.
"""

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from collector import energy
from collector.models import Channel, Device
from configs import selectors as config_selectors
from configs.selectors import impact_totals
from dashboard import selectors
from dashboard.kpis import channel_kpis
from dashboard.strings import js_strings
from shelly_site.access import can_view_dashboard

CYCLES_PER_PAGE = 25
RANGES = {
    "24h": (gettext_lazy("24 h"), timedelta(hours=24)),
    "7d": (gettext_lazy("7 days"), timedelta(days=7)),
    "30d": (gettext_lazy("30 days"), timedelta(days=30)),
    "365d": (gettext_lazy("1 year"), timedelta(days=365)),
}
RANGE_TITLES = {
    "24h": gettext_lazy("Last 24 hours"),
    "7d": gettext_lazy("Last 7 days"),
    "30d": gettext_lazy("Last 30 days"),
    "365d": gettext_lazy("Last 12 months"),
}
MIN_DURATION_CHOICES = (0, 1, 2, 5, 10, 30)  # minutes


def dashboard_view(view):
    """Login required; then staff or viewers only (others get a 403 page, not the admin's login)."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not can_view_dashboard(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return require_GET(wrapper)


def _page_context(request, **context):
    """What every dashboard page's scripts need: language, site time zone, translated strings."""
    context["page_config"] = {
        "lang": request.LANGUAGE_CODE,
        "timeZone": timezone.get_current_timezone_name(),
        "offlineAfterS": selectors.offline_after_s(),
        "strings": js_strings(),
    }
    return context


@dashboard_view
def overview(request):
    data = selectors.overview()
    return render(request, "dashboard/overview.html", _page_context(request, overview=data, nav="overview"))


@dashboard_view
def overview_cards(request):
    """The overview's figures alone: the page swaps them in when runs start or stop."""
    return render(request, "dashboard/_overview_cards.html", {"overview": selectors.overview()})


@dashboard_view
def channel_list(request):
    rows = []
    now = timezone.now()
    channels = list(selectors.channels_with_state().filter(enabled=True))
    models = selectors.current_pump_models(c.pk for c in channels)
    for channel in channels:
        state = getattr(channel, "state", None)
        rows.append(
            {
                "channel": channel,
                "label": selectors.channel_label(channel),
                "meter": selectors.is_meter(channel.key),
                "pump_model": models.get(channel.pk, ""),
                "running": bool(state and state.running),
                "power_w": (state.last_values or {}).get("p") if state else None,
                "last_sample_at": state.last_sample_at if state else None,
                "online": selectors.is_online(channel.device.last_seen, now=now),
            }
        )
    return render(request, "dashboard/channel_list.html", _page_context(request, rows=rows, nav="channels"))


@dataclass(frozen=True)
class ChosenRange:
    key: str  # 24h, 7d, 30d or day
    start: datetime
    end: datetime
    day: date | None = None

    @property
    def query(self) -> str:
        return f"range=day&date={self.day.isoformat()}" if self.day else f"range={self.key}"


def _chosen_range(request, now: datetime) -> tuple[ChosenRange, str | None]:
    """The range asked for in the query string, or the last 24 h with a note saying why."""
    key = request.GET.get("range", "24h")
    if key in RANGES:
        return ChosenRange(key, now - RANGES[key][1], now), None
    if key == "day":
        try:
            day = date.fromisoformat(request.GET.get("date", ""))
        except ValueError:
            return ChosenRange("24h", now - RANGES["24h"][1], now), _(
                "The date must look like 2026-03-14; showing the last 24 hours instead."
            )
        if not date(2000, 1, 1) <= day <= timezone.localdate(now) + timedelta(days=1):
            return ChosenRange("24h", now - RANGES["24h"][1], now), _(
                "There is no data for that date; showing the last 24 hours instead."
            )
        start, end = selectors.local_day_bounds(day)
        return ChosenRange("day", start, end, day), None
    return ChosenRange("24h", now - RANGES["24h"][1], now), _("Unknown range; showing the last 24 hours instead.")


def _cycle_filters(request) -> tuple[int, bool]:
    try:
        minutes = int(request.GET.get("min_minutes", "0"))
    except ValueError:
        minutes = 0
    return (minutes if minutes in MIN_DURATION_CHOICES else 0), request.GET.get("noise") == "1"


@dashboard_view
def channel_detail(request, channel_id: int):
    channel = get_object_or_404(Channel.objects.select_related("device", "state"), pk=channel_id)
    now = timezone.now()
    chosen, range_note = _chosen_range(request, now)
    min_minutes, include_noise = _cycle_filters(request)
    kpis = channel_kpis(channel_ids=[channel.pk], start=chosen.start, end=chosen.end, now=now)[channel.pk]
    cycles = config_selectors.cycles(
        channel_id=channel.pk,
        start=chosen.start,
        end=chosen.end,
        include_noise=include_noise,
        min_duration_s=min_minutes * 60 or None,
    ).order_by("-started_at", "-id")
    page = Paginator(cycles, CYCLES_PER_PAGE).get_page(request.GET.get("page"))
    cycle_rows = [
        {"cycle": cycle, "impact": impact_totals(list(cycle.impacts.all()) if cycle.ended_at else [])}
        for cycle in page.object_list
    ]
    state = getattr(channel, "state", None)
    api_range = f"channel={channel.pk}&from={_iso(chosen.start)}&to={_iso(chosen.end)}"
    cycle_query = api_range + ("&include_noise=true" if include_noise else "")
    if min_minutes:
        cycle_query += f"&min_duration_s={min_minutes * 60}"
    context = _page_context(
        request,
        nav="channels",
        channel=channel,
        label=selectors.channel_label(channel),
        meter=selectors.is_meter(channel.key),
        state=state,
        live=(state.last_values or {}) if state else {},
        online=selectors.is_online(channel.device.last_seen, now=now),
        pump_model=selectors.current_pump_models([channel.pk]).get(channel.pk, ""),
        chosen=chosen,
        chosen_title=RANGE_TITLES.get(chosen.key, ""),
        range_note=range_note,
        ranges=[(key, label) for key, (label, _delta) in RANGES.items()],
        kpis=kpis,
        metered_kwh=selectors.metered_energy_kwh([channel.pk], start=chosen.start, end=chosen.end).get(channel.pk),
        versions=list(selectors.config_versions_in_range(channel.pk, start=chosen.start, end=chosen.end)),
        lifetime=selectors.lifetime_counters(channel.pk, now=now),
        page=page,
        cycle_rows=cycle_rows,
        min_minutes=min_minutes,
        include_noise=include_noise,
        min_duration_choices=MIN_DURATION_CHOICES,
        today=timezone.localdate(now),
        power_logs_csv=f"{reverse('api:power-log-list')}?{api_range}&format=csv",
        cycles_csv=f"{reverse('api:cycle-list')}?{cycle_query}&format=csv",
        filter_query=f"{chosen.query}&min_minutes={min_minutes}" + ("&noise=1" if include_noise else ""),
    )
    context["page_config"]["chart"] = {
        "seriesUrl": f"{reverse('api:series')}?{api_range}",
        "channel": channel.pk,
        "gapS": channel.effective_gap_threshold_s,
        "start": chosen.start.isoformat(),
        "end": chosen.end.isoformat(),
        "filename": f"channel-{channel.pk}-{chosen.day.isoformat() if chosen.day else chosen.key}.png",
    }
    return render(request, "dashboard/channel_detail.html", context)


def _iso(moment: datetime) -> str:
    # UTC with "Z": a "+01:00" offset would need escaping in a query string.
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _months_back(first: date, count: int) -> date:
    year, month = divmod(first.year * 12 + first.month - 1 - count, 12)
    return date(year, month + 1, 1)


@dashboard_view
def energy_page(request):
    meters = list(
        Device.objects.filter(Q(channels__key__startswith="em:") | Q(channels__key__startswith="em1:"))
        .distinct()
        .order_by("name", "device_id")
    )
    context = _page_context(request, nav="energy", meters=meters)
    if not meters:
        return render(request, "dashboard/energy.html", context)
    device = meters[0]
    if request.GET.get("device"):
        device = next((m for m in meters if str(m.pk) == request.GET["device"]), None)
        if device is None:
            context["note"] = _("That meter does not exist; showing the first one.")
            device = meters[0]
    today = timezone.localdate()
    try:
        month = date.fromisoformat(request.GET["month"] + "-01") if request.GET.get("month") else today
    except ValueError:
        context["note"] = _("The month must look like 2026-03; showing this month instead.")
        month = today
    if month < date(2000, 1, 1):
        month = today
    month = month.replace(day=1)
    if month > today:
        month = today.replace(day=1)
    month_start, month_end = energy.period_bounds("month", month)
    previous_start, previous_end = energy.period_bounds("month", _months_back(month, 1))
    now = timezone.now()
    partial = month_end > now
    if partial:
        # A month so far is compared with the same stretch of the month before.
        month_end = now
        previous_end = min(previous_end, previous_start + (now - month_start))
    year_start, _year_end = energy.period_bounds("month", _months_back(month, 11))
    year_of_days = energy.energy_per_bucket(device=device, bucket="day", start=year_start, end=month_end)
    days = [row for row in year_of_days if row["start"] >= month]
    months = energy.months_of(year_of_days)
    summary = energy.energy_between(device=device, start=month_start, end=month_end)
    previous = energy.energy_between(device=device, start=previous_start, end=previous_end)
    names = dict(Channel.objects.filter(device=device).values_list("key", "name"))
    keys = sorted({key for row in months for key in row["channels"]})
    context.update(
        device=device,
        month=month,
        partial=partial,
        previous_month=_months_back(month, 1),
        next_month=_months_back(month, -1) if _months_back(month, -1) <= today else None,
        summary=summary,
        phase_rows=[(names.get(key) or key, key, row) for key, row in summary["channels"].items()],
        previous=previous,
        change=_change(summary, previous),
        has_data=bool(months),
        days=days,
    )
    context["page_config"]["energy"] = {
        "phases": [key for key in keys if not key.endswith(":total")],
        "names": {key: names.get(key) or key for key in keys},
        "days": days,
        "months": months,
    }
    return render(request, "dashboard/energy.html", context)


def _change(summary, previous) -> dict | None:
    now_kwh, before_kwh = summary["total"]["energy_kwh"], previous["total"]["energy_kwh"]
    if not before_kwh:
        return None
    return {"energy_pct": (now_kwh - before_kwh) / before_kwh * 100.0}


def alerts_context(request) -> dict:
    """What the alerts page shows: active alerts, then the recent events with each notifier's result."""
    from alerts import selectors as alert_selectors

    return {
        "active_alerts": alert_selectors.active_alerts(),
        "recent_events": alert_selectors.recent_events(),
    }


@dashboard_view
def alerts_page(request):
    return render(request, "dashboard/alerts.html", _page_context(request, nav="alerts", **alerts_context(request)))


def favicon(request):
    return redirect(static("dashboard/favicon.svg"), permanent=True)


REPORT_MONTHS_LISTED = 24


@dashboard_view
def reports_page(request):
    """The monthly reports: this month so far and the past months, each as PDF and CSV."""
    from dashboard import monthly_report

    month = timezone.localdate().replace(day=1)
    months = []
    for _index in range(REPORT_MONTHS_LISTED):
        months.append({"month": month, "key": f"{month:%Y-%m}", "title": monthly_report.month_title(month)})
        month = monthly_report.previous_month(month)
    return render(request, "dashboard/reports.html", _page_context(request, nav="reports", months=months))


@dashboard_view
def report_download(request, month: str, extension: str):
    """One month's report in the page's language: PDF or CSV (an attachment)."""
    from django.http import Http404, HttpResponse

    from dashboard import monthly_report

    try:
        first = monthly_report.parse_month(month)
    except monthly_report.ReportMonthError as error:
        raise Http404(str(error)) from None
    report = monthly_report.build_report(first)
    if extension == "pdf":
        response = HttpResponse(monthly_report.report_pdf(report), content_type="application/pdf")
    else:
        response = HttpResponse(monthly_report.report_csv(report), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{monthly_report.file_name(first, extension)}"'
    return response
