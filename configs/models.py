"""Pump models, SCD2 channel configs, emission factors, tariffs and cycle impacts (§7)."""

import math

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from collector.models import Channel, Cycle, Device

# Physical ranges of the numbers a plant operator enters (issue 9): far beyond
# any real pump or effluent, close enough that sums over years of cycles stay
# finite (a flow of 1e308 m³/h made /cycles and /impact fail for everyone).
# On the model, so the admin, the API and the services refuse the same values.
MAX_POWER_W = 1e6
MAX_FLOW_M3H = 1e5
MAX_CONCENTRATION_MG_L = 1e6  # 1e6 mg/L is pure substance
MAX_B0 = 10.0
MAX_GWP = 1e5
MAX_GRID_FACTOR = 10.0


def validate_finite(value):
    # NaN passes both range checks (every comparison with it is false).
    if value is not None and not math.isfinite(value):
        raise ValidationError(_("Enter a finite number."), code="not_finite")


def physical_range(maximum):
    return [validate_finite, MinValueValidator(0.0), MaxValueValidator(maximum)]


class TreatmentType(models.TextChoices):
    """Treatment types with an IPCC methane correction factor (MCF), see DEFAULT_MCF."""

    SEPTIC = "septic", _("Septic system")
    WETLAND_VERTICAL = "wetland_vertical", _("Constructed wetland, vertical subsurface flow")
    WETLAND_HORIZONTAL = "wetland_horizontal", _("Constructed wetland, horizontal subsurface flow")
    WETLAND_SURFACE = "wetland_surface", _("Constructed wetland, surface flow")
    AEROBIC_PLANT = "aerobic_plant", _("Centralised aerobic plant")
    AERATED_LAGOON = "aerated_lagoon", _("Aerated lagoon")
    TRICKLING_FILTER = "trickling_filter", _("Trickling filter")
    FACULTATIVE_LAGOON = "facultative_lagoon", _("Facultative lagoon")
    ANAEROBIC_DEEP = "anaerobic_deep", _("Anaerobic reactor or deep lagoon")


# IPCC 2019 Refinement Vol. 5 Ch. 6 Table 6.3 and the 2013 Wetlands
# Supplement (Ch. 6), as listed in SPEC §7; see README "Impact defaults".
DEFAULT_MCF = {
    TreatmentType.SEPTIC: 0.5,
    TreatmentType.WETLAND_VERTICAL: 0.01,
    TreatmentType.WETLAND_HORIZONTAL: 0.1,
    TreatmentType.WETLAND_SURFACE: 0.4,
    TreatmentType.AEROBIC_PLANT: 0.03,
    TreatmentType.AERATED_LAGOON: 0.1,
    TreatmentType.TRICKLING_FILTER: 0.06,
    TreatmentType.FACULTATIVE_LAGOON: 0.2,
    TreatmentType.ANAEROBIC_DEEP: 0.8,
}
DEFAULT_MCF_SOURCE = (
    "IPCC 2019 Refinement to the 2006 Guidelines, Vol. 5 Ch. 6, Table 6.3; "
    "IPCC 2013 Wetlands Supplement, Ch. 6 (constructed wetlands)"
)


def default_mcf_values():
    return {str(k): v for k, v in DEFAULT_MCF.items()}


class PumpModel(models.Model):
    name = models.CharField(_("name"), max_length=200)
    maker = models.CharField(_("maker"), max_length=200, blank=True)
    nominal_power_w = models.FloatField(
        _("nominal power (W)"), null=True, blank=True, validators=physical_range(MAX_POWER_W)
    )
    nominal_flow_m3h = models.FloatField(
        _("nominal flow (m³/h)"), null=True, blank=True, validators=physical_range(MAX_FLOW_M3H)
    )
    notes = models.TextField(_("notes"), blank=True)

    class Meta:
        ordering = ["maker", "name"]
        verbose_name = _("pump model")
        verbose_name_plural = _("pump models")

    def __str__(self):
        return f"{self.maker} {self.name}".strip()


