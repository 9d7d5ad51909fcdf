"""django-q2 tasks of the alerts app (thin: call a service, report)."""

from alerts import services
from alerts.models import Delivery


def deliver(delivery_pk: int) -> str:
    delivery = services.deliver(delivery_pk)
    return "already done" if delivery is None else f"{delivery.step}: {delivery.status} ({delivery.detail})"


def finish_test_pulse(on_pk: int) -> str:
    on = Delivery.objects.filter(pk=on_pk).first()
    if on is not None:
        services.finish_pulse(on)
    return "ok"


def check_time_rules() -> str:
    requeued = services.requeue_stuck_deliveries()
    return f"{services.check_time_rules()} transition(s), {requeued} stuck delivery(ies) re-queued"
