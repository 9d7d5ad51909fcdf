"""Every process the README starts stops cleanly on SIGINT and SIGTERM, leaving nothing behind (§9).

Each process runs in its own process group and gets the signal the way a
terminal (Ctrl-C) or systemd (KillMode=control-group) sends it: to the group.
"""

import asyncio
import os
import signal

import pytest
import websockets

from collector.models import Device, IngestToken, Transport
from tests.servers import (
    daphne_argv,
    free_port,
    kill_session,
    manage_argv,
    process_env,
    session_members,
    start,
    survivors_after,
    uvicorn_argv,
    wait_for,
    wait_for_port,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


async def connected(url: str) -> bool:
    async with websockets.connect(url) as ws:
        return bool(await asyncio.wait_for(ws.recv(), 10))


@pytest.mark.parametrize(
    "sig",
    # SIGINT as a terminal's Ctrl-C sends it, to processes started the hard way:
    # with SIGINT ignored, as a script's `cmd &` or a CI job starts them. Every
    # process must install its own handler; daphne's Twisted did not (it only
    # replaces Python's default handler) and outlived the signal in CI.
    [signal.SIGINT, signal.SIGTERM],
    ids=["sigint-inherited-ignored", "sigterm"],
)
def test_web_worker_poller_and_simulators_all_stop_on_a_signal_to_their_group(sig, tmp_path):
    token = IngestToken(name="processes")
    raw = token.set_new_secret()
    token.save()
    web_port, daphne_port, meter_port = free_port(), free_port(), free_port()
    Device.objects.create(
        device_id="shellypro3em-000000000001", transport=Transport.RPC_POLL, host=f"127.0.0.1:{meter_port}"
    )
    env = process_env(COLLECTOR_AUTO_REGISTER="true")
    argvs = {
        "uvicorn": uvicorn_argv(web_port),
        "daphne": daphne_argv(daphne_port),
        "qcluster": manage_argv("qcluster"),
        "poller": manage_argv("run_poller", "--live-seconds", "1"),
        "meter": manage_argv("simulate_shelly", "--kind", "rpc3em", "--rpc-port", str(meter_port)),
        "pumps": manage_argv("simulate_shelly", "--url", f"ws://127.0.0.1:{web_port}/ws/shelly/{raw}/", "--rate", "5"),
    }
    processes = {}
    try:
        for name, argv in argvs.items():
            processes[name] = start(
                argv, env=env, log_path=tmp_path / f"{name}.log", sigint_ignored=(sig == signal.SIGINT)
            )
        wait_for_port(web_port, processes["uvicorn"])
        wait_for_port(daphne_port, processes["daphne"])
        wait_for_port(meter_port, processes["meter"])
        # Busy when the signal comes: the devices stream, the meter is polled, the workers are up.
        assert asyncio.run(connected(f"ws://127.0.0.1:{daphne_port}/ws/shelly/{raw}/"))
        assert wait_for(lambda: Device.objects.filter(last_live_poll_at__isnull=False).exists(), timeout=30)
        assert wait_for(
            lambda: Device.objects.filter(last_seen__isnull=False).exclude(transport=Transport.RPC_POLL), 30
        )
        assert wait_for(lambda: len(session_members(processes["qcluster"].pid)) >= 6, timeout=30)

        for process in processes.values():
            os.killpg(process.pid, sig)

        for name, process in processes.items():
            assert survivors_after(process) == [], (name, (tmp_path / f"{name}.log").read_text()[-3000:])
            assert process.returncode in (0, -sig), (name, process.returncode)
    finally:
        for process in processes.values():
            kill_session(process)
