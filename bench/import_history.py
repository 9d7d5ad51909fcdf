#!/usr/bin/env python
"""Import and report benchmark on PostgreSQL `shelly_bench_import` (issue 15).

1. Writes an earlier-collector CSV log of `--days` (default 60) for
   `--channels` (default 4) pumps, peer-style rows (start, 5-minute samples,
   0 W stop row 120 s after the run), 24 runs a day, to a temp file.
2. Times `manage.py import_history` on it (rows/s, cycles rebuilt included),
   then a second run (idempotent: nothing added) and prints both.
3. Times the monthly report of the busiest month: figures, PDF and CSV.

    .venv/bin/python bench/import_history.py [--days 60] [--channels 4]

Everything in the bench database is deleted at the start (a fresh import).
"""

import argparse
import csv
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import ensure_database, machine_info  # noqa: E402

DB_NAME = "shelly_bench_import"
os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
os.environ.setdefault("SECRET_KEY", "bench-only-secret")
os.environ.setdefault("DATA_DIR", "/tmp/shelly-bench-import")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shelly_site.settings")

START = datetime(2026, 1, 1, tzinfo=UTC)


def write_csv(path: Path, *, days: int, channels: int, seed: int = 15) -> int:
    rng = random.Random(seed)
    rows = 0
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["timestamp_iso", "device_id", "channel", "apower_W", "voltage_V", "current_A", "energy_total_Wh"]
        )
        for channel in range(channels):
            energy = 1000.0
            for day in range(days):
                midnight = START + timedelta(days=day)
                for run in range(24):
                    start = midnight + timedelta(hours=run, minutes=rng.randint(0, 30))
                    length_s = rng.randint(8 * 60, 20 * 60)
                    power = rng.uniform(700, 1100)
                    ts = start
                    while ts < start + timedelta(seconds=length_s):
                        writer.writerow(
                            [ts.isoformat(), "shellypro4pm-bench", channel, round(power, 1), 230.0, 3.8, energy]
                        )
                        energy += power * 300 / 3600
                        ts += timedelta(minutes=5)
                        rows += 1
                    stop = start + timedelta(seconds=length_s + 120)
                    writer.writerow(
                        [stop.isoformat(), "shellypro4pm-bench", channel, 0.0, 230.0, 0.0, round(energy, 1)]
                    )
                    rows += 1
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--channels", type=int, default=4)
    args = parser.parse_args()
    ensure_database(DB_NAME)
    import django

    django.setup()
    from django.core.management import call_command

    from collector.models import Cycle, Device, PowerLog
    from dashboard import monthly_report

    call_command("migrate", verbosity=0)
    Device.objects.all().delete()
    print(machine_info())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "legacy.csv"
        rows = write_csv(path, days=args.days, channels=args.channels)
        began = time.perf_counter()
        call_command("import_history", str(path), "--no-progress", stdout=StringIO())
        first = time.perf_counter() - began
        began = time.perf_counter()
        out = StringIO()
        call_command("import_history", str(path), "--no-progress", stdout=out)
        second = time.perf_counter() - began
    assert PowerLog.objects.count() == rows, (PowerLog.objects.count(), rows)
    print(f"CSV rows: {rows}, PowerLog rows: {PowerLog.objects.count()}, cycles: {Cycle.objects.count()}")
    print(f"first import (rows + cycles + impact): {first:.1f} s = {rows / first:,.0f} rows/s")
    print(f"second import (adds nothing): {second:.1f} s = {rows / second:,.0f} rows/s")
    month = START.date()
    began = time.perf_counter()
    report = monthly_report.build_report(month)
    figures = time.perf_counter() - began
    began = time.perf_counter()
    pdf = monthly_report.report_pdf(report)
    monthly_report.report_csv(report)
    files = time.perf_counter() - began
    print(
        f"monthly report {month:%Y-%m}, {len(report.pumps)} pumps: figures {figures * 1000:.0f} ms, "
        f"PDF + CSV {files * 1000:.0f} ms, PDF {len(pdf) / 1024:.0f} KiB"
    )


if __name__ == "__main__":
    main()
