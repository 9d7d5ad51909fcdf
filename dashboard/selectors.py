"""Read-side queries of the dashboard pages, their live socket and the channel API."""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db.models import Count, Min, OuterRef, Q, Subquery, Sum
from django.utils import timezone

from alerts.models import AlertEvent
from collector.models import Channel, ChannelState, Cycle, Device, EnergyInterval, PowerLog
from configs.models import ChannelConfigVersion
from dashboard.kpis import Kpis, channel_kpis, total_kpis

# A WebSocket device refreshes `last_seen` every 30 s and a polled meter at
# every poll: beyond this a device is shown offline.
OFFLINE_AFTER_S = 120


def channels_with_state(channel_ids=None):
    latest = PowerLog.objects.filter(channel=OuterRef("pk")).order_by("-timestamp", "-id")
    qs = (
        Channel.objects.select_related("device", "state")
        .annotate(
            last_row_at=Subquery(latest.values("timestamp")[:1]),
            last_row_power_w=Subquery(latest.values("apower_w")[:1]),
            last_row_reason=Subquery(latest.values("reason")[:1]),
        )
        .order_by("device__device_id", "key")
    )
    if channel_ids is not None:
        qs = qs.filter(pk__in=channel_ids)
    return qs


def offline_after_s() -> float:
    return max(OFFLINE_AFTER_S, 3 * settings.POLL_LIVE_SECONDS)


def is_online(last_seen: datetime | None, *, now: datetime) -> bool:
    return last_seen is not None and (now - last_seen).total_seconds() <= offline_after_s()


def is_meter(key: str) -> bool:
    return key.startswith(("em:", "em1:"))


def channel_label(channel: Channel) -> str:
    """The name an admin gave the channel, else its device and key."""
    return channel.name or f"{channel.device.name or channel.device.device_id} · {channel.key}"


def local_day_bounds(day: date) -> tuple[datetime, datetime]:
    zone = timezone.get_current_timezone()
    start = timezone.make_aware(datetime.combine(day, datetime.min.time()), zone)
    end = timezone.make_aware(datetime.combine(day + timedelta(days=1), datetime.min.time()), zone)
    return start, end


def live_state(state: ChannelState, *, device_pk: int) -> dict:
    values = state.last_values or {}
    return {
        "channel": state.channel_id,
        "device": device_pk,
        "p": values.get("p"),
        "i": values.get("i"),
        "v": values.get("v"),
        "running": state.running,
        "running_since": state.run_started_at.isoformat() if state.running and state.run_started_at else None,
        "ts": state.last_sample_at.isoformat() if state.last_sample_at else None,
    }


def live_states_since(since: datetime | None) -> tuple[list[dict], list[dict]]:
    """Channel states and device `last_seen` changed after `since` (all when None): the page's database refresh."""
    states = ChannelState.objects.select_related("channel").filter(channel__enabled=True)
    devices = Device.objects.filter(last_seen__isnull=False)
    if since is not None:
        states = states.filter(updated_at__gt=since)
        devices = devices.filter(last_seen__gt=since)
    return (
        [live_state(state, device_pk=state.channel.device_id) for state in states],
        [{"device": pk, "last_seen": seen.isoformat()} for pk, seen in devices.values_list("pk", "last_seen")],
    )


@dataclass
class ChannelCard:
    channel: Channel
    label: str
    meter: bool
    pump_model: str
    running: bool
    running_since: datetime | None
    power_w: float | None
    current_a: float | None
    voltage_v: float | None
    last_sample_at: datetime | None
    today: Kpis
    metered_kwh: float | None = None


@dataclass
class DeviceGroup:
    device: Device
    online: bool
    cards: list = field(default_factory=list)


@dataclass
class Overview:
    day: date
    day_start: datetime
    groups: list
    pumps_today: Kpis
    metered_kwh: float | None
    has_pumps: bool
    has_meters: bool

    @property
    def empty(self) -> bool:
        return not self.groups


def configured_channel_ids(channel_ids) -> set[int]:
    """Channels with a config version in force now: the site's pumps (flow and loads known)."""
    return set(
        ChannelConfigVersion.objects.filter(channel_id__in=list(channel_ids), effective_to__isnull=True).values_list(
            "channel_id", flat=True
        )
    )


def current_pump_models(channel_ids) -> dict[int, str]:
    versions = ChannelConfigVersion.objects.filter(
        channel_id__in=list(channel_ids), effective_to__isnull=True, pump_model__isnull=False
    ).select_related("pump_model")
    return {v.channel_id: str(v.pump_model) for v in versions}


def metered_energy_kwh(channel_ids, *, start: datetime, end: datetime) -> dict[int, float]:
    rows = (
        EnergyInterval.objects.filter(channel_id__in=list(channel_ids), start__gte=start, start__lt=end)
        .values("channel_id")
        .annotate(wh=Sum("energy_wh"))
        .order_by()
    )
    return {row["channel_id"]: row["wh"] / 1000.0 for row in rows}


