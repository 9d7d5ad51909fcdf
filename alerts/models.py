"""Alert rules, their per-channel state, the events they produce and where they are sent (SPEC §8)."""

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from collector.models import Channel, Device


class Kind(models.TextChoices):
    HIGH_POWER = "high_power", _("High power")
    LOW_POWER = "low_power", _("Low power while running")
    LONG_CYCLE = "long_cycle", _("Run too long")
    NO_CYCLE = "no_cycle", _("No run started")
    DEVICE_OFFLINE = "device_offline", _("Device offline")


POWER_KINDS = {Kind.HIGH_POWER, Kind.LOW_POWER}
TIME_KINDS = {Kind.LONG_CYCLE, Kind.NO_CYCLE, Kind.DEVICE_OFFLINE}


def notifier_kind_choices():
    # The registry is the one list of kinds: the model takes its choices from it.
    from alerts.notifiers import kind_choices

    return kind_choices()


class Notifier(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)
    kind = models.CharField(_("kind"), max_length=30, choices=notifier_kind_choices)
    enabled = models.BooleanField(_("enabled"), default=True)
    config = models.JSONField(
        _("configuration"), default=dict, blank=True, help_text=_("Per kind; the admin form lists the keys.")
    )
    pulse_seconds = models.PositiveSmallIntegerField(
        _("pulse length (s)"),
        default=15,
        validators=[MinValueValidator(10), MaxValueValidator(20)],
        help_text=_("HomeKit kinds: ON, then OFF after this many seconds."),
    )
    from_environment = models.BooleanField(_("created from the environment"), default=False, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("notifier")
        verbose_name_plural = _("notifiers")
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.get_kind_display()})"

    def clean(self):
        from alerts.notifiers import get_kind

        try:
            kind = get_kind(self.kind)
        except KeyError:
            raise ValidationError({"kind": _("Unknown notifier kind.")}) from None
        if not isinstance(self.config, dict):
            raise ValidationError({"config": _("The configuration must be a JSON object.")})
        errors = kind.validate(self.config)
        if errors:
            raise ValidationError({"config": [f"{key}: {message}" for key, message in errors.items()]})


