"""Alert transitions, deliveries, time-based rules and the env configuration (SPEC §8).

Every write of the alerts app goes through here; the engine, tasks, admin,
views and commands call these functions.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone

from alerts import metrics, notifiers
from alerts.models import AlertEvent, AlertRule, AlertState, Delivery, Kind, Notifier

log = logging.getLogger(__name__)

PULSE_OFF_SCHEDULE = "alerts: pulse off {pk}"


# -- transitions ---------------------------------------------------------------
def _state(rule_id, channel_id, device_id) -> AlertState:
    subject = f"ch:{channel_id}" if channel_id else f"dev:{device_id}"
    try:
        with transaction.atomic():
            state, _ = AlertState.objects.get_or_create(
                rule_id=rule_id,
                subject=subject,
                defaults={"channel_id": channel_id, "device_id": device_id},
            )
    except IntegrityError:  # another process created it between our get and create
        state = AlertState.objects.get(rule_id=rule_id, subject=subject)
    return state


def commit_transition(
    *, rule_id, channel_id, device_id, expected_version, action, ts, value, details
) -> AlertState | None:
    """Fire or clear one episode, once: a conditional UPDATE on the state's version.

    Returns the state as the database has it afterwards (whoever won), or None
    when the rule is gone. Only the winner writes an event and notifies.
    """
    rule = AlertRule.objects.filter(pk=rule_id).first()
    if rule is None:
        return None
    with transaction.atomic():
        state = _state(rule_id, channel_id, device_id)
        if state.version != expected_version or state.active == (action == AlertEvent.Action.FIRED):
            return state  # someone else moved it first: adopt their state
        now = timezone.now()
        fields = {"version": F("version") + 1, "updated_at": now, "value": value}
        if action == AlertEvent.Action.FIRED:
            fields.update(active=True, since=ts, last_triggered_at=ts)
        else:
            fields.update(active=False, last_cleared_at=ts, cooldown_until=ts + timedelta(seconds=rule.cooldown_s))
        won = AlertState.objects.filter(pk=state.pk, version=expected_version).update(**fields)
        if not won:
            state.refresh_from_db()
            return state
        # One notification per episode: a re-exceed inside the cooldown is recorded, not sent.
        notified = action == AlertEvent.Action.FIRED and (state.cooldown_until is None or ts >= state.cooldown_until)
        event = AlertEvent.objects.create(
            ts=ts,
            rule=rule,
            state=state,
            channel_id=channel_id,
            device_id=device_id,
            action=action,
            value=value,
            details={**details, **({} if notified or action != "fired" else {"suppressed": "cooldown"})},
            notified=notified,
            state_version=expected_version + 1,
        )
        if action == AlertEvent.Action.FIRED:
            metrics.alerts_fired.labels(kind=rule.kind).inc()
        plan_deliveries(event, notify=notified)
        state.refresh_from_db()
    log.info(
        "alert %s",
        action,
        extra={"event": f"alert_{action}", "rule": rule.slug, "channel_id": channel_id, "value": value},
    )
    return state


def message_for(event: AlertEvent) -> dict:
    channel = event.channel
    return {
        "event_id": event.pk,
        "rule": event.rule.name,
        "rule_slug": event.rule.slug,
        "kind": event.rule.kind,
        "action": event.action,
        "ts": event.ts.isoformat(),
        "value": event.value,
        "channel": (channel.name or channel.key) if channel else None,
        "channel_id": event.channel_id,
        "device_pk": event.device_id,
        "details": event.details,
    }


def plan_deliveries(event: AlertEvent, *, notify: bool) -> list[Delivery]:
    """Delivery rows for the event's notifiers; sent by the worker once the transaction commits."""
    planned = []
    for notifier in event.rule.notifiers.filter(enabled=True):
        kind = notifiers.get_kind(notifier.kind)
        if event.action == AlertEvent.Action.FIRED and notify:
            planned.extend(_pulse_rows(notifier, kind, event=event))
        elif event.action == AlertEvent.Action.CLEARED and kind.sends_clear:
            planned.append(Delivery.objects.create(event=event, notifier=notifier, step=Delivery.Step.CLEAR))
    first_steps = [d.pk for d in planned if d.step != Delivery.Step.OFF]
    if first_steps:
        transaction.on_commit(lambda: [_enqueue(pk) for pk in first_steps])
    return planned