def overview(*, now: datetime | None = None) -> Overview:
    """The overview page: enabled channels grouped by device, with live state and today's figures."""
    now = now or timezone.now()
    day = timezone.localdate(now)
    start, end = local_day_bounds(day)
    channels = list(
        Channel.objects.filter(enabled=True, device__enabled=True)
        .select_related("device", "state")
        .order_by("device__name", "device__device_id", "key")
    )
    ids = [c.pk for c in channels]
    pumps = [c.pk for c in channels if not is_meter(c.key)]
    meters = [c.pk for c in channels if is_meter(c.key)]
    kpis = channel_kpis(channel_ids=pumps, start=start, end=end, now=now)
    metered = metered_energy_kwh(meters, start=start, end=end) if meters else {}
    models = current_pump_models(ids)
    groups: dict[int, DeviceGroup] = {}
    for channel in channels:
        device = channel.device
        group = groups.get(device.pk)
        if group is None:
            group = groups[device.pk] = DeviceGroup(device=device, online=is_online(device.last_seen, now=now))
        state = getattr(channel, "state", None)
        values = (state.last_values if state else None) or {}
        group.cards.append(
            ChannelCard(
                channel=channel,
                label=channel_label(channel),
                meter=is_meter(channel.key),
                pump_model=models.get(channel.pk, ""),
                running=bool(state and state.running),
                running_since=state.run_started_at if state and state.running else None,
                power_w=values.get("p"),
                current_a=values.get("i"),
                voltage_v=values.get("v"),
                last_sample_at=state.last_sample_at if state else None,
                today=kpis.get(channel.pk) or Kpis(),
                metered_kwh=metered.get(channel.pk),
            )
        )
    # The site's pump figures: configured channels (an aerator or a spare
    # output running all day is not a pump), or every switch when none is.
    configured = configured_channel_ids(pumps)
    return Overview(
        day=day,
        day_start=start,
        groups=list(groups.values()),
        pumps_today=total_kpis(k for key, k in kpis.items() if key in configured or not configured),
        metered_kwh=_site_metered_kwh(channels, metered),
        has_pumps=bool(pumps),
        has_meters=bool(meters),
    )


def _site_metered_kwh(channels, metered: dict[int, float]) -> float | None:
    """Metered energy of the site: each meter's total channel (or its phases/em1 channels summed)."""
    by_device: dict[int, dict[str, float]] = {}
    for channel in channels:
        if channel.pk in metered:
            by_device.setdefault(channel.device_id, {})[channel.key] = metered[channel.pk]
    if not by_device:
        return None
    total = 0.0
    for keys in by_device.values():
        totals = [kwh for key, kwh in keys.items() if key.endswith(":total")]
        total += sum(totals) if totals else sum(keys.values())
    return total


def config_versions_in_range(channel_id: int, *, start: datetime, end: datetime):
    """The config versions in force at some moment of [start, end), oldest first."""
    return (
        ChannelConfigVersion.objects.filter(channel_id=channel_id, effective_from__lt=end)
        .filter(Q(effective_to__isnull=True) | Q(effective_to__gt=start))
        .select_related("pump_model", "created_by")
        .order_by("effective_from")
    )


@dataclass(frozen=True)
class LifetimeCounters:
    """Maintenance counters: what the pump has done since the channel was first recorded."""

    runtime_h: float
    starts: int
    since: datetime | None


def lifetime_counters(channel_id: int, *, now: datetime | None = None) -> LifetimeCounters:
    now = now or timezone.now()
    row = Cycle.objects.filter(channel_id=channel_id).aggregate(
        runtime_s=Sum("duration_s", filter=Q(ended_at__isnull=False)),
        starts=Count("id"),
        first=Min("started_at"),
    )
    runtime_s = row["runtime_s"] or 0.0
    running = Cycle.objects.filter(channel_id=channel_id, ended_at__isnull=True).values_list("started_at", flat=True)
    runtime_s += sum(max(0.0, (now - started).total_seconds()) for started in running)
    return LifetimeCounters(runtime_h=runtime_s / 3600.0, starts=row["starts"], since=row["first"])


def alert_counts(channel_ids, *, start: datetime, end: datetime) -> dict[int, int]:
    """{channel id: alerts fired for the channel in [start, end)}: the monthly report's alerts column.

    An episode counts once, when it fired (its clear is not another alert).
    Device-wide alerts (a device offline) have no channel and are not counted
    against any pump.
    """
    counts = dict.fromkeys(channel_ids, 0)
    fired = (
        AlertEvent.objects.filter(channel_id__in=counts, action=AlertEvent.Action.FIRED, ts__gte=start, ts__lt=end)
        .values("channel_id")
        .annotate(n=Count("id"))
    )
    for row in fired:
        counts[row["channel_id"]] = row["n"]
    return counts
