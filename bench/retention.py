#!/usr/bin/env python
"""Retention and rollups benchmark (§9) on PostgreSQL (`--database`, default `shelly_bench_retention`).

1. Generates a year (`--days`, default 365) of `every` rows for one meter
   channel, one row every 10 s (3.15 M rows), server-side with
   generate_series (the rollup trigger fires as for any insert).
2. Rolls the year up (`update_rollups`: the backlog after an upgrade) and
   prints the time.
3. Prints the size on disk of the raw table, its indexes and the rollups.
4. Times the first retention pass (11 months of rows to delete) and one
   steady-state pass (a day later: one day of rows), then the sizes after
   retention: as the files stand (PostgreSQL reuses the freed space, it does
   not give it back) and after VACUUM FULL (what the data needs).
5. Times the series API for 365, 30 and 7 days (minute rollups),
   `--requests` each, in-process with a read token: p50 / p95.
6. The cost of the rollup trigger on the pipeline's batch insert: 1000-row
   batches with the trigger on and off.

    .venv/bin/python bench/retention.py [--days 365] [--requests 40] [--database shelly_bench_retention]

Drops and recreates the bench channel's rows on every run. Loopback only.
"""

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import ensure_database, machine_info, percentile  # noqa: E402

END = datetime(2026, 1, 1, tzinfo=UTC)
DEVICE_ID = "bench-retention-3em"


