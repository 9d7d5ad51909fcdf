"""A private PostgreSQL cluster and a private redis-server, for tests that stop and restart them.

The shared PostgreSQL and Redis of the machine are never stopped: a test that
needs an outage starts its own on a free loopback port (initdb + pg_ctl as the
`postgres` user, redis-server in the foreground) and may stop and start them
at will. Tests skip with the reason when the binaries are missing.
"""

import asyncio
import contextlib
import glob
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from tests.servers import BASE_DIR, free_port, manage_argv, process_env

PG_BIN_DIRS = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
REDIS_SERVER = shutil.which("redis-server")
TEMPLATE_DB = "shelly_template"


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


def skip_reason() -> str | None:
    if not PG_BIN_DIRS or not Path(PG_BIN_DIRS[0], "pg_ctl").exists():
        return "PostgreSQL server binaries (/usr/lib/postgresql/*/bin) are not installed"
    if os.geteuid() == 0 and not shutil.which("runuser"):
        return "runuser is missing (needed to run a private cluster as the postgres user)"
    return None


class PrivatePostgres:
    """One cluster in a temporary directory: start, stop, fresh databases from a migrated template."""

    def __init__(self, root: Path):
        self.bin = Path(PG_BIN_DIRS[0])
        self.root = root
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.port = free_port()

    def _run(self, *argv, timeout=120):
        return subprocess.run(_as_postgres([str(self.bin / argv[0]), *argv[1:]]), check=True, capture_output=True,
                              timeout=timeout, cwd=self.root)  # fmt: skip

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def url(self, db: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def connect(self, db: str):
        return psycopg.connect(self.url(db).replace("postgres://", "postgresql://"), autocommit=True)

    def create_database(self, name: str) -> str:
        with self.connect("postgres") as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
        return self.url(name)

    def query(self, db: str, sql: str, params=()) -> list[tuple]:
        with self.connect(db) as conn:
            return conn.execute(sql, params).fetchall()


def _migrate(url: str, log_path: Path) -> None:
    env = process_env(DATABASE_URL=url, REDIS_URL="")
    with open(log_path, "ab") as log:
        subprocess.run(manage_argv("migrate", "--noinput"), cwd=BASE_DIR, env=env, stdout=log,
                       stderr=subprocess.STDOUT, check=True, timeout=300)  # fmt: skip


@contextlib.contextmanager
def private_postgres():
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="shelly-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    cluster = PrivatePostgres(root)
    try:
        cluster.init()
        cluster.start()
        with cluster.connect("postgres") as conn:
            conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
        _migrate(cluster.url(TEMPLATE_DB), root / "migrate.log")
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


class PrivateRedis:
    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.root)]  # fmt: skip
        log = open(self.root / "redis.log", "ab")  # noqa: SIM115 - kept open for the server's life
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        import socket

        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return
            time.sleep(0.1)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None


