"""What the dashboard reads of the alerts app."""

from alerts.models import AlertEvent, AlertState

RECENT_EVENTS = 50


def active_alerts():
    return list(
        AlertState.objects.filter(active=True, rule__enabled=True)
        .select_related("rule", "channel__device", "device")
        .order_by("-since")
    )


def recent_events(limit=RECENT_EVENTS):
    return list(
        AlertEvent.objects.select_related("rule", "channel__device", "device").prefetch_related("deliveries__notifier")[
            :limit
        ]
    )
