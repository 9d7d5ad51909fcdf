#!/usr/bin/env python
"""Alert evaluation cost per live sample, in process (SPEC §8: "no measurable cost to ingestion").

Feeds the same stream of LiveSamples (N channels × M samples, 100–2000 W)
through `alerts.engine` inside a running asyncio loop, as the WebSocket
consumer does, and prints the time per sample in three runs:
no rules; a high_power rule per channel plus a low_power rule everywhere that
never fire; the same rules with thresholds about half the channels cross
(transitions go to the background thread). It also prints the event loop's
longest stall while the transitions are written.

PostgreSQL database `BENCH_DB` (default shelly_bench_alerts, created and
migrated). Usage: .venv/bin/python bench/alert_rules.py [--channels 400 --samples 200]
"""

import argparse
import asyncio
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ensure_database, machine_info  # noqa: E402

DB = os.environ.get("BENCH_DB", "shelly_bench_alerts")
os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{DB}"
os.environ.setdefault("SECRET_KEY", "bench-not-secret")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shelly_site.settings")


def setup(channels: int):
    from django.core.management import call_command
    from django.db import connection

    from collector.models import Channel, Device

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE collector_device CASCADE")
    devices = Device.objects.bulk_create([Device(device_id=f"bench-alerts-{n}") for n in range(channels // 4)])
    Channel.objects.bulk_create([Channel(device=d, key=f"switch:{k}") for d in devices for k in range(4)])
    return list(Channel.objects.values_list("pk", "device_id"))


def stream(channels, samples, seed=1):
    from collector.samples import LiveSample, Sample

    rng = random.Random(seed)
    base = {pk: rng.uniform(100, 2000) for pk, _ in channels}
    now = datetime.now(UTC)
    frames = []
    for i in range(samples):
        ts = now - timedelta(seconds=samples - i)
        # One frame per device: its four channels, as a Pro 4PM sends them.
        frames.append(
            [
                LiveSample(pk, dev, Sample("d", "switch:0", ts, base[pk] * rng.uniform(0.99, 1.01)), True, "websocket")
                for pk, dev in channels
            ]
        )
    return frames


def rules(channels, threshold):
    from alerts.models import AlertRule

    AlertRule.objects.all().delete()
    if threshold is None:
        return
    AlertRule.objects.bulk_create(
        [AlertRule(name=f"h{pk}", slug=f"h{pk}", channel_id=pk, threshold=threshold, sustain_s=5) for pk, _ in channels]
    )
    AlertRule.objects.create(name="dry", slug="dry", kind="low_power", threshold=50, sustain_s=5)


async def feed(frames, per_frame: int):
    from alerts import engine

    worst = 0.0
    started = time.perf_counter()
    for frame in frames:
        for i in range(0, len(frame), per_frame):
            t = time.perf_counter()
            engine.observe_samples(frame[i : i + per_frame])
            worst = max(worst, time.perf_counter() - t)
        await asyncio.sleep(0)
    elapsed = time.perf_counter() - started
    await asyncio.get_running_loop().run_in_executor(None, engine.engine.drain)
    return elapsed, worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=400)
    parser.add_argument("--samples", type=int, default=200, help="Samples per channel (bounded: ≤ 2000).")
    args = parser.parse_args()
    if not (4 <= args.channels <= 4000 and 1 <= args.samples <= 2000):
        parser.error("--channels 4..4000, --samples 1..2000")
    ensure_database(DB)
    import django

    django.setup()
    from alerts.models import AlertEvent

    channels = setup(args.channels)
    frames = stream(channels, args.samples)
    total = args.channels * args.samples
    m = machine_info()
    print(f"machine: {m['cpu']}, {m['cores']} cores, load avg {m['load_avg'][0]:.2f} (shared: figures vary)")
    print(f"{args.channels} channels × {args.samples} samples = {total} live samples, 4 per observe call")
    results = {}
    for label, threshold in [("no rules", None), ("rules, none fire", 100_000.0), ("rules, ~half fire", 1050.0)]:
        rules(channels, threshold)
        from alerts import engine

        engine.reset()
        engine.engine.load()  # as after the first refresh in a long-running process
        elapsed, worst = asyncio.run(feed(frames, 4))
        results[label] = elapsed
        fired = AlertEvent.objects.count()
        print(
            f"{label:18} {elapsed * 1e6 / total:6.2f} µs/sample  ({total / elapsed:,.0f} samples/s)  "
            f"longest observe call {worst * 1000:.2f} ms  events {fired}"
        )
    print(
        "extra cost per sample with rules: "
        f"{(results['rules, none fire'] - results['no rules']) * 1e6 / total:.2f} µs (none fire), "
        f"{(results['rules, ~half fire'] - results['no rules']) * 1e6 / total:.2f} µs (half fire)"
    )


if __name__ == "__main__":
    main()