class ChannelConfigVersion(models.Model):
    """One version of a channel's process configuration (SCD type 2).

    Versions of a channel never overlap and at most one is open
    (`effective_to` null). Never edited: `configs.services.open_new_config_version`
    closes the current version and opens the next in one transaction. On
    PostgreSQL an exclusion constraint (migration 0002) also refuses overlaps.
    """

    channel = models.ForeignKey(
        Channel, on_delete=models.CASCADE, related_name="config_versions", verbose_name=_("channel")
    )
    effective_from = models.DateTimeField(_("effective from"))
    effective_to = models.DateTimeField(_("effective to"), null=True, blank=True, help_text=_("Empty: current."))
    pump_model = models.ForeignKey(
        PumpModel, on_delete=models.PROTECT, null=True, blank=True, verbose_name=_("pump model")
    )
    flow_m3h = models.FloatField(_("flow rate (m³/h)"), validators=physical_range(MAX_FLOW_M3H))
    bod5_mg_l = models.FloatField(
        _("BOD5 (mg/L)"), null=True, blank=True, validators=physical_range(MAX_CONCENTRATION_MG_L)
    )
    cod_mg_l = models.FloatField(
        _("COD (mg/L)"), null=True, blank=True, validators=physical_range(MAX_CONCENTRATION_MG_L)
    )
    tss_mg_l = models.FloatField(
        _("TSS (mg/L)"), null=True, blank=True, validators=physical_range(MAX_CONCENTRATION_MG_L)
    )
    baseline_treatment = models.CharField(
        _("baseline treatment (MCF)"), max_length=30, choices=TreatmentType.choices, default=TreatmentType.SEPTIC
    )
    system_treatment = models.CharField(
        _("system treatment (MCF)"),
        max_length=30,
        choices=TreatmentType.choices,
        default=TreatmentType.WETLAND_VERTICAL,
    )
    note = models.TextField(_("note"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        ordering = ["channel_id", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel"], condition=Q(effective_to__isnull=True), name="ccv_one_open_version_per_channel"
            ),
            models.UniqueConstraint(fields=["channel", "effective_from"], name="ccv_unique_start_per_channel"),
            models.CheckConstraint(
                condition=Q(effective_to__isnull=True) | Q(effective_to__gt=models.F("effective_from")),
                name="ccv_ends_after_start",
            ),
            models.CheckConstraint(condition=Q(flow_m3h__gte=0), name="ccv_flow_not_negative"),
        ]
        indexes = [models.Index(fields=["channel", "effective_from"], name="ccv_channel_from_idx")]
        verbose_name = _("channel config version")
        verbose_name_plural = _("channel config versions")

    def __str__(self):
        until = self.effective_to.isoformat() if self.effective_to else _("now")
        return f"{self.channel} {self.effective_from.isoformat()} → {until}"


class ChannelConfig(Channel):
    """Admin entry point: "editing" a channel's config opens a new version."""

    class Meta:
        proxy = True
        verbose_name = _("channel configuration")
        verbose_name_plural = _("channel configurations")


class B0Basis(models.TextChoices):
    BOD = "bod", _("BOD5 (kg CH₄ / kg BOD)")
    COD = "cod", _("COD (kg CH₄ / kg COD)")


class EmissionFactorSet(models.Model):
    """Factors for the impact of a cycle, each with its source, valid over a time range."""

    name = models.CharField(_("name"), max_length=200)
    valid_from = models.DateTimeField(_("valid from"))
    valid_to = models.DateTimeField(_("valid to"), null=True, blank=True)
    b0_basis = models.CharField(_("B0 basis"), max_length=3, choices=B0Basis.choices, default=B0Basis.BOD)
    b0_bod = models.FloatField(_("B0 (kg CH₄/kg BOD)"), default=0.6, validators=physical_range(MAX_B0))
    b0_bod_source = models.CharField(
        _("source of B0 (BOD)"), max_length=300, default="IPCC 2006 Vol. 5 Ch. 6 Table 6.2 (2019 Refinement)"
    )
    b0_cod = models.FloatField(_("B0 (kg CH₄/kg COD)"), default=0.25, validators=physical_range(MAX_B0))
    b0_cod_source = models.CharField(
        _("source of B0 (COD)"), max_length=300, default="IPCC 2006 Vol. 5 Ch. 6 Table 6.2 (2019 Refinement)"
    )
    gwp_ch4 = models.FloatField(
        _("GWP CH₄ (100 y)"),
        default=27.0,
        help_text=_("AR6 non-fossil 27.0; AR5 28."),
        validators=physical_range(MAX_GWP),
    )
    gwp_ch4_source = models.CharField(
        _("source of the GWP"), max_length=300, default="IPCC AR6 WG1 Ch. 7 Table 7.15 (non-fossil CH₄)"
    )
    mcf_values = models.JSONField(_("MCF by treatment type"), default=default_mcf_values)
    mcf_source = models.CharField(_("source of the MCF values"), max_length=300, default=DEFAULT_MCF_SOURCE)
    grid_factor_kg_per_kwh = models.FloatField(
        _("grid factor (kg CO₂e/kWh)"),
        null=True,
        blank=True,
        help_text=_("No built-in default: enter the site's value and its source. Empty = not configured."),
        validators=physical_range(MAX_GRID_FACTOR),
    )
    grid_factor_source = models.CharField(
        _("source of the grid factor"),
        max_length=300,
        blank=True,
        help_text=_("e.g. your electricity supplier's or your country's published factor, with its year."),
    )
    is_example = models.BooleanField(
        _("example values"), default=False, help_text=_("Demo data, not a real site value.")
    )
    note = models.TextField(_("note"), blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        ordering = ["-valid_from"]
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gt=models.F("valid_from")),
                name="efs_ends_after_start",
            )
        ]
        verbose_name = _("emission factor set")
        verbose_name_plural = _("emission factor sets")

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        for value_field, source_field in (
            ("b0_bod", "b0_bod_source"),
            ("b0_cod", "b0_cod_source"),
            ("gwp_ch4", "gwp_ch4_source"),
            ("mcf_values", "mcf_source"),
            ("grid_factor_kg_per_kwh", "grid_factor_source"),
        ):
            if getattr(self, value_field) is not None and not getattr(self, source_field).strip():
                errors[source_field] = _("Every factor needs its source: say where the value comes from.")
        unknown = set(self.mcf_values or {}) - set(TreatmentType.values)
        bad = [k for k, v in (self.mcf_values or {}).items() if not isinstance(v, int | float) or not 0 <= v <= 1]
        if unknown or bad or not isinstance(self.mcf_values, dict):
            errors["mcf_values"] = _("Methane correction factors: a number between 0 and 1 for each of %(types)s.") % {
                "types": ", ".join(TreatmentType.values)
            }
        if errors:
            raise ValidationError(errors)

    def mcf(self, treatment: str) -> float:
        return float(self.mcf_values.get(treatment, DEFAULT_MCF[TreatmentType(treatment)]))


