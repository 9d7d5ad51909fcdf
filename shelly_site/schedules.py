"""Every periodic job, declared in one place; `manage.py setup_schedules` applies it."""

from django_q.models import Schedule

SCHEDULES = [
    {
        "name": "collector: close expired runs",
        "func": "collector.tasks.close_expired_runs",
        "schedule_type": Schedule.MINUTES,
        "minutes": 1,
    },
]
