#!/usr/bin/env python
"""Dashboard benchmark (§9) on PostgreSQL (`--database`, default `shelly_bench_dashboard`).

1. Data, generated once (kept between runs; `--fresh` starts again):
   - a year (`--days`, 365) of `events` rows for `--channels` (12) pump channels
     ending now (bench/cycles.py's generator: 24 runs a day), their cycles and
     impacts (`rebuild_cycles`), config versions, a grid factor and a tariff;
   - 30 days (`--meter-days`) of 10 s `every` rows on one meter channel
     (`em:0:total`), and the same meter's 1-minute energy intervals per phase
     and total over those days (what the energy page reads).
2. Times, in-process (Django test client, a staff session; `--requests` each,
   after one warm-up request), p50 and p95 of: the overview page; the channel
   page's series request for 24 h / 7 d / 30 d / 365 d (a pump channel and
   the 10 s meter channel); the channel page with its cycles table for a
   year; the energy page. Target p95 < 300 ms each.

    .venv/bin/python bench/dashboard.py [--database NAME] [--requests 30] [--fresh]
"""

import argparse
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import ensure_database, machine_info, percentile  # noqa: E402

DEVICE_PREFIX = "bench-dash-"
METER_ID = "bench-dash-meter"
TARGET_MS = 300


def configure(database: str) -> None:
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{database}"
    os.environ.setdefault("SECRET_KEY", "bench-only-secret")
    os.environ.setdefault("DATA_DIR", f"/tmp/{database}")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shelly_site.settings")


def pump_channels(count: int, days: int, start: datetime):
    from bench.cycles import generate
    from collector.models import Channel, Device, PowerLog

    channels = []
    for index in range(count):
        device, _ = Device.objects.get_or_create(
            device_id=f"{DEVICE_PREFIX}{index // 4:02d}", defaults={"name": f"Lift station {index // 4 + 1}"}
        )
        channel, _ = Channel.objects.get_or_create(
            device=device, key=f"switch:{index % 4}", defaults={"policy": "events", "name": f"Pump P{index + 1}"}
        )
        if not PowerLog.objects.filter(channel=channel).exists():
            began = time.monotonic()
            rows = generate(channel, days=days, seed=index, first_day=start)
            print(f"  generated pump channel {channel.pk}: {rows} rows in {time.monotonic() - began:.1f} s", flush=True)
        channels.append(channel)
    return channels


