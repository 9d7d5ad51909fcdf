#!/usr/bin/env python
"""WebSocket ingestion benchmark: our web process (daphne, uvicorn) against the peer, same run, same load.

For each server: start it on a free loopback port (ours with production
settings: PostgreSQL `shelly_bench` + Redis; the peer in its own venv on
PostgreSQL `peerbench`), drive it with the Pro 4PM simulator over real sockets
at increasing loads (bounded steps, bounded seconds), and read what the
SERVER handled:

- frames/s: ours from `/metrics` (`shelly_frames_in_total{transport="websocket"}`),
  the peer from `GET /stats` (`processed`), over a window after warm-up;
- rows and rows/s written for the step's devices, and p50/p99 frame-to-row
  latency (`created_at − timestamp`; the simulator puts its send time in
  `params.ts`, stop rows excluded);
- server CPU (% of one core) and RSS (process tree, from /proc);
- then a "1,000 devices at 1 frame/10 s" check of RSS with every socket open.

With `--alert-rules`, each of our servers runs twice in the same run: without
alert rules, then with a `high_power` rule on every channel plus a
`low_power` rule on all channels (SPEC §8: evaluation on every live sample);
the summary prints the ratio (target ≥ 0.95).

Usage (from the repository root):  .venv/bin/python bench/ingest_ws.py --quick
See bench/README.md.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402
    BASE_DIR,
    ServerProcess,
    cpu_seconds,
    ensure_database,
    ensure_peer_venv,
    free_port,
    machine_info,
    percentile,
    rss_mb,
)

OURS_DB = os.environ.get("BENCH_DB", "shelly_bench")  # one per person on a shared machine
PEER_DB = os.environ.get("BENCH_PEER_DB", "peerbench")  # idem for the peer
PEER_DSN = f"postgresql://postgres@127.0.0.1:5432/{PEER_DB}"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
# The earlier single-file design lives outside this repository: its path comes from the environment.
PEER_SCRIPT = os.environ.get("PEER_SCRIPT", "")
PEER_VENV = Path(os.environ.get("PEER_VENV", "/tmp/peer-venv"))
RSS_SEED = 999
FRAMES_IN = re.compile(r'^shelly_frames_in_total\{transport="websocket"\}\s+([0-9.e+]+)', re.M)

OURS_ENV = {
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{OURS_DB}",
    "REDIS_URL": REDIS_URL,
    "SECRET_KEY": "bench-not-secret",
    "DEBUG": "false",
    "LOG_LEVEL": "WARNING",
    "COLLECTOR_AUTO_REGISTER": "false",
    # Throughput, not flood defence: a few devices each send far more than the per-connection
    # limit (50 frames/s by default, measured by bench/ws_flood.py); the peer has none.
    "COLLECTOR_MAX_FRAMES_PER_SECOND": "0",
    "DATA_DIR": os.environ.get("BENCH_DATA_DIR", "/tmp/shelly-bench-data"),
}
# This process reads and prepares the same database as the server.
os.environ.update(OURS_ENV)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shelly_site.settings")


# -- load generator (own process, so measuring does not steal its loop) ------------


def _simulate(url, n, rate, seed, duration, scenario, queue):
    from collector.simulators.pro4pm import run_devices

    def progress(stats):
        queue.put(("tick", time.time(), stats.frames_sent, stats.connected))

    stats = asyncio.run(
        run_devices(
            url,
            n,
            scenario,
            duration=duration,
            rate=rate,
            seed=seed,
            disconnect_every=0,
            progress=progress,
            progress_every=1.0,
        )
    )
    queue.put(("done", time.time(), stats.frames_sent, stats.as_dict()))


class LoadRun:
    def __init__(self, url, *, devices, rate, seed, duration, scenario="steady"):
        ctx = multiprocessing.get_context("spawn")
        self.queue = ctx.Queue()
        self.process = ctx.Process(
            target=_simulate, args=(url, devices, rate, seed, duration, scenario, self.queue), daemon=True
        )
        self.ticks: list[tuple[float, int, int]] = []
        self.final: dict = {}

    def start(self):
        self.process.start()
        return self

    def drain(self):
        while not self.queue.empty():
            kind, t, frames, extra = self.queue.get()
            if kind == "tick":
                self.ticks.append((t, frames, extra))
            else:
                self.final = extra

    def join(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.final:
            self.drain()
            time.sleep(0.1)
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
        self.drain()

    def sent_between(self, t0, t1) -> float:
        def at(t):
            best = min(self.ticks, key=lambda tick: abs(tick[0] - t), default=None)
            return best

        a, b = at(t0), at(t1)
        if a is None or b is None or b[0] <= a[0]:
            return 0.0
        return (b[1] - a[1]) / (b[0] - a[0])

    def connected_at_end(self) -> int:
        return self.ticks[-1][2] if self.ticks else 0


# -- servers -------------------------------------------------------------------------


class Ours:
    def __init__(self, name, argv_for_port, policy):
        self.name, self.argv_for_port, self.policy = name, argv_for_port, policy

    def prepare(self, device_sets):
        from django.db import connection

        from collector.models import Channel, Device, IngestToken

        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE collector_device, collector_ingesttoken CASCADE")
        devices = Device.objects.bulk_create(
            [
                Device(device_id=device_id, mac=mac, model="SPSW-004PE16EU", generation=2)
                for ids in device_sets
                for device_id, mac in ids
            ]
        )
        Channel.objects.bulk_create(
            [Channel(device=d, key=f"switch:{n}", policy=self.policy) for d in devices for n in range(4)],
            batch_size=2000,
        )
        token = IngestToken(name="bench")
        self.token = token.set_new_secret()
        token.save()

    def server(self, logdir):
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/ws/shelly/{self.token}/"
        return ServerProcess(
            self.name,
            self.argv_for_port(port),
            env={**os.environ, **OURS_ENV},
            port=port,
            ready_url=f"{self.base}/metrics",
            log_path=logdir / f"{self.name}.log",
        )

    def handled(self) -> float:
        text = httpx.get(f"{self.base}/metrics", timeout=30).text
        match = FRAMES_IN.search(text)
        return float(match.group(1)) if match else 0.0

    def rows(self, device_ids) -> tuple[int, list[float]]:
        from collector.models import PowerLog

        logs = PowerLog.objects.filter(device__device_id__in=device_ids)
        latencies = [
            (created - ts).total_seconds() * 1000
            for created, ts in logs.exclude(reason="stop").values_list("created_at", "timestamp")
        ]
        return logs.count(), latencies


class WithAlertRules:
    """The same server and load, with alert rules on every channel (evaluated in memory on every sample)."""

    def __init__(self, ours):
        self.ours = ours
        self.name = f"{ours.name}+rules"

    def prepare(self, device_sets):
        from alerts.models import AlertRule
        from collector.models import Channel

        self.ours.prepare(device_sets)
        # The simulated pumps draw 100–2000 W: about half the channels fire (a burst of transitions at the
        # start of each step), the others stay below and are evaluated on every frame.
        AlertRule.objects.bulk_create(
            [
                AlertRule(name=f"high {pk}", slug=f"bench-high-{pk}", channel_id=pk, threshold=1000, sustain_s=2)
                for pk in Channel.objects.values_list("pk", flat=True)
            ],
            batch_size=2000,
        )
        AlertRule.objects.create(name="dry", slug="bench-dry", kind="low_power", threshold=50, sustain_s=30)

    def __getattr__(self, name):
        return getattr(self.ours, name)


class Peer:
    name = "peer"

    def __init__(self, policy):
        self.every = policy == "every"

    def prepare(self, device_sets):
        import psycopg

        ensure_database(PEER_DB)
        with psycopg.connect(PEER_DSN, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS power_logs")

    def server(self, logdir):
        python = ensure_peer_venv(PEER_VENV)
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/ws"
        argv = [str(python), str(PEER_SCRIPT), "--port", str(port), "--dsn", PEER_DSN, "--log-level", "warning"]
        if self.every:
            argv.append("--write-every-message")
        return ServerProcess(
            self.name,
            argv,
            env=dict(os.environ),
            port=port,
            ready_url=f"{self.base}/stats",
            log_path=logdir / "peer.log",
        )

    def handled(self) -> float:
        return float(httpx.get(f"{self.base}/stats", timeout=10).json()["processed"])

    def rows(self, device_ids) -> tuple[int, list[float]]:
        import psycopg

        with psycopg.connect(PEER_DSN) as conn:
            found = conn.execute(
                "SELECT extract(epoch from created_at - timestamp) * 1000, apower_w FROM power_logs "
                "WHERE device_id = ANY(%s)",
                [list(device_ids)],
            ).fetchall()
        return len(found), [float(ms) for ms, power in found if power and power > 0]


def daphne_argv(port):
    return [
        sys.executable,
        "-m",
        "daphne",
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        "--access-log",
        "/dev/null",
        "shelly_site.asgi:application",
    ]


def uvicorn_argv(port):
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "shelly_site.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--lifespan",
        "off",
        "--log-level",
        "warning",
        "--no-access-log",
    ]


# -- measuring -----------------------------------------------------------------------


def measure_step(target, server, *, total_rate, devices, seed, warmup, seconds):
    from collector.simulators.pro4pm import device_identity

    rate = total_rate / devices
    load = LoadRun(target.ws_url, devices=devices, rate=rate, seed=seed, duration=warmup + seconds + 1.0).start()
    load_end = time.time() + warmup + seconds + 1.0
    time.sleep(warmup)
    load.drain()
    # The window runs between the server's ANSWERS: a saturated server may answer /metrics late (before
    # the consumers yielded once per frame it answered only after the load had ended, and the window
    # then showed "0 frames at 1 % CPU" while the backlog was still being written).
    asked = time.time()
    h0 = target.handled()
    t0, c0 = time.time(), cpu_seconds(server.pid)
    time.sleep(max(0.0, seconds - (t0 - asked)))
    asked_end = time.time()
    h1 = target.handled()
    t1, c1 = time.time(), cpu_seconds(server.pid)
    scrape_s = max(t0 - asked, t1 - asked_end)
    rss = rss_mb(server.pid)
    load.join(timeout=warmup + seconds + 30)
    drained_s = wait_until_drained(target)
    ids = [device_identity(i, seed)[0] for i in range(devices)]
    rows, latencies = target.rows(ids)
    total_s = warmup + seconds
    return {
        "target_fps": total_rate,
        "devices": devices,
        "sent_fps": round(load.sent_between(t0, t1)),
        "handled_fps": round((h1 - h0) / (t1 - t0)),
        "rows": rows,
        "rows_per_s": round(rows / total_s, 1),
        "p50_ms": _round(percentile(latencies, 50)),
        "p99_ms": _round(percentile(latencies, 99)),
        "cpu_pct": round(100 * (c1 - c0) / (t1 - t0)),
        "rss_mb": round(rss, 1),
        "backlog_drain_s": drained_s,
        "client": {k: load.final.get(k) for k in ("connect_failures", "ticks_late", "last_error")},
        "scrape_s": round(scrape_s, 2),
        # Every frame of the step carries 4 channels: with `every`, rows = 4 × frames unless the
        # device repeated a timestamp (two decimals, like a Shelly: a duplicate sample by §5).
        "frames_sent": load.final.get("frames_sent"),
        "window_after_load": t1 > load_end,
    }


def wait_until_drained(target, *, quiet_s=1.5, limit_s=45.0) -> float:
    """Wait until the server's frame counter stops moving (its backlog is handled); seconds waited.

    Without this a slow server carries the previous step's queue into the next
    measurement (and into the RSS check).
    """
    started = time.monotonic()
    last, last_change = target.handled(), time.monotonic()
    while time.monotonic() - started < limit_s:
        time.sleep(0.5)
        current = target.handled()
        if current != last:
            last, last_change = current, time.monotonic()
        elif time.monotonic() - last_change >= quiet_s:
            break
    return round(time.monotonic() - started, 1)


def measure_rss(target, server, *, devices, rate, seconds):
    idle = rss_mb(server.pid)
    ramp = min(5.0, devices / 200.0)
    load = LoadRun(target.ws_url, devices=devices, rate=rate, seed=RSS_SEED, duration=ramp + seconds + 1.0).start()
    time.sleep(ramp + 2.0)
    h0, t0 = target.handled(), time.time()
    time.sleep(max(1.0, seconds - 2.0))
    h1, t1 = target.handled(), time.time()
    loaded = rss_mb(server.pid)
    load.join(timeout=ramp + seconds + 30)
    connected = max((tick[2] for tick in load.ticks), default=0)
    return {
        "devices": devices,
        "rate_per_device": rate,
        "connected": connected,
        "handled_fps": round((h1 - h0) / (t1 - t0), 1),
        "rss_idle_mb": round(idle, 1),
        "rss_loaded_mb": round(loaded, 1),
        "kb_per_connection": round((loaded - idle) * 1024 / max(1, connected), 1),
    }


def _round(value):
    return None if value is None else round(value, 1)


def run(args):
    import django

    ensure_database(OURS_DB)
    django.setup()
    from django.core.management import call_command

    from collector.simulators.pro4pm import device_identity

    call_command("migrate", verbosity=0)
    logdir = Path(args.logdir)
    logdir.mkdir(parents=True, exist_ok=True)

    steps = [int(s) for s in args.steps.split(",")]
    device_sets = [[device_identity(i, 100 + n) for i in range(args.devices)] for n in range(len(steps))]
    device_sets.append([device_identity(i, RSS_SEED) for i in range(args.rss_devices)])
    targets = []
    for name in args.servers.split(","):
        if name == "daphne":
            targets.append(Ours("daphne", daphne_argv, args.policy))
        elif name == "uvicorn":
            targets.append(Ours("uvicorn", uvicorn_argv, args.policy))
        elif name == "peer":
            if not PEER_SCRIPT or not Path(PEER_SCRIPT).is_file():
                raise SystemExit(
                    "the peer needs PEER_SCRIPT=/path/to/peer_collector.py (the earlier single-file collector, "
                    "e.g. ../shared/peer/peer_collector.py), or leave `peer` out of --servers"
                )
            targets.append(Peer(args.policy))
            continue
        else:
            raise SystemExit(f"unknown server {name!r}")
        if args.alert_rules:
            targets.append(WithAlertRules(targets[-1]))

    machine = machine_info()
    print(
        f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gb']} GB RAM, "
        f"load avg {', '.join(f'{x:.2f}' for x in machine['load_avg'])} (shared machine: figures vary)"
    )
    print(
        f"policy {args.policy}; scenario steady (4 active channels per device); {args.devices} devices per step; "
        f"{args.warmup:g} s warm-up + {args.seconds:g} s window per step",
        flush=True,
    )
    results = {"machine": machine, "args": vars(args), "servers": {}}
    for target in targets:
        target.prepare(device_sets)
        with target.server(logdir) as server:
            out = results["servers"][target.name] = {"steps": []}
            for n, total_rate in enumerate(steps):
                step = measure_step(
                    target,
                    server,
                    total_rate=total_rate,
                    devices=args.devices,
                    seed=100 + n,
                    warmup=args.warmup,
                    seconds=args.seconds,
                )
                out["steps"].append(step)
                print(f"{target.name:8} {_row(step)}", flush=True)
            if args.rss_devices:
                out["rss"] = measure_rss(
                    target, server, devices=args.rss_devices, rate=args.rss_rate, seconds=args.rss_seconds
                )
                r = out["rss"]
                print(
                    f"{target.name:8} {r['devices']} devices × {r['rate_per_device']:g} f/s: "
                    f"connected {r['connected']}, handled {r['handled_fps']} f/s, RSS {r['rss_idle_mb']} → "
                    f"{r['rss_loaded_mb']} MB ({r['kb_per_connection']} KB/connection)",
                    flush=True,
                )
    _summary(results, steps)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
        print(f"results written to {args.json}")


def _row(step):
    return (
        f"target {step['target_fps']:>5} f/s  sent {step['sent_fps']:>5}  handled {step['handled_fps']:>5} f/s  "
        f"rows {step['rows']:>5} ({step['rows_per_s']:>6}/s)  latency p50 {step['p50_ms']} ms p99 {step['p99_ms']} ms  "
        f"cpu {step['cpu_pct']:>3} %  rss {step['rss_mb']} MB  backlog {step['backlog_drain_s']} s  "
        f"/metrics answered in {step['scrape_s']} s  rows/(4×frames sent) "
        f"{step['rows'] / max(1, 4 * (step['frames_sent'] or 0)):.3f}"
        + ("  (WINDOW AFTER THE LOAD: not a rate)" if step["window_after_load"] else "")
    )


def _summary(results, steps):
    servers = results["servers"]
    peer = servers.get("peer")
    print("\nsummary (handled frames/s by the server; ratio = ours / peer, same run)")
    header = f"{'target f/s':>10} " + " ".join(f"{name:>14}" for name in servers)
    print(header)
    for n, total_rate in enumerate(steps):
        cells = []
        for name, data in servers.items():
            handled = data["steps"][n]["handled_fps"]
            cell = f"{handled}"
            if peer and name != "peer" and peer["steps"][n]["handled_fps"]:
                cell += f" ({handled / peer['steps'][n]['handled_fps']:.2f}×)"
            cells.append(f"{cell:>14}")
        print(f"{total_rate:>10} " + " ".join(cells))
    for name, data in servers.items():
        if name.endswith("+rules") and name.removesuffix("+rules") in servers:
            base = servers[name.removesuffix("+rules")]["steps"]
            ratios = [
                f"{total_rate}: {s['handled_fps'] / b['handled_fps']:.3f}"
                for total_rate, s, b in zip(steps, data["steps"], base, strict=True)
                if b["handled_fps"]
            ]
            print(f"alert rules on every channel, {name} / {name.removesuffix('+rules')} (target ≥ 0.95): {ratios}")
    if all("rss" in data for data in servers.values()):
        cells = []
        for name, data in servers.items():
            loaded = data["rss"]["rss_loaded_mb"]
            cell = f"{loaded} MB"
            if peer and name != "peer" and peer["rss"]["rss_loaded_mb"]:
                cell += f" ({loaded / peer['rss']['rss_loaded_mb']:.2f}×)"
            cells.append(f"{cell:>14}")
        print(f"{'RSS 1k dev':>10} " + " ".join(cells))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="daphne,uvicorn,peer", help="Comma list of daphne, uvicorn, peer.")
    parser.add_argument("--steps", default="250,1000,2000,4000", help="Total frames/s offered, one step each.")
    parser.add_argument("--devices", type=int, default=100, help="Devices per step (rate per device = step / devices).")
    parser.add_argument("--seconds", type=float, default=10.0, help="Measured window per step.")
    parser.add_argument("--warmup", type=float, default=3.0, help="Seconds before the window (connects, starts).")
    parser.add_argument("--policy", choices=["events", "every"], default="events")
    parser.add_argument("--rss-devices", type=int, default=1000, help="0 skips the RSS check.")
    parser.add_argument("--rss-rate", type=float, default=0.1, help="Frames/s per device in the RSS check.")
    parser.add_argument("--rss-seconds", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="Short run (~2 min): 2 steps of 6 s, RSS check 12 s.")
    parser.add_argument("--logdir", default="/tmp/shelly-bench-logs")
    parser.add_argument("--json", default="", help="Also write the results to this file.")
    parser.add_argument(
        "--alert-rules", action="store_true", help="Run each of our servers without, then with alert rules."
    )
    args = parser.parse_args()
    if args.quick:
        args.steps, args.seconds, args.warmup, args.rss_seconds = "500,2000", 6.0, 2.0, 12.0
    if not (0 < args.seconds <= 120 and 0 <= args.warmup <= 30 and args.rss_seconds <= 120):
        parser.error("keep runs bounded: --seconds ≤ 120, --warmup ≤ 30, --rss-seconds ≤ 120")
    if max(int(s) for s in args.steps.split(",")) > 50_000 or len(args.steps.split(",")) > 8:
        parser.error("at most 8 steps of at most 50,000 frames/s")
    if not 1 <= args.devices <= 5000 or not 0 <= args.rss_devices <= 5000:
        parser.error("--devices and --rss-devices: at most 5000")
    os.chdir(BASE_DIR)
    run(args)


if __name__ == "__main__":
    main()
