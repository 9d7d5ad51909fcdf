"""Helpers shared by the benchmark scripts: machine facts, processes, /proc readings, databases.

Benchmarks only ever target loopback addresses and every load loop is bounded
in count and time.
"""

import os
import platform
import socket
import subprocess
import time
from pathlib import Path

import httpx

BASE_DIR = Path(__file__).resolve().parent.parent
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_info() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "ram_gb": round(mem_gb, 1),
        "python": platform.python_version(),
        "load_avg": os.getloadavg(),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            kids.append(int(entry.name))
    return kids


def process_tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo.extend(_children(current))
    return pids


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, MiB."""
    total_kb = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            pass
    return total_kb / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far."""
    total = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK_TCK


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class ServerProcess:
    """A server under test: started with an env, ready when `ready_url` answers 200, killed on exit."""

    def __init__(self, name: str, argv: list[str], *, env: dict, port: int, ready_url: str, log_path: Path):
        self.name, self.argv, self.env, self.port, self.ready_url = name, argv, env, port, ready_url
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def __enter__(self):
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            self.argv, cwd=BASE_DIR, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.process.returncode}); see {self.log_path}")
            try:
                if httpx.get(self.ready_url, timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.__exit__(None, None, None)
        raise RuntimeError(f"{self.name} not ready within 60 s; see {self.log_path}")

    def __exit__(self, *exc):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    @property
    def pid(self) -> int:
        return self.process.pid


def ensure_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def ensure_peer_venv(venv: Path) -> Path:
    """The peer's own virtual environment (FastAPI, uvicorn, asyncpg); created once."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} for the peer (fastapi, uvicorn[standard], asyncpg)…", flush=True)
        # The system python3, not ours: the peer must not share our packages.
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "fastapi", "uvicorn[standard]", "asyncpg"], check=True
        )
    return python