def mib(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB"


def sizes(cursor) -> dict:
    cursor.execute(
        """
        SELECT c.relname, pg_relation_size(c.oid)
        FROM pg_class c
        WHERE c.relname IN ('collector_powerlog', 'collector_powerrollup')
           OR c.oid IN (SELECT indexrelid FROM pg_index
                        WHERE indrelid IN ('collector_powerlog'::regclass, 'collector_powerrollup'::regclass))
        ORDER BY c.relname
        """
    )
    return dict(cursor.fetchall())


def print_sizes(title, cursor, rows):
    found = sizes(cursor)
    print(f"\n{title}: {rows} raw rows of the channel")
    for name, size in found.items():
        print(f"  {name:45s} {mib(size):>12s}")
    cursor.execute(
        "SELECT pg_total_relation_size('collector_powerlog'), pg_total_relation_size('collector_powerrollup')"
    )
    raw_total, rollup_total = cursor.fetchone()
    print(f"  power log total (table + indexes + toast)     {mib(raw_total):>12s}")
    print(f"  rollups total                                 {mib(rollup_total):>12s}")
    return raw_total, rollup_total


def generate(cursor, channel, *, days: int) -> float:
    """One row every 10 s, month by month (one statement per 30 days keeps the trigger's transition table small)."""
    began = time.monotonic()
    start = END - timedelta(days=days)
    step = timedelta(days=30)
    chunk_start = start
    while chunk_start < END:
        chunk_end = min(chunk_start + step, END)
        cursor.execute(
            """
            INSERT INTO collector_powerlog
                (timestamp, device_id, channel_id, apower_w, voltage_v, current_a, energy_total_wh, reason, created_at)
            SELECT ts, %(device)s, %(channel)s,
                   p, 229 + random() * 3, p / 230.0,
                   extract(epoch FROM ts - %(start)s) * 0.3 / 3.6, 'sample', ts
            FROM (SELECT ts, 300 + 250 * sin(extract(epoch FROM ts) / 3600.0) + random() * 50 AS p
                  FROM generate_series(%(a)s::timestamptz, %(b)s::timestamptz - interval '1 second',
                                       interval '10 seconds') AS ts) AS g
            """,
            {"device": channel.device_id, "channel": channel.pk, "start": start, "a": chunk_start, "b": chunk_end},
        )
        chunk_start = chunk_end
    return time.monotonic() - began


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--database", default="shelly_bench_retention")
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{args.database}"
    os.environ.setdefault("SECRET_KEY", "bench-only-secret")
    os.environ.setdefault("DATA_DIR", "/tmp/shelly-bench-retention")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")  # the in-process test client's name
    os.environ.setdefault("BEHIND_TLS_PROXY", "false")  # the test client speaks http
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shelly_site.settings")
    os.environ["RAW_RETENTION_DAYS"] = "30"
    os.environ["ROLLUP_RETENTION_DAYS"] = "365"
    ensure_database(args.database)

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from collector import retention, rollups
    from collector.models import ApiToken, Channel, Device, PowerLog, PowerRollup, RollupPending
    from collector.pipeline import COLUMN_NAMES, insert_power_logs

    call_command("migrate", verbosity=0)
    print("machine:", machine_info())
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        print("postgres:", cursor.fetchone()[0].split(" on ")[0])
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
        print("timescaledb:", (cursor.fetchone() or ["not installed"])[0])
    print(
        f"settings: RAW_RETENTION_DAYS={settings.RAW_RETENTION_DAYS}, "
        f"RETENTION_BATCH_ROWS={settings.RETENTION_BATCH_ROWS}"
    )

    Device.objects.filter(device_id=DEVICE_ID).delete()
    device = Device.objects.create(device_id=DEVICE_ID)
    channel = Channel.objects.create(device=device, key="em:0:a", policy="every", name="bench meter phase A")
    RollupPending.objects.all().delete()

    with connection.cursor() as cursor:
        # A previous run's deleted rows would otherwise inflate the sizes below.
        cursor.execute("VACUUM FULL collector_powerlog")
        cursor.execute("VACUUM FULL collector_powerrollup")
        seconds = generate(cursor, channel, days=args.days)
        rows = PowerLog.objects.filter(channel=channel).count()
        print(f"\ngenerated {rows} rows ({args.days} days, every 10 s) in {seconds:.1f} s")
        cursor.execute("ANALYZE collector_powerlog")

        pending = RollupPending.objects.count()
        began = time.monotonic()
        result = rollups.update_rollups()
        took = time.monotonic() - began
        print(
            f"rollups of the whole year: {result.minutes} minutes marked ({pending} pending), "
            f"{result.written} written in {took:.1f} s ({rows / took:,.0f} raw rows/s)"
        )
        cursor.execute("ANALYZE collector_powerrollup")
        print_sizes("before retention", cursor, rows)

        now = END
        passes, began = 0, time.monotonic()
        deleted = 0
        while True:
            passes += 1
            pass_began = time.monotonic()
            result = retention.apply_retention(now=now)
            deleted += result.raw_deleted
            state = "finished" if result.finished else "budget spent"
            print(
                f"\nretention pass {passes}: {result.raw_deleted} raw rows, {result.rollups_deleted} rollups "
                f"deleted in {time.monotonic() - pass_began:.1f} s ({state})"
            )
            if result.finished:
                break
        first = time.monotonic() - began
        print(f"first retention (backlog of {args.days - 30} days): {deleted} rows in {first:.1f} s")

        # Normal operation: the hourly pass finds about an hour of rows; a day late, a day.
        began = time.monotonic()
        result = retention.apply_retention(now=now + timedelta(days=1))
        print(f"steady-state pass one day later: {result.raw_deleted} rows deleted in {time.monotonic() - began:.2f} s")
        rows = PowerLog.objects.filter(channel=channel).count()
        cursor.execute("VACUUM ANALYZE collector_powerlog")
        print_sizes("after retention and VACUUM (files keep their size, the space is reused)", cursor, rows)
        cursor.execute("VACUUM FULL collector_powerlog")
        raw_total, rollup_total = print_sizes("after VACUUM FULL (what 30 days need)", cursor, rows)
        rollup_rows = PowerRollup.objects.filter(channel=channel).count()
        print(
            f"  per channel: 30 days raw ≈ {mib(raw_total)}, {rollup_rows} rollups ≈ {mib(rollup_total)} "
            f"({rollup_total / max(rollup_rows, 1):.0f} B/minute)"
        )

    token = ApiToken(name="bench-retention")
    raw_token = token.set_new_secret()
    token.save()
    client = Client(HTTP_AUTHORIZATION=f"Token {raw_token}")
    # The data ends at END; the series API reads "beyond the raw window" relative to the channel's raw_kept_from.
    print(f"\nseries API, in-process, {args.requests} requests each:")
    for label, start, end in [
        ("365 days (minute rollups)", END - timedelta(days=365), END + timedelta(days=1)),
        ("30 days (minute rollups)", END - timedelta(days=29), END),
        ("7 days (minute rollups)", END - timedelta(days=7), END),
    ]:
        latencies = []
        for _ in range(args.requests):
            began = time.perf_counter()
            response = client.get(
                "/api/v1/series/", {"channel": channel.pk, "from": start.isoformat(), "to": end.isoformat()}
            )
            latencies.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, response.content[:300]
        body = response.json()
        print(
            f"  {label}: p50 {percentile(latencies, 50):.0f} ms, p95 {percentile(latencies, 95):.0f} ms, "
            f"{len(body['points'])} points of {body['bucket_s']} s, {sum(p['rows'] for p in body['points'])} samples"
        )

    # The trigger's cost on the pipeline's insert path (PostgreSQL unnest, 1000-row batches).
    print("\nrollup trigger cost on the pipeline's batch insert (50 batches of 1000 rows):")
    start = END + timedelta(days=10)
    for state in ("ENABLE", "DISABLE", "ENABLE"):
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE collector_powerlog {state} TRIGGER collector_powerlog_rollup_insert")
        began = time.monotonic()
        for batch in range(50):
            rows = []
            for i in range(1000):
                ts = start + timedelta(seconds=10 * (batch * 1000 + i))
                row = {
                    "timestamp": ts,
                    "device_id": device.pk,
                    "channel_id": channel.pk,
                    "apower_w": 100.0,
                    "voltage_v": 230.0,
                    "current_a": 0.4,
                    "energy_total_wh": 1.0,
                    "reason": "sample",
                    "idempotency_key": None,
                    "created_at": ts,
                }
                rows.append(tuple(row[name] for name in COLUMN_NAMES))
            insert_power_logs(rows)
        print(f"  trigger {state.lower()}d: {50_000 / (time.monotonic() - began):,.0f} rows/s")
        start += timedelta(days=10)
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE collector_powerlog ENABLE TRIGGER collector_powerlog_rollup_insert")
    Device.objects.filter(device_id=DEVICE_ID).delete()
    ApiToken.objects.filter(pk=token.pk).delete()
    RollupPending.objects.all().delete()


if __name__ == "__main__":
    main()
