from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _
from django_q.models import Schedule

from shelly_site.schedules import SCHEDULES


class Command(BaseCommand):
    help = _("Create or update the django-q2 schedules declared in shelly_site/schedules.py (idempotent).")

    def handle(self, *args, **options):
        for spec in SCHEDULES:
            spec = dict(spec)
            name = spec.pop("name")
            spec.setdefault("repeats", -1)
            _schedule, created = Schedule.objects.update_or_create(name=name, defaults=spec)
            self.stdout.write((_("created: %(name)s") if created else _("updated: %(name)s")) % {"name": name})
