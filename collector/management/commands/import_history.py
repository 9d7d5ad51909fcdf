"""manage.py import_history (CSV_FILE | --from-database postgres://…) [--dry-run] [--no-rebuild]"""

import sys

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from collector import importing

BAR_WIDTH = 30
BAD_LINES_SHOWN = 50


class Command(BaseCommand):
    help = _(
        "Import the history of an earlier collector: its CSV log or its PostgreSQL power_logs table. "
        "Idempotent: a second run adds nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("csv_file", nargs="?", help=gettext_lazy("The earlier collector's CSV log"))
        parser.add_argument(
            "--from-database",
            metavar="URL",
            help=gettext_lazy("postgres://user:password@host:port/database holding the power_logs table"),
        )
        parser.add_argument(
            "--dry-run", action="store_true", help=gettext_lazy("Read and check everything, store nothing")
        )
        parser.add_argument(
            "--no-rebuild", action="store_true", help=gettext_lazy("Do not rebuild cycles and impact afterwards")
        )
        parser.add_argument("--no-progress", action="store_true", help=gettext_lazy("No progress bar"))

    def handle(self, *args, csv_file=None, from_database=None, dry_run=False, no_rebuild=False, **options):
        if bool(csv_file) == bool(from_database):
            raise CommandError(_("give either a CSV file or --from-database postgres://…, not both and not neither"))
        if from_database and not from_database.startswith(("postgres://", "postgresql://")):
            raise CommandError(_("--from-database must be a postgres:// URL"))
        try:
            if csv_file:
                total = importing.csv_line_count(csv_file)
                rows = importing.csv_rows(csv_file)
                source = csv_file
            else:
                total = importing.database_row_count(from_database)
                rows = importing.database_rows(from_database)
                source = _("the power_logs table")
            self.stdout.write(
                _("Importing from %(source)s (%(n)d lines)%(dry)s")
                % {"source": source, "n": total, "dry": _(" — dry run, nothing is stored") if dry_run else ""}
            )
            progress = None if options["no_progress"] else self._progress_bar(total)
            summary = importing.import_rows(rows, dry_run=dry_run, rebuild=not no_rebuild, on_progress=progress)
        except importing.ImportSourceError as exc:
            raise CommandError(str(exc)) from None
        if progress:
            sys.stderr.write("\n")
        self._summary(summary)

    def _progress_bar(self, total: int):
        def show(done: int) -> None:
            share = min(1.0, done / total) if total else 1.0
            filled = int(share * BAR_WIDTH)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total}")
            sys.stderr.flush()

        return show

    def _summary(self, s: importing.ImportSummary) -> None:
        write = self.stdout.write
        verb = _("would be imported") if s.dry_run else _("imported")
        write(_("%(read)d rows read, %(imported)d %(verb)s") % {"read": s.read, "imported": s.imported, "verb": verb})
        if s.first:
            write(_("  range: %(first)s to %(last)s") % {"first": s.first.isoformat(), "last": s.last.isoformat()})
        for reason, count in sorted(s.skipped.items()):
            if count:
                write(_("  skipped, %(reason)s: %(n)d") % {"reason": reason, "n": count})
        if s.devices_created:
            write(_("  new devices: %(list)s") % {"list": ", ".join(s.devices_created)})
        if s.channels_created:
            write(_("  new channels: %(list)s") % {"list": ", ".join(s.channels_created)})
        if s.bad_count:
            write(self.style.WARNING(_("  bad lines skipped: %(n)d") % {"n": s.bad_count}))
            for bad in s.bad[:BAD_LINES_SHOWN]:
                write(_("    line %(line)d: %(reason)s") % {"line": bad.line, "reason": bad.reason})
            if s.bad_count > BAD_LINES_SHOWN:
                write(_("    … and %(n)d more") % {"n": s.bad_count - BAD_LINES_SHOWN})
        if not s.dry_run:
            write(_("  cycles in the imported range: %(n)d") % {"n": s.cycles})
        write(self.style.SUCCESS(_("Dry run done: nothing stored") if s.dry_run else _("Import done")))