class Tariff(models.Model):
    name = models.CharField(_("name"), max_length=200)
    currency = models.CharField(_("currency"), max_length=3, default="EUR")
    valid_from = models.DateTimeField(_("valid from"), null=True, blank=True)
    valid_to = models.DateTimeField(_("valid to"), null=True, blank=True)
    rules = models.JSONField(
        _("rules"),
        help_text=_(
            'e.g. {"standing_charge_per_day": 0.5, "periods": [{"name": "peak", "days": "weekday", '
            '"start": "07:00", "end": "23:00", "price_per_kwh": 0.27}, ...]}; days: all, weekday, weekend '
            "or a list of 0–6 (Monday = 0); times in the site time zone; every minute of the week must be "
            "covered exactly once."
        ),
    )
    is_site_default = models.BooleanField(_("site default"), default=False)
    note = models.TextField(_("note"), blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("tariff")
        verbose_name_plural = _("tariffs")

    def __str__(self):
        return self.name

    def clean(self):
        from configs.tariffs import parse_tariff_rules

        if self.rules is not None:  # None: the field's own check says so
            try:
                parse_tariff_rules(self.rules)
            except ValidationError as error:
                raise ValidationError({"rules": error.messages}) from None
        if self.valid_from and self.valid_to and self.valid_to <= self.valid_from:
            raise ValidationError({"valid_to": _("“Valid to” must be after “valid from”.")})

    def is_valid_at(self, moment) -> bool:
        return (self.valid_from is None or self.valid_from <= moment) and (
            self.valid_to is None or moment < self.valid_to
        )


class TariffAssignment(models.Model):
    """A device's or channel's tariff; a channel's beats its device's, which beats the site default."""

    tariff = models.ForeignKey(Tariff, on_delete=models.CASCADE, related_name="assignments", verbose_name=_("tariff"))
    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, null=True, blank=True, related_name="+", verbose_name=_("device")
    )
    channel = models.ForeignKey(
        Channel, on_delete=models.CASCADE, null=True, blank=True, related_name="+", verbose_name=_("channel")
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(device__isnull=True, channel__isnull=False) | Q(device__isnull=False, channel__isnull=True),
                name="tariffassignment_device_xor_channel",
            ),
            models.UniqueConstraint(fields=["tariff", "device"], name="tariffassignment_unique_device"),
            models.UniqueConstraint(fields=["tariff", "channel"], name="tariffassignment_unique_channel"),
        ]
        verbose_name = _("tariff assignment")
        verbose_name_plural = _("tariff assignments")

    def __str__(self):
        return f"{self.tariff} → {self.channel or self.device}"


