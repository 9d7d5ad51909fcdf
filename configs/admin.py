"""Admin for configs: an ops console. History is read-only; changes go through services."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from collector.cycles import rebuild_cycles
from configs.forms import EmissionFactorSetForm, TariffForm, mcf_field_name
from configs.models import (
    ChannelConfig,
    ChannelConfigVersion,
    CycleImpact,
    EmissionFactorSet,
    PumpModel,
    Tariff,
    TariffAssignment,
    TreatmentType,
)
from configs.services import ConfigVersionError, check_new_config_version, open_new_config_version

VERSION_FIELDS = (
    "pump_model",
    "flow_m3h",
    "bod5_mg_l",
    "cod_mg_l",
    "tss_mg_l",
    "baseline_treatment",
    "system_treatment",
)


@admin.register(PumpModel)
class PumpModelAdmin(admin.ModelAdmin):
    list_display = ("name", "maker", "nominal_power_w", "nominal_flow_m3h")
    search_fields = ("name", "maker")


class ConfigHistoryInline(admin.TabularInline):
    """A channel's config versions, newest first, read-only: history is never edited."""

    model = ChannelConfigVersion
    fk_name = "channel"
    extra = 0
    can_delete = False
    ordering = ("-effective_from",)
    fields = readonly_fields = (
        "effective_from",
        "effective_to",
        *VERSION_FIELDS,
        "note",
        "created_by",
        "created_at",
    )
    verbose_name_plural = _("config history (read-only)")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class NewConfigVersionForm(forms.ModelForm):
    """The fields of the next version; saving opens it through the service."""

    effective_from = forms.SplitDateTimeField(
        label=_("effective from"),
        widget=AdminSplitDateTime,
        initial=timezone.now,
        help_text=_("Now by default, or any time after the current version's start. History is never overwritten."),
    )
    pump_model = forms.ModelChoiceField(PumpModel.objects.all(), required=False, label=_("pump model"))
    flow_m3h = forms.FloatField(
        label=_("flow rate (m³/h)"), required=False, min_value=0, help_text=_("Empty: the pump model's nominal flow.")
    )
    bod5_mg_l = forms.FloatField(label=_("BOD5 (mg/L)"), required=False, min_value=0)
    cod_mg_l = forms.FloatField(label=_("COD (mg/L)"), required=False, min_value=0)
    tss_mg_l = forms.FloatField(label=_("TSS (mg/L)"), required=False, min_value=0)
    baseline_treatment = forms.ChoiceField(
        label=_("baseline treatment (MCF)"),
        choices=TreatmentType.choices,
        initial=TreatmentType.SEPTIC,
        help_text=_("What the wastewater would get without this plant."),
    )
    system_treatment = forms.ChoiceField(
        label=_("system treatment (MCF)"),
        choices=TreatmentType.choices,
        initial=TreatmentType.WETLAND_VERTICAL,
        help_text=_("What this plant does."),
    )
    note = forms.CharField(label=_("note"), widget=forms.Textarea(attrs={"rows": 2}), required=False)

    class Meta:
        model = ChannelConfig
        fields = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.current = self.instance.config_versions.filter(effective_to__isnull=True).first()
        if self.current is not None:
            for name in VERSION_FIELDS:
                self.fields[name].initial = getattr(self.current, name)

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        if self.current is not None and all(data.get(n) == getattr(self.current, n) for n in VERSION_FIELDS):
            raise ValidationError(_("Nothing changed: no new version to open."))
        if data.get("flow_m3h") is None and not (data.get("pump_model") and data["pump_model"].nominal_flow_m3h):
            self.add_error("flow_m3h", _("Enter a flow rate or choose a pump model with a nominal flow."))
        try:
            check_new_config_version(channel=self.instance, effective_from=data["effective_from"])
        except ConfigVersionError as error:
            self.add_error("effective_from", error.messages)
        return data


