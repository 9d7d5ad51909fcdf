#!/usr/bin/env python
"""RPC polling benchmark (§4.3): `--meters` simulated 3EMs polled every 10 s, plus interval pulls.

1. Starts the meters (`manage.py simulate_shelly --kind rpc3em`, own process)
   on 127.0.0.1, each with `--history-hours` of 1-minute records (and a
   power-loss gap), so the first interval pull is a real catch-up.
2. Registers them as polled devices in a fresh database (SQLite under
   /tmp by default; `--postgres` uses PostgreSQL `shelly_bench_poll`).
3. Runs the poller (`manage.py run_poller`) for `--duration` seconds (default
   300) and samples its CPU time and RSS from /proc every second.
4. Prints polls/s, cadence drift (how late each poll started versus its 10 s
   grid) p50/p99/max, skipped ticks, intervals ingested/s, poller CPU and RSS,
   and the machine. Target: drift p99 < 1 s with 50 meters.

    .venv/bin/python bench/poll.py [--meters 50] [--duration 300] [--postgres]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import BASE_DIR, cpu_seconds, ensure_database, machine_info, percentile, rss_mb  # noqa: E402

PG_DB = "shelly_bench_poll"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--meters", type=int, default=50)
    parser.add_argument("--duration", type=float, default=300.0, help="Seconds of polling (default 300).")
    parser.add_argument("--live-seconds", type=float, default=10.0)
    parser.add_argument("--interval-seconds", type=float, default=60.0, help="Interval pull period (default 60).")
    parser.add_argument("--history-hours", type=float, default=2.0, help="Records each meter holds at start.")
    parser.add_argument("--postgres", action="store_true", help=f"PostgreSQL database {PG_DB} instead of SQLite.")
    args = parser.parse_args()
    if not 1 <= args.meters <= 500 or not 0 < args.duration <= 3600:
        parser.error("--meters 1..500, --duration up to 3600 s")
    return args


def bench_env(args, data_dir: str) -> dict:
    env = dict(os.environ, DATA_DIR=data_dir, LOG_LEVEL="WARNING", DJANGO_SETTINGS_MODULE="shelly_site.settings")
    env.pop("DATABASE_URL", None)
    env.pop("SHELLY_HOST", None)
    if args.postgres:
        ensure_database(PG_DB)
        env.update(DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{PG_DB}", SECRET_KEY="bench-only-secret")
    return env


def manage(env, *argv, **kwargs):
    return subprocess.run([sys.executable, "manage.py", *argv], cwd=BASE_DIR, env=env, check=True, **kwargs)


REGISTER = """
from collector.models import Device, EnergyInterval, PowerLog, Transport
EnergyInterval.objects.all().delete(); PowerLog.objects.all().delete(); Device.objects.all().delete()
Device.objects.bulk_create([
    Device(device_id=f"rpc-{{address}}", transport=Transport.RPC_POLL, host=address) for address in {addresses!r}
])
"""
COUNT = """
from collector.models import EnergyInterval, PowerLog
print(EnergyInterval.objects.count(), PowerLog.objects.count())
"""


def wait_for_meters(log_path: Path, count: int, deadline_s: float = 60.0) -> list[str]:
    """Addresses the simulator printed ("… on http://127.0.0.1:PORT/")."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        addresses = re.findall(r" on http://(127\.0\.0\.1:\d+)/", log_path.read_text())
        if len(addresses) >= count:
            return addresses[:count]
        time.sleep(0.3)
    raise RuntimeError(f"the simulated meters did not start; see {log_path}")


def main():
    args = parse_args()
    data_dir = tempfile.mkdtemp(prefix="shelly-bench-poll-")
    env = bench_env(args, data_dir)
    manage(env, "migrate", "-v0")
    sim_log_path = Path(data_dir) / "simulator.log"
    sim_log = open(sim_log_path, "w")
    simulator = subprocess.Popen(
        [
            sys.executable, "manage.py", "simulate_shelly", "--kind", "rpc3em",
            "--devices", str(args.meters), "--rpc-port", "0",
            "--history-hours", str(args.history_hours), "--duration", str(args.duration + 120),
        ],
        cwd=BASE_DIR, env=env, stdout=sim_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    stats_path = Path(data_dir) / "poller-stats.json"
    poller = None
    try:
        addresses = wait_for_meters(sim_log_path, args.meters)
        manage(env, "shell", "-c", REGISTER.format(addresses=addresses), stdout=subprocess.DEVNULL)
        print(f"{args.meters} meters up on 127.0.0.1; polling for {args.duration:g} s (logs in {data_dir})", flush=True)
        poller_log = open(Path(data_dir) / "poller.log", "w")
        poller = subprocess.Popen(
            [
                sys.executable, "manage.py", "run_poller",
                "--live-seconds", str(args.live_seconds), "--interval-seconds", str(args.interval_seconds),
                "--duration", str(args.duration), "--stats-file", str(stats_path), "--refresh-seconds", "600",
            ],
            cwd=BASE_DIR, env=env, stdout=poller_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        rss_samples, cpu_start = [], None
        started = time.monotonic()
        while poller.poll() is None and time.monotonic() - started < args.duration + 90:
            time.sleep(1.0)
            if cpu_start is None:
                cpu_start = (cpu_seconds(poller.pid), time.monotonic())
            rss_samples.append(rss_mb(poller.pid))
            cpu_end = (cpu_seconds(poller.pid), time.monotonic())
        if poller.poll() is None:
            poller.terminate()
        poller.wait(timeout=30)
    finally:
        if poller is not None and poller.poll() is None:
            poller.kill()
        simulator.terminate()
        try:
            simulator.wait(timeout=10)
        except subprocess.TimeoutExpired:
            simulator.kill()

    stats = json.loads(stats_path.read_text())
    drifts = [d for s in stats.values() for d in s["drifts"]]
    polls = sum(s["polls_ok"] for s in stats.values())
    failed = sum(s["polls_failed"] for s in stats.values())
    intervals_written = sum(s["intervals_written"] for s in stats.values())
    counted = manage(env, "shell", "-c", COUNT, capture_output=True, text=True).stdout.strip().splitlines()[-1].split()
    cpu_used = cpu_end[0] - cpu_start[0]
    wall = cpu_end[1] - cpu_start[1]
    p99 = percentile(drifts, 99)
    report = {
        "meters": args.meters,
        "duration_s": args.duration,
        "database": "postgresql" if args.postgres else "sqlite",
        "live_period_s": args.live_seconds,
        "interval_period_s": args.interval_seconds,
        "polls_ok": polls,
        "polls_failed": failed,
        "polls_per_s": round(polls / args.duration, 2),
        "expected_polls_per_s": round(args.meters / args.live_seconds, 2),
        "drift_p50_ms": round(percentile(drifts, 50) * 1000, 1),
        "drift_p99_ms": round(p99 * 1000, 1),
        "drift_max_ms": round(max(drifts) * 1000, 1),
        "ticks_skipped": sum(s["ticks_skipped"] for s in stats.values()),
        "interval_rows_written": intervals_written,
        "intervals_ingested_per_s": round(intervals_written / args.duration, 1),
        "energy_interval_rows": int(counted[0]),
        "power_log_rows": int(counted[1]),
        "poller_cpu_percent": round(100 * cpu_used / wall, 1) if wall else None,
        "poller_rss_mb_max": round(max(rss_samples), 1),
        "machine": machine_info(),
        "target": "drift p99 < 1000 ms",
        "target_met": p99 < 1.0,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
