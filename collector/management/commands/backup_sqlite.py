"""`manage.py backup_sqlite`: a consistent copy of the embedded SQLite database, while everything runs.

Copying `db.sqlite3` with `cp` while the web and worker write gives a torn
file (and misses what is still in the `-wal` file). SQLite's online backup
API copies a consistent snapshot; in one step (a step-by-step copy restarts
whenever another process writes, and this site writes every few seconds), and
in WAL mode the writers carry on meanwhile.
"""

import sqlite3
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection


class Command(BaseCommand):
    help = (
        "Copy the embedded SQLite database consistently while the site runs (default: "
        "DATA_DIR/backups/db-<date>.sqlite3). For PostgreSQL use pg_dump (README, Backup and restore)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", help="File to write (must not exist yet).")

    def handle(self, *args, **options):
        if connection.vendor != "sqlite":
            raise CommandError(
                "The database is PostgreSQL, not the embedded SQLite file: back it up with pg_dump "
                "(see the README, Backup and restore)."
            )
        source_path = Path(connection.settings_dict["NAME"])
        target = Path(options["output"] or self._default_target())
        if target.exists():
            raise CommandError(f"{target} already exists: choose another --output (a backup never overwrites).")
        target.parent.mkdir(parents=True, exist_ok=True)

        partial = target.with_name(target.name + ".partial")
        source = sqlite3.connect(source_path, timeout=30)
        copy = sqlite3.connect(partial)
        try:
            self.stdout.write(f"Copying {source_path} (and its -wal file) to {target} …")
            source.backup(copy)
            check = copy.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            copy.close()
            source.close()
        if check != "ok":
            partial.unlink(missing_ok=True)
            raise CommandError(f"The copy failed SQLite's integrity check ({check}); nothing was written.")
        partial.rename(target)
        size_mb = target.stat().st_size / 1024 / 1024
        self.stdout.write(self.style.SUCCESS(f"Backup written: {target} ({size_mb:.1f} MiB, integrity ok)."))

    def _default_target(self) -> Path:
        return Path(settings.DATA_DIR) / "backups" / f"db-{datetime.now():%Y%m%d-%H%M%S}.sqlite3"
