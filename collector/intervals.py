"""EMData 1-minute records → EnergyInterval rows (SPEC §4.3).

The device keeps weeks of 1-minute records; we read them from a per-device
cursor (`Device.last_interval_end`) so kWh stay exact across collector
downtime:

1. `<Component>.GetRecords {id, ts: cursor}` lists the stored blocks
   (`{ts, period, records}`); a power loss starts a new block.
2. Per block, `<Component>.GetData {id, ts, end_ts}` pages through the
   records, following `next_record_ts` until it is absent or stops
   increasing (the device chunks big answers).
3. Each record becomes one row per phase and one for the total, upserted on
   (device, channel, start, end); rows equal to what is stored are skipped,
   so re-reading a range writes nothing.
4. The cursor only moves forward (a conditional update), so the nightly
   backfill of the previous day can re-read without moving it back.

GetData `values` are positional under `keys`; per-record energies are Wh of
that interval, not counters (SHELLY.md §3, trap 3).
"""

import asyncio
import functools
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import close_old_connections, connections, transaction
from django.db.models import Q
from django.utils import timezone

from collector import metrics
from collector.models import Channel, Device, EnergyInterval
from collector.pipeline import default_policy_for

log = logging.getLogger(__name__)

PHASES = "abc"
# Known column order, used only when a device answers without `keys` (add_keys=false).
EMDATA_KEYS = [
    f"{p}_{c}"
    for p in PHASES
    for c in (
        "total_act_energy", "fund_act_energy", "total_act_ret_energy", "fund_act_ret_energy",
        "lag_react_energy", "lead_react_energy", "max_act_power", "min_act_power",
        "max_aprt_power", "min_aprt_power", "max_voltage", "min_voltage", "avg_voltage",
        "max_current", "min_current", "avg_current",
    )
] + ["n_max_current", "n_min_current", "n_avg_current"]  # fmt: skip
MAX_PAGES_PER_BLOCK = 10_000  # a bound against a device that keeps answering the same page
# Interval writes run on their own database thread: a catch-up of hours of
# records must not hold up the live samples, which go through asgiref's
# single sync thread (sync_to_async).
_db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="intervals-db")


@dataclass(frozen=True)
class DataSource:
    """One EMData-like component and the channels its records feed."""

    component: str  # "EMData" or "EM1Data"
    data_id: int

    @property
    def triphase(self) -> bool:
        return self.component == "EMData"


def sources_for(profile: str) -> list[DataSource]:
    if profile == "monophase":
        return [DataSource("EM1Data", n) for n in range(3)]
    return [DataSource("EMData", 0)]


@dataclass(frozen=True)
class IntervalRow:
    channel_key: str
    start: datetime
    end: datetime
    energy_wh: float
    returned_energy_wh: float
    avg_power_w: float | None
    meta: dict


@dataclass
class PullResult:
    records: int = 0
    pages: int = 0
    blocks: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped_records: int = 0
    cursor: datetime | None = None

    @property
    def written(self) -> int:
        return self.inserted + self.updated


def _epoch(moment: datetime | None) -> int:
    return int(moment.timestamp()) if moment else 0


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _row(channel_key, start, period, energy, returned, meta) -> IntervalRow:
    return IntervalRow(
        channel_key=channel_key,
        start=_at(start),
        end=_at(start + period),
        energy_wh=energy,
        returned_energy_wh=returned,
        avg_power_w=round((energy - returned) * 3600.0 / period, 3),
        meta=meta,
    )


def rows_from_record(source: DataSource, values: dict, start: int, period: int) -> list[IntervalRow]:
    """One record (columns by name) → rows: per phase and total (EMData) or the em1 channel."""
    if not source.triphase:
        energy = _number(values.get("total_act_energy"))
        if energy is None:
            return []
        returned = _number(values.get("total_act_ret_energy")) or 0.0
        meta = {k: v for k, v in values.items() if k not in ("total_act_energy", "total_act_ret_energy")}
        return [_row(f"em1:{source.data_id}", start, period, energy, returned, meta)]
    rows, total, total_returned = [], 0.0, 0.0
    for phase in PHASES:
        energy = _number(values.get(f"{phase}_total_act_energy"))
        if energy is None:
            return []  # a record without its energies is unusable; never store it as 0
        returned = _number(values.get(f"{phase}_total_act_ret_energy")) or 0.0
        prefix = f"{phase}_"
        meta = {
            k[len(prefix) :]: v
            for k, v in values.items()
            if k.startswith(prefix) and k not in (f"{phase}_total_act_energy", f"{phase}_total_act_ret_energy")
        }
        rows.append(_row(f"em:{source.data_id}:{phase}", start, period, energy, returned, meta))
        total += energy
        total_returned += returned
    neutral = {k: v for k, v in values.items() if k.startswith("n_")}
    rows.append(_row(f"em:{source.data_id}:total", start, period, round(total, 6), round(total_returned, 6), neutral))
    return rows


