"""HTTP batch ingest (§4.2): validate each item, turn it into Samples, feed the pipeline.

Rules:
- an item is a raw relayed frame `{"device_id", "received_at", "frame"}` or a
  normalized reading `{"device_id", "channel", "ts", "apower_w", "voltage_v",
  "current_a", "energy_total_wh", "idempotency_key"?}`;
- each item is validated alone: a bad one is listed in `rejected` with its
  index and never rejects the others;
- raw frames go through one `DeviceStatusTracker` in item order (a partial
  NotifyStatus is merged over the frames before it in the same batch), with
  `received_at` as the receive time for the clock-skew rule;
- a key bound to a device (`IngestToken.device`) only pushes that device;
- a reading more than the allowed clock skew in the future is rejected;
- all Samples go to `ingest_samples` at once: it sorts them per channel and
  applies the write policies; a reading not after its channel's last
  processed one is a duplicate, so a replayed batch writes nothing new, and
  rows carry idempotency keys under a unique index against racing requests.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from collector import metrics
from collector.models import Device, IngestToken, Transport
from collector.parsing import DeviceStatusTracker, FrameError
from collector.pipeline import ingest_samples
from collector.samples import Sample
from collector.validation import (
    DEVICE_ID_HELP,
    DEVICE_ID_PATTERN,
    MAX_JSON_DEPTH,
    READING_BOUNDS,
    is_number,
    json_depth_exceeds,
    valid_channel_key,
    within,
)

MAX_BATCH_ITEMS = 1000
IDEMPOTENCY_KEY_MAX = 200
OPTIONAL_NUMBERS = ("voltage_v", "current_a", "energy_total_wh", "pf", "freq", "returned_energy_wh")


class ItemRejected(ValueError):
    def __init__(self, message: str, *, reason: str = "wrong_type"):
        super().__init__(message)
        self.reason = reason


@dataclass
class BatchResult:
    accepted: int = 0
    duplicates: int = 0
    refused: int = 0
    rejected: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "refused": self.refused,
            "rejected": self.rejected,
        }


@dataclass
class _ValidItem:
    index: int
    device_id: str
    samples: list


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_finite(value) -> bool:
    return is_number(value)


def parse_time(value, name: str) -> datetime:
    """ISO-8601 text (naive means UTC) or Unix epoch seconds → aware datetime."""
    if _is_number(value):
        if not _is_finite(value):
            raise ItemRejected(f"{name}: not a finite number", reason="non_finite")
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise ItemRejected(f"{name}: epoch seconds out of range") from None
    if isinstance(value, str):
        try:
            parsed = parse_datetime(value.strip())
        except ValueError:
            parsed = None
        if parsed is None:
            raise ItemRejected(f"{name}: not an ISO-8601 time")
        if timezone.is_naive(parsed):
            parsed = parsed.replace(tzinfo=UTC)
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise ItemRejected(f"{name}: out of range") from None
    if value is None:
        raise ItemRejected(f"{name}: required")
    raise ItemRejected(f"{name}: expected an ISO-8601 string or epoch seconds")


def _not_in_future(ts: datetime, name: str, now: datetime) -> datetime:
    """Within the plausible window: not beyond the clock skew ahead, not older than INGEST_MAX_AGE_DAYS."""
    limit = now + timedelta(seconds=settings.COLLECTOR_CLOCK_SKEW_SECONDS)
    if ts > limit:
        raise ItemRejected(
            f"{name}: more than {settings.COLLECTOR_CLOCK_SKEW_SECONDS} s in the future", reason="future_timestamp"
        )
    if ts < now - timedelta(days=settings.INGEST_MAX_AGE_DAYS):
        raise ItemRejected(f"{name}: older than {settings.INGEST_MAX_AGE_DAYS} days", reason="too_old")
    return ts


def _number(item: dict, name: str, *, required=False):
    value = item.get(name)
    if value is None:
        if required:
            raise ItemRejected(f"{name}: required")
        return None
    if not _is_number(value):
        raise ItemRejected(f"{name}: expected a number")
    if not _is_finite(value):
        raise ItemRejected(f"{name}: not a finite number", reason="non_finite")
    bound = READING_BOUNDS.get(name)
    if bound is not None and not within(value, bound):
        raise ItemRejected(f"{name}: out of the plausible range (±{bound:g})", reason="out_of_range")
    return float(value)


def _device_id(item: dict, token: IngestToken) -> str:
    device_id = item.get("device_id")
    if not isinstance(device_id, str) or not DEVICE_ID_PATTERN.fullmatch(device_id):
        raise ItemRejected(f"device_id: expected {DEVICE_ID_HELP}", reason="bad_device_id")
    if token.device_id is not None and device_id != token.device.device_id:
        raise ItemRejected(f"device_id: this key may only push {token.device.device_id}", reason="wrong_device")
    return device_id


def reading_sample(item: dict, *, device_id: str, now: datetime) -> Sample:
    """A normalized reading → one Sample."""
    channel = item.get("channel")
    if not valid_channel_key(channel):
        raise ItemRejected("channel: expected switch:N, pm1:N, em1:N or em:N:a|b|c|total")
    ts = _not_in_future(parse_time(item.get("ts"), "ts"), "ts", now)
    idempotency_key = item.get("idempotency_key")
    if idempotency_key is not None and (
        not isinstance(idempotency_key, str)
        or not 0 < len(idempotency_key) <= IDEMPOTENCY_KEY_MAX
        or "\x00" in idempotency_key
    ):
        raise ItemRejected(f"idempotency_key: expected a string of 1-{IDEMPOTENCY_KEY_MAX} characters")
    return Sample(
        device_id=device_id,
        channel_key=channel,
        ts=ts,
        apower_w=_number(item, "apower_w", required=True),
        idempotency_key=idempotency_key,
        **{name: _number(item, name) for name in OPTIONAL_NUMBERS},
    )


def frame_samples(item: dict, *, device_id: str, tracker: DeviceStatusTracker, now: datetime) -> list[Sample]:
    """A raw relayed Shelly frame → the Samples the WebSocket path would get from it."""
    frame = item["frame"]
    if not isinstance(frame, dict):
        raise ItemRejected("frame: expected a JSON object")
    received_at = now
    if item.get("received_at") is not None:
        received_at = _not_in_future(parse_time(item["received_at"], "received_at"), "received_at", now)
    src = frame.get("src")
    if src is not None and src != device_id:
        raise ItemRejected("frame.src does not match device_id", reason="wrong_device")
    try:
        parsed = tracker.parse(frame, received_at=received_at, device_id=device_id)
    except FrameError as exc:
        raise ItemRejected(f"frame: {exc}", reason=exc.kind) from None
    for problem in parsed.problems:
        metrics.frames_rejected.labels(reason=problem).inc()
    if parsed.clock_skew:
        metrics.clock_skew.inc()
    if parsed.problems and not parsed.samples:
        raise ItemRejected(f"frame: nothing usable ({', '.join(sorted(set(parsed.problems)))})")
    return parsed.samples


def _validate(messages, *, token, now) -> tuple[list[_ValidItem], list[dict]]:
    tracker = DeviceStatusTracker(max_skew_s=settings.COLLECTOR_CLOCK_SKEW_SECONDS)
    valid, rejected = [], []
    for index, item in enumerate(messages):
        try:
            if not isinstance(item, dict):
                raise ItemRejected("expected a JSON object")
            if json_depth_exceeds(item, MAX_JSON_DEPTH):
                raise ItemRejected(f"nested deeper than {MAX_JSON_DEPTH} levels", reason="too_deep")
            device_id = _device_id(item, token)
            if "frame" in item:
                samples = frame_samples(item, device_id=device_id, tracker=tracker, now=now)
            else:
                samples = [reading_sample(item, device_id=device_id, now=now)]
        except ItemRejected as exc:
            metrics.frames_rejected.labels(reason=exc.reason).inc()
            rejected.append({"index": index, "error": str(exc)})
            continue
        valid.append(_ValidItem(index, device_id, samples))
    return valid, rejected


def _refuse_unknown_devices(valid: list[_ValidItem], rejected: list[dict]) -> list[_ValidItem]:
    """Reject, per item, devices that are disabled or (without auto-registration) unknown."""
    device_ids = {v.device_id for v in valid}
    if not device_ids:
        return valid
    enabled = dict(Device.objects.filter(device_id__in=device_ids).values_list("device_id", "enabled"))
    kept = []
    for item in valid:
        known = item.device_id in enabled
        if known and not enabled[item.device_id]:
            rejected.append({"index": item.index, "error": "device is disabled"})
        elif not known and not settings.COLLECTOR_AUTO_REGISTER:
            metrics.refused_devices.inc()
            rejected.append({"index": item.index, "error": "unknown device (auto-registration is off)"})
        else:
            kept.append(item)
    return kept


def _first_of_each_client_key(samples: list[Sample]) -> tuple[list[Sample], int]:
    """Two readings of one batch with the same client key (same device and channel) are one reading.

    The second would pass the policies (it is later) and then be skipped by
    the unique index, yet counted as accepted: it is counted as a duplicate.
    """
    seen, kept, repeated = set(), [], 0
    for sample in sorted(samples, key=lambda s: s.ts):
        if sample.idempotency_key:
            scope = (sample.device_id, sample.channel_key, sample.idempotency_key)
            if scope in seen:
                repeated += 1
                continue
            seen.add(scope)
        kept.append(sample)
    return kept, repeated


def ingest_batch(messages: list, *, token: IngestToken, now: datetime | None = None) -> BatchResult:
    """Validate a batch item by item and feed its readings to the pipeline."""
    now = now or timezone.now()
    metrics.frames_in.labels(transport=Transport.BATCH).inc(len(messages))
    valid, rejected = _validate(messages, token=token, now=now)
    valid = _refuse_unknown_devices(valid, rejected)
    samples, repeated = _first_of_each_client_key([sample for item in valid for sample in item.samples])
    result = BatchResult(rejected=sorted(rejected, key=lambda r: r["index"]), duplicates=repeated)
    if not samples:
        return result
    outcome = ingest_samples(samples, transport=Transport.BATCH, token_key=token.pk)
    result.accepted, result.refused = outcome.accepted, outcome.refused
    result.duplicates += outcome.duplicates
    Device.objects.filter(device_id__in={item.device_id for item in valid}).update(last_seen=now)
    return result
