"""manage.py rebuild_cycles [--channel ID ...] [--from WHEN] [--to WHEN]"""

from datetime import datetime, time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from collector.cycles import rebuild_cycles
from collector.models import Channel


def parse_moment(value: str, *, option: str, end_of_day=False) -> datetime:
    """ISO date or datetime; a date or naive time is in the site time zone."""
    try:
        moment = parse_datetime(value)
        if moment is None:
            day = parse_date(value)
            if day is None:
                raise ValueError
            moment = datetime.combine(day, time.max if end_of_day else time.min)
    except ValueError:
        raise CommandError(
            _("%(option)s %(value)r is not a date or datetime; use e.g. 2026-03-01 or 2026-03-01T08:00:00+01:00")
            % {"option": option, "value": value}
        ) from None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


class Command(BaseCommand):
    help = _("Rebuild cycles (and their impact) from stored power logs. Idempotent.")

    def add_arguments(self, parser):
        parser.add_argument(
            "--channel", type=int, action="append", help=gettext_lazy("Channel id (repeatable); default: all")
        )
        parser.add_argument("--from", dest="start", help=gettext_lazy("Start (ISO date or datetime, site time zone)"))
        parser.add_argument(
            "--to", dest="end", help=gettext_lazy("End, inclusive (ISO date or datetime, site time zone)")
        )
        parser.add_argument("--skip-impact", action="store_true", help=gettext_lazy("Do not recompute impact and cost"))

    def handle(self, *args, channel=None, start=None, end=None, skip_impact=False, **options):
        start = parse_moment(start, option="--from") if start else None
        end = parse_moment(end, option="--to", end_of_day=True) if end else None
        if start and end and start > end:
            raise CommandError(
                _("--from (%(start)s) is after --to (%(end)s)") % {"start": start.isoformat(), "end": end.isoformat()}
            )
        channels = Channel.objects.select_related("device").order_by("pk")
        if channel:
            channels = channels.filter(pk__in=channel)
            missing = set(channel) - {c.pk for c in channels}
            if missing:
                raise CommandError(_("no channel with id %(ids)s") % {"ids": ", ".join(map(str, sorted(missing)))})
        self.stdout.write(
            _("Rebuilding cycles of %(n)d channel(s) from %(start)s to %(end)s")
            % {"n": channels.count(), "start": start or _("the first row"), "end": end or _("the last row")}
        )
        done = rebuild_cycles(
            channels=list(channels), start=start, end=end, with_impact=not skip_impact, on_progress=self._report
        )
        total = sum(p.result.detected for p in done)
        seconds = sum(p.seconds for p in done)
        self.stdout.write(self.style.SUCCESS(_("Done: %(n)d cycles in %(s).2f s") % {"n": total, "s": seconds}))

    def _report(self, progress):
        r = progress.result
        self.stdout.write(
            _(
                "  channel %(id)d (%(name)s): %(detected)d cycles (%(noise)d noise), %(created)d created, "
                "%(updated)d updated, %(deleted)d deleted in %(s).2f s"
            )
            % {
                "id": progress.channel.pk,
                "name": progress.channel,
                "detected": r.detected,
                "noise": r.noise,
                "created": r.created,
                "updated": r.updated,
                "deleted": r.deleted,
                "s": progress.seconds,
            }
        )