def _pulse_rows(notifier, kind, *, event=None, is_test=False) -> list[Delivery]:
    on = Delivery.objects.create(event=event, notifier=notifier, step=Delivery.Step.ON, is_test=is_test)
    if not kind.pulse:
        return [on]
    due = timezone.now() + timedelta(seconds=notifier.pulse_seconds)
    off = Delivery.objects.create(event=event, notifier=notifier, step=Delivery.Step.OFF, is_test=is_test, due_at=due)
    schedule_pulse_off(off)
    return [on, off]


def schedule_pulse_off(off: Delivery) -> None:
    """The OFF as a one-shot schedule in the database: it still happens if the worker dies mid-pulse."""
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name=PULSE_OFF_SCHEDULE.format(pk=off.pk),
        defaults={
            "func": "alerts.tasks.deliver",
            "args": repr((off.pk,)),
            "schedule_type": Schedule.ONCE,
            "repeats": -1,
            # A little after the worker's own OFF, which normally wins (the delivery is claimed once).
            "next_run": off.due_at + timedelta(seconds=2),
        },
    )


def _enqueue(delivery_pk: int) -> None:
    from django_q.tasks import async_task

    async_task("alerts.tasks.deliver", delivery_pk, task_name=f"alert delivery {delivery_pk}")


# -- delivery --------------------------------------------------------------------
def deliver(delivery_pk: int, *, follow_pulse=True) -> Delivery | None:
    """Send one delivery (claimed once), record every attempt; after an ON, the OFF at its time."""
    claimed = Delivery.objects.filter(pk=delivery_pk, status=Delivery.Status.PENDING).update(
        status=Delivery.Status.SENDING, claimed_at=timezone.now()
    )
    if not claimed:
        return None
    delivery = Delivery.objects.select_related("notifier", "event__rule", "event__channel").get(pk=delivery_pk)
    notifier = delivery.notifier
    kind = notifiers.get_kind(notifier.kind)
    message = message_for(delivery.event) if delivery.event else test_message(notifier)

    def record(number, result):
        Delivery.objects.filter(pk=delivery_pk).update(
            attempts=number, status_code=result.status_code, detail=result.detail[:1000]
        )

    result = notifiers.attempt_with_retries(
        kind,
        notifier.config,
        delivery.step,
        message,
        attempts=settings.NOTIFIER_MAX_ATTEMPTS,
        base_delay=settings.NOTIFIER_BACKOFF_SECONDS,
        on_attempt=record,
    )
    status = Delivery.Status.OK if result.ok else Delivery.Status.FAILED
    Delivery.objects.filter(pk=delivery_pk).update(status=status, finished_at=timezone.now())
    if not result.ok:
        metrics.notifier_failures.labels(kind=notifier.kind).inc()
        log.warning("notification failed", extra={"event": "notifier_failed", "notifier": notifier.name})
    if delivery.step == Delivery.Step.OFF:
        from django_q.models import Schedule

        Schedule.objects.filter(name=PULSE_OFF_SCHEDULE.format(pk=delivery_pk)).delete()
    elif delivery.step == Delivery.Step.ON and kind.pulse and follow_pulse:
        finish_pulse(delivery)
    delivery.refresh_from_db()
    return delivery


def stuck_after() -> timedelta:
    """Longer than a live worker can spend on one delivery: every attempt timing out, every backoff, a margin."""
    attempts = settings.NOTIFIER_MAX_ATTEMPTS
    spent = attempts * settings.NOTIFIER_TIMEOUT_SECONDS
    spent += sum(notifiers.backoff_delays(attempts, settings.NOTIFIER_BACKOFF_SECONDS))
    return timedelta(seconds=spent + 60)


def requeue_stuck_deliveries(now=None) -> int:
    """Deliveries left "sending" by a worker that died mid-send go back to the queue (claimed again, once)."""
    cutoff = (now or timezone.now()) - stuck_after()
    stuck = list(
        Delivery.objects.filter(status=Delivery.Status.SENDING, claimed_at__lt=cutoff).values_list("pk", flat=True)
    )
    requeued = []
    for pk in stuck:
        if _pulse_already_ended(pk):
            # The worker may well have sent this ON before it died; sent again
            # now, after its OFF, it would leave the sensor on for good.
            Delivery.objects.filter(pk=pk, status=Delivery.Status.SENDING).update(
                status=Delivery.Status.FAILED,
                finished_at=timezone.now(),
                detail="Worker stopped while sending; not sent again: the pulse has ended.",
            )
            log.warning("stuck delivery abandoned", extra={"event": "delivery_abandoned", "delivery": pk})
            continue
        # Conditional: two checks running at once re-queue it once.
        if Delivery.objects.filter(pk=pk, status=Delivery.Status.SENDING, claimed_at__lt=cutoff).update(
            status=Delivery.Status.PENDING
        ):
            requeued.append(pk)
    for pk in requeued:
        log.warning("delivery re-queued", extra={"event": "delivery_requeued", "delivery": pk})
        _enqueue(pk)
    return len(requeued)


