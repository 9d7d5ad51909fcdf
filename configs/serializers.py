"""API shapes of configs: presentation only (rules live in services, impact, tariffs)."""

from django.utils import timezone
from rest_framework import serializers

from collector.models import Cycle
from configs.models import (
    MAX_CONCENTRATION_MG_L,
    MAX_FLOW_M3H,
    ChannelConfigVersion,
    CycleImpact,
    EmissionFactorSet,
    PumpModel,
    Tariff,
    TreatmentType,
)
from configs.selectors import impact_totals


class PumpModelSerializer(serializers.ModelSerializer):
    class Meta:
        model = PumpModel
        fields = ["id", "name", "maker", "nominal_power_w", "nominal_flow_m3h", "notes"]


class TariffSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tariff
        fields = ["id", "name", "currency", "valid_from", "valid_to", "rules", "is_site_default", "note"]


class EmissionFactorSetSerializer(serializers.ModelSerializer):
    class Meta:
        model = EmissionFactorSet
        exclude = ["created_at"]


class ConfigVersionSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True, allow_null=True)

    class Meta:
        model = ChannelConfigVersion
        fields = [
            "id",
            "channel",
            "effective_from",
            "effective_to",
            "pump_model",
            "flow_m3h",
            "bod5_mg_l",
            "cod_mg_l",
            "tss_mg_l",
            "baseline_treatment",
            "system_treatment",
            "note",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields


class NewConfigVersionSerializer(serializers.Serializer):
    effective_from = serializers.DateTimeField(required=False, help_text="Default: now.")
    pump_model = serializers.PrimaryKeyRelatedField(queryset=PumpModel.objects.all(), required=False, allow_null=True)
    flow_m3h = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=MAX_FLOW_M3H)
    bod5_mg_l = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=MAX_CONCENTRATION_MG_L)
    cod_mg_l = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=MAX_CONCENTRATION_MG_L)
    tss_mg_l = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=MAX_CONCENTRATION_MG_L)
    baseline_treatment = serializers.ChoiceField(TreatmentType.choices, default=TreatmentType.SEPTIC)
    system_treatment = serializers.ChoiceField(TreatmentType.choices, default=TreatmentType.WETLAND_VERTICAL)
    note = serializers.CharField(required=False, allow_blank=True, default="")

    def validate_effective_from(self, value):
        return value or timezone.now()


class ImpactFiguresSerializer(serializers.Serializer):
    energy_kwh = serializers.FloatField(allow_null=True)
    volume_m3 = serializers.FloatField(allow_null=True)
    bod5_kg = serializers.FloatField(allow_null=True)
    cod_kg = serializers.FloatField(allow_null=True)
    tss_kg = serializers.FloatField(allow_null=True)
    electricity_co2e_kg = serializers.FloatField(allow_null=True, help_text="null: grid factor not configured.")
    avoided_ch4_kg = serializers.FloatField(allow_null=True)
    avoided_co2e_kg = serializers.FloatField(allow_null=True)
    net_co2e_kg = serializers.FloatField(allow_null=True, help_text="null: grid factor not configured.")
    energy_cost = serializers.FloatField(allow_null=True, help_text="null: no tariff applies.")
    currency = serializers.CharField()


class ImpactPartSerializer(serializers.ModelSerializer):
    class Meta:
        model = CycleImpact
        fields = [
            "starts_at",
            "ends_at",
            "duration_s",
            "config_version",
            "factor_set",
            "tariff",
            *ImpactFiguresSerializer().fields,
        ]


class CycleSerializer(serializers.ModelSerializer):
    device_id = serializers.CharField(source="channel.device.device_id", read_only=True)
    running = serializers.BooleanField(read_only=True)
    impact = serializers.SerializerMethodField()
    impact_parts = ImpactPartSerializer(source="impacts", many=True, read_only=True)

    class Meta:
        model = Cycle
        fields = [
            "id",
            "channel",
            "device_id",
            "started_at",
            "ended_at",
            "running",
            "duration_s",
            "energy_wh",
            "energy_method",
            "avg_power_w",
            "peak_power_w",
            "is_noise",
            "impact",
            "impact_parts",
        ]

    def get_impact(self, cycle) -> ImpactFiguresSerializer(allow_null=True):
        parts = list(cycle.impacts.all())
        return impact_totals(parts) if parts else None


class ImpactRowSerializer(ImpactFiguresSerializer):
    channel = serializers.IntegerField()
    period_start = serializers.DateTimeField()
    cycles = serializers.IntegerField()
    running_hours = serializers.FloatField()


class ImpactSummarySerializer(serializers.Serializer):
    period = serializers.ChoiceField(["day", "week", "month", "year"])
    timezone = serializers.CharField()
    results = ImpactRowSerializer(many=True)
