"""Import the history of the earlier single-file collectors (`manage.py import_history`).

Two sources, one row shape:

- their PostgreSQL `power_logs` table (`timestamp, device_id, channel,
  apower_w, voltage_v, current_a, energy_total_wh`, channel `switch:N`),
  read with a server-side cursor so a year of rows never sits in memory;
- their CSV log (`timestamp_iso, device_id, channel, apower_W, voltage_V,
  current_A, energy_total_Wh`, channel a number or `switch:N`, header optional).

Rows become PowerLog rows with their original timestamps and reason
`imported`. Each carries the idempotency key `legacy:<device>:<channel>:<ts>`
(the unique index makes a second run, or the same row twice in a file, add
nothing), and a row whose channel already has a row at that instant (stored
live) is skipped too. A naive timestamp is UTC: the earlier collectors wrote UTC.
Devices and channels are created as needed; afterwards cycles and their
impact are rebuilt for the imported range only (`collector.cycles.rebuild_cycles`),
so the earlier collectors' 0 W stop rows close cycles as live stop rows do.
Bad lines are counted with their line number and skipped; nothing else stops the import.
"""

import csv
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from collector.cycles import rebuild_cycles
from collector.models import Channel, Device, PowerLog, Transport
from collector.pipeline import COLUMN_NAMES, default_policy_for, insert_power_logs

BATCH = 1000
MAX_BAD_LINES_KEPT = 200
CHANNEL_NUMBER = re.compile(r"^(?:switch:)?(\d{1,3})$")
LEGACY_COLUMNS = ("timestamp", "device_id", "channel", "apower_w", "voltage_v", "current_a", "energy_total_wh")
LEGACY_QUERY = (
    "SELECT timestamp, device_id, channel, apower_w, voltage_v, current_a, energy_total_wh "
    "FROM power_logs ORDER BY timestamp, device_id, channel"
)


class ImportSourceError(Exception):
    """The source cannot be read at all (missing file, refused connection, no power_logs table)."""


@dataclass(frozen=True, slots=True)
class LegacyRow:
    line: int
    timestamp: datetime
    device_id: str
    channel_key: str
    apower_w: float
    voltage_v: float | None
    current_a: float | None
    energy_total_wh: float | None

    @property
    def key(self) -> str:
        return f"legacy:{self.device_id}:{self.channel_key}:{self.timestamp.astimezone(UTC).isoformat()}"[:200]


@dataclass(frozen=True, slots=True)
class BadLine:
    line: int
    reason: str


@dataclass
class ImportSummary:
    read: int = 0
    imported: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason → rows
    bad: list = field(default_factory=list)  # BadLine, the first MAX_BAD_LINES_KEPT
    bad_count: int = 0
    devices_created: list = field(default_factory=list)
    channels_created: list = field(default_factory=list)
    first: datetime | None = None
    last: datetime | None = None
    cycles: int = 0
    dry_run: bool = False

    def add_bad(self, bad: BadLine) -> None:
        self.bad_count += 1
        if len(self.bad) < MAX_BAD_LINES_KEPT:
            self.bad.append(bad)


# -- parsing -------------------------------------------------------------------


def _number(value, name: str, *, required: bool = False) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValueError(_("%(name)s is empty") % {"name": name})
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(_("%(name)s %(value)r is not a number") % {"name": name, "value": value}) from None
    if not math.isfinite(number):
        raise ValueError(_("%(name)s %(value)r is not a finite number") % {"name": name, "value": value})
    return number


