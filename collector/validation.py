"""Hostile-input rules shared by every ingestion path (§4.1, §4.2).

The WebSocket frame path, the batch API (raw frames and normalized readings)
and the RPC poller all pass device input through these checks, so a value
one path refuses is never stored through another:

- JSON is decoded with its depth bounded (a 2 KB frame nested 1000 levels
  deep otherwise blows the stack further down) and with integers too large
  for a float turned into infinity, which the number check refuses;
- a device id (`src`) is a Shelly-style id; a component key is short and
  made of safe characters, so neither reaches the database or a log line
  with control characters or beyond a column's length;
- numbers are finite and physically plausible (power within ±1 MW, energy
  within 10¹² Wh…): a value that passes here serializes as JSON and sums
  without overflow everywhere downstream.
"""

import json
import math
import re

MAX_JSON_DEPTH = 32
# Letters, digits, `-`, `_`, at most 64 characters (SPEC §4.1): every real
# Shelly id (`shellypro4pm-a8032ab12345`) and every simulator id fits.
DEVICE_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
DEVICE_ID_HELP = "a Shelly id (1-64 of A-Z a-z 0-9 - _)"
# A component key as a Gen2+ device reports it (`switch:0`, `em1data:2`,
# `bthomesensor:200`, `sys`); 30 is Channel.key's column length.
COMPONENT_KEY_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,19}(?::[0-9]{1,3})?")
COMPONENT_KEY_MAX = 30
# A channel key is one of SPEC §3's forms with N < 1000.
CHANNEL_KEY_PATTERN = re.compile(r"(?:switch|pm1|em1):\d{1,3}|em:\d{1,3}:(?:a|b|c|total)")

# Physical plausibility (absolute values). Generous: a value outside is a
# broken or hostile device, never a real pump.
POWER_MAX_W = 1e6
ENERGY_MAX_WH = 1e12
VOLTAGE_MAX_V = 1e5
CURRENT_MAX_A = 1e5
PF_MAX = 10.0
FREQ_MAX_HZ = 1e4
BOUNDS = {
    "power": POWER_MAX_W,
    "energy": ENERGY_MAX_WH,
    "voltage": VOLTAGE_MAX_V,
    "current": CURRENT_MAX_A,
    "pf": PF_MAX,
    "freq": FREQ_MAX_HZ,
}
# Normalized reading fields (batch) → their bound.
READING_BOUNDS = {
    "apower_w": POWER_MAX_W,
    "voltage_v": VOLTAGE_MAX_V,
    "current_a": CURRENT_MAX_A,
    "energy_total_wh": ENERGY_MAX_WH,
    "returned_energy_wh": ENERGY_MAX_WH,
    "pf": PF_MAX,
    "freq": FREQ_MAX_HZ,
}


class InputRejected(ValueError):
    """Device input that must be dropped; `kind` names the counter it goes to."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _int_or_inf(text: str):
    # Hundreds of digits parse into a Python int that `float()` later refuses
    # with OverflowError; a float infinity is refused by `finite_number`.
    value = int(text)
    if abs(value) > 2**63:
        return math.inf if value > 0 else -math.inf
    return value


def _reject_constant(name):
    raise InputRejected("non_finite", f"{name} is not a number JSON allows")


def json_depth_exceeds(value, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether containers nest deeper than `limit` (iterative: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _bracket_depth_exceeds(text, limit: int) -> bool:
    """Cheap pre-check on the raw text: could the document nest deeper than `limit`?

    Counts opening brackets only (strings included, so it over-estimates):
    a frame with few brackets, the usual case, needs no further check.
    """
    if isinstance(text, bytes | bytearray):
        return text.count(b"{") + text.count(b"[") > limit
    return text.count("{") + text.count("[") > limit


def decode_json(text, *, allow_constants: bool = False, max_depth: int = MAX_JSON_DEPTH):
    """Bytes or text → a JSON value, or InputRejected (invalid, too deep, non-finite constants).

    `allow_constants` lets NaN/Infinity through as floats, for a batch body
    whose items are judged one by one.
    """
    kwargs = {"parse_int": _int_or_inf}
    if not allow_constants:
        kwargs["parse_constant"] = _reject_constant
    try:
        value = json.loads(text, **kwargs)
    except InputRejected:
        raise
    except RecursionError:
        raise InputRejected("too_deep", f"JSON nested deeper than {max_depth} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputRejected("invalid_json", f"invalid JSON: {exc}") from None
    if _bracket_depth_exceeds(text, max_depth) and json_depth_exceeds(value, max_depth):
        raise InputRejected("too_deep", f"JSON nested deeper than {max_depth} levels")
    return value


def is_number(value) -> bool:
    """A finite int or float (never a bool), without OverflowError on huge ints."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def within(value, bound: float) -> bool:
    """A finite number whose magnitude is at most `bound`."""
    return is_number(value) and abs(value) <= bound


def check_device_id(value) -> str:
    if not isinstance(value, str) or not DEVICE_ID_PATTERN.fullmatch(value):
        raise InputRejected("bad_device_id", f"device id: expected {DEVICE_ID_HELP}")
    return value


def valid_component_key(key) -> bool:
    return isinstance(key, str) and len(key) <= COMPONENT_KEY_MAX and COMPONENT_KEY_PATTERN.fullmatch(key) is not None


def valid_channel_key(key) -> bool:
    return isinstance(key, str) and CHANNEL_KEY_PATTERN.fullmatch(key) is not None
