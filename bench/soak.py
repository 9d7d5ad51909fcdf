#!/usr/bin/env python
"""Soak: simulated Pro 4PMs through two uvicorn processes, with a PostgreSQL restart and a web process kill.

- a PRIVATE PostgreSQL cluster and a private redis-server on free loopback
  ports (the shared ones are never stopped), migrated from scratch;
- two uvicorn processes with production settings (DEBUG off, PostgreSQL, the
  Redis channel layer, default collector timers) on different ports;
- `--devices` devices (default 200), half on each process, one frame every
  `--interval` s with four switches: `switch:0..2` policy `events` (pumps
  running `--on` s, idle `--off` s, phase per device), `switch:3` policy
  `every` (every sample is a row);
- at 30 % of `--duration` the cluster is stopped for `--outage` s
  (`pg_ctl stop -m fast`, then start); at 60 % process A is SIGKILLed and
  its devices reconnect to B (a device that finds no server tries the other);
- at the end every pump goes idle, runs expire (stop timeout `--stop-timeout`),
  the django-q2 sweeper task runs once, and the database is counted.

Printed: frames/s sent, `every` rows written vs samples sent, starts and stops
expected (from the samples actually sent) vs written, buffered and dropped
samples (from /healthz), RSS of each process, errors, the machine.

Usage (repository root):  .venv/bin/python bench/soak.py [--duration 600] [--devices 200]
"""

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shelly_site.settings")
os.environ.setdefault("SECRET_KEY", "bench-not-secret")

from bench._common import machine_info, rss_mb  # noqa: E402
from tests.private_services import (  # noqa: E402
    WsDevice,
    private_postgres,
    private_redis,
)
from tests.servers import free_port, kill_session, manage_argv, process_env, start, uvicorn_argv  # noqa: E402

FRAMES_IN = re.compile(r'^shelly_frames_in_total\{transport="websocket"\}\s+([0-9.e+]+)', re.M)

SETUP = """
from collector.models import Channel, Device, IngestToken
for i in range({devices}):
    device = Device.objects.create(device_id=f"shellypro4pm-soak{{i:08d}}", model="SPSW-004PE16EU", generation=2)
    Channel.objects.bulk_create(
        [Channel(device=device, key=f"switch:{{n}}", policy="events", stop_timeout_s={stop_timeout}) for n in range(3)]
        + [Channel(device=device, key="switch:3", policy="every", stop_timeout_s={stop_timeout})]
    )
token = IngestToken(name="soak")
raw = token.set_new_secret()
token.save()
print("TOKEN=" + raw)
"""


def device_id(i: int) -> str:
    return f"shellypro4pm-soak{i:08d}"


class Stats:
    def __init__(self):
        self.samples: dict[int, list[tuple[float, float]]] = {}
        self.connect_errors = 0
        self.send_errors = 0
        self.failovers = 0
        self.healthz: list[tuple[float, int, dict]] = []


def power_at(i: int, t: float, args) -> float:
    cycle = args.on + args.off
    phase = (i * 7.3) % cycle
    return 100.0 + i % 5 if (t + phase) % cycle < args.on else 0.0


async def run_device(i, ports, token, started, args, stats, alive):
    port_index = i % 2
    device = None
    samples = stats.samples.setdefault(i, [])
    end = started + args.duration
    idle_until = end + args.stop_timeout + 3  # everything idle at the end: every run expires
    next_at = started + (i % 50) / 50 * args.interval
    while time.time() < idle_until:
        if device is None:
            if not alive[port_index]:
                port_index ^= 1
            device = WsDevice(f"ws://127.0.0.1:{ports[port_index]}", token, device_id(i))
            try:
                await device.connect()
            except Exception:
                stats.connect_errors += 1
                device = None
                port_index ^= 1
                stats.failovers += 1
                await asyncio.sleep(0.5)
                continue
        await asyncio.sleep(max(0.0, next_at - time.time()))
        next_at += args.interval
        now = time.time()
        power = power_at(i, now - started, args) if now < end else 0.0
        try:
            await device.send(now, {0: power, 1: power, 2: power, 3: power})
            samples.append((round(now, 2), power))
        except Exception:
            stats.send_errors += 1
            device = None
    if device is not None:
        await device.close()


