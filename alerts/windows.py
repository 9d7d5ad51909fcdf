"""Active time windows of a rule: weekdays + time ranges in the site time zone, across midnight allowed."""

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings


class WindowError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Window:
    days: frozenset[int]  # Monday = 0
    start: time
    end: time
    threshold: float | None = None

    def contains(self, local: datetime) -> bool:
        now = local.time().replace(tzinfo=None)
        if self.start < self.end:
            return local.weekday() in self.days and self.start <= now < self.end
        if self.start == self.end:  # a whole day
            return local.weekday() in self.days
        # Across midnight: the evening of a listed day, or the morning after it.
        if now >= self.start:
            return local.weekday() in self.days
        return now < self.end and (local - timedelta(days=1)).weekday() in self.days


def _time(value, name) -> time:
    try:
        return time.fromisoformat(str(value))
    except ValueError:
        raise WindowError(f"window {name}: {value!r} is not a time like 22:00") from None


def parse_windows(raw) -> tuple[Window, ...]:
    if raw in (None, ""):
        return ()
    if not isinstance(raw, list):
        raise WindowError("windows must be a list")
    windows = []
    for item in raw:
        if not isinstance(item, dict):
            raise WindowError("each window is an object with days, start, end")
        days = item.get("days", list(range(7)))
        if not isinstance(days, list) or not all(isinstance(d, int) and 0 <= d <= 6 for d in days):
            raise WindowError("window days: a list of 0 (Monday) to 6 (Sunday)")
        threshold = item.get("threshold")
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int | float)):
            raise WindowError("window threshold: a number")
        windows.append(
            Window(
                frozenset(days),
                _time(item.get("start", "00:00"), "start"),
                _time(item.get("end", "00:00"), "end"),
                None if threshold is None else float(threshold),
            )
        )
    return tuple(windows)


def site_zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def effective_threshold(windows: tuple[Window, ...], base: float, ts: datetime, zone: ZoneInfo) -> float | None:
    """The threshold in force at `ts`; None outside every window (the rule is asleep)."""
    if not windows:
        return base
    local = ts.astimezone(zone)
    for window in windows:
        if window.contains(local):
            return base if window.threshold is None else window.threshold
    return None
