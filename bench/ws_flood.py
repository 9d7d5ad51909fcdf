#!/usr/bin/env python
"""Flood benchmark (issue 9, SPEC §4.1): one device floods, 20 normal devices measure their round trip.

For each server (uvicorn, daphne; `shelly_site.asgi:application` on a fresh
SQLite database in a temp directory, DEBUG off) and each frame limit
(`COLLECTOR_MAX_FRAMES_PER_SECOND`, default `50,0`: the limit on, then off):

1. 20 normal devices connect (one token each, bound to its device) and send
   one full status; each then sends a device request (`Shelly.Ping`) every
   `--interval` s and times the server's reply: p50/p99 round trip **idle**;
2. one more device floods from its own process (one frame over and over, as
   fast as the client can send, bounded in frames and seconds) while the 20
   keep measuring: p50/p99 **under flood**, the ratio to idle, the frames/s
   the flooder sent, the frames/s the server dropped (rate_limited counter)
   and the server's CPU (% of one core) while flooded, i.e. what the flood
   costs it.

With `--pin` (default on a machine with 2+ cores) the flooder runs on a core
of its own and the server and the 20 measuring devices on the others: a real
flooder is another machine, and on a small box its client, which burns a
whole core to send, would otherwise be what slows the server down.

Loopback only, free ports, every loop bounded. Target: p99 under flood < 3× idle.
Usage:  .venv/bin/python bench/ws_flood.py [--seconds 8] [--limits 50,0] [--servers uvicorn,daphne] [--no-pin]
"""

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import BASE_DIR, ServerProcess, cpu_seconds, free_port, machine_info, percentile  # noqa: E402

NORMAL_DEVICES = 20
FLOOD_MAX_FRAMES = 5_000_000
REJECTED = re.compile(r'^shelly_frames_rejected_total\{reason="rate_limited"\}\s+([0-9.e+]+)', re.M)

FLOOD_SCRIPT = (
    f"MAX_FRAMES = {FLOOD_MAX_FRAMES}\n"
    """
import signal, sys, time
from websockets.sync.client import connect
sent, deadline = 0, time.monotonic() + float(sys.argv[3])
def done(*_):
    print(sent, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
with connect(sys.argv[1]) as ws:
    ws.recv(); ws.recv()
    while sent < MAX_FRAMES and time.monotonic() < deadline:
        ws.send(sys.argv[2])
        sent += 1
done()
"""
)


def server_argv(name: str, port: int) -> list[str]:
    if name == "uvicorn":
        return [sys.executable, "-m", "uvicorn", "shelly_site.asgi:application", "--host", "127.0.0.1",
                "--port", str(port), "--no-access-log", "--log-level", "warning"]  # fmt: skip
    return [sys.executable, "-m", "shelly_site.daphne_server", "-b", "127.0.0.1", "-p", str(port), "-v", "0",
            "shelly_site.asgi:application"]  # fmt: skip


def prepare_database(env: dict) -> list[str]:
    """Migrate the temp database and create one bound token per device; returns the raw tokens."""
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=BASE_DIR, env=env, check=True)
    script = (
        "import json\n"
        "from collector.models import Device, IngestToken\n"
        "raws = []\n"
        f"for i in range({NORMAL_DEVICES + 1}):\n"
        "    d, _ = Device.objects.get_or_create(device_id=f'shellypro4pm-bench{i:07d}')\n"
        "    t = IngestToken(name=f'bench {i}', device=d)\n"
        "    raws.append(t.set_new_secret()); t.save()\n"
        "print(json.dumps(raws))\n"
    )
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script], cwd=BASE_DIR, env=env, check=True, capture_output=True
    )
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


def status(device_id: str, apower: float = 100.0) -> str:
    params = {"ts": time.time(), "switch:0": {"id": 0, "output": True, "apower": apower, "voltage": 230.0}}
    return json.dumps({"src": device_id, "dst": "shelly-monitor", "method": "NotifyFullStatus", "params": params})


async def normal_device(url, device_id, stop: asyncio.Event, phase: dict, samples: dict, interval: float):
    import websockets

    async with websockets.connect(url) as ws:
        await ws.recv()
        await ws.recv()
        await ws.send(status(device_id))
        request_id = 100
        while not stop.is_set():
            request_id += 1
            started = time.perf_counter()
            await ws.send(json.dumps({"id": request_id, "src": device_id, "method": "Shelly.Ping"}))
            async with asyncio.timeout(30):
                while json.loads(await ws.recv()).get("id") != request_id:
                    pass
            samples.setdefault(phase["name"], []).append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(interval)


def rejected_total(base: str) -> float | None:
    """The server's rate_limited counter; None when a server drowned in an unlimited flood cannot answer."""
    try:
        text = httpx.get(f"{base}/metrics", timeout=10).text
    except httpx.HTTPError:
        return None
    match = REJECTED.search(text)
    return float(match.group(1)) if match else 0.0