@admin.register(ChannelConfig)
class ChannelConfigAdmin(admin.ModelAdmin):
    """Per channel: the form opens a new config version; the history below is read-only."""

    form = NewConfigVersionForm
    inlines = [ConfigHistoryInline]
    list_display = ("__str__", "device", "key", "current_flow", "current_since")
    list_select_related = ("device",)
    search_fields = ("name", "key", "device__device_id", "device__name")
    actions = ["rebuild_cycles_action"]
    fieldsets = (
        (
            _("New config version"),
            {"fields": ("effective_from", *VERSION_FIELDS, "note")},
        ),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("config_versions")

    def _current(self, obj):
        return next((v for v in obj.config_versions.all() if v.effective_to is None), None)

    @admin.display(description=_("flow (m³/h)"))
    def current_flow(self, obj):
        current = self._current(obj)
        return current.flow_m3h if current else "—"

    @admin.display(description=_("current since"))
    def current_since(self, obj):
        current = self._current(obj)
        return current.effective_from if current else "—"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        try:
            version = open_new_config_version(
                channel=obj,
                effective_from=data["effective_from"],
                created_by=request.user,
                note=data.get("note", ""),
                **{name: data.get(name) for name in VERSION_FIELDS},
            )
        except ConfigVersionError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            return
        self.message_user(
            request,
            _("Opened config version from %(start)s; the impact of affected cycles is being recomputed.")
            % {"start": version.effective_from.isoformat()},
        )

    def save_related(self, request, form, formsets, change):
        pass  # history is read-only

    def construct_change_message(self, request, form, formsets, add=False):
        return [{"added": {"name": str(_("config version")), "object": str(form.cleaned_data["effective_from"])}}]

    @admin.action(description=_("Rebuild cycles and impact of the selected channels"))
    def rebuild_cycles_action(self, request, queryset):
        done = rebuild_cycles(channels=list(queryset))
        total = sum(p.result.detected for p in done)
        self.message_user(request, _("Rebuilt %(n)d cycles.") % {"n": total})


@admin.register(ChannelConfigVersion)
class ChannelConfigVersionAdmin(admin.ModelAdmin):
    """All versions, read-only. New versions are opened from "channel configurations"."""

    list_display = ("channel", "effective_from", "effective_to", "flow_m3h", "bod5_mg_l", "cod_mg_l", "tss_mg_l")
    list_filter = ("channel__device",)
    list_select_related = ("channel__device",)
    search_fields = ("channel__name", "channel__device__device_id", "note")
    date_hierarchy = "effective_from"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(EmissionFactorSet)
class EmissionFactorSetAdmin(admin.ModelAdmin):
    form = EmissionFactorSetForm
    list_display = ("name", "valid_from", "valid_to", "b0_basis", "gwp_ch4", "grid_factor_kg_per_kwh", "is_example")
    fieldsets = (
        (None, {"fields": ("name", "valid_from", "valid_to", "is_example", "note")}),
        (_("Methane"), {"fields": ("b0_basis", ("b0_bod", "b0_bod_source"), ("b0_cod", "b0_cod_source"))}),
        (_("Global warming potential"), {"fields": (("gwp_ch4", "gwp_ch4_source"),)}),
        (
            _("Methane correction factors"),
            {
                "fields": (*(mcf_field_name(t) for t in TreatmentType), "mcf_source"),
                "description": _("Share of the methane potential that a treatment releases (0 to 1), per type."),
            },
        ),
        (
            _("Electricity"),
            {
                "fields": (("grid_factor_kg_per_kwh", "grid_factor_source"),),
                "description": _("No default: until set, electricity and net CO₂e show as not configured."),
            },
        ),
    )


class TariffAssignmentInline(admin.TabularInline):
    model = TariffAssignment
    extra = 0
    raw_id_fields = ("device", "channel")


@admin.register(Tariff)
class TariffAdmin(admin.ModelAdmin):
    form = TariffForm
    list_display = ("name", "currency", "valid_from", "valid_to", "is_site_default")
    list_filter = ("is_site_default", "currency")
    inlines = [TariffAssignmentInline]


@admin.register(CycleImpact)
class CycleImpactAdmin(admin.ModelAdmin):
    list_display = ("cycle", "channel", "starts_at", "volume_m3", "energy_kwh", "net_co2e_kg", "energy_cost")
    list_select_related = ("channel__device", "cycle")
    raw_id_fields = ("cycle", "channel", "config_version", "factor_set", "tariff")
    date_hierarchy = "starts_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
