"""`manage.py qcluster` stops promptly and completely, however it is signalled (§9)."""

import os
import signal

import pytest
from django_q.models import Success

from tests.servers import manage_argv, process_env, session_members, start, survivors_after, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MAIN_SENTINEL_TWO_WORKERS_MONITOR_PUSHER = 6


def heartbeats() -> int:
    return Success.objects.filter(func="shelly_site.tasks.worker_heartbeat").count()


@pytest.mark.parametrize(
    "target, sig",
    [
        ("group", signal.SIGTERM),  # systemd's default KillMode, `kill -- -PGID`: hung django-q2 until SIGKILL
        ("group", signal.SIGINT),  # Ctrl-C in a terminal
        ("main", signal.SIGTERM),  # docker stop, systemd KillMode=mixed
        ("main", signal.SIGKILL),  # its workers used to live on as orphans
    ],
    ids=["sigterm-group", "sigint-group", "sigterm-main", "sigkill-main"],
)
def test_the_worker_cluster_leaves_no_process_behind(target, sig, tmp_path):
    cluster = start(manage_argv("qcluster"), env=process_env(Q_WORKERS=2), log_path=tmp_path / "qcluster.log")
    try:
        # Says hello at start (/healthz counts it), with its whole family up.
        assert wait_for(heartbeats, timeout=60), (tmp_path / "qcluster.log").read_text()
        assert wait_for(lambda: len(session_members(cluster.pid)) >= MAIN_SENTINEL_TWO_WORKERS_MONITOR_PUSHER, 30)

        if target == "group":
            os.killpg(cluster.pid, sig)
        else:
            os.kill(cluster.pid, sig)

        assert survivors_after(cluster) == [], (tmp_path / "qcluster.log").read_text()
        if sig != signal.SIGKILL:
            assert cluster.returncode == 0
    finally:
        for pid in session_members(cluster.pid):
            os.kill(pid, signal.SIGKILL)
