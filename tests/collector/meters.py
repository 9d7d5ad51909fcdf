"""Simulated RPC meters for the polling tests: real HTTP servers on 127.0.0.1."""

import json
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from collector import intervals
from collector.simulators.rpc3em import Rpc3emSimulator

PRO3EM_FIXTURE = "aioshelly_pro3em_SPEM-003CEBEU_fw1.1.0_full.json"
FIXTURE_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "shelly"


def real_fixture(name: str) -> dict:
    """A real device payload from tests/fixtures/shelly (a missing file fails the test, never skips it)."""
    return json.loads((FIXTURE_DIR / name).read_text())


class FakeClock:
    """The meter's wall clock, moved by the test."""

    def __init__(self, start: float):
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(name="start_meter")
async def start_meter_fixture():
    """`await start_meter(**options)` → a running Rpc3emSimulator; all stopped at teardown."""
    meters = []

    async def start(**options):
        meter = Rpc3emSimulator(**options)
        await meter.start("127.0.0.1", 0)
        meters.append(meter)
        return meter

    yield start
    for meter in meters:
        await meter.stop()
    # Code under test queried from asgiref's worker thread: close that
    # connection, or PostgreSQL refuses to drop the test database.
    await sync_to_async(connections.close_all)()
    intervals.close_db_connections()
