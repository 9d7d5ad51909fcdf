"""`manage.py clear_metrics`: empty PROMETHEUS_MULTIPROC_DIR before the site's processes start."""

from django.conf import settings
from django.core.management.base import BaseCommand

from shelly_site.prometheus import clear_multiprocess_dir


class Command(BaseCommand):
    help = (
        "Remove the per-process metric files of PROMETHEUS_MULTIPROC_DIR. Run it when web, worker and poller "
        "all (re)start, never while one of them runs: their counters then start again from zero."
    )

    def handle(self, *args, **options):
        path = settings.PROMETHEUS_MULTIPROC_DIR
        if not path:
            self.stdout.write("PROMETHEUS_MULTIPROC_DIR is not set: every process counts alone, nothing to clear.")
            return
        removed = clear_multiprocess_dir(path)
        self.stdout.write(f"Removed {removed} metric file(s) from {path}.")
