"""Alert rules on live samples and on time (SPEC §8).

`observe_samples` is called by the pipeline with every accepted sample of
every path (WebSocket, poller, batch), written or not. It keeps each rule's
pending/active state per channel in memory and touches the database only on a
transition (`alerts.services.commit_transition`, a conditional UPDATE), so a
sample costs a dict lookup when no rule watches its channel and a few
comparisons when one does.

The async paths call it from their event loop, where the ORM may not run:
there the rule load and the transitions go to one background thread.
"""

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from alerts import windows as windows_mod
from collector.samples import LiveSample

log = logging.getLogger(__name__)

LOAD_RETRY_SECONDS = 5.0


@dataclass(slots=True)
class RuleSpec:
    """What evaluation needs of a rule, copied out of the model once per refresh."""

    id: int
    kind: str
    threshold: float
    clear_threshold: float | None
    sustain: timedelta
    min_firing: timedelta
    evaluate_past: bool
    windows: tuple

    @classmethod
    def from_rule(cls, rule) -> "RuleSpec":
        return cls(
            id=rule.pk,
            kind=rule.kind,
            threshold=rule.threshold,
            clear_threshold=rule.clear_threshold,
            sustain=timedelta(seconds=rule.sustain_s),
            min_firing=timedelta(seconds=rule.min_firing_s),
            evaluate_past=rule.evaluate_past,
            windows=windows_mod.parse_windows(rule.windows),
        )

    def clear_level(self, threshold: float) -> float:
        if self.clear_threshold is not None and threshold == self.threshold:
            return self.clear_threshold
        # Hysteresis: recover 10 % on the safe side of the threshold in force.
        return threshold * 0.9 if self.kind == "high_power" else threshold * 1.1


@dataclass(slots=True)
class Runtime:
    """One rule on one channel, in memory."""

    rule_id: int
    channel_id: int
    device_pk: int
    active: bool = False
    since: datetime | None = None
    version: int = 0
    pending_since: datetime | None = None
    last_ts: datetime | None = None
    busy: bool = False  # a transition is on its way to the database


@dataclass
class Decision:
    runtime: Runtime
    action: str  # "fired" | "cleared"
    ts: datetime
    value: float
    details: dict = field(default_factory=dict)


def evaluate(spec: RuleSpec, rt: Runtime, item: LiveSample, zone, oldest: datetime) -> Decision | None:
    """Pure: one sample through one rule's state machine (pending → firing → recovered)."""
    sample = item.sample
    ts = sample.ts
    if rt.busy or (rt.last_ts is not None and ts <= rt.last_ts):
        return None
    if not spec.evaluate_past and ts < oldest:
        return None  # a batch replaying old data: no alert for the past
    rt.last_ts = ts
    power = sample.apower_w
    threshold = windows_mod.effective_threshold(spec.windows, spec.threshold, ts, zone)
    high = spec.kind == "high_power"
    if not rt.active:
        if threshold is None:
            breach = False
        elif high:
            breach = power > threshold
        else:
            breach = item.running and power < threshold
        if not breach:
            rt.pending_since = None
            return None
        if rt.pending_since is None:
            rt.pending_since = ts
        if ts - rt.pending_since < spec.sustain:
            return None
        details = {"threshold": threshold, "pending_since": rt.pending_since.isoformat(), "power_w": power}
        return Decision(rt, "fired", ts, power, details)
    level = spec.clear_level(spec.threshold if threshold is None else threshold)
    recovered = power < level if high else (not item.running or power > level)
    if not recovered or (rt.since is not None and ts - rt.since < spec.min_firing):
        return None
    return Decision(rt, "cleared", ts, power, {"clear_threshold": level, "power_w": power})