def rows_from_data(source: DataSource, answer: dict, *, since: int, until: int | None) -> tuple[list, int, int]:
    """A GetData answer → (rows, records used, records skipped), limited to [since, until)."""
    keys = answer.get("keys") or (EMDATA_KEYS if source.triphase else None)
    rows, used, skipped = [], 0, 0
    for item in answer.get("data") or []:
        ts, period, values = item.get("ts"), _number(item.get("period")), item.get("values") or []
        if _number(ts) is None or not period or period <= 0:
            skipped += len(values)
            continue
        for index, record in enumerate(values):
            start = int(ts + index * period)
            if start < since or (until is not None and start >= until):
                continue
            if keys is None or not isinstance(record, list) or len(record) != len(keys):
                skipped += 1
                continue
            made = rows_from_record(source, dict(zip(keys, record, strict=True)), start, int(period))
            if not made:
                skipped += 1
                continue
            rows.extend(made)
            used += 1
    return rows, used, skipped


# -- storing (sync, database) ----------------------------------------------------
def _channels(device: Device, keys) -> dict[str, Channel]:
    channels = {c.key: c for c in Channel.objects.filter(device=device, key__in=keys)}
    for key in set(keys) - channels.keys():
        channels[key], _ = Channel.objects.get_or_create(
            device=device, key=key, defaults={"policy": default_policy_for(key)}
        )
    return channels


def store_intervals(device: Device, rows: list[IntervalRow], *, cursor: datetime | None) -> tuple[int, int, int]:
    """Upsert rows; move the device cursor forward to `cursor`. Returns (inserted, updated, unchanged)."""
    inserted = updated = unchanged = 0
    with transaction.atomic():
        if rows:
            channels = _channels(device, {row.channel_key for row in rows})
            existing = {
                (e["channel_id"], e["start"], e["end"]): e
                for e in EnergyInterval.objects.filter(
                    device=device,
                    channel__in=channels.values(),
                    start__gte=min(row.start for row in rows),
                    start__lte=max(row.start for row in rows),
                ).values("channel_id", "start", "end", "energy_wh", "returned_energy_wh", "avg_power_w", "meta")
            }
            writes = []
            for row in rows:
                channel = channels[row.channel_key]
                stored = existing.get((channel.pk, row.start, row.end))
                if stored is not None and (
                    stored["energy_wh"] == row.energy_wh
                    and stored["returned_energy_wh"] == row.returned_energy_wh
                    and stored["avg_power_w"] == row.avg_power_w
                    and stored["meta"] == row.meta
                ):
                    unchanged += 1
                    continue
                if stored is None:
                    inserted += 1
                else:
                    updated += 1
                writes.append(
                    EnergyInterval(
                        device=device,
                        channel=channel,
                        start=row.start,
                        end=row.end,
                        energy_wh=row.energy_wh,
                        returned_energy_wh=row.returned_energy_wh,
                        avg_power_w=row.avg_power_w,
                        meta=row.meta,
                    )
                )
            if writes:
                # Upsert, not insert: a concurrent backfill of the same range must not fail.
                EnergyInterval.objects.bulk_create(
                    writes,
                    update_conflicts=True,
                    unique_fields=["device", "channel", "start", "end"],
                    update_fields=["energy_wh", "returned_energy_wh", "avg_power_w", "meta"],
                )
        if cursor is not None:
            Device.objects.filter(
                Q(last_interval_end__isnull=True) | Q(last_interval_end__lt=cursor), pk=device.pk
            ).update(last_interval_end=cursor)
    if inserted or updated:
        metrics.intervals_ingested.inc(inserted + updated)
    return inserted, updated, unchanged


def _mark_pulled(device_pk: int) -> datetime | None:
    Device.objects.filter(pk=device_pk).update(last_interval_pull_at=timezone.now())
    return Device.objects.filter(pk=device_pk).values_list("last_interval_end", flat=True).first()


