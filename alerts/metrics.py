"""Prometheus counters of the alerts app (§9 `/metrics`): small closed label sets (rule kind, notifier kind)."""

from prometheus_client import Counter

alerts_fired = Counter("shelly_alerts_fired", "Alert episodes fired, by rule kind.", ["kind"])
notifier_failures = Counter(
    "shelly_notifier_failures", "Notifications that failed after their retries, by notifier kind.", ["kind"]
)