def _pulse_offs(on: Delivery):
    """The OFF deliveries of the pulse this ON began (created after it, same notifier, event and test flag)."""
    return Delivery.objects.filter(
        notifier_id=on.notifier_id, event_id=on.event_id, is_test=on.is_test, step=Delivery.Step.OFF, pk__gt=on.pk
    )


def _pulse_already_ended(delivery_pk: int) -> bool:
    """An ON whose pulse's OFF has been sent (or is being sent)."""
    on = Delivery.objects.filter(pk=delivery_pk, step=Delivery.Step.ON).first()
    if on is None:
        return False
    return _pulse_offs(on).exclude(status=Delivery.Status.PENDING).exists()


def finish_pulse(on: Delivery) -> None:
    import time

    off = _pulse_offs(on).filter(status=Delivery.Status.PENDING).order_by("pk").first()
    if off is None:
        return
    wait = (off.due_at - timezone.now()).total_seconds()
    if wait > 0:
        time.sleep(min(wait, 20))
    deliver(off.pk)


def test_message(notifier) -> dict:
    return {
        "event_id": None,
        "rule": "test",
        "rule_slug": "test",
        "kind": "test",
        "action": "test",
        "ts": timezone.now().isoformat(),
        "value": None,
        "details": {"notifier": notifier.name},
    }


def send_test(notifier: Notifier) -> Delivery:
    """The admin's "send test notification": the ON now (its result is shown), the OFF by the worker."""
    kind = notifiers.get_kind(notifier.kind)
    rows = _pulse_rows(notifier, kind, is_test=True)
    delivery = deliver(rows[0].pk, follow_pulse=False)
    if len(rows) > 1:
        from django_q.tasks import async_task

        async_task("alerts.tasks.finish_test_pulse", rows[0].pk, task_name=f"test pulse off {rows[1].pk}")
    return delivery


# -- time-based kinds (periodic task) ----------------------------------------------
def check_time_rules(now=None) -> int:
    """long_cycle, no_cycle, device_offline: compare each subject with its state; returns transitions made."""
    from alerts.windows import effective_threshold, parse_windows, site_zone
    from collector.models import Channel, ChannelState, Cycle, Device

    now = now or timezone.now()
    zone = site_zone()
    changes = 0
    for rule in AlertRule.objects.filter(enabled=True, kind__in=[Kind.LONG_CYCLE, Kind.NO_CYCLE, Kind.DEVICE_OFFLINE]):
        try:
            threshold = effective_threshold(parse_windows(rule.windows), rule.threshold, now, zone)
        except ValueError:
            continue
        limit = None if threshold is None else timedelta(minutes=threshold)
        states = {s.subject: s for s in rule.states.all()}
        if rule.kind == Kind.DEVICE_OFFLINE:
            devices = Device.objects.filter(enabled=True)
            if rule.device_id or rule.channel_id:
                devices = devices.filter(pk=rule.device_id or Channel.objects.get(pk=rule.channel_id).device_id)
            subjects = []
            for device in devices:
                seen = max([t for t in (device.last_seen, device.last_live_poll_at) if t], default=device.created_at)
                breach = limit is not None and now - seen > limit
                subjects.append((None, device.pk, breach, (now - seen).total_seconds() / 60, {"last_seen": str(seen)}))
        else:
            channels = Channel.objects.filter(enabled=True, device__enabled=True).select_related("device")
            if rule.channel_id:
                channels = channels.filter(pk=rule.channel_id)
            elif rule.device_id:
                channels = channels.filter(device_id=rule.device_id)
            run_states = {s.channel_id: s for s in ChannelState.objects.filter(channel__in=channels)}
            last_starts = dict(
                Cycle.objects.filter(channel__in=channels)
                .values_list("channel_id")
                .annotate(last=Max("started_at"))
                .values_list("channel_id", "last")
            )
            subjects = []
            for channel in channels:
                run = run_states.get(channel.pk)
                running = bool(run and run.running and run.run_started_at)
                if rule.kind == Kind.LONG_CYCLE:
                    minutes = (now - run.run_started_at).total_seconds() / 60 if running else 0.0
                    breach = limit is not None and running and now - run.run_started_at > limit
                    details = {"run_started_at": run.run_started_at.isoformat() if running else None}
                else:
                    starts = [t for t in (last_starts.get(channel.pk), run.run_started_at if running else None) if t]
                    last = max(starts, default=channel.created_at)
                    minutes = (now - last).total_seconds() / 60
                    breach = limit is not None and now - last > limit
                    details = {"last_run_start": last.isoformat()}
                subjects.append((channel.pk, channel.device_id, breach, minutes, details))
        for channel_id, device_id, breach, minutes, details in subjects:
            subject = f"ch:{channel_id}" if channel_id else f"dev:{device_id}"
            state = states.get(subject)
            active = bool(state and state.active)
            if breach == active:
                continue
            if active and state.since and now - state.since < timedelta(seconds=rule.min_firing_s):
                continue
            commit_transition(
                rule_id=rule.pk,
                channel_id=channel_id,
                device_id=device_id,
                expected_version=state.version if state else 0,
                action=AlertEvent.Action.FIRED if breach else AlertEvent.Action.CLEARED,
                ts=now,
                value=round(minutes, 1),
                details={**details, "threshold_minutes": threshold},
            )
            changes += 1
    return changes