def with_fresh_connection(func, *args, **kwargs):
    # A long-running poller has no request cycle that would drop a dead or
    # expired connection (database restart, CONN_MAX_AGE): do it here.
    close_old_connections()
    return func(*args, **kwargs)


async def _on_db_thread(func, *args, **kwargs):
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_db_thread, functools.partial(with_fresh_connection, func, *args, **kwargs))


def close_db_connections() -> None:
    """Close the interval thread's connection (tests, shutdown)."""
    _db_thread.submit(connections.close_all).result()


# -- pulling (async, device) --------------------------------------------------------
async def _blocks(client, source: DataSource, since: int) -> list[dict]:
    answer = await client.emdata_records(component=source.component, data_id=source.data_id, since=since)
    blocks = [b for b in (answer or {}).get("data_blocks") or [] if isinstance(b, dict)]
    return sorted(blocks, key=lambda b: b.get("ts") or 0)


async def _pull_block(client, device, source, block, *, since, until, result, move_cursor) -> int | None:
    """Page through one block from `since`; returns the end (epoch) of the last record stored."""
    ts, period, count = _number(block.get("ts")), _number(block.get("period")), _number(block.get("records"))
    if ts is None or not period or not count:
        return None
    block_end = int(ts + period * count)
    if until is not None:
        block_end = min(block_end, until)
    first = int(ts + max(0, math.ceil((since - ts) / period)) * period)
    if first >= block_end:
        return None
    result.blocks += 1
    page_ts, stored_end = first, None
    for _ in range(MAX_PAGES_PER_BLOCK):
        answer = await client.emdata_data(
            component=source.component, data_id=source.data_id, since=page_ts, until=block_end - int(period)
        )
        result.pages += 1
        rows, used, skipped = rows_from_data(source, answer or {}, since=page_ts, until=block_end)
        result.records += used
        result.skipped_records += skipped
        if rows:
            stored_end = max(int(row.end.timestamp()) for row in rows)
        cursor = _at(stored_end) if (move_cursor and stored_end) else None
        inserted, updated, unchanged = await _on_db_thread(store_intervals, device, rows, cursor=cursor)
        result.inserted += inserted
        result.updated += updated
        result.unchanged += unchanged
        next_ts = _number((answer or {}).get("next_record_ts"))
        if next_ts is None or next_ts <= page_ts or next_ts >= block_end:
            break
        page_ts = int(next_ts)
    return stored_end


async def pull_intervals(
    client,
    device: Device,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    move_cursor: bool = True,
) -> PullResult:
    """Read every record the device holds from `since` (default: the cursor) and store it.

    With no cursor yet, everything the device still has is read (a Pro 3EM
    keeps weeks): the first pull after adding a meter gives exact history.
    """
    result = PullResult()
    since_ts = _epoch(since if since is not None else device.last_interval_end)
    until_ts = _epoch(until) if until is not None else None
    sources = sources_for(device.profile)
    # With several components (monophase: em1data:0..2) the cursor moves only
    # once all of them are read, to the least advanced: none is skipped next time.
    per_page_cursor = move_cursor and len(sources) == 1
    ends = []
    for source in sources:
        source_end = None
        for block in await _blocks(client, source, since_ts):
            end = await _pull_block(
                client,
                device,
                source,
                block,
                since=since_ts,
                until=until_ts,
                result=result,
                move_cursor=per_page_cursor,
            )
            source_end = max(source_end or 0, end or 0) or None
        if source_end:
            ends.append(source_end)
    if move_cursor and not per_page_cursor and ends:
        await _on_db_thread(store_intervals, device, [], cursor=_at(min(ends)))
    result.cursor = await _on_db_thread(_mark_pulled, device.pk)
    device.last_interval_end = result.cursor
    return result


def previous_day(now: datetime | None = None) -> tuple[datetime, datetime]:
    """Local midnight to midnight of the day before `now` (site time zone, DST-safe)."""
    local_now = timezone.localtime(now or timezone.now())
    today = local_now.date()
    tz = local_now.tzinfo
    start = datetime.combine(today - timedelta(days=1), datetime.min.time())
    end = datetime.combine(today, datetime.min.time())
    return timezone.make_aware(start, tz), timezone.make_aware(end, tz)


async def backfill_previous_day(client, device: Device, *, now: datetime | None = None) -> PullResult:
    """Nightly: re-read yesterday and fill any gap; the cursor never moves back."""
    start, end = previous_day(now)
    return await pull_intervals(client, device, since=start, until=end)
