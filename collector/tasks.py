"""django-q2 task functions of the collector (thin: load, call a service, report)."""

from datetime import timedelta

from django_q.models import Schedule

from collector import pipeline

NEXT_SWEEP_SCHEDULE = "collector: close runs at their expiry"


def close_expired_runs() -> str:
    """Sweeper: close runs no connected process is holding (restarts, batch relays)."""
    result = pipeline.close_expired_runs()
    schedule_sweep_at_next_expiry()
    return f"closed {result.runs_ended} run(s), wrote {result.rows_written} row(s)"


def schedule_sweep_at_next_expiry() -> None:
    """The minute sweeper alone could be 90 s late (q2 checks schedules every 30 s);
    a one-off schedule at the next expiry keeps every stop within stop_timeout + 60 s."""
    expiry = pipeline.next_run_expiry()
    if expiry is None:
        Schedule.objects.filter(name=NEXT_SWEEP_SCHEDULE).delete()
        return
    Schedule.objects.update_or_create(
        name=NEXT_SWEEP_SCHEDULE,
        defaults={
            "func": "collector.tasks.close_expired_runs",
            "schedule_type": Schedule.ONCE,
            "repeats": -1,
            "next_run": expiry + timedelta(seconds=1),
        },
    )


def pull_energy_intervals(device_pk: int) -> str:
    """Read a polled meter's EMData records from its cursor (also the admin's "pull now")."""
    from collector import polling

    result = polling.pull_device_intervals(device_pk)
    return f"{result.records} record(s), {result.written} interval row(s) written"


def backfill_energy_intervals(device_pk: int) -> str:
    """Re-read yesterday's EMData records of a polled meter (the poller also does it nightly)."""
    from collector import polling

    result = polling.pull_device_intervals(device_pk, previous_day=True)
    return f"{result.records} record(s), {result.written} interval row(s) written"


def update_rollups() -> str:
    """Recompute the 1-minute rollups of the minutes raw rows were written into."""
    from collector import rollups

    result = rollups.update_rollups(budget_s=120)
    more = " (more next run)" if result.more else ""
    return f"{result.minutes} minute(s) recomputed, {result.written} rollup(s) written{more}"


def apply_retention() -> str:
    """Delete raw `every` rows and rollups past their retention, in bounded batches."""
    from collector import retention

    result = retention.apply_retention()
    state = "finished" if result.finished else "continues next run"
    return f"{result.raw_deleted} raw row(s), {result.rollups_deleted} rollup(s) deleted; {state}"
