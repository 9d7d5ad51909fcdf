"""Cycle detection (§6). Live hook; the full detector comes with the cycles issue."""

from collector.models import Cycle


def record_run_transitions(transitions) -> None:
    """Called inside the pipeline's transaction for every run start/stop."""
    for runtime, outcome in transitions:
        if outcome.ended is not None:
            Cycle.objects.filter(channel_id=runtime.channel_id, started_at=outcome.ended.started_at).update(
                ended_at=outcome.ended.ended_at,
                duration_s=(outcome.ended.ended_at - outcome.ended.started_at).total_seconds(),
            )
        if outcome.started_at is not None:
            Cycle.objects.get_or_create(channel_id=runtime.channel_id, started_at=outcome.started_at)
