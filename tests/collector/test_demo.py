"""`make run` (`manage.py demo`) stops everything it started, on Ctrl-C and on SIGTERM (§9).

The demo runs as `make run` runs it: the embedded mode (SQLite in its own data
directory, no DATABASE_URL or REDIS_URL), with daphne, qcluster and its
workers, simulated devices and the poller.
"""

import os
import signal

import pytest

from tests.servers import free_port, manage_argv, process_env, session_members, start, survivors_after, wait_for

pytestmark = pytest.mark.slow

# demo, web, qcluster (main, sentinel, 2 workers, monitor, pusher), simulator, meter, poller
EVERY_DEMO_PROCESS = 11


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    # Shared by the runs: the second one finds the database migrated.
    return tmp_path_factory.mktemp("demo-data")


@pytest.mark.parametrize(
    "how",
    ["ctrl-c", "sigterm"],
)
def test_the_demo_leaves_no_process_behind(how, data_dir, tmp_path):
    env = process_env(DATA_DIR=data_dir, DATABASE_URL="", REDIS_URL="", LOG_LEVEL="WARNING")
    log_path = tmp_path / "demo.log"
    argv = manage_argv("demo", "--port", str(free_port()), "--meter-port", str(free_port()), "--devices", "1")
    demo = start(argv, env=env, log_path=log_path)
    try:
        assert wait_for(lambda: "shelly-monitor is running" in log_path.read_text(), timeout=120), log_path.read_text()
        assert wait_for(lambda: len(session_members(demo.pid)) >= EVERY_DEMO_PROCESS, timeout=30), log_path.read_text()

        if how == "ctrl-c":
            os.killpg(demo.pid, signal.SIGINT)  # a terminal sends it to the foreground process group
        else:
            demo.send_signal(signal.SIGTERM)

        assert survivors_after(demo) == [], log_path.read_text()[-3000:]
        assert demo.returncode == 0, log_path.read_text()[-3000:]
        assert "Stopped." in log_path.read_text()
    finally:
        for pid in session_members(demo.pid):
            os.kill(pid, signal.SIGKILL)
