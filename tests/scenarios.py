"""Small helpers that make a test read as a story: a pump's samples at given times."""

from datetime import UTC, datetime, timedelta

from collector.models import Channel, Device, PowerLog
from collector.samples import Sample

T0 = datetime(2026, 3, 2, 8, 0, 0, tzinfo=UTC)  # a Monday, 08:00 UTC, minute 0 of the hour


def at(seconds: float = 0, *, minutes: float = 0) -> datetime:
    return T0 + timedelta(seconds=seconds, minutes=minutes)


def make_channel(*, device_id="shellypro4pm-aabbccddeeff", key="switch:0", **rules) -> Channel:
    device, _ = Device.objects.get_or_create(device_id=device_id)
    return Channel.objects.create(device=device, key=key, **rules)


def sample(ts, power, *, channel=None, device_id="shellypro4pm-aabbccddeeff", key="switch:0", v=230.0, i=None, e=None):
    if channel is not None:
        device_id, key = channel.device.device_id, channel.key
    return Sample(
        device_id=device_id,
        channel_key=key,
        ts=ts,
        apower_w=power,
        voltage_v=v,
        current_a=round(power / 230.0, 3) if i is None else i,
        energy_total_wh=e,
    )


def rows(channel):
    return [
        (r.timestamp, r.reason, r.apower_w)
        for r in PowerLog.objects.filter(channel=channel).order_by("timestamp", "id")
    ]