def split_cores(pin: bool) -> tuple[set[int], set[int]] | None:
    """(the flooder's core, everyone else's) or None when not pinning."""
    cores = sorted(os.sched_getaffinity(0))
    if not pin or len(cores) < 2:
        return None
    return {cores[-1]}, set(cores[:-1])


async def scenario(base, ws_base, raws, server, seconds, interval, cores):
    stop, phase, samples = asyncio.Event(), {"name": "warmup"}, {}
    devices = [
        asyncio.create_task(
            normal_device(
                f"{ws_base}/ws/shelly/{raws[i]}/", f"shellypro4pm-bench{i:07d}", stop, phase, samples, interval
            )
        )
        for i in range(NORMAL_DEVICES)
    ]
    await asyncio.sleep(1.0)
    phase["name"] = "idle"
    await asyncio.sleep(seconds)
    flood_id = f"shellypro4pm-bench{NORMAL_DEVICES:07d}"
    frame = json.dumps({"src": flood_id, "method": "NotifyStatus", "params": {"switch:0": {"apower": 5.0}}})
    phase["name"] = "ramp"
    flooder = subprocess.Popen(
        [sys.executable, "-c", FLOOD_SCRIPT, f"{ws_base}/ws/shelly/{raws[NORMAL_DEVICES]}/", frame, str(seconds + 3)],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, cores[0])) if cores else None,
    )
    await asyncio.sleep(1.0)
    phase["name"] = "flood"
    t0, c0, r0 = time.monotonic(), cpu_seconds(server.pid), await asyncio.to_thread(rejected_total, base)
    await asyncio.sleep(seconds)
    t1, c1, r1 = time.monotonic(), cpu_seconds(server.pid), await asyncio.to_thread(rejected_total, base)
    phase["name"] = "after"
    flooder.terminate()
    sent = int((await asyncio.to_thread(flooder.communicate, None, 30))[0].strip() or 0)
    stop.set()
    await asyncio.gather(*devices, return_exceptions=True)
    return samples, {
        "flood_sent_fps_avg": round(sent / (seconds + 1.0)),
        "server_dropped_fps": None if r0 is None or r1 is None else round((r1 - r0) / (t1 - t0)),
        "server_cpu_pct_flooded": round(100 * (c1 - c0) / (t1 - t0)),
    }


def run_one(name: str, limit: str, seconds: float, interval: float, cores) -> dict:
    with tempfile.TemporaryDirectory(prefix="shelly-flood-") as tmp:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
            "SECRET_KEY": "bench-not-secret",
            "DEBUG": "false",
            "BEHIND_TLS_PROXY": "false",
            "LOG_LEVEL": "ERROR",
            "DATA_DIR": tmp,
            "REDIS_URL": "",
            "METRICS_TOKEN": "",
            "COLLECTOR_MAX_FRAMES_PER_SECOND": limit,
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        raws = prepare_database(env)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with ServerProcess(
            name, server_argv(name, port), env=env, port=port, ready_url=f"{base}/metrics", log_path=Path(tmp) / "log"
        ) as server:
            if cores:
                os.sched_setaffinity(server.pid, cores[1])
            samples, flood = asyncio.run(
                scenario(base, f"ws://127.0.0.1:{port}", raws, server, seconds, interval, cores)
            )
    idle, flooded = samples.get("idle", []), samples.get("flood", [])
    result = {"server": name, "limit_fps": float(limit), "pinned": bool(cores), **flood}
    for label, values in (("idle", idle), ("flood", flooded)):
        result[f"{label}_n"] = len(values)
        result[f"{label}_p50_ms"] = round(percentile(values, 50) or 0, 2)
        result[f"{label}_p99_ms"] = round(percentile(values, 99) or 0, 2)
    result["p50_ratio"] = round(result["flood_p50_ms"] / max(result["idle_p50_ms"], 1e-6), 1)
    result["p99_ratio"] = round(result["flood_p99_ms"] / max(result["idle_p99_ms"], 1e-6), 1)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", default="uvicorn,daphne")
    parser.add_argument("--limits", default="50,0", help="COLLECTOR_MAX_FRAMES_PER_SECOND values (0 = off)")
    parser.add_argument("--seconds", type=float, default=8.0, help="idle and flood windows (each)")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between a normal device's requests")
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True, help="flooder on its own core")
    args = parser.parse_args()
    print("machine:", json.dumps(machine_info()), flush=True)
    cores = split_cores(args.pin)
    if cores:
        os.sched_setaffinity(0, cores[1])  # the measuring devices, with the server
        print(f"flooder on core(s) {sorted(cores[0])}, server and measuring devices on {sorted(cores[1])}", flush=True)
    for name in args.servers.split(","):
        for limit in args.limits.split(","):
            result = run_one(name, limit, args.seconds, args.interval, cores)
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
