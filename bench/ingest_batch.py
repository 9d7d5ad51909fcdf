#!/usr/bin/env python
"""HTTP batch ingest benchmark (§4.2): batches of 1000 normalized readings against uvicorn.

What it does, all on loopback and bounded:
- creates and migrates PostgreSQL `shelly_bench_batch` (emptied of rows first),
  one ingest key, and per client one device with 4 switch channels using the
  write policy under test (`every`: a row per reading, the worst case; then
  `events`: few rows, all the decisions);
- starts uvicorn (production settings: PostgreSQL, Redis, DEBUG off) with
  `--workers`, and `--clients` threads each POSTing `--batches` batches of
  1000 readings (250 per channel, 1 s apart, in the past);
- prints readings/s accepted (from the responses), rows stored (counted in the
  database), rows/s, p50/p99 batch latency, server CPU, and the machine.

`--profile` instead runs a few batches in this process under cProfile and
prints where the time goes.

Usage (from the repository root):  .venv/bin/python bench/ingest_batch.py [--batches 20] [--clients 4]
"""

import argparse
import cProfile
import os
import pstats
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402
    BASE_DIR,
    ServerProcess,
    cpu_seconds,
    ensure_database,
    free_port,
    machine_info,
    percentile,
)

DB = os.environ.get("BENCH_DB", "shelly_bench_batch")
BATCH = 1000
CHANNELS_PER_DEVICE = 4
ENV = {
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB}",
    "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5"),
    "SECRET_KEY": "bench-not-secret",
    "DEBUG": "false",
    "LOG_LEVEL": "WARNING",
    "COLLECTOR_AUTO_REGISTER": "false",
    "API_THROTTLE_INGEST": "1000000/min",
    "BEHIND_TLS_PROXY": "false",  # plain http on loopback (production redirects to https)
    "DATA_DIR": "/tmp/shelly-bench-data",
}
os.environ.update(ENV)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shelly_site.settings")


def prepare(policy: str, clients: int) -> str:
    """Migrate, empty the rows, (re)create the devices/channels with `policy`; returns a raw ingest key."""
    import django

    django.setup()
    from django.core.management import call_command

    from collector.models import Channel, ChannelState, Device, IngestToken, PowerLog

    call_command("migrate", verbosity=0)
    PowerLog.objects.all().delete()
    ChannelState.objects.all().delete()
    Device.objects.filter(device_id__startswith="bench-batch-").delete()
    for client in range(clients):
        device = Device.objects.create(device_id=f"bench-batch-{client}", transport="batch")
        for n in range(CHANNELS_PER_DEVICE):
            Channel.objects.create(device=device, key=f"switch:{n}", policy=policy)
    IngestToken.objects.filter(name="bench").delete()
    token = IngestToken(name="bench")
    raw = token.set_new_secret()
    token.save()
    return raw


def batch_body(client: int, index: int, start: datetime) -> dict:
    """1000 readings of one device, 250 per channel, each channel's clock 1 s per reading.

    Power follows a pump that runs 3 minutes and rests 2, so `events` has starts, deltas and stops.
    """
    per_channel = BATCH // CHANNELS_PER_DEVICE
    messages = []
    for n in range(CHANNELS_PER_DEVICE):
        for i in range(per_channel):
            second = index * per_channel + i
            running = (second % 300) < 180
            power = (450.0 + (second % 7) * 3.0) if running else 0.4
            messages.append(
                {
                    "device_id": f"bench-batch-{client}",
                    "channel": f"switch:{n}",
                    "ts": (start + timedelta(seconds=second)).isoformat(),
                    "apower_w": power,
                    "voltage_v": 230.1,
                    "current_a": round(power / 230.0, 3),
                    "energy_total_wh": 1000.0 + second * 0.12,
                }
            )
    return {"messages": messages}