class AlertRule(models.Model):
    name = models.CharField(_("name"), max_length=100)
    slug = models.SlugField(_("slug"), max_length=100, unique=True, help_text=_("Used by the state endpoint URL."))
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices, default=Kind.HIGH_POWER)
    enabled = models.BooleanField(_("enabled"), default=True)
    channel = models.ForeignKey(
        Channel, on_delete=models.CASCADE, null=True, blank=True, related_name="+", verbose_name=_("channel")
    )
    device = models.ForeignKey(
        Device,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("device"),
        help_text=_("A device rule on a 3EM uses its total; neither channel nor device: every channel."),
    )
    threshold = models.FloatField(
        _("threshold"),
        validators=[MinValueValidator(0)],
        help_text=_("W for power kinds; minutes for run too long, no run started and device offline."),
    )
    clear_threshold = models.FloatField(
        _("clear threshold"),
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        # xgettext:no-python-format
        help_text=_("Power kinds: recovery level (default 90 % of the threshold for high power, 110 % for low)."),
    )
    sustain_s = models.PositiveIntegerField(_("sustain (s)"), default=120)
    min_firing_s = models.PositiveIntegerField(_("minimum firing time (s)"), default=60)
    cooldown_s = models.PositiveIntegerField(_("cooldown (s)"), default=900)
    windows = models.JSONField(
        _("active windows"),
        default=list,
        blank=True,
        help_text=_(
            'Empty: always. Else a list of {"days": [0-6, Monday=0], "start": "22:00", "end": "06:00", '
            '"threshold": optional} in the site time zone; an end before the start crosses midnight.'
        ),
    )
    evaluate_past = models.BooleanField(
        _("evaluate replayed old samples"),
        default=False,
        help_text=_("Off: a batch replaying old data does not fire alerts for the past."),
    )
    notifiers = models.ManyToManyField(Notifier, blank=True, related_name="rules", verbose_name=_("notifiers"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("alert rule")
        verbose_name_plural = _("alert rules")
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        from alerts.windows import WindowError, parse_windows

        if self.channel_id and self.device_id:
            raise ValidationError(_("Choose a channel or a device, not both."))
        try:
            parse_windows(self.windows)
        except WindowError as error:
            raise ValidationError({"windows": str(error)}) from None
        if self.kind == Kind.HIGH_POWER and self.clear_threshold is not None and self.clear_threshold > self.threshold:
            raise ValidationError({"clear_threshold": _("For high power the clear threshold must not exceed it.")})
        if self.kind == Kind.LOW_POWER and self.clear_threshold is not None and self.clear_threshold < self.threshold:
            raise ValidationError({"clear_threshold": _("For low power the clear threshold must not be below it.")})
        if self.kind in TIME_KINDS and self.threshold <= 0:
            raise ValidationError({"threshold": _("A number of minutes greater than zero.")})


class AlertState(models.Model):
    """One rule on one subject (a channel, or a device for `device_offline`); `version` guards transitions."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="states", verbose_name=_("rule"))
    channel = models.ForeignKey(
        Channel, on_delete=models.CASCADE, null=True, blank=True, related_name="+", verbose_name=_("channel")
    )
    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, null=True, blank=True, related_name="+", verbose_name=_("device")
    )
    subject = models.CharField(_("subject"), max_length=40)  # "ch:<pk>" or "dev:<pk>": unique with the rule
    active = models.BooleanField(_("active"), default=False)
    since = models.DateTimeField(_("active since"), null=True, blank=True)
    value = models.FloatField(_("value"), null=True, blank=True)
    last_triggered_at = models.DateTimeField(_("last triggered"), null=True, blank=True)
    last_cleared_at = models.DateTimeField(_("last cleared"), null=True, blank=True)
    cooldown_until = models.DateTimeField(_("cooldown until"), null=True, blank=True)
    version = models.PositiveBigIntegerField(_("version"), default=0)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)

    class Meta:
        verbose_name = _("alert state")
        verbose_name_plural = _("alert states")
        constraints = [models.UniqueConstraint(fields=["rule", "subject"], name="alert_state_rule_subject")]

    def __str__(self):
        return f"{self.rule} / {self.subject}"


class AlertEvent(models.Model):
    class Action(models.TextChoices):
        FIRED = "fired", _("fired")
        CLEARED = "cleared", _("cleared")

    ts = models.DateTimeField(_("time"), db_index=True)
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="events", verbose_name=_("rule"))
    state = models.ForeignKey(AlertState, on_delete=models.CASCADE, related_name="events", verbose_name=_("state"))
    channel = models.ForeignKey(
        Channel, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("channel")
    )
    device = models.ForeignKey(
        Device, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("device")
    )
    action = models.CharField(_("action"), max_length=10, choices=Action.choices)
    value = models.FloatField(_("value"), null=True, blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True)
    notified = models.BooleanField(
        _("notified"), default=False, help_text=_("False when inside the cooldown or for a clear.")
    )
    state_version = models.PositiveBigIntegerField(_("state version"))

    class Meta:
        verbose_name = _("alert event")
        verbose_name_plural = _("alert events")
        ordering = ["-ts", "-id"]
        # The transition that created it: one event per state version, whoever wins the race.
        constraints = [models.UniqueConstraint(fields=["state", "state_version"], name="alert_event_one_per_version")]

    def __str__(self):
        return f"{self.rule} {self.action} {self.ts:%Y-%m-%d %H:%M}"


class Delivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        SENDING = "sending", _("sending")
        OK = "ok", _("delivered")
        FAILED = "failed", _("failed")

    class Step(models.TextChoices):
        ON = "on", _("on")
        OFF = "off", _("off")
        CLEAR = "clear", _("clear")

    event = models.ForeignKey(
        AlertEvent, on_delete=models.CASCADE, null=True, blank=True, related_name="deliveries", verbose_name=_("event")
    )
    notifier = models.ForeignKey(
        Notifier, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("notifier")
    )
    step = models.CharField(_("step"), max_length=10, choices=Step.choices, default=Step.ON)
    is_test = models.BooleanField(_("test"), default=False)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    status_code = models.IntegerField(_("last status code"), null=True, blank=True)
    detail = models.TextField(_("detail"), blank=True)
    due_at = models.DateTimeField(_("due at"), default=timezone.now)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    # When a worker claimed it: a claim older than any send can take means its worker died.
    claimed_at = models.DateTimeField(_("claimed at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.notifier} {self.step} {self.status}"