class Engine:
    def __init__(self):
        self.specs: dict[int, RuleSpec] = {}
        self.by_channel: dict[int, tuple[int, ...]] = {}  # channel pk → rule ids
        self.everywhere: tuple[int, ...] = ()  # rules without a target
        self.by_device: dict[int, tuple[int, ...]] = {}  # device rules on every channel of the device
        self.total_channels: dict[int, int] = {}  # device pk → its 3EM `total` channel
        self.runtimes: dict[tuple[int, int], Runtime] = {}
        self.loaded_at = 0.0
        self.loaded = False
        self.loading = False
        # After a failed load (database away), the next try waits: without
        # this every sample would try again and log again.
        self.retry_at = 0.0
        self.failed_loads = 0
        self.zone = windows_mod.site_zone()
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._rules_cache: dict[int, tuple[int, ...]] = {}

    # -- rules ---------------------------------------------------------------
    def invalidate(self) -> None:
        self.loaded_at = 0.0

    def _due(self) -> bool:
        now = time.monotonic()
        if now < self.retry_at:
            return False
        return not self.loaded or now - self.loaded_at > settings.ALERT_RULES_REFRESH_SECONDS

    def load(self) -> None:
        """Rules and the active states from the database (sync)."""
        from alerts.models import POWER_KINDS, AlertRule, AlertState
        from collector.models import Channel

        rules = list(AlertRule.objects.filter(enabled=True, kind__in=POWER_KINDS))
        specs, by_channel, by_device, everywhere = {}, {}, {}, []
        for rule in rules:
            try:
                specs[rule.pk] = RuleSpec.from_rule(rule)
            except windows_mod.WindowError:
                log.warning("alert rule with bad windows skipped", extra={"event": "alert_rule_invalid"})
                continue
            if rule.channel_id:
                by_channel.setdefault(rule.channel_id, []).append(rule.pk)
            elif rule.device_id:
                by_device.setdefault(rule.device_id, []).append(rule.pk)
            else:
                everywhere.append(rule.pk)
        totals = {}
        if by_device:
            for pk, device_pk in Channel.objects.filter(device_id__in=by_device, key__endswith=":total").values_list(
                "pk", "device_id"
            ):
                totals[device_pk] = pk
        states = {}
        for state in AlertState.objects.filter(rule_id__in=specs, channel__isnull=False):
            states[(state.rule_id, state.channel_id)] = state
        with self._lock:
            self.specs = specs
            self.by_channel = {k: tuple(v) for k, v in by_channel.items()}
            self.by_device = {k: tuple(v) for k, v in by_device.items()}
            self.everywhere = tuple(everywhere)
            self.total_channels = totals
            for key in list(self.runtimes):
                if key[0] not in specs:
                    del self.runtimes[key]
            for key, state in states.items():
                rt = self.runtimes.get(key)
                if rt is None:
                    rt = self.runtimes[key] = Runtime(state.rule_id, state.channel_id, 0)
                if not rt.busy and state.version >= rt.version:
                    rt.active, rt.since, rt.version = state.active, state.since, state.version
            self.loaded_at = time.monotonic()
            self.loaded = True
            self._rules_cache = {}

    def rules_for(self, item: LiveSample) -> tuple[int, ...]:
        cached = self._rules_cache.get(item.channel_id)
        if cached is not None:
            return cached
        ids = list(self.by_channel.get(item.channel_id, ()))
        device_rules = self.by_device.get(item.device_pk, ())
        if device_rules:
            total = self.total_channels.get(item.device_pk)
            if total is None or total == item.channel_id:
                ids.extend(device_rules)
        ids.extend(self.everywhere)
        result = self._rules_cache[item.channel_id] = tuple(ids)
        return result

    # -- samples -------------------------------------------------------------
    def observe(self, live: list[LiveSample]) -> list[Decision]:
        in_loop = None  # asked only when needed: most calls neither load nor decide anything
        if self._due():
            in_loop = _in_event_loop()
            if in_loop:
                self._submit(self._load_in_thread)
                if not self.loaded:
                    return []
            else:
                self.load()
        if not self.specs:
            return []
        decisions = []
        oldest = timezone.now() - timedelta(seconds=settings.ALERT_MAX_SAMPLE_AGE_SECONDS)
        for item in live:
            rule_ids = self.rules_for(item)
            if not rule_ids:
                continue
            for rule_id in rule_ids:
                spec = self.specs.get(rule_id)
                if spec is None:
                    continue
                rt = self.runtimes.get((rule_id, item.channel_id))
                if rt is None:
                    rt = self.runtimes[(rule_id, item.channel_id)] = Runtime(rule_id, item.channel_id, item.device_pk)
                rt.device_pk = item.device_pk
                decision = evaluate(spec, rt, item, self.zone, oldest)
                if decision is not None:
                    rt.busy = True
                    decisions.append(decision)
                    if in_loop is None:
                        in_loop = _in_event_loop()
                    if not in_loop:
                        # Sync callers (batch) commit at once: the next sample sees the new state.
                        self.commit([decision])
        if decisions and in_loop:
            self._submit(self._commit_in_thread, decisions)
        return decisions

    def commit(self, decisions: list[Decision]) -> None:
        from alerts import services

        for decision in decisions:
            rt = decision.runtime
            try:
                state = services.commit_transition(
                    rule_id=rt.rule_id,
                    channel_id=rt.channel_id,
                    device_id=rt.device_pk,
                    expected_version=rt.version,
                    action=decision.action,
                    ts=decision.ts,
                    value=decision.value,
                    details=decision.details,
                )
            except Exception:
                # Alerting must never break ingestion: the next sample tries again.
                log.exception("alert transition failed", extra={"event": "alert_transition_failed"})
                rt.busy = False
                continue
            if state is not None:
                # Won or lost the race: either way adopt what the database says.
                rt.active, rt.since, rt.version = state.active, state.since, state.version
            rt.pending_since = None
            rt.busy = False

    # -- the background thread (async callers) ---------------------------------
    def _submit(self, fn, *args) -> None:
        if fn == self._load_in_thread:
            if self.loading:
                return
            self.loading = True
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alerts-db")
        self._executor.submit(fn, *args)

    def _load_in_thread(self) -> None:
        close_old_connections()
        try:
            self.load()
        except Exception as exc:
            self.load_failed(exc)
        else:
            self.failed_loads = 0
        finally:
            self.loading = False

    def load_failed(self, exc: Exception) -> None:
        """Keep the rules in memory, try again after a pause, log once per pause (no traceback per sample)."""
        self.failed_loads += 1
        self.retry_at = time.monotonic() + LOAD_RETRY_SECONDS
        log.warning(
            "alert rules could not be loaded (%d time(s) in a row, next try in %.0f s): %s",
            self.failed_loads,
            LOAD_RETRY_SECONDS,
            type(exc).__name__,
            extra={"event": "alert_rules_load_failed"},
        )

    def _commit_in_thread(self, decisions) -> None:
        close_old_connections()
        self.commit(decisions)

    def drain(self) -> None:
        """Wait for the background thread's queued work (tests, shutdown)."""
        if self._executor is not None:
            self._executor.submit(lambda: None).result(timeout=30)


def _in_event_loop() -> bool:
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


engine = Engine()


def observe_samples(live: list[LiveSample]) -> None:
    """Evaluate the power rules of these samples' channels."""
    if live:
        engine.observe(live)


def reset() -> None:
    """A fresh engine (tests; a process that wants to forget everything)."""
    global engine
    engine = Engine()
