"""manage.py rebuild_cycles [--channel ID ...] [--from WHEN] [--to WHEN]"""

from datetime import datetime, time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

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
            f"{option} {value!r} is not a date or datetime; use e.g. 2026-03-01 or 2026-03-01T08:00:00+01:00"
        ) from None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


class Command(BaseCommand):
    help = "Rebuild cycles (and their impact) from stored power logs. Idempotent."

    def add_arguments(self, parser):
        parser.add_argument("--channel", type=int, action="append", help="Channel id (repeatable); default: all")
        parser.add_argument("--from", dest="start", help="Start (ISO date or datetime, site time zone)")
        parser.add_argument("--to", dest="end", help="End, inclusive (ISO date or datetime, site time zone)")
        parser.add_argument("--skip-impact", action="store_true", help="Do not recompute impact and cost")

    def handle(self, *args, channel=None, start=None, end=None, skip_impact=False, **options):
        start = parse_moment(start, option="--from") if start else None
        end = parse_moment(end, option="--to", end_of_day=True) if end else None
        if start and end and start > end:
            raise CommandError(f"--from ({start.isoformat()}) is after --to ({end.isoformat()})")
        channels = Channel.objects.select_related("device").order_by("pk")
        if channel:
            channels = channels.filter(pk__in=channel)
            missing = set(channel) - {c.pk for c in channels}
            if missing:
                raise CommandError(f"no channel with id {', '.join(map(str, sorted(missing)))}")
        self.stdout.write(
            f"Rebuilding cycles of {channels.count()} channel(s) from {start or 'the first row'} "
            f"to {end or 'the last row'}"
        )
        done = rebuild_cycles(
            channels=list(channels), start=start, end=end, with_impact=not skip_impact, on_progress=self._report
        )
        total = sum(p.result.detected for p in done)
        self.stdout.write(self.style.SUCCESS(f"Done: {total} cycles in {sum(p.seconds for p in done):.2f} s"))

    def _report(self, progress):
        r = progress.result
        self.stdout.write(
            f"  channel {progress.channel.pk} ({progress.channel}): {r.detected} cycles ({r.noise} noise), "
            f"{r.created} created, {r.updated} updated, {r.deleted} deleted in {progress.seconds:.2f} s"
        )
