"""Shelly frames and statuses → Samples (§4.1, SHELLY.md).

One parser for every path: the WebSocket consumer, the batch API (raw
relayed frames) and the RPC poller (GetStatus results) all end here.

- Component status is under `params` (flat), `params.device_status`
  (nested) or `result` (responses).
- NotifyStatus is partial: it is deep-merged over the device's last known
  status; a key set to null is removed; a missing field never becomes 0.
- Bad parts are dropped and counted, the rest of the frame is used.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime

from collector.samples import Sample
from collector.validation import BOUNDS, check_device_id, decode_json, is_number, valid_component_key, within
from collector.validation import InputRejected as FrameError

FULL_STATUS_METHODS = {"notifyfullstatus"}
PARTIAL_STATUS_METHODS = {"notifystatus"}
EVENT_METHODS = {"notifyevent"}

# Components a Gen2+ device may report; anything else is counted as unknown.
KNOWN_COMPONENTS = {
    "ble", "bthome", "cloud", "cover", "devicepower", "em", "em1", "em1data", "emdata", "eth", "humidity",
    "illuminance", "input", "knx", "light", "matter", "modbus", "mqtt", "pm1", "plugs_ui", "rgb", "rgbw",
    "script", "smoke", "switch", "sys", "temperature", "ui", "voltmeter", "wifi", "ws", "zigbee", "boolean",
    "number", "text", "enum", "group", "button", "virtual", "bthomedevice", "bthomesensor", "blugw", "pill",
    "presence", "presencezone", "service", "dali", "xmod", "ht_ui", "wd_ui", "ts",
}  # fmt: skip
# Numeric fields we read; a wrong type or a non-finite value there is bad input.
NUMERIC_FIELDS = {
    "switch": ("apower", "voltage", "current", "pf", "freq"),
    "pm1": ("apower", "voltage", "current", "pf", "freq"),
    "em1": ("act_power", "voltage", "current", "pf", "freq"),
    "em1data": ("total_act_energy", "total_act_ret_energy"),
    "em": tuple(f"{p}_{f}" for p in "abc" for f in ("act_power", "voltage", "current", "pf", "freq"))
    + ("total_act_power", "total_current", "n_current"),
    "emdata": ("total_act", "total_act_ret") + tuple(f"{p}_total_act{r}_energy" for p in "abc" for r in ("", "_ret")),
}
ENERGY_SUBFIELDS = {"switch": ("aenergy", "ret_aenergy"), "pm1": ("aenergy", "ret_aenergy")}
POWER_COMPONENTS = {"switch", "pm1", "em1", "em"}
DATA_TO_POWER = {"emdata": "em", "em1data": "em1"}


def decode_frame(text, *, max_bytes: int) -> dict:
    """Bytes or text off the wire → a JSON object, or FrameError."""
    size = len(text)
    if isinstance(text, str) and size * 4 > max_bytes:
        # A character is 1 to 4 bytes in UTF-8: encode only when the count could matter.
        size = size if size > max_bytes else len(text.encode())
    if size > max_bytes:
        raise FrameError("oversize", f"frame of {size} bytes is over the {max_bytes} byte limit")
    frame = decode_json(text)
    if not isinstance(frame, dict):
        raise FrameError("wrong_type", "a frame must be a JSON object")
    return frame


def component_type(key: str) -> str:
    return key.split(":", 1)[0]


_is_number = is_number


def field_bound(name: str) -> float:
    """The plausibility bound of a numeric status field, by what it measures."""
    if "power" in name:
        return BOUNDS["power"]
    if "energy" in name or name.startswith("total_act"):
        return BOUNDS["energy"]
    for kind in ("voltage", "current", "pf", "freq"):
        if name.endswith(kind):
            return BOUNDS[kind]
    return BOUNDS["power"]


def component_problem(key: str, value) -> str | None:
    """Why this component status cannot be used, or None."""
    if not valid_component_key(key):
        return "bad_key"
    ctype = component_type(key)
    if ctype not in KNOWN_COMPONENTS:
        return "unknown_component"
    if value is None:
        return None  # null: the component disappeared
    if not isinstance(value, dict):
        return "wrong_type"
    for name in NUMERIC_FIELDS.get(ctype, ()):
        number = value.get(name)
        if number is None:
            continue
        if not _is_number(number):
            return "non_finite" if isinstance(number, float) else "wrong_type"
        if not within(number, field_bound(name)):
            return "out_of_range"
    for name in ENERGY_SUBFIELDS.get(ctype, ()):
        sub = value.get(name)
        if sub is None:
            continue
        total = sub.get("total") if isinstance(sub, dict) else None
        if not isinstance(sub, dict) or (total is not None and not _is_number(total)):
            return "wrong_type"
        if total is not None and not within(total, BOUNDS["energy"]):
            return "out_of_range"
    return None


def deep_merge(base: dict, update: dict) -> dict:
    """Overlay a partial status on the known one; null removes a key."""
    merged = dict(base)
    for key, value in update.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _num(value):
    return float(value) if _is_number(value) else None


def _energy(status: dict, name: str):
    sub = status.get(name)
    return _num(sub.get("total")) if isinstance(sub, dict) else None


def _single_path_samples(device_id, key, ts, status, power_field, energy, returned) -> list[Sample]:
    """A switch, pm1 or em1 status: one power path with voltage, current, pf and freq."""
    power = _num(status.get(power_field))
    if power is None:
        return []
    return [
        Sample(
            device_id=device_id,
            channel_key=key,
            ts=ts,
            apower_w=power,
            voltage_v=_num(status.get("voltage")),
            current_a=_num(status.get("current")),
            energy_total_wh=energy,
            returned_energy_wh=returned,
            pf=_num(status.get("pf")),
            freq=_num(status.get("freq")),
        )
    ]


def samples_for_component(device_id: str, key: str, status: dict, full: dict, ts: datetime) -> list[Sample]:
    """Samples of one power component, reading its energy counter where the device keeps it."""
    ctype = component_type(key)
    cid = key.split(":", 1)[1] if ":" in key else "0"
    if ctype in ("switch", "pm1"):
        energy, returned = _energy(status, "aenergy"), _energy(status, "ret_aenergy")
        return _single_path_samples(device_id, key, ts, status, "apower", energy, returned)
    if ctype == "em1":
        data = full.get(f"em1data:{cid}") or {}
        energy, returned = _num(data.get("total_act_energy")), _num(data.get("total_act_ret_energy"))
        return _single_path_samples(device_id, key, ts, status, "act_power", energy, returned)
    if ctype == "em":
        data = full.get(f"emdata:{cid}") or {}
        samples = []
        for phase in "abc":
            power = _num(status.get(f"{phase}_act_power"))
            if power is None:
                continue
            samples.append(
                Sample(
                    device_id=device_id,
                    channel_key=f"em:{cid}:{phase}",
                    ts=ts,
                    apower_w=power,
                    voltage_v=_num(status.get(f"{phase}_voltage")),
                    current_a=_num(status.get(f"{phase}_current")),
                    energy_total_wh=_num(data.get(f"{phase}_total_act_energy")),
                    returned_energy_wh=_num(data.get(f"{phase}_total_act_ret_energy")),
                    pf=_num(status.get(f"{phase}_pf")),
                    freq=_num(status.get(f"{phase}_freq")),
                )
            )
        total = _num(status.get("total_act_power"))
        if total is not None:
            samples.append(
                Sample(
                    device_id=device_id,
                    channel_key=f"em:{cid}:total",
                    ts=ts,
                    apower_w=total,
                    current_a=_num(status.get("total_current")),
                    energy_total_wh=_num(data.get("total_act")),
                    returned_energy_wh=_num(data.get("total_act_ret")),
                )
            )
        return samples
    return []


def samples_from_status(device_id: str, status: dict, ts: datetime, only=None) -> list[Sample]:
    """All Samples a (merged) status holds; `only` limits them to changed power components."""
    samples = []
    for key, value in status.items():
        if component_type(key) not in POWER_COMPONENTS or not isinstance(value, dict):
            continue
        if only is not None and key not in only:
            continue
        samples.extend(samples_for_component(device_id, key, value, status, ts))
    return samples


# Fields only a status (not a config, not device info) carries.
STATUS_MARKERS = {"sys": ("uptime", "unixtime", "ram_free"), "switch": ("apower", "output"), "em": ("total_act_power",)}


def is_status_result(result) -> bool:
    """Whether an RPC result is a Shelly.GetStatus answer.

    A relayed `Shelly.GetConfig` result also has `switch:0` or `sys` keys; taken
    for a full status it would wipe the device's known power.
    """
    if not isinstance(result, dict):
        return False
    for key, value in result.items():
        markers = STATUS_MARKERS.get(component_type(key))
        if markers and isinstance(value, dict) and any(m in value for m in markers):
            return True
    return any(
        component_type(k) in POWER_COMPONENTS
        and isinstance(v, dict)
        and ("apower" in v or "act_power" in v or "a_act_power" in v)
        for k, v in result.items()
    )


@dataclass
class ParsedFrame:
    device_id: str | None
    kind: str  # "status", "event", "response", "error", "request", "other"
    samples: list = field(default_factory=list)
    problems: list = field(default_factory=list)  # counter names of dropped parts
    clock_skew: bool = False
    method: str | None = None
    frame_id: object = None


def frame_timestamp(raw_ts, received_at: datetime, max_skew_s: float) -> tuple[datetime, bool]:
    """Device time when within max_skew_s of server time, else server receive time (skew)."""
    if not _is_number(raw_ts):
        return received_at, raw_ts is not None
    if abs(raw_ts - received_at.timestamp()) > max_skew_s:
        return received_at, True
    return datetime.fromtimestamp(raw_ts, tz=UTC), False


class DeviceStatusTracker:
    """Keeps each device's last known full status and turns frames into Samples."""

    def __init__(self, *, max_skew_s: float = 300.0):
        self.max_skew_s = max_skew_s
        self.statuses: dict[str, dict] = {}

    def parse(self, frame: dict, *, received_at: datetime, device_id: str | None = None) -> ParsedFrame:
        src = frame.get("src")
        if src is not None and not isinstance(src, str):
            raise FrameError("wrong_type", "src must be a string")
        if src:
            check_device_id(src)
        device_id = src or device_id
        method = frame.get("method")
        if method is not None and not isinstance(method, str):
            raise FrameError("wrong_type", "method must be a string")
        lowered = (method or "").lower()
        parsed = ParsedFrame(device_id=device_id, kind="other", method=method, frame_id=frame.get("id"))

        if "error" in frame and method is None:
            parsed.kind = "error"
            return parsed
        if "result" in frame and method is None:
            parsed.kind = "response"
            result = frame["result"]
            if is_status_result(result):
                # A GetStatus result has no `ts`; its `sys.unixtime` is the device clock, which keeps
                # it on the same time base as the notifications around it (a sample not after the
                # last one is a duplicate, so mixing server and device time would drop samples).
                sys_status = result.get("sys")
                raw_ts = sys_status.get("unixtime") if isinstance(sys_status, dict) else None
                return self._status(parsed, result, full=True, raw_ts=raw_ts, received_at=received_at)
            return parsed
        if lowered in EVENT_METHODS:
            parsed.kind = "event"
            return parsed
        if lowered in FULL_STATUS_METHODS or lowered in PARTIAL_STATUS_METHODS:
            params = frame.get("params")
            if not isinstance(params, dict):
                raise FrameError("wrong_type", "params must be an object")
            components = params.get("device_status") if isinstance(params.get("device_status"), dict) else params
            raw_ts = params.get("ts", components.get("ts"))
            return self._status(
                parsed,
                components,
                full=lowered in FULL_STATUS_METHODS,
                raw_ts=raw_ts,
                received_at=received_at,
            )
        if method is not None and "id" in frame:
            parsed.kind = "request"
        return parsed

    def _status(self, parsed, components, *, full, raw_ts, received_at):
        parsed.kind = "status"
        if not parsed.device_id:
            raise FrameError("wrong_type", "status frame without src")
        ts, parsed.clock_skew = frame_timestamp(raw_ts, received_at, self.max_skew_s)
        update = {}
        for key, value in components.items():
            if key == "ts":
                continue
            problem = component_problem(key, value)
            if problem:
                parsed.problems.append(problem)
                continue
            update[key] = value
        known = self.statuses.get(parsed.device_id, {})
        merged = {k: v for k, v in update.items() if v is not None} if full else deep_merge(known, update)
        self.statuses[parsed.device_id] = merged
        changed = set()
        for key in update:
            ctype = component_type(key)
            if ctype in POWER_COMPONENTS:
                changed.add(key)
            elif ctype in DATA_TO_POWER:
                changed.add(f"{DATA_TO_POWER[ctype]}:{key.split(':', 1)[1]}")
        parsed.samples = samples_from_status(parsed.device_id, merged, ts, only=changed)
        return parsed

    def forget(self, device_id: str) -> None:
        self.statuses.pop(device_id, None)
