from django.core.management.base import BaseCommand
from django_q.models import Schedule

from shelly_site.schedules import SCHEDULES


class Command(BaseCommand):
    help = "Create or update the django-q2 schedules declared in shelly_site/schedules.py (idempotent)."

    def handle(self, *args, **options):
        for spec in SCHEDULES:
            spec = dict(spec)
            name = spec.pop("name")
            spec.setdefault("repeats", -1)
            _, created = Schedule.objects.update_or_create(name=name, defaults=spec)
            self.stdout.write(f"{'created' if created else 'updated'}: {name}")
