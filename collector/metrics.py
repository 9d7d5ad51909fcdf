"""Prometheus counters of the collector (§9 `/metrics`).

One module so every ingestion path (WebSocket consumer, batch API, RPC
poller, pipeline) counts into the same series; `/metrics` exposes them
(`shelly_site.prometheus.exposition`).

Labels are kept to small closed sets (reason, path, transport): a label per
device would grow without bound on a site with auto-registration.

With `PROMETHEUS_MULTIPROC_DIR` set, the same objects work in prometheus-client's
multiprocess mode: `/metrics` sums the web, worker and poller processes, and
the gauge sums the live ones.
"""

import logging
import time

from prometheus_client import Counter, Gauge

frames_in = Counter(
    "shelly_frames_in",
    "Frames (WebSocket messages, batch items, poll answers) received from devices.",
    ["transport"],
)
frames_rejected = Counter(
    "shelly_frames_rejected",
    "Frames or parts of frames dropped as bad input, by reason "
    "(invalid_json, oversize, non_finite, wrong_type, unknown_component, wrong_device, refused_device, ...).",
    ["reason"],
)
rows_written = Counter(
    "shelly_power_log_rows_written",
    "PowerLog rows written, by reason (start, delta, sample, fill, stop).",
    ["reason"],
)
clock_skew = Counter(
    "shelly_clock_skew",
    "Status frames whose device timestamp was unusable or off by more than COLLECTOR_CLOCK_SKEW_SECONDS; "
    "server receive time was used instead.",
)
connections_open = Gauge(
    "shelly_device_connections_open",
    "Device WebSocket connections currently open in this process.",
    multiprocess_mode="livesum",
)
refused_devices = Counter(
    "shelly_refused_device_frames",
    "Frames refused because their device is unknown and COLLECTOR_AUTO_REGISTER is off.",
)
poll_failures = Counter(
    "shelly_poll_failures",
    "Failed RPC polls of a device, by kind of call (live, intervals, info).",
    ["kind"],
)
write_flush_failures = Counter(
    "shelly_write_flush_failures",
    "Write-behind flushes that failed and were held for a retry (database unreachable, or a failure being retried).",
)
rows_dropped = Counter(
    "shelly_power_log_rows_dropped",
    "PowerLog rows of writes the write-behind stage gave up after repeated failures that were not an outage.",
)
intervals_ingested = Counter(
    "shelly_energy_intervals_ingested",
    "EnergyInterval rows inserted or updated from EMData.",
)


# -- bad input: counted every time, logged once per device per minute -------
BAD_INPUT_LOG_SECONDS = 60.0
MAX_TRACKED_SOURCES = 10_000

bad_input_log = logging.getLogger("collector.bad_input")
_rejected_by_reason: dict[str, object] = {}
_last_logged_at: dict[str, float] = {}


def reject(reason: str, *, device_id: str | None, detail: str = "") -> None:
    """Count one dropped frame (or dropped part of a frame) and log it, rate limited.

    A misbehaving device can send hundreds of bad frames a second; the counter
    shows the volume, the log shows one example per device and minute.
    """
    counter = _rejected_by_reason.get(reason)
    if counter is None:
        counter = _rejected_by_reason[reason] = frames_rejected.labels(reason)
    counter.inc()
    log_bad_input(reason, device_id=device_id, detail=detail)


def rate_limited(device_id: str | None) -> None:
    """A frame dropped by a connection's rate limit: a counter and a log line per minute at most."""
    counter = _rejected_by_reason.get("rate_limited")
    if counter is None:
        counter = _rejected_by_reason["rate_limited"] = frames_rejected.labels("rate_limited")
    counter.inc()
    log_bad_input("rate_limited", device_id=device_id, detail="frames over the connection's rate dropped")


def log_bad_input(reason: str, *, device_id: str | None, detail: str = "") -> None:
    """Log bad input at most once per device per minute (counting is the caller's)."""
    key = device_id or "-"
    now = time.monotonic()
    last = _last_logged_at.get(key)
    if last is not None and now - last < BAD_INPUT_LOG_SECONDS:
        return
    if len(_last_logged_at) >= MAX_TRACKED_SOURCES:
        # Garbage `src` values must not grow this without bound.
        for stale in [k for k, t in _last_logged_at.items() if now - t >= BAD_INPUT_LOG_SECONDS]:
            del _last_logged_at[stale]
        if len(_last_logged_at) >= MAX_TRACKED_SOURCES:
            _last_logged_at.clear()
    _last_logged_at[key] = now
    bad_input_log.warning(
        "bad input from %s: %s %s",
        key,
        reason,
        detail[:200],
        extra={"event": "frame_rejected", "device_id": device_id, "reason": reason},
    )
