"""`manage.py backup_sqlite`: a consistent copy of the embedded database while it is being written (§9)."""

import sqlite3
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import close_old_connections, connection

from collector.models import PowerLog
from collector.pipeline import ingest_samples
from tests.scenarios import at, make_channel, sample

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the embedded SQLite mode")
def test_a_backup_taken_while_a_writer_runs_is_consistent_and_complete_up_to_its_start(tmp_path):
    channel = make_channel(policy="every")
    ingest_samples([sample(at(n), 100 + n, channel=channel) for n in range(200)])
    before = PowerLog.objects.count()
    stop = threading.Event()

    def keep_writing():
        n = 200
        while not stop.is_set():
            ingest_samples([sample(at(n), 100 + n, channel=channel)])
            n += 1
        close_old_connections()

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        target = tmp_path / "copy.sqlite3"
        call_command("backup_sqlite", output=str(target))
    finally:
        stop.set()
        writer.join(timeout=30)

    copy = sqlite3.connect(target)
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    copied = copy.execute("SELECT count(*) FROM collector_powerlog").fetchone()[0]
    assert before <= copied <= PowerLog.objects.count()
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the embedded SQLite mode")
def test_a_backup_never_overwrites_a_file(tmp_path):
    target = tmp_path / "copy.sqlite3"
    target.write_text("an older backup")
    with pytest.raises(CommandError, match="already exists"):
        call_command("backup_sqlite", output=str(target))
    assert target.read_text() == "an older backup"


@pytest.mark.skipif(connection.vendor == "sqlite", reason="the PostgreSQL mode")
def test_on_postgresql_it_points_to_pg_dump(tmp_path):
    with pytest.raises(CommandError, match="pg_dump"):
        call_command("backup_sqlite", output=str(tmp_path / "copy.sqlite3"))