def _timestamp(value) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value or "").strip()
        try:
            moment = parse_datetime(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        except ValueError:
            moment = None
        if moment is None:
            raise ValueError(_("timestamp %(value)r is not an ISO 8601 date and time") % {"value": text})
    return timezone.make_aware(moment, UTC) if timezone.is_naive(moment) else moment


def _channel_key(value) -> str:
    match = CHANNEL_NUMBER.match(str(value if value is not None else "").strip())
    if not match:
        raise ValueError(_("channel %(value)r is neither a number nor switch:N") % {"value": value})
    return f"switch:{int(match.group(1))}"


def legacy_row(line: int, values) -> LegacyRow:
    """One source row (7 values in LEGACY_COLUMNS order) → LegacyRow; ValueError says what is wrong."""
    if len(values) != len(LEGACY_COLUMNS):
        raise ValueError(
            _("%(n)d columns instead of %(expected)d") % {"n": len(values), "expected": len(LEGACY_COLUMNS)}
        )
    timestamp, device_id, channel, apower, voltage, current, energy = values
    device_id = str(device_id or "").strip()
    if not device_id or len(device_id) > 100:
        raise ValueError(_("device_id is empty or longer than 100 characters"))
    power = _number(apower, "apower", required=True)
    if power < 0:
        raise ValueError(_("apower %(value)r is negative") % {"value": apower})
    return LegacyRow(
        line=line,
        timestamp=_timestamp(timestamp),
        device_id=device_id,
        channel_key=_channel_key(channel),
        apower_w=power,
        voltage_v=_number(voltage, "voltage"),
        current_a=_number(current, "current"),
        energy_total_wh=_number(energy, "energy_total"),
    )


def _is_header(values) -> bool:
    return bool(values) and str(values[0]).strip().lower().startswith("timestamp")


def csv_rows(path: str | Path) -> Iterator[LegacyRow | BadLine]:
    """The CSV log's rows, each a LegacyRow or a BadLine (line numbers as an editor shows them)."""
    try:
        # Undecodable bytes become U+FFFD so one bad line does not hide the rest.
        handle = open(path, newline="", encoding="utf-8-sig", errors="replace")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise ImportSourceError(
            _("cannot read %(path)s: %(error)s") % {"path": path, "error": exc.strerror or exc}
        ) from None
    with handle:
        reader = csv.reader(handle)
        try:
            for values in reader:
                line = reader.line_num
                if not values or all(not v.strip() for v in values):
                    continue
                if line == 1 and _is_header(values):
                    continue
                if any("\ufffd" in value for value in values):
                    yield BadLine(line, _("not UTF-8 text"))
                    continue
                try:
                    yield legacy_row(line, values)
                except ValueError as exc:
                    yield BadLine(line, str(exc))
        except csv.Error as exc:
            yield BadLine(reader.line_num, _("unreadable: %(error)s") % {"error": exc})


def csv_line_count(path: str | Path) -> int:
    """Data lines (header and blank lines left out): the progress bar's 100 %."""
    try:
        with open(path, "rb") as handle:
            count = 0
            for number, line in enumerate(handle, start=1):
                if not line.strip() or (number == 1 and line.lstrip(b"\xef\xbb\xbf").lower().startswith(b"timestamp")):
                    continue
                count += 1
            return count
    except OSError as exc:
        raise ImportSourceError(
            _("cannot read %(path)s: %(error)s") % {"path": path, "error": exc.strerror or exc}
        ) from None


def _connect(url: str):
    try:
        return psycopg.connect(url, connect_timeout=10)
    except psycopg.Error as exc:
        # The message names host and database, never the password.
        raise ImportSourceError(
            _("cannot connect to the source database: %(error)s") % {"error": str(exc).strip()}
        ) from None


def database_row_count(url: str) -> int:
    with _connect(url) as conn:
        try:
            return conn.execute("SELECT count(*) FROM power_logs").fetchone()[0]
        except psycopg.Error as exc:
            raise ImportSourceError(_("cannot read power_logs: %(error)s") % {"error": str(exc).strip()}) from None


def database_rows(url: str) -> Iterator[LegacyRow | BadLine]:
    """The `power_logs` rows in time order; "line" is the row's position in that order (1-based)."""
    with _connect(url) as conn:
        try:
            with conn.cursor(name="shelly_monitor_import") as cursor:
                cursor.itersize = BATCH
                cursor.execute(LEGACY_QUERY)
                for number, values in enumerate(cursor, start=1):
                    try:
                        yield legacy_row(number, values)
                    except ValueError as exc:
                        yield BadLine(number, str(exc))
        except psycopg.Error as exc:
            raise ImportSourceError(_("cannot read power_logs: %(error)s") % {"error": str(exc).strip()}) from None


# -- storing -------------------------------------------------------------------


class _Registry:
    """Devices and channels by natural key, created on first use (never in a dry run)."""

    def __init__(self, summary: ImportSummary, *, dry_run: bool):
        self.summary = summary
        self.dry_run = dry_run
        self.devices: dict[str, Device | None] = {}
        self.channels: dict[tuple[str, str], Channel | None] = {}

    def channel(self, device_id: str, key: str) -> Channel | None:
        if (device_id, key) in self.channels:
            return self.channels[device_id, key]
        device = self.devices.get(device_id)
        if device_id not in self.devices:
            device = Device.objects.filter(device_id=device_id).first()
            if device is None:
                self.summary.devices_created.append(device_id)
                if not self.dry_run:
                    device, _ = Device.objects.get_or_create(
                        device_id=device_id, defaults={"transport": Transport.WEBSOCKET}
                    )
            self.devices[device_id] = device
        channel = Channel.objects.filter(device=device, key=key).first() if device else None
        if channel is None:
            self.summary.channels_created.append(f"{device_id} {key}")
            if not self.dry_run:
                channel, _ = Channel.objects.get_or_create(
                    device=device, key=key, defaults={"policy": default_policy_for(key)}
                )
        self.channels[device_id, key] = channel
        return channel


def _store_batch(batch: list[LegacyRow], registry: _Registry, summary: ImportSummary, touched: dict) -> None:
    unique: dict[str, LegacyRow] = {}
    for row in batch:
        if row.key in unique:
            summary.skipped[_("duplicate in the source")] += 1
        else:
            unique[row.key] = row
    already = set(PowerLog.objects.filter(idempotency_key__in=list(unique)).values_list("idempotency_key", flat=True))
    for key in already:
        del unique[key]
    summary.skipped[_("already imported")] += len(already)
    rows = []
    now = timezone.now()
    by_channel: dict[int, list[LegacyRow]] = {}
    for row in unique.values():
        channel = registry.channel(row.device_id, row.channel_key)
        if channel is None:  # dry run: a channel that would be created has no stored rows
            rows.append(row)
            continue
        by_channel.setdefault(channel.pk, []).append(row)
    for channel_id, channel_rows in by_channel.items():
        stamps = [r.timestamp for r in channel_rows]
        live = set(
            PowerLog.objects.filter(
                channel_id=channel_id, timestamp__gte=min(stamps), timestamp__lte=max(stamps), timestamp__in=stamps
            ).values_list("timestamp", flat=True)
        )
        for row in channel_rows:
            if row.timestamp in live:
                summary.skipped[_("already stored (a row at that instant)")] += 1
                continue
            rows.append(row)
            span = touched.setdefault(channel_id, [row.timestamp, row.timestamp])
            span[0], span[1] = min(span[0], row.timestamp), max(span[1], row.timestamp)
    summary.imported += len(rows)
    for row in rows:
        summary.first = row.timestamp if summary.first is None else min(summary.first, row.timestamp)
        summary.last = row.timestamp if summary.last is None else max(summary.last, row.timestamp)
    if registry.dry_run or not rows:
        return
    values = []
    for row in rows:
        channel = registry.channels[row.device_id, row.channel_key]
        record = {
            "timestamp": row.timestamp,
            "device_id": channel.device_id,
            "channel_id": channel.pk,
            "apower_w": row.apower_w,
            "voltage_v": row.voltage_v,
            "current_a": row.current_a,
            "energy_total_wh": row.energy_total_wh,
            "reason": PowerLog.Reason.IMPORTED,
            "idempotency_key": row.key,
            "created_at": now,
        }
        values.append(tuple(record[name] for name in COLUMN_NAMES))
    insert_power_logs(values)


def import_rows(
    rows: Iterable[LegacyRow | BadLine],
    *,
    dry_run: bool = False,
    rebuild: bool = True,
    on_progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Store the rows (batches of BATCH, one transaction each); rebuild cycles over the imported range."""
    summary = ImportSummary(dry_run=dry_run)
    registry = _Registry(summary, dry_run=dry_run)
    touched: dict[int, list[datetime]] = {}
    batch: list[LegacyRow] = []

    def flush():
        with transaction.atomic():
            _store_batch(batch, registry, summary, touched)
        batch.clear()
        if on_progress:
            on_progress(summary.read)

    for item in rows:
        summary.read += 1
        if isinstance(item, BadLine):
            summary.add_bad(item)
            continue
        batch.append(item)
        if len(batch) >= BATCH:
            flush()
    flush()
    if rebuild and not dry_run and touched:
        channels = Channel.objects.in_bulk(list(touched))
        for channel_id, (start, end) in sorted(touched.items()):
            done = rebuild_cycles(channels=[channels[channel_id]], start=start, end=end)
            summary.cycles += sum(p.result.detected for p in done)
    return summary


__all__ = [
    "BadLine",
    "ImportSourceError",
    "ImportSummary",
    "LegacyRow",
    "csv_line_count",
    "csv_rows",
    "database_row_count",
    "database_rows",
    "import_rows",
    "legacy_row",
]
