import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Transport(models.TextChoices):
    WEBSOCKET = "websocket", _("Outbound WebSocket")
    RPC_POLL = "rpc_poll", _("Local RPC polling")
    BATCH = "batch", _("HTTP batch relay")


class Device(models.Model):
    device_id = models.CharField(
        _("Shelly id"),
        max_length=100,
        unique=True,
        help_text=_("As the device reports it (src), e.g. shellypro4pm-a8032ab12345."),
    )
    name = models.CharField(_("name"), max_length=200, blank=True)
    model = models.CharField(_("model"), max_length=50, blank=True)
    generation = models.PositiveSmallIntegerField(_("generation"), null=True, blank=True)
    mac = models.CharField(_("MAC"), max_length=20, blank=True)
    firmware = models.CharField(_("firmware"), max_length=100, blank=True)
    app = models.CharField(_("application"), max_length=50, blank=True)
    profile = models.CharField(_("profile"), max_length=30, blank=True, help_text=_("e.g. triphase or monophase."))
    transport = models.CharField(_("reached by"), max_length=20, choices=Transport.choices, default=Transport.WEBSOCKET)
    host = models.CharField(_("host"), max_length=200, blank=True, help_text=_("Host or IP for RPC polling."))
    password = models.CharField(
        _("device password"),
        max_length=200,
        blank=True,
        help_text=_("Only when the device has authentication enabled."),
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    auto_registered = models.BooleanField(
        _("registered automatically"), default=False, help_text=_("Created when it first connected with a token.")
    )
    last_seen = models.DateTimeField(_("last seen"), null=True, blank=True)
    # Polling health (RPC meters); shown in admin and /healthz.
    last_live_poll_at = models.DateTimeField(_("last live poll"), null=True, blank=True)
    last_interval_end = models.DateTimeField(
        _("last interval end"), null=True, blank=True, help_text=_("Cursor: end of the last energy interval stored.")
    )
    last_interval_pull_at = models.DateTimeField(_("last interval pull"), null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(_("failures in a row"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    last_error_at = models.DateTimeField(_("last error at"), null=True, blank=True)
    info_fetched_at = models.DateTimeField(_("device info read at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["device_id"]
        verbose_name = _("device")
        verbose_name_plural = _("devices")

    def __str__(self):
        return self.name or self.device_id


class WritePolicy(models.TextChoices):
    EVERY = "every", _("every sample")
    THROTTLE = "throttle", _("throttle (one active sample per interval)")
    ACTIVITY = "activity", _("activity (one per minute, gap fill)")
    EVENTS = "events", _("events (start / delta / sample / stop)")


# A channel without its own threshold gets its policy's (SPEC §5 table).
DEFAULT_THRESHOLD_W = {WritePolicy.ACTIVITY: 5.0}


class Channel(models.Model):
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="channels", verbose_name=_("device"))
    key = models.CharField(_("key"), max_length=30, help_text=_("switch:N, pm1:N, em1:N, em:N:a|b|c|total"))
    name = models.CharField(_("name"), max_length=200, blank=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    policy = models.CharField(_("write policy"), max_length=20, choices=WritePolicy.choices, default=WritePolicy.EVENTS)
    threshold_w = models.FloatField(
        _("activity threshold (W)"),
        null=True,
        blank=True,
        default=None,
        help_text=_("Empty: 5 W under the activity policy, 10 W under the others."),
    )
    stop_timeout_s = models.PositiveIntegerField(_("stop timeout (s)"), default=120)
    interval_s = models.PositiveIntegerField(_("throttle interval (s)"), default=60)
    delta_w = models.FloatField(_("delta (W)"), default=10.0)
    sample_minutes = models.PositiveSmallIntegerField(_("sample every N minutes"), default=5)
    fill_max_minutes = models.PositiveSmallIntegerField(_("fill at most N minutes"), default=10)
    gap_threshold_s = models.PositiveIntegerField(_("cycle gap threshold (s)"), default=240)
    min_cycle_s = models.PositiveIntegerField(_("minimum cycle (s)"), default=120)
    max_power_w = models.FloatField(_("maximum plausible power (W)"), default=25000.0)
    # Set by the retention job before it deletes raw rows: readers take what
    # lies before it from the 1-minute rollups, and cycle rebuilds leave the
    # cycles that started before it alone (their rows are gone).
    raw_kept_from = models.DateTimeField(
        _("raw rows kept from"),
        null=True,
        blank=True,
        editable=False,
        help_text=_("Older raw rows were deleted by retention; charts read the 1-minute rollups before this."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["device__device_id", "key"]
        constraints = [models.UniqueConstraint(fields=["device", "key"], name="channel_unique_key_per_device")]
        verbose_name = _("channel")
        verbose_name_plural = _("channels")

    def __str__(self):
        return self.name or f"{self.device.device_id} {self.key}"

    @property
    def effective_threshold_w(self) -> float:
        """The channel's own threshold, else its policy's default (SPEC §5: `activity` 5 W)."""
        if self.threshold_w is not None:
            return self.threshold_w
        return DEFAULT_THRESHOLD_W.get(self.policy, 10.0)

    @property
    def effective_gap_threshold_s(self):
        """Gap that splits cycles; for `events` it must exceed sample interval + stop timeout."""
        if self.policy == WritePolicy.EVENTS:
            return max(self.gap_threshold_s, self.sample_minutes * 60 + self.stop_timeout_s + 60)
        return self.gap_threshold_s


class ChannelState(models.Model):
    """The pipeline's per-channel memory (§5), persisted so it survives restarts.

    `run_seq` changes on every start and stop; every write of the state is
    conditional on it, so two processes never both close (or start) a run.
    """

    channel = models.OneToOneField(
        Channel, on_delete=models.CASCADE, primary_key=True, related_name="state", verbose_name=_("channel")
    )
    running = models.BooleanField(_("running"), default=False)
    run_seq = models.PositiveBigIntegerField(_("run sequence"), default=0)
    run_started_at = models.DateTimeField(_("run started at"), null=True, blank=True)
    last_active_at = models.DateTimeField(_("last active sample at"), null=True, blank=True)
    last_active_values = models.JSONField(_("last active values"), default=dict, blank=True)
    first_inactive_at = models.DateTimeField(_("first inactive sample at"), null=True, blank=True)
    first_inactive_values = models.JSONField(_("first inactive values"), default=dict, blank=True)
    last_sample_at = models.DateTimeField(_("last sample at"), null=True, blank=True)
    last_values = models.JSONField(_("last values"), default=dict, blank=True)
    last_row_at = models.DateTimeField(_("last row at"), null=True, blank=True)
    last_row_power_w = models.FloatField(_("last row power (W)"), null=True, blank=True)
    last_run_ended_at = models.DateTimeField(_("last run ended at"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["running", "last_active_at"], name="chstate_running_idx")]
        verbose_name = _("channel state")
        verbose_name_plural = _("channel states")

    def __str__(self):
        return f"{self.channel} ({_('running') if self.running else _('idle')})"


class PowerLog(models.Model):
    class Reason(models.TextChoices):
        START = "start", _("start")
        DELTA = "delta", _("delta")
        SAMPLE = "sample", _("sample")
        FILL = "fill", _("fill")
        STOP = "stop", _("stop")
        # Taken over from an earlier collector (`manage.py import_history`).
        IMPORTED = "imported", _("imported")

    timestamp = models.DateTimeField(_("timestamp"))
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="+", verbose_name=_("device"))
    # No index of its own: powerlog_channel_ts_idx starts with the channel
    # (a second one cost 24 MiB per channel-year of 10 s rows, bench/retention.py).
    channel = models.ForeignKey(
        Channel, on_delete=models.CASCADE, related_name="power_logs", verbose_name=_("channel"), db_index=False
    )
    apower_w = models.FloatField(_("power (W)"))
    voltage_v = models.FloatField(_("voltage (V)"), null=True, blank=True)
    current_a = models.FloatField(_("current (A)"), null=True, blank=True)
    energy_total_wh = models.FloatField(_("energy total (Wh)"), null=True, blank=True)
    reason = models.CharField(_("reason"), max_length=10, choices=Reason.choices)
    idempotency_key = models.CharField(_("idempotency key"), max_length=400, null=True, blank=True)
    created_at = models.DateTimeField(_("stored at"), default=timezone.now)

    class Meta:
        ordering = ["timestamp", "id"]
        indexes = [
            models.Index(fields=["channel", "timestamp"], name="powerlog_channel_ts_idx"),
            models.Index(fields=["timestamp"], name="powerlog_ts_idx"),
        ]
        constraints = [
            # Partial: only rows that carry a key take part, so two racing
            # batch requests can never store the same reading twice.
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="powerlog_unique_idempotency_key",
            )
        ]
        verbose_name = _("power log")
        verbose_name_plural = _("power logs")

    def __str__(self):
        return f"{self.timestamp:%Y-%m-%d %H:%M:%S} {self.channel_id} {self.apower_w} W {self.reason}"


class PowerRollup(models.Model):
    """One minute of one channel, recomputed from its raw rows (collector/rollups.py)."""

    # Indexed by the unique (channel, minute) pair.
    channel = models.ForeignKey(
        Channel, on_delete=models.CASCADE, related_name="+", verbose_name=_("channel"), db_index=False
    )
    minute = models.DateTimeField(_("minute"))
    samples = models.PositiveIntegerField(_("samples"))
    avg_power_w = models.FloatField(_("average power (W)"))
    min_power_w = models.FloatField(_("minimum power (W)"))
    max_power_w = models.FloatField(_("maximum power (W)"))
    avg_voltage_v = models.FloatField(_("average voltage (V)"), null=True, blank=True)
    avg_current_a = models.FloatField(_("average current (A)"), null=True, blank=True)
    last_energy_total_wh = models.FloatField(_("last energy total (Wh)"), null=True, blank=True)

    class Meta:
        ordering = ["minute", "channel_id"]
        # The unique pair is the upsert target and serves per-channel ranges
        # and the retention delete (why no BRIN index: docs/storage.md).
        constraints = [models.UniqueConstraint(fields=["channel", "minute"], name="powerrollup_unique_minute")]
        verbose_name = _("power rollup")
        verbose_name_plural = _("power rollups")


class RollupPending(models.Model):
    """A minute whose rollup must be recomputed: filled by a database trigger on PowerLog.

    `version` grows on every new row of the minute, so the rollup job only
    removes the mark it has read: a row that lands while it recomputes leaves
    the minute marked for the next pass.
    """

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="+", db_index=False)
    minute = models.DateTimeField()
    version = models.PositiveBigIntegerField(default=1)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["channel", "minute"], name="rolluppending_unique_minute")]


class EnergyInterval(models.Model):
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="+", verbose_name=_("device"))
    channel = models.ForeignKey(
        Channel, on_delete=models.CASCADE, related_name="energy_intervals", verbose_name=_("channel")
    )
    start = models.DateTimeField(_("start"))
    end = models.DateTimeField(_("end"))
    energy_wh = models.FloatField(_("energy (Wh)"))
    returned_energy_wh = models.FloatField(_("returned energy (Wh)"), default=0.0)
    avg_power_w = models.FloatField(_("average power (W)"), null=True, blank=True)
    meta = models.JSONField(_("other columns"), default=dict, blank=True)
    created_at = models.DateTimeField(_("stored at"), default=timezone.now)

    class Meta:
        ordering = ["start", "channel_id"]
        constraints = [
            models.UniqueConstraint(fields=["device", "channel", "start", "end"], name="energyinterval_unique_span")
        ]
        indexes = [models.Index(fields=["channel", "start"], name="energyinterval_channel_start")]
        verbose_name = _("energy interval")
        verbose_name_plural = _("energy intervals")


class Cycle(models.Model):
    class EnergyMethod(models.TextChoices):
        COUNTER = "counter", _("energy counter")
        INTEGRATION = "integration", _("power integration")
        NONE = "none", _("no data")

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="cycles", verbose_name=_("channel"))
    started_at = models.DateTimeField(_("started at"))
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True, help_text=_("Empty while running."))
    duration_s = models.FloatField(_("duration (s)"), default=0.0)
    energy_wh = models.FloatField(_("energy (Wh)"), null=True, blank=True)
    energy_method = models.CharField(
        _("energy from"), max_length=15, choices=EnergyMethod.choices, default=EnergyMethod.NONE
    )
    avg_power_w = models.FloatField(_("average power (W)"), null=True, blank=True)
    peak_power_w = models.FloatField(_("peak power (W)"), null=True, blank=True)
    is_noise = models.BooleanField(
        _("noise"), default=False, help_text=_("Shorter than the channel's minimum cycle: left out of the figures.")
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)

    class Meta:
        ordering = ["-started_at"]
        constraints = [models.UniqueConstraint(fields=["channel", "started_at"], name="cycle_unique_start")]
        indexes = [
            models.Index(fields=["channel", "started_at"], name="cycle_channel_start_idx"),
            # The unfiltered cycles list (API, admin) pages newest first.
            models.Index(fields=["-started_at", "id"], name="cycle_started_idx"),
        ]
        verbose_name = _("cycle")
        verbose_name_plural = _("cycles")

    @property
    def running(self):
        return self.ended_at is None


