"""Prometheus counters of the collector (§9 `/metrics`).

One module so every ingestion path (WebSocket consumer, batch API, RPC
poller, pipeline) counts into the same series and `/metrics` exposes them with
`prometheus_client.generate_latest()` on the default registry.

Labels are kept to small closed sets (reason, path, transport): a label per
device would grow without bound on a site with auto-registration.

With several processes (`PROMETHEUS_MULTIPROC_DIR` set, as prometheus_client
documents) the same objects work in multiprocess mode; the gauge then sums the
live processes.
"""

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
    "Status frames whose device timestamp was missing or off by more than COLLECTOR_CLOCK_SKEW_SECONDS; "
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
intervals_ingested = Counter(
    "shelly_energy_intervals_ingested",
    "EnergyInterval rows inserted or updated from EMData.",
)
