"""import_history: the earlier collectors' CSV log and PostgreSQL power_logs table → PowerLog rows and cycles."""

import os
import shutil
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from django.core.management import CommandError, call_command

from collector.cycles import CycleRules, detect_cycles
from collector.importing import csv_rows, import_rows
from collector.models import Channel, Cycle, Device, PowerLog

CSV = Path(__file__).parent.parent / "fixtures" / "legacy" / "power_log.csv"
DEVICE = "shellypro4pm-legacy1"

pytestmark = pytest.mark.django_db


def utc(hh, mm=0):
    return datetime(2026, 3, 2, hh, mm, tzinfo=UTC)


def run(*args) -> str:
    out = StringIO()
    call_command("import_history", *args, "--no-progress", stdout=out)
    return out.getvalue()


def stored():
    return list(
        PowerLog.objects.order_by("timestamp", "channel__key").values_list(
            "timestamp", "channel__key", "apower_w", "energy_total_wh", "reason"
        )
    )


def cycles():
    return list(
        Cycle.objects.order_by("started_at").values_list(
            "channel__key", "started_at", "ended_at", "duration_s", "energy_wh", "is_noise"
        )
    )


EXPECTED_ROWS = [
    (utc(10, 0), "switch:0", 800.0, 1000.0, "imported"),
    (utc(10, 5), "switch:0", 810.0, 1067.0, "imported"),
    (utc(10, 10), "switch:0", 805.0, 1134.0, "imported"),
    (utc(10, 13), "switch:0", 0.0, 1170.0, "imported"),
    (utc(11, 0), "switch:2", 900.0, 500.0, "imported"),
    (utc(11, 20), "switch:2", 0.0, 800.0, "imported"),
]
EXPECTED_CYCLES = [
    ("switch:0", utc(10, 0), utc(10, 13), 780.0, 170.0, False),
    # The 0 W stop row, 20 min after the start (more than the gap threshold),
    # closes the run as a live stop row does: one 20-minute cycle, not noise.
    ("switch:2", utc(11, 0), utc(11, 20), 1200.0, 300.0, False),
]


def test_csv_import_stores_exact_rows_and_cycles_and_reports_bad_lines_and_duplicates():
    out = run(str(CSV))

    assert stored() == EXPECTED_ROWS
    assert cycles() == EXPECTED_CYCLES
    device = Device.objects.get(device_id=DEVICE)
    assert sorted(Channel.objects.filter(device=device).values_list("key", flat=True)) == ["switch:0", "switch:2"]
    assert "11 rows read, 6 imported" in out
    assert "duplicate in the source: 1" in out
    assert "bad lines skipped: 4" in out
    assert "line 5: timestamp 'not-a-date' is not an ISO 8601 date and time" in out
    assert "line 6: apower 'abc' is not a number" in out
    assert "line 11: channel 'pm1:0' is neither a number nor switch:N" in out
    assert "line 12: 2 columns instead of 7" in out
    assert f"new devices: {DEVICE}" in out


def test_second_run_adds_nothing():
    run(str(CSV))
    first_ids = sorted(Cycle.objects.values_list("pk", flat=True))

    out = run(str(CSV))

    assert stored() == EXPECTED_ROWS
    assert cycles() == EXPECTED_CYCLES
    assert sorted(Cycle.objects.values_list("pk", flat=True)) == first_ids
    assert "11 rows read, 0 imported" in out
    assert "already imported: 6" in out
    assert "new devices" not in out


def test_dry_run_stores_nothing_but_says_what_would_be_imported():
    out = run(str(CSV), "--dry-run")

    assert not PowerLog.objects.exists()
    assert not Device.objects.exists()
    assert not Channel.objects.exists()
    assert "6 would be imported" in out
    assert "Dry run done: nothing stored" in out


def test_a_row_already_stored_live_at_that_instant_is_not_duplicated():
    device = Device.objects.create(device_id=DEVICE)
    channel = Channel.objects.create(device=device, key="switch:0")
    PowerLog.objects.create(
        timestamp=utc(10, 0), device=device, channel=channel, apower_w=799.0, energy_total_wh=1000.0, reason="start"
    )

    out = run(str(CSV))

    assert PowerLog.objects.filter(channel=channel, timestamp=utc(10, 0)).count() == 1
    assert PowerLog.objects.count() == 6
    assert "already stored (a row at that instant): 1" in out
    assert "new devices" not in out


