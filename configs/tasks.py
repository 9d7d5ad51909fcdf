"""django-q2 tasks: take ids, call a service. Queued after commit, off the ingest path."""

from django_q.tasks import async_task

from configs.impact import cycles_affected_by_version, recompute_cycle_impacts
from configs.models import ChannelConfigVersion


def enqueue_cycle_impacts(cycle_ids) -> None:
    async_task("configs.tasks.compute_cycle_impacts", list(cycle_ids), task_name="cycle impacts")


def compute_cycle_impacts(cycle_ids) -> int:
    return recompute_cycle_impacts(cycle_ids=cycle_ids)


def enqueue_recompute_after_version(version_id: int) -> None:
    async_task("configs.tasks.recompute_after_version", version_id, task_name=f"impacts after config {version_id}")


def recompute_after_version(version_id: int) -> int:
    version = ChannelConfigVersion.objects.filter(pk=version_id).first()
    if version is None:
        return 0
    return recompute_cycle_impacts(cycle_ids=cycles_affected_by_version(version).values_list("pk", flat=True))