def run_clients(url: str, key: str, *, clients: int, batches: int, start: datetime):
    latencies, accepted, duplicates, errors = [], [0], [0], []
    lock = threading.Lock()
    # Bodies are built before the clock starts: the figure is the server's.
    bodies = {(c, b): batch_body(c, b, start) for c in range(clients) for b in range(batches)}

    def client_loop(client):
        with httpx.Client(headers={"X-API-Key": key}, timeout=60) as http:
            for index in range(batches):
                t0 = time.perf_counter()
                response = http.post(url, json=bodies[(client, index)])
                elapsed = time.perf_counter() - t0
                with lock:
                    latencies.append(elapsed)
                    if response.status_code != 200:
                        errors.append(response.text[:200])
                        continue
                    body = response.json()
                    accepted[0] += body["accepted"]
                    duplicates[0] += body["duplicates"]

    threads = [threading.Thread(target=client_loop, args=(c,)) for c in range(clients)]
    wall = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - wall, latencies, accepted[0], duplicates[0], errors


def bench_policy(policy: str, args) -> dict:
    key = prepare(policy, args.clients)
    from collector.models import PowerLog

    port = free_port()
    argv = [
        str(BASE_DIR / ".venv/bin/uvicorn"),
        "shelly_site.asgi:application",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", str(args.workers),
        "--no-access-log",
        "--log-level", "warning",
    ]  # fmt: skip
    env = {**os.environ, **ENV}
    start = datetime.now(tz=UTC).replace(microsecond=0) - timedelta(days=20)
    with ServerProcess(
        "uvicorn", argv, env=env, port=port, ready_url=f"http://127.0.0.1:{port}/accounts/login/",
        log_path=Path("/tmp/bench-ingest-batch-uvicorn.log"),
    ) as server:  # fmt: skip
        url = f"http://127.0.0.1:{port}/api/v1/ingest/batch"
        # Warm-up: one small batch per worker connection path, not counted.
        httpx.post(url, json={"messages": []}, headers={"X-API-Key": key}, timeout=30)
        cpu_before = cpu_seconds(server.pid)
        wall, latencies, accepted, duplicates, errors = run_clients(
            url, key, clients=args.clients, batches=args.batches, start=start
        )
        cpu = cpu_seconds(server.pid) - cpu_before
    rows = PowerLog.objects.filter(device__device_id__startswith="bench-batch-").count()
    sent = args.clients * args.batches * BATCH
    return {
        "policy": policy,
        "readings_sent": sent,
        "accepted": accepted,
        "duplicates": duplicates,
        "failed_batches": len(errors),
        "first_error": errors[0] if errors else None,
        "rows_stored": rows,
        "wall_s": round(wall, 2),
        "readings_per_s": round(accepted / wall),
        "rows_per_s": round(rows / wall),
        "batch_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "batch_p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "server_cpu_pct_of_one_core": round(100 * cpu / wall),
    }


def profile(args) -> None:
    """A few batches in this process under cProfile: where a batch's time goes."""
    prepare("every", 1)
    from collector.api.ingest import ingest_batch
    from collector.models import IngestToken

    token = IngestToken.objects.select_related("device").get(name="bench")
    start = datetime.now(tz=UTC).replace(microsecond=0) - timedelta(days=20)
    bodies = [batch_body(0, i, start)["messages"] for i in range(5)]
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    for messages in bodies:
        ingest_batch(messages, token=token)
    profiler.disable()
    print(f"5 batches in process: {5 * BATCH / (time.perf_counter() - t0):,.0f} readings/s (under the profiler)")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=20, help="batches per client (default 20)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (default 2)")
    parser.add_argument("--policies", default="every,events")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    args.batches = min(args.batches, 200)  # bounded load
    ensure_database(DB)
    if args.profile:
        profile(args)
        return
    print("machine:", machine_info())
    print(f"server: uvicorn --workers {args.workers}, PostgreSQL {DB}, Redis; {args.clients} clients × "
          f"{args.batches} batches × {BATCH} readings")  # fmt: skip
    target = 20_000
    for policy in args.policies.split(","):
        result = bench_policy(policy, args)
        verdict = "meets" if result["readings_per_s"] >= target else "MISSES"
        print(f"{policy:>7}: " + ", ".join(f"{k}={v}" for k, v in result.items() if k != "policy"))
        print(f"         {verdict} the {target:,} readings/s target")


if __name__ == "__main__":
    main()