def meter_channel(days: int, end: datetime):
    from collector.models import Channel, Device, EnergyInterval
    from collector.pipeline import insert_power_logs

    device, _ = Device.objects.get_or_create(
        device_id=METER_ID, defaults={"name": "Main meter", "transport": "rpc_poll", "last_seen": end}
    )
    channels = {
        key: Channel.objects.get_or_create(device=device, key=key, defaults={"policy": "every"})[0]
        for key in ("em:0:a", "em:0:b", "em:0:c", "em:0:total")
    }
    total = channels["em:0:total"]
    if total.power_logs.exists():
        return device, total
    began = time.monotonic()
    rng = random.Random(7)
    start = end - timedelta(days=days)
    now = datetime.now(UTC)
    rows, written, energy = [], 0, 5_000_000.0
    for step in range(days * 8640):  # 10 s steps
        ts = start + timedelta(seconds=10 * step)
        power = 520.0 + (1400.0 if (step // 6) % 20 < 7 else 0.0) + rng.uniform(-30, 30)
        energy += power * 10 / 3600
        rows.append((ts, device.pk, total.pk, power, 230.0, power / 230.0, energy, "sample", None, now))
        if len(rows) >= 20000:
            insert_power_logs(rows)
            written += len(rows)
            rows = []
    insert_power_logs(rows)
    written += len(rows)
    print(f"  generated meter channel {total.pk}: {written} rows of 10 s in {time.monotonic() - began:.1f} s")
    began = time.monotonic()
    intervals = []
    for minute in range(days * 1440):
        at = start + timedelta(minutes=minute)
        phases = {"em:0:a": 14.0 + rng.uniform(-2, 2), "em:0:b": 3.0, "em:0:c": 1.5 + rng.uniform(0, 1)}
        for key, wh in {**phases, "em:0:total": sum(phases.values())}.items():
            intervals.append(
                EnergyInterval(
                    device=device, channel=channels[key], start=at, end=at + timedelta(minutes=1), energy_wh=wh
                )
            )
        if len(intervals) >= 20000:
            EnergyInterval.objects.bulk_create(intervals, batch_size=5000)
            intervals = []
    EnergyInterval.objects.bulk_create(intervals, batch_size=5000)
    print(f"  generated {days * 1440 * 4} 1-minute energy intervals in {time.monotonic() - began:.1f} s")
    return device, total


def configure_impact(channels, start: datetime) -> None:
    from bench.cycles import configure_site_factors_and_tariff
    from configs.services import open_new_config_version

    for channel in channels:
        if not channel.config_versions.exists():
            open_new_config_version(
                channel=channel, effective_from=start, flow_m3h=12, bod5_mg_l=300, cod_mg_l=600, tss_mg_l=250
            )
    configure_site_factors_and_tariff()


def rebuild_if_needed(channels) -> None:
    from collector.cycles import rebuild_cycles
    from collector.models import Cycle

    todo = [c for c in channels if not Cycle.objects.filter(channel=c).exists()]
    if not todo:
        return
    began = time.monotonic()
    for progress in rebuild_cycles(channels=todo):
        print(f"  cycles of channel {progress.channel.pk}: {progress.result.detected} in {progress.seconds:.1f} s")
    print(f"  rebuilt cycles and impacts in {time.monotonic() - began:.0f} s", flush=True)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def measure(client, label, url, params, requests):
    response = client.get(url, params)  # warm-up (and a check)
    assert response.status_code == 200, (url, response.status_code, response.content[:300])
    latencies = []
    for _ in range(requests):
        began = time.perf_counter()
        response = client.get(url, params)
        latencies.append((time.perf_counter() - began) * 1000)
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    verdict = "ok" if p95 < TARGET_MS else "MISSES the target"
    print(f"  {label:<52} p50 {p50:6.0f} ms   p95 {p95:6.0f} ms   {len(response.content) // 1024:5d} KiB   {verdict}")
    return p95


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="shelly_bench_dashboard", help="PostgreSQL database (created if needed)")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--channels", type=int, default=12)
    parser.add_argument("--meter-days", type=int, default=30)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--fresh", action="store_true", help="Delete the bench devices and generate the data again")
    args = parser.parse_args()

    configure(args.database)
    ensure_database(args.database)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from collector.models import Device, PowerLog

    call_command("migrate", verbosity=0)
    print("machine:", machine_info())
    if args.fresh:
        Device.objects.filter(device_id__startswith=DEVICE_PREFIX).delete()
    now = timezone.now()
    start = (now - timedelta(days=args.days)).replace(hour=0, minute=0, second=0, microsecond=0)
    print("data:", flush=True)
    pumps = pump_channels(args.channels, args.days, start)
    _meter, meter_total = meter_channel(args.meter_days, now)
    configure_impact(pumps, start - timedelta(days=1))
    rebuild_if_needed(pumps)
    with connection.cursor() as cursor:
        # What autovacuum does after a bulk load: the planner needs the row counts.
        cursor.execute("ANALYZE")
    rows = PowerLog.objects.filter(device__device_id__startswith=DEVICE_PREFIX).count()
    print(f"  {len(pumps)} pump channels over {args.days} days + 1 meter channel of 10 s rows: {rows} power log rows")

    staff, _ = get_user_model().objects.get_or_create(username="bench-dashboard", defaults={"is_staff": True})
    client = Client()
    client.force_login(staff)
    pump = pumps[0]
    print(f"\nlatency, in-process, {args.requests} requests each (target p95 < {TARGET_MS} ms):")
    results = {}
    results["overview"] = measure(client, "overview page", "/", {}, args.requests)
    for label, days in (("24 h", 1), ("7 d", 7), ("30 d", 30), ("365 d", 365)):
        for name, channel in (("pump", pump), ("meter 10 s", meter_total)):
            params = {"channel": channel.pk, "from": iso(now - timedelta(days=days)), "to": iso(now)}
            key = f"series {label} ({name})"
            results[key] = measure(client, key, "/api/v1/series/", params, args.requests)
    results["channel page 24 h"] = measure(
        client, "channel page, 24 h (KPIs, chart shell, cycles)", f"/channels/{pump.pk}/", {}, args.requests
    )
    results["cycles year"] = measure(
        client, "channel page, cycles table for a year", f"/channels/{pump.pk}/", {"range": "365d"}, args.requests
    )
    results["energy"] = measure(client, "energy page (meter, this month, 12 months)", "/energy/", {}, args.requests)
    missed = [name for name, p95 in results.items() if p95 >= TARGET_MS]
    print("\nall within target" if not missed else f"\nmissed: {', '.join(missed)}")


if __name__ == "__main__":
    main()
