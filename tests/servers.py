"""Real processes for tests: servers, workers, the demo — on free ports, on the test database.

Each process is started in its own session, so a test can signal its whole
process group the way a terminal (Ctrl-C) or systemd does, and find every
process it left behind (orphans keep their session id).
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

BASE_DIR = Path(settings.BASE_DIR)
# Bounded waits: a process that is not up or not gone by then is a failure.
START_TIMEOUT_S = 40.0
STOP_WINDOW_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


test_database_url.__test__ = False  # a helper, not a test


def process_env(**overrides) -> dict:
    """The environment of a production-like process on the test database (and Redis when the suite has it)."""
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        # The same key as the test process: sessions it creates are valid there.
        "SECRET_KEY": settings.SECRET_KEY,
        "DEBUG": "false",
        "BEHIND_TLS_PROXY": "false",
        "LOG_LEVEL": "WARNING",
        "LOG_JSON": "false",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    env.update({key: str(value) for key, value in overrides.items()})
    return env


def uvicorn_argv(port: int) -> list[str]:
    """The README's production web command."""
    return [
        sys.executable, "-m", "uvicorn", "shelly_site.asgi:application",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
    ]  # fmt: skip


def daphne_argv(port: int) -> list[str]:
    """The README's (and the demo's) daphne command."""
    return [
        sys.executable, "-m", "shelly_site.daphne_server",
        "-b", "127.0.0.1", "-p", str(port), "shelly_site.asgi:application",
    ]  # fmt: skip


def manage_argv(*args: str) -> list[str]:
    return [sys.executable, str(BASE_DIR / "manage.py"), *args]


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start(argv: list[str], *, env: dict, log_path: Path, sigint_ignored: bool = False) -> subprocess.Popen:
    """Start a process in its own session, its output to `log_path`.

    `sigint_ignored` starts it as a non-interactive shell starts a background
    job (`cmd &` in a script, a CI job): with SIGINT ignored, which a process
    inherits until it installs a handler of its own. Otherwise it inherits
    whatever the test run has.
    """
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv,
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_ignore_sigint if sigint_ignored else None,
        )


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server did not listen on {port} within {timeout} s")


def wait_for(condition, timeout: float, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    return condition()


def session_members(session_id: int) -> list[int]:
    """Live processes of a session (zombies excluded: they are gone, only not yet reaped)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        state, session = fields[0], int(fields[3])
        if session == session_id and state != "Z":
            members.append(int(entry.name))
    return members


def survivors_after(process: subprocess.Popen, window: float = STOP_WINDOW_S) -> list[int]:
    """Wait (bounded) for the process and everything it started to be gone; what is left."""
    session = process.pid
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=window)
    wait_for(lambda: not session_members(session), timeout=5)
    return session_members(session)


def kill_session(process: subprocess.Popen) -> None:
    """Last resort of a test: nothing it started outlives it."""
    for pid in session_members(process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


@contextlib.contextmanager
def running(argv: list[str], *, env: dict, log_path: Path, port: int | None = None):
    """A process for the duration of a block; stopped with SIGTERM (then killed) whatever happens."""
    process = start(argv, env=env, log_path=log_path)
    try:
        if port is not None:
            wait_for_port(port, process)
        yield process
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=STOP_WINDOW_S)
        kill_session(process)


def stop(process: subprocess.Popen) -> None:
    """Stop a process started by `start` or `manage`, its children included (SIGTERM, then SIGKILL)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_WINDOW_S)
    kill_session(process)


def manage(*args: str, log_path: Path, **env) -> subprocess.Popen:
    """A management command (simulator, poller…) as its own process on the test database."""
    return start(manage_argv(*args), env=process_env(**env), log_path=log_path)


@contextlib.contextmanager
def running_daphne(log_dir: Path, *, scheme: str = "http", **env):
    """daphne on a free port for the length of a block: yields its base URL, prints the end of its log after."""
    port = free_port()
    log_path = log_dir / "daphne.log"
    with running(daphne_argv(port), env=process_env(**env), log_path=log_path, port=port):
        yield f"{scheme}://127.0.0.1:{port}"
    print(log_path.read_text()[-3000:])