@contextlib.contextmanager
def private_redis():
    if not REDIS_SERVER:
        pytest.skip("redis-server is not installed")
    root = Path(tempfile.mkdtemp(prefix="shelly-redis-"))
    server = PrivateRedis(root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


SETUP_DEVICE = """
from collector.models import Channel, Device, IngestToken
device = Device.objects.create(device_id={device_id!r}, model="SPSW-004PE16EU", generation=2)
for key, policy in {channels!r}:
    Channel.objects.create(device=device, key=key, policy=policy, stop_timeout_s={stop_timeout})
token = IngestToken(name="test", device=device)
raw = token.set_new_secret()
token.save()
print("TOKEN=" + raw)
"""


def setup_device(url: str, device_id: str, channels, *, stop_timeout: float) -> str:
    """Create a device, its channels and an ingest token in that database (via manage.py shell); the raw token."""
    code = SETUP_DEVICE.format(device_id=device_id, channels=list(channels), stop_timeout=stop_timeout)
    env = process_env(DATABASE_URL=url, REDIS_URL="")
    out = subprocess.run(manage_argv("shell", "-c", code), cwd=BASE_DIR, env=env, capture_output=True, text=True,
                         check=True, timeout=120)  # fmt: skip
    return next(line[6:] for line in out.stdout.splitlines() if line.startswith("TOKEN="))


class WsDevice:
    """A minimal Pro 4PM on the outbound WebSocket: NotifyStatus frames with the power we choose."""

    def __init__(self, base_url: str, token: str, device_id: str):
        self.url = f"{base_url}/ws/shelly/{token}/"
        self.device_id = device_id
        self.ws = None

    async def connect(self) -> None:
        import websockets

        self.ws = await websockets.connect(self.url, subprotocols=["json-rpc"], open_timeout=10)
        # The server's bootstrap requests (NotifyStatus enable, GetStatus): proof it accepted us.
        for _ in range(2):
            json.loads(await asyncio.wait_for(self.ws.recv(), timeout=10))

    async def send(self, ts: float, powers: dict[int, float]) -> None:
        params = {"ts": round(ts, 2)}
        for n, power in powers.items():
            params[f"switch:{n}"] = {"id": n, "apower": power, "voltage": 230.0, "current": round(power / 230, 3),
                                     "output": power > 0}  # fmt: skip
        await self.ws.send(json.dumps({"src": self.device_id, "dst": "ws", "method": "NotifyStatus", "params": params}))

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    @property
    def open(self) -> bool:
        from websockets.protocol import State

        return self.ws is not None and self.ws.state is State.OPEN


STAFF_SESSION = """
from importlib import import_module
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
user = get_user_model().objects.create_user({username!r}, password="not-used-x9", is_staff=True)
session = import_module(settings.SESSION_ENGINE).SessionStore()
session[SESSION_KEY] = str(user.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.create()
print("COOKIE=" + settings.SESSION_COOKIE_NAME + "=" + session.session_key)
"""


def staff_session_cookie(url: str, username: str = "staff") -> str:
    """A logged-in staff session in that database: the Cookie header value."""
    env = process_env(DATABASE_URL=url, REDIS_URL="")
    out = subprocess.run(manage_argv("shell", "-c", STAFF_SESSION.format(username=username)), cwd=BASE_DIR, env=env,
                         capture_output=True, text=True, check=True, timeout=120)  # fmt: skip
    return next(line[7:] for line in out.stdout.splitlines() if line.startswith("COOKIE="))


def run_sweeper(url: str) -> str:
    """The django-q2 sweeper task, once, in its own process."""
    code = "from collector.tasks import close_expired_runs; print(close_expired_runs())"
    env = process_env(DATABASE_URL=url, REDIS_URL="")
    out = subprocess.run(manage_argv("shell", "-c", code), cwd=BASE_DIR, env=env, capture_output=True, text=True,
                         check=True, timeout=120)  # fmt: skip
    return out.stdout


class DashboardClient:
    """The dashboard page's socket, reconnecting on close like static/dashboard/live.js (faster)."""

    def __init__(self, base_ws: str, origin: str, cookie: str):
        self.url = f"{base_ws}/ws/dashboard/"
        self.headers = {"Cookie": cookie, "Origin": origin}
        self.messages: list[dict] = []
        self.connects = 0
        self.closes = 0

    async def run(self, stop: asyncio.Event) -> None:
        import websockets

        while not stop.is_set():
            try:
                async with websockets.connect(self.url, additional_headers=self.headers, open_timeout=5) as ws:
                    self.connects += 1
                    while not stop.is_set():
                        try:
                            text = await asyncio.wait_for(ws.recv(), timeout=0.5)
                        except TimeoutError:
                            continue
                        self.messages.append({**json.loads(text), "_at": time.time()})
            except (OSError, websockets.exceptions.WebSocketException, TimeoutError):
                pass
            self.closes += 1
            await asyncio.sleep(0.5)

    def live_after(self, moment: float) -> list[dict]:
        return [m for m in self.messages if m["type"] == "live" and m["_at"] > moment]