def hash_secret(raw: str) -> str:
    # Tokens are 32 random bytes: a fast hash is enough (nothing to brute-force)
    # and lets a lookup hit the unique index directly.
    return hashlib.sha256(raw.encode()).hexdigest()


class SecretTokenQuerySet(models.QuerySet):
    def matching(self, raw):
        if not raw:
            return self.none()
        return self.filter(token_hash=hash_secret(raw), enabled=True)


class SecretToken(models.Model):
    """A secret shown once at creation and stored as its SHA-256 only."""

    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(_("prefix"), max_length=12, editable=False)
    token_hash = models.CharField(_("secret hash"), max_length=64, unique=True, editable=False)
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)

    objects = SecretTokenQuerySet.as_manager()
    token_prefix = "tok_"

    class Meta:
        abstract = True

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    def set_new_secret(self) -> str:
        raw = self.token_prefix + secrets.token_urlsafe(32)
        self.prefix = raw[:12]
        self.token_hash = hash_secret(raw)
        return raw


class IngestToken(SecretToken):
    """Secret of a device path: WebSocket URL token and batch X-API-Key."""

    device = models.ForeignKey(
        Device,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        verbose_name=_("device"),
        help_text=_("Optional: only this device may use the token."),
    )
    token_prefix = "ing_"

    class Meta:
        verbose_name = _("ingest token")
        verbose_name_plural = _("ingest tokens")


class ApiToken(SecretToken):
    """Token of an external tool for /api/v1 (`Authorization: Token …`)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        verbose_name=_("user"),
        help_text=_("Acts as this user (optional)."),
    )
    can_write = models.BooleanField(
        _("may write"), default=False, help_text=_("Allows the API endpoints that change data, e.g. config versions.")
    )
    token_prefix = "api_"

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")
