"""Every periodic job, declared in one place; `manage.py setup_schedules` applies it."""

from datetime import date, datetime, time

from django.utils import timezone
from django_q.models import Schedule


def next_first_of_month(hour: int = 6, *, now: datetime | None = None) -> datetime:
    """The next 1st of a month at `hour` local time (today's when it is the 1st before that hour)."""
    now = timezone.localtime(now)
    if now.day == 1 and now.hour < hour:
        return timezone.make_aware(datetime.combine(now.date(), time(hour)))
    first = date(now.year + now.month // 12, now.month % 12 + 1, 1)
    return timezone.make_aware(datetime.combine(first, time(hour)))


SCHEDULES = [
    {
        "name": "collector: close expired runs",
        "func": "collector.tasks.close_expired_runs",
        "schedule_type": Schedule.MINUTES,
        "minutes": 1,
    },
    {
        "name": "collector: 1-minute rollups",
        "func": "collector.tasks.update_rollups",
        "schedule_type": Schedule.MINUTES,
        "minutes": 1,
    },
    {
        "name": "collector: retention",
        "func": "collector.tasks.apply_retention",
        "schedule_type": Schedule.HOURLY,
    },
    {
        "name": "alerts: time-based rules",
        "func": "alerts.tasks.check_time_rules",
        "schedule_type": Schedule.MINUTES,
        "minutes": 1,
    },
    {
        "name": "dashboard: monthly report",
        "func": "dashboard.tasks.send_monthly_reports",
        "schedule_type": Schedule.MONTHLY,
        # Evaluated when setup_schedules runs; django-q2 then adds a month per run.
        "next_run": next_first_of_month(),
    },
]