class CycleImpact(models.Model):
    """Impact and cost of one part of a cycle: the part under one config version."""

    cycle = models.ForeignKey(Cycle, on_delete=models.CASCADE, related_name="impacts", verbose_name=_("cycle"))
    # for period totals
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="+", verbose_name=_("channel"))
    config_version = models.ForeignKey(
        ChannelConfigVersion, on_delete=models.SET_NULL, null=True, related_name="+", verbose_name=_("config version")
    )
    factor_set = models.ForeignKey(
        EmissionFactorSet, on_delete=models.SET_NULL, null=True, related_name="+", verbose_name=_("emission factors")
    )
    tariff = models.ForeignKey(Tariff, on_delete=models.SET_NULL, null=True, related_name="+", verbose_name=_("tariff"))
    starts_at = models.DateTimeField(_("starts at"))
    ends_at = models.DateTimeField(_("ends at"))
    duration_s = models.FloatField(_("duration (s)"))
    # Copied from the cycle so period totals need no join: 1 on a cycle's
    # first part (counts the cycle once), and its noise flag.
    cycle_count = models.PositiveSmallIntegerField(_("counts the cycle"), default=1)
    is_noise = models.BooleanField(_("noise"), default=False)
    energy_kwh = models.FloatField(_("energy (kWh)"), null=True)
    volume_m3 = models.FloatField(_("volume (m³)"), null=True)
    bod5_kg = models.FloatField(_("BOD5 load (kg)"), null=True)
    cod_kg = models.FloatField(_("COD load (kg)"), null=True)
    tss_kg = models.FloatField(_("TSS load (kg)"), null=True)
    electricity_co2e_kg = models.FloatField(
        _("electricity CO₂e (kg)"), null=True, help_text=_("Empty: grid factor not configured.")
    )
    avoided_ch4_kg = models.FloatField(_("avoided CH₄ (kg)"), null=True)
    avoided_co2e_kg = models.FloatField(_("avoided CO₂e (kg)"), null=True)
    net_co2e_kg = models.FloatField(_("net CO₂e (kg)"), null=True, help_text=_("Empty: grid factor not configured."))
    energy_cost = models.FloatField(_("energy cost"), null=True)
    currency = models.CharField(_("currency"), max_length=3, blank=True)
    computed_at = models.DateTimeField(_("computed at"), default=timezone.now)

    class Meta:
        ordering = ["cycle_id", "starts_at"]
        indexes = [models.Index(fields=["channel", "starts_at"], name="cycleimpact_channel_start_idx")]
        verbose_name = _("cycle impact")
        verbose_name_plural = _("cycle impacts")