def expected_runs(samples, stop_timeout) -> int:
    runs, running, last_active = 0, False, None
    for ts, power in samples:
        if running and last_active is not None and ts - last_active > stop_timeout:
            running = False
        if power > 0:
            if not running:
                runs += 1
                running = True
            last_active = ts
    return runs


def health(port: int) -> tuple[int, dict]:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        return response.status_code, response.json()
    except Exception as exc:
        return 0, {"error": type(exc).__name__}


def frames_in(port: int) -> float | None:
    try:
        match = FRAMES_IN.search(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
        return float(match.group(1)) if match else None
    except Exception:
        return None


async def orchestrate(args, cluster, url, ports, processes, token, stats, rss):
    alive = [True, True]
    started = time.time()
    devices = [
        asyncio.create_task(run_device(i, ports, token, started, args, stats, alive)) for i in range(args.devices)
    ]

    async def at(fraction):
        await asyncio.sleep(max(0.0, started + args.duration * fraction - time.time()))

    async def watch_health(until):
        while time.time() < until:
            for n, port in enumerate(ports):
                if alive[n]:
                    status, body = await asyncio.to_thread(health, port)
                    stats.healthz.append((time.time(), status, body))
            await asyncio.sleep(1)

    await at(0.1)
    rss["A start"], rss["B start"] = rss_mb(processes[0].pid), rss_mb(processes[1].pid)
    if args.no_faults:
        await asyncio.gather(*devices)
        rss["B end"] = rss_mb(processes[1].pid)
        return started
    await at(0.3)
    print(f"[{time.time() - started:6.0f} s] stopping PostgreSQL for {args.outage:.0f} s", flush=True)
    await asyncio.to_thread(cluster.stop, "fast")
    await watch_health(time.time() + args.outage)
    await asyncio.to_thread(cluster.start)
    print(f"[{time.time() - started:6.0f} s] PostgreSQL started again", flush=True)
    await watch_health(time.time() + 10)
    await at(0.6)
    rss["A before kill"] = rss_mb(processes[0].pid)
    status, body = await asyncio.to_thread(health, ports[0])
    stats.healthz.append((time.time(), status, body))
    print(f"[{time.time() - started:6.0f} s] SIGKILL web process A", flush=True)
    alive[0] = False
    os.killpg(processes[0].pid, signal.SIGKILL)
    await at(0.7)
    rss["B after failover"] = rss_mb(processes[1].pid)
    await asyncio.gather(*devices)
    rss["B end"] = rss_mb(processes[1].pid)
    status, body = await asyncio.to_thread(health, ports[1])
    stats.healthz.append((time.time(), status, body))
    return started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between a device's frames")
    parser.add_argument("--outage", type=float, default=20, help="seconds PostgreSQL stays stopped")
    parser.add_argument("--on", type=float, default=40, help="seconds a pump runs")
    parser.add_argument("--off", type=float, default=25, help="seconds a pump rests")
    parser.add_argument("--stop-timeout", type=float, default=10)
    parser.add_argument("--no-faults", action="store_true", help="no database restart, no kill: the baseline")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    print("machine:", json.dumps(machine_info()), flush=True)
    stats, rss = Stats(), {}
    with private_postgres() as cluster, private_redis() as redis_server:
        url = cluster.create_database("soak")
        code = SETUP.format(devices=args.devices, stop_timeout=args.stop_timeout)
        env = process_env(DATABASE_URL=url, REDIS_URL="")
        out = subprocess.run(manage_argv("shell", "-c", code), cwd=BASE, env=env, capture_output=True, text=True,
                             check=True, timeout=300)  # fmt: skip
        token = next(line[6:] for line in out.stdout.splitlines() if line.startswith("TOKEN="))
        ports = [free_port(), free_port()]
        web_env = process_env(DATABASE_URL=url, REDIS_URL=redis_server.url, COLLECTOR_AUTO_REGISTER="false")
        web_env.pop("COLLECTOR_STATE_FLUSH_SECONDS", None)
        web_env.pop("COLLECTOR_TIMER_SECONDS", None)
        logs = [Path(f"/tmp/soak-web-{name}.log") for name in "AB"]
        for log in logs:
            log.unlink(missing_ok=True)
        processes = [
            start(uvicorn_argv(port), env=web_env, log_path=log) for port, log in zip(ports, logs, strict=True)
        ]
        try:
            for port in ports:
                deadline = time.monotonic() + 60
                while health(port)[0] == 0 and time.monotonic() < deadline:
                    time.sleep(0.5)
            started = asyncio.run(orchestrate(args, cluster, url, ports, processes, token, stats, rss))
            frames_b = frames_in(ports[1])
            # The django-q2 sweeper, once (the worker is not part of this soak).
            sweep = "from collector.tasks import close_expired_runs as c; print(c())"
            subprocess.run(manage_argv("shell", "-c", sweep), cwd=BASE, env=env, capture_output=True, text=True,
                           timeout=120)  # fmt: skip
            counts = cluster.query(
                "soak",
                "SELECT c.key, p.reason, count(*), count(DISTINCT (p.channel_id, p.timestamp)) "
                "FROM collector_powerlog p JOIN collector_channel c ON c.id = p.channel_id GROUP BY c.key, p.reason",
            )
            still_running = cluster.query("soak", "SELECT count(*) FROM collector_channelstate WHERE running")[0][0]
        finally:
            for process in processes:
                kill_session(process)
    report(args, stats, rss, counts, still_running, frames_b, started, logs)


def report(args, stats, rss, counts, still_running, frames_b, started, logs):
    samples = sum(len(s) for s in stats.samples.values())
    elapsed = args.duration + args.stop_timeout + 3
    runs_expected = sum(expected_runs(s, args.stop_timeout) for s in stats.samples.values()) * 3
    by = {(key, reason): (total, distinct) for key, reason, total, distinct in counts}
    every_rows = sum(total for (key, _), (total, _) in by.items() if key == "switch:3")
    every_distinct = sum(distinct for (key, _), (_, distinct) in by.items() if key == "switch:3")
    starts = sum(total for (key, reason), (total, _) in by.items() if key != "switch:3" and reason == "start")
    stops = sum(total for (key, reason), (total, _) in by.items() if key != "switch:3" and reason == "stop")
    # 503 also means "no django-q2 worker" (none runs here): the outage is the database check failing.
    outage = [body for _, status, body in stats.healthz if status == 503 and not body["checks"]["database"]["ok"]]
    buffered = max((b.get("checks", {}).get("database", {}).get("buffered_samples", 0) for b in outage), default=0)
    dropped = [b.get("checks", {}).get("database", {}).get("dropped_samples", 0) for _, _, b in stats.healthz]
    # django.request logs each 503 of /healthz at ERROR: those are answers, not errors.
    errors = {
        log.name: sum(
            1
            for line in log.read_text(errors="replace").splitlines()
            if ("ERROR" in line or "Traceback" in line) and "Service Unavailable: /healthz" not in line
        )
        for log in logs
    }
    figures = {
        "devices": args.devices,
        "duration_s": args.duration,
        "frames_sent": samples,
        "frames_per_s_sent": round(samples / elapsed, 1),
        "frames_in_B_metrics": frames_b,
        "every_rows_expected": samples,
        "every_rows_written": every_rows,
        "every_rows_duplicated": every_rows - every_distinct,
        "starts_expected": runs_expected,
        "starts_written": starts,
        "stops_expected": runs_expected,
        "stops_written": stops,
        "runs_still_open": still_running,
        "healthz_503_answers_during_outage": len(outage),
        "buffered_samples_max_seen": buffered,
        "dropped_samples_max_seen": max(dropped, default=0),
        "rss_mb": {k: round(v, 1) for k, v in rss.items()},
        "client_connect_errors": stats.connect_errors,
        "client_send_errors": stats.send_errors,
        "server_log_error_lines": errors,
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