# -- reading -----------------------------------------------------------------------
def active_states():
    return (
        AlertState.objects.filter(active=True, rule__enabled=True)
        .select_related("rule", "channel__device", "device")
        .order_by("-since")
    )


def active_count() -> int:
    return AlertState.objects.filter(active=True, rule__enabled=True).count()


def rule_state(rule: AlertRule) -> bool:
    return rule.states.filter(active=True).exists()


# -- configuration from the environment ------------------------------------------
def ensure_default_rule() -> AlertRule | None:
    """ALERT_POWER_W (+ sustain, cooldown) → a `high_power` rule on every channel, kept in step with the env."""
    if settings.ALERT_POWER_W is None:
        return None
    rule, _ = AlertRule.objects.update_or_create(
        slug="default-high-power",
        defaults={
            "name": "High power (from ALERT_POWER_W)",
            "kind": Kind.HIGH_POWER,
            "threshold": settings.ALERT_POWER_W,
            "sustain_s": settings.ALERT_SUSTAIN_SECONDS,
            "cooldown_s": settings.ALERT_COOLDOWN_SECONDS,
        },
    )
    return rule


def env_notifier_specs() -> list[tuple[str, str, dict]]:
    specs = []
    if settings.HOMEBRIDGE_API_URL:
        config = {"url": settings.HOMEBRIDGE_API_URL, "accessory": settings.HOMEBRIDGE_ACCESSORY_ID}
        if settings.HOMEBRIDGE_API_USER:
            config.update(username=settings.HOMEBRIDGE_API_USER, password=settings.HOMEBRIDGE_API_PASSWORD)
        if settings.HOMEBRIDGE_API_TOKEN:
            config["token"] = settings.HOMEBRIDGE_API_TOKEN
        specs.append(("Homebridge (from env)", "homebridge_ui", config))
    if settings.MQTT_URL:
        specs.append(("MQTT (from env)", "mqtt", {"url": settings.MQTT_URL, "topic": settings.MQTT_TOPIC}))
    if settings.TRIGGER_HTTP_URL:
        specs.append(("HTTP trigger (from env)", "webhook", {"url": settings.TRIGGER_HTTP_URL}))
    return specs


def apply_env_configuration() -> list[str]:
    """Create or update the default rule and the env's notifiers (idempotent); returns what it did."""
    done = []
    rule = ensure_default_rule()
    if rule:
        done.append(f"rule: {rule.slug}")
    for name, kind, config in env_notifier_specs():
        notifier, _ = Notifier.objects.get_or_create(name=name, defaults={"kind": kind, "from_environment": True})
        notifier.kind, notifier.config, notifier.from_environment = kind, config, True
        errors = notifiers.get_kind(kind).validate(config)
        if errors:
            log.error("notifier from env is invalid: %s", errors, extra={"event": "notifier_env_invalid"})
            notifier.enabled = False
        notifier.save()
        targets = [rule] if rule else list(AlertRule.objects.all())
        for target in targets:
            target.notifiers.add(notifier)
        done.append(f"notifier: {name}")
    return done