def test_imported_stop_row_ends_a_cycle_like_a_live_stop_row():
    rules = CycleRules(threshold_w=10, gap_threshold_s=480, min_cycle_s=120)
    for reason in ("stop", "imported"):
        first = "imported" if reason == "imported" else "start"
        rows = [(utc(11, 0), 900.0, 500.0, first), (utc(11, 20), 0.0, 800.0, reason)]
        [cycle] = detect_cycles(rows, rules=rules)
        assert (cycle.started_at, cycle.ended_at, cycle.is_noise) == (utc(11, 0), utc(11, 20), False)
    # An imported active row after a long gap still splits as any row does.
    rows = [(utc(11, 0), 900.0, None, "imported"), (utc(11, 20), 900.0, None, "imported")]
    assert len(detect_cycles(rows, rules=rules)) == 2


def test_missing_file_is_a_clear_error_and_nothing_changes(tmp_path):
    with pytest.raises(CommandError, match="cannot read .*missing.csv"):
        run(str(tmp_path / "missing.csv"))
    assert not PowerLog.objects.exists()


def test_source_must_be_exactly_one():
    with pytest.raises(CommandError, match="either a CSV file or --from-database"):
        run()
    with pytest.raises(CommandError, match="must be a postgres:// URL"):
        run("--from-database", "mysql://x/y")


def test_unreadable_bytes_become_a_bad_line(tmp_path):
    path = tmp_path / "broken.csv"
    shutil.copy(CSV, path)
    with open(path, "ab") as handle:
        handle.write(b"\xff\xfe\x00garbage\n")
    items = list(csv_rows(path))
    assert items[-1].line == 13
    summary = import_rows(items, dry_run=True)
    assert summary.bad_count == 5


# -- the real PostgreSQL source ----------------------------------------------------

PEER_SCHEMA = """
CREATE TABLE power_logs (
  id serial PRIMARY KEY,
  timestamp timestamptz NOT NULL,
  device_id varchar(100) NOT NULL,
  channel varchar(20) NOT NULL,
  apower_w float, voltage_v float, current_a float, energy_total_wh float,
  created_at timestamptz DEFAULT now())
"""


@pytest.fixture
def legacy_database():
    """A scratch database `<DATABASE_URL's name>_legacy` holding the earlier collectors' table."""
    url = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/shelly_monitor"))
    name = url.path.lstrip("/") + "_legacy"
    admin_url = urlunsplit(url._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    legacy_url = urlunsplit(url._replace(path=f"/{name}"))
    with psycopg.connect(legacy_url) as conn:
        conn.execute(PEER_SCHEMA)
        rows = [
            (utc(10, 0), DEVICE, "switch:0", 800.0, 230.1, 3.5, 1000.0),
            (utc(10, 5), DEVICE, "switch:0", 810.0, 230.0, 3.6, 1067.0),
            (utc(10, 5), DEVICE, "switch:0", 810.0, 230.0, 3.6, 1067.0),  # the old design could write twice
            (utc(10, 10), DEVICE, "switch:0", 805.0, 230.2, 3.5, 1134.0),
            (utc(10, 13), DEVICE, "switch:0", 0.0, 230.4, 0.0, 1170.0),
            (utc(11, 0), DEVICE, "switch:2", 900.0, 229.9, 3.9, 500.0),
            (utc(11, 20), DEVICE, "switch:2", 0.0, 230.0, 0.0, 800.0),
            (utc(12, 0), DEVICE, "em:0", 10.0, 230.0, 0.1, 1.0),  # not a switch channel: bad row 8
            (utc(12, 5), DEVICE, "switch:1", None, 230.0, 0.1, 1.0),  # no power: bad row 9
        ]
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO power_logs (timestamp, device_id, channel, apower_w, voltage_v, current_a,"
                " energy_total_wh) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
    yield legacy_url
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_postgres_power_logs_table_imports_exact_rows_and_cycles_once(legacy_database):
    out = run("--from-database", legacy_database)

    assert stored() == EXPECTED_ROWS
    assert cycles() == EXPECTED_CYCLES
    assert "9 rows read, 6 imported" in out
    assert "duplicate in the source: 1" in out
    assert "line 8: channel 'em:0' is neither a number nor switch:N" in out
    assert "line 9: apower is empty" in out

    again = run("--from-database", legacy_database)
    assert stored() == EXPECTED_ROWS
    assert cycles() == EXPECTED_CYCLES
    assert "9 rows read, 0 imported" in again


@pytest.mark.postgres
def test_unreachable_source_database_is_a_clear_error_without_password(legacy_database):
    url = urlsplit(legacy_database)
    wrong = urlunsplit(url._replace(netloc="postgres:s3cret@127.0.0.1:1", path="/nothing"))
    with pytest.raises(CommandError, match="cannot connect to the source database") as error:
        run("--from-database", wrong)
    assert "s3cret" not in str(error.value)
    assert not PowerLog.objects.exists()
