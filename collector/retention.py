"""Retention (SPEC §9): raw rows of `every` channels for RAW_RETENTION_DAYS, rollups for ROLLUP_RETENTION_DAYS.

Rows of `events`, `throttle` and `activity` channels are few and are what
cycles are rebuilt from: they are kept. Deletes run in batches of
RETENTION_BATCH_ROWS rows, each its own short transaction, so a first pass
over years of history never holds a long lock or a huge transaction next to
live ingestion; a pass that runs out of time stops and the next one goes on.
"""

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from collector import rollups
from collector.models import Channel, PowerLog, PowerRollup, WritePolicy

log = logging.getLogger(__name__)

# Under the django-q2 task timeout (240 s): the pass stops cleanly, the next one continues.
PASS_BUDGET_S = 180.0


@dataclass
class RetentionResult:
    raw_deleted: int = 0
    rollups_deleted: int = 0
    channels: list = field(default_factory=list)
    finished: bool = True
    seconds: float = 0.0


def raw_cutoff(now: datetime) -> datetime | None:
    days = settings.RAW_RETENTION_DAYS
    return rollups.floor_minute(now - timedelta(days=days)) if days else None


def rollup_cutoff(now: datetime) -> datetime | None:
    days = settings.ROLLUP_RETENTION_DAYS
    return rollups.floor_minute(now - timedelta(days=days)) if days else None


def apply_retention(
    *, now: datetime | None = None, batch_rows: int | None = None, budget_s: float = PASS_BUDGET_S
) -> RetentionResult:
    now = now or datetime.now(UTC)
    batch_rows = batch_rows or settings.RETENTION_BATCH_ROWS
    began = time.monotonic()
    result = RetentionResult()

    def out_of_time():
        return time.monotonic() - began > budget_s

    cutoff = raw_cutoff(now)
    if cutoff is not None:
        # Every minute about to lose its rows gets its rollup first; if that
        # alone spends the budget (an upgrade's backlog), nothing is deleted yet.
        if rollups.update_rollups(before=cutoff, budget_s=budget_s).more:
            result.finished = False
            cutoff = None
    if cutoff is not None:
        for channel in Channel.objects.filter(policy=WritePolicy.EVERY).order_by("pk"):
            # Readers switch to rollups before the first row goes, so a chart
            # drawn during a long pass never shows a half-deleted range.
            Channel.objects.filter(pk=channel.pk).filter(
                Q(raw_kept_from__isnull=True) | Q(raw_kept_from__lt=cutoff)
            ).update(raw_kept_from=cutoff)
            deleted = _delete_in_batches(
                PowerLog.objects.filter(channel_id=channel.pk, timestamp__lt=cutoff).order_by("timestamp"),
                batch_rows,
                what=f"raw rows of channel {channel.pk}",
                out_of_time=out_of_time,
            )
            result.raw_deleted += deleted
            result.channels.append(channel.pk)
            if out_of_time():
                result.finished = False
                break

    cutoff = rollup_cutoff(now)
    if cutoff is not None and result.finished:
        # Channel by channel: each delete walks the (channel, minute) index from its old end.
        for channel_id in Channel.objects.order_by("pk").values_list("pk", flat=True):
            result.rollups_deleted += _delete_in_batches(
                PowerRollup.objects.filter(channel_id=channel_id, minute__lt=cutoff).order_by("minute"),
                batch_rows,
                what=f"rollups of channel {channel_id}",
                out_of_time=out_of_time,
            )
            if out_of_time():
                result.finished = False
                break
    result.seconds = time.monotonic() - began
    log.info(
        "retention pass %s: %d raw row(s), %d rollup(s) deleted in %.1f s",
        "finished" if result.finished else "stopped (time budget), continues next pass",
        result.raw_deleted,
        result.rollups_deleted,
        result.seconds,
        extra={"event": "retention_pass"},
    )
    return result


def _delete_in_batches(queryset, batch_rows, *, what, out_of_time) -> int:
    model = queryset.model
    total = 0
    while True:
        with transaction.atomic():
            # A LIMITed id subquery: the only bounded DELETE both PostgreSQL and SQLite accept.
            deleted, _ = model.objects.filter(pk__in=queryset.values("pk")[:batch_rows]).delete()
        total += deleted
        if deleted:
            log.info("retention: deleted %d %s (%d so far)", deleted, what, total, extra={"event": "retention_batch"})
        if deleted < batch_rows or out_of_time():
            return total
