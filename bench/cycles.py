#!/usr/bin/env python
"""Cycles benchmark (§6, §7) on PostgreSQL `shelly_bench_cycles`.

1. Generates `--days` (default 365) of `events` rows for `--channels` (default
   12) pump channels straight into PowerLog with bulk_create: 24 runs a day of
   8–20 min, start / delta / clock-aligned sample / stop rows, a cumulative
   counter with one reset per month. Skipped when the data is already there.
2. Times `rebuild_cycles` per channel (detector + upsert + impact and cost),
   i.e. the time for one channel-year. Target < 10 s.
3. Times `/api/v1/cycles` (one page, a month range) and
   `/api/v1/impact?period=month` (the whole year) in-process with a read
   token, `--requests` each, and prints p50/p95. Target p95 < 300 ms.

    .venv/bin/python bench/cycles.py [--days 365] [--channels 12] [--requests 40] [--fresh]
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

DB_NAME = "shelly_bench_cycles"
os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
os.environ.setdefault("SECRET_KEY", "bench-only-secret")
os.environ.setdefault("DATA_DIR", "/tmp/shelly-bench-cycles")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shelly_site.settings")

START = datetime(2025, 1, 1, tzinfo=UTC)


def generate(channel, *, days: int, seed: int, first_day: datetime = START) -> int:
    from collector.models import PowerLog

    rng = random.Random(seed)
    energy = 1000.0
    batch, written = [], 0
    for day in range(days):
        midnight = first_day + timedelta(days=day)
        if day % 30 == 29:
            energy = 0.0  # monthly counter reset (firmware update)
        for run in range(24):
            start = midnight + timedelta(hours=run, minutes=rng.randint(0, 30), seconds=rng.randint(0, 59))
            length_s = rng.randint(8 * 60, 20 * 60)
            power = rng.uniform(700, 1100)
            rows = [(start, power, "start")]
            minute = (start.minute // 5 + 1) * 5
            ts = start.replace(minute=0, second=7) + timedelta(minutes=minute)
            while ts < start + timedelta(seconds=length_s):
                power += rng.uniform(-15, 15)
                rows.append((ts, power, "sample" if rng.random() < 0.7 else "delta"))
                ts += timedelta(minutes=5)
            rows.append((start + timedelta(seconds=length_s), 0.0, "stop"))
            previous_ts = start
            for ts, row_power, reason in rows:
                energy += row_power * (ts - previous_ts).total_seconds() / 3600 if reason != "start" else 0
                previous_ts = ts
                batch.append(
                    PowerLog(
                        timestamp=ts,
                        device_id=channel.device_id,
                        channel=channel,
                        apower_w=round(row_power, 1),
                        voltage_v=230.0,
                        current_a=round(row_power / 230, 3),
                        energy_total_wh=round(energy, 2),
                        reason=reason,
                    )
                )
        if len(batch) >= 20000:
            PowerLog.objects.bulk_create(batch, batch_size=5000)
            written += len(batch)
            batch = []
    PowerLog.objects.bulk_create(batch, batch_size=5000)
    return written + len(batch)


BENCH_TARIFF_RULES = {
    "standing_charge_per_day": 0.5,
    "periods": [
        {"name": "peak", "days": "weekday", "start": "07:00", "end": "23:00", "price_per_kwh": 0.27},
        {"name": "off-peak", "days": "weekday", "start": "23:00", "end": "07:00", "price_per_kwh": 0.2},
        {"name": "weekend", "days": "weekend", "start": "00:00", "end": "24:00", "price_per_kwh": 0.18},
    ],
}


def configure_site_factors_and_tariff() -> None:
    """An example grid factor on the default factor set and a peak/off-peak site tariff (idempotent)."""
    from configs.models import EmissionFactorSet, Tariff

    factors = EmissionFactorSet.objects.order_by("valid_from").first()
    factors.grid_factor_kg_per_kwh, factors.grid_factor_source, factors.is_example = 0.052, "bench example", True
    factors.save()
    if not Tariff.objects.filter(is_site_default=True).exists():
        Tariff.objects.create(name="bench peak/off-peak", is_site_default=True, rules=BENCH_TARIFF_RULES)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--channels", type=int, default=12)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--fresh", action="store_true", help="Delete the bench data and generate it again")
    args = parser.parse_args()

    ensure_database(DB_NAME)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from django.test import Client

    from collector.cycles import rebuild_cycles
    from collector.models import ApiToken, Channel, Device, PowerLog
    from configs.services import open_new_config_version

    print("machine:", machine_info())
    if args.fresh:
        Device.objects.filter(device_id__startswith="bench-cycles-").delete()
    channels = []
    for index in range(args.channels):
        device, _ = Device.objects.get_or_create(device_id=f"bench-cycles-{index // 4:02d}")
        channel, created = Channel.objects.get_or_create(
            device=device, key=f"switch:{index % 4}", defaults={"policy": "events", "name": f"Pump {index}"}
        )
        channels.append(channel)
        if created or not PowerLog.objects.filter(channel=channel).exists():
            began = time.monotonic()
            count = generate(channel, days=args.days, seed=index)
            print(f"generated channel {channel.pk}: {count} rows in {time.monotonic() - began:.1f} s")
        if not channel.config_versions.exists():
            open_new_config_version(
                channel=channel, effective_from=START, flow_m3h=12, bod5_mg_l=300, cod_mg_l=600, tss_mg_l=250
            )
            open_new_config_version(channel=channel, effective_from=START + timedelta(days=args.days // 2), flow_m3h=14)
    configure_site_factors_and_tariff()

    rows = PowerLog.objects.filter(channel__in=channels).count()
    print(f"\n{len(channels)} channels, {args.days} days, {rows} power log rows")
    print("rebuild_cycles (detector + upsert + impact/cost), per channel:")
    timings = []
    for progress in rebuild_cycles(channels=channels):
        timings.append(progress.seconds)
        r = progress.result
        print(
            f"  channel {progress.channel.pk}: {r.detected} cycles, {r.created} created, "
            f"{r.updated} updated in {progress.seconds:.2f} s"
        )
    per_year = max(timings) * 365 / args.days
    print(f"  worst channel: {max(timings):.2f} s  → per channel-year ≈ {per_year:.2f} s (target < 10 s)")
    began = time.monotonic()
    rebuild_cycles(channels=channels[:1])
    print(f"  idempotent re-run of one channel: {time.monotonic() - began:.2f} s")

    token = ApiToken(name="bench-cycles")
    raw = token.set_new_secret()
    token.save()
    client = Client(HTTP_AUTHORIZATION=f"Token {raw}")
    month_start = START + timedelta(days=min(args.days - 31, 150))
    urls = {
        "/api/v1/cycles (one channel, one month)": (
            "/api/v1/cycles",
            {
                "channel": channels[0].pk,
                "from": month_start.isoformat(),
                "to": (month_start + timedelta(days=31)).isoformat(),
            },
        ),
        "/api/v1/cycles (all channels, first page)": ("/api/v1/cycles", {}),
        "/api/v1/impact?period=month (all channels, the year)": ("/api/v1/impact", {"period": "month"}),
    }
    print(f"\nAPI latency, in-process, {args.requests} requests each:")
    for label, (url, params) in urls.items():
        latencies = []
        for _ in range(args.requests):
            began = time.perf_counter()
            response = client.get(url, params)
            latencies.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, response.content[:300]
        size = len(response.content)
        print(
            f"  {label}: p50 {percentile(latencies, 50):.0f} ms, p95 {percentile(latencies, 95):.0f} ms "
            f"({size // 1024} KiB) (target p95 < 300 ms)"
        )
    token.delete()


if __name__ == "__main__":
    main()
