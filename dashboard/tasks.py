"""django-q2 entry points of the dashboard (thin: the work is in dashboard.monthly_report)."""

from dashboard import monthly_report


def send_monthly_reports() -> int:
    """The schedule on the 1st: last month's report to every active recipient, once."""
    return monthly_report.send_monthly_reports()
