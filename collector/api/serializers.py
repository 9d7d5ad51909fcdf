"""Presentation of collector data on /api/v1 (no rules here: see selectors and ingest)."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from collector.models import Channel, Device, PowerLog
from shelly_site.api.filters import DB_ID_MAX, WholeNumberField, time_in_range


class DeviceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Device
        fields = [
            "id",
            "device_id",
            "name",
            "model",
            "generation",
            "mac",
            "firmware",
            "transport",
            "enabled",
            "auto_registered",
            "last_seen",
            "last_live_poll_at",
            "last_interval_end",
        ]


class ChannelStateSerializer(serializers.Serializer):
    running = serializers.BooleanField()
    running_since = serializers.DateTimeField(allow_null=True)
    live_power_w = serializers.FloatField(allow_null=True)
    last_sample_at = serializers.DateTimeField(allow_null=True)


class LastRowSerializer(serializers.Serializer):
    timestamp = serializers.DateTimeField()
    apower_w = serializers.FloatField()
    reason = serializers.CharField()


class ChannelSerializer(serializers.ModelSerializer):
    """A channel with its running state and its last stored row (from `channels_with_state`)."""

    device_id = serializers.CharField(source="device.device_id", read_only=True)
    state = serializers.SerializerMethodField()
    last_row = serializers.SerializerMethodField()

    threshold_w = serializers.FloatField(
        source="effective_threshold_w", read_only=True, help_text="Its own, else its policy's default (activity 5 W)."
    )

    class Meta:
        model = Channel
        fields = [
            "id",
            "device_id",
            "key",
            "name",
            "enabled",
            "policy",
            "threshold_w",
            "stop_timeout_s",
            "interval_s",
            "delta_w",
            "sample_minutes",
            "fill_max_minutes",
            "state",
            "last_row",
        ]

    @extend_schema_field(ChannelStateSerializer)
    def get_state(self, channel):
        state = getattr(channel, "state", None)
        if state is None:
            return {"running": False, "running_since": None, "live_power_w": None, "last_sample_at": None}
        return ChannelStateSerializer(
            {
                "running": state.running,
                "running_since": state.run_started_at if state.running else None,
                "live_power_w": (state.last_values or {}).get("p"),
                "last_sample_at": state.last_sample_at,
            }
        ).data

    @extend_schema_field(LastRowSerializer(allow_null=True))
    def get_last_row(self, channel):
        if getattr(channel, "last_row_at", None) is None:
            return None
        return LastRowSerializer(
            {"timestamp": channel.last_row_at, "apower_w": channel.last_row_power_w, "reason": channel.last_row_reason}
        ).data


class PowerLogSerializer(serializers.ModelSerializer):
    device_id = serializers.CharField(source="device.device_id", read_only=True)
    channel_key = serializers.CharField(source="channel.key", read_only=True)

    class Meta:
        model = PowerLog
        fields = [
            "id",
            "timestamp",
            "device_id",
            "channel",
            "channel_key",
            "apower_w",
            "voltage_v",
            "current_a",
            "energy_total_wh",
            "reason",
        ]


class SeriesQuerySerializer(serializers.Serializer):
    channel = WholeNumberField(min_value=1, max_value=DB_ID_MAX)
    # `from`/`to` are keywords: declared below through `fields`.
    bucket = WholeNumberField(
        required=False,
        min_value=1,
        max_value=366 * 86400,
        help_text="Bucket in seconds; widened automatically so a series has at most 2000 points.",
    )

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.DateTimeField(required=False, help_text="Start (ISO-8601); default 24 h ago.")
        fields["to"] = serializers.DateTimeField(required=False, help_text="End, exclusive (ISO-8601); default now.")
        return fields

    def validate(self, attrs):
        for name in ("from", "to"):
            if attrs.get(name) is not None:
                try:
                    attrs[name] = time_in_range(attrs[name])
                except DjangoValidationError as exc:
                    raise serializers.ValidationError({name: exc.messages}) from None
        start, end = attrs.get("from"), attrs.get("to")
        if start and end and end <= start:
            raise serializers.ValidationError({"to": "must be after from"})
        return attrs


class SeriesPointSerializer(serializers.Serializer):
    t = serializers.DateTimeField(help_text="Start of the bucket.")
    avg_power_w = serializers.FloatField()
    min_power_w = serializers.FloatField()
    max_power_w = serializers.FloatField()
    avg_current_a = serializers.FloatField(allow_null=True)
    rows = serializers.IntegerField()


class SeriesSerializer(serializers.Serializer):
    channel = serializers.IntegerField(source="channel_id")
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    bucket_s = serializers.IntegerField()
    points = SeriesPointSerializer(many=True)


class BatchRequestSerializer(serializers.Serializer):
    """Documentation of the batch body; items are validated one by one in `collector.api.ingest`."""

    # Any JSON value per item: an item that is not a valid frame or reading is
    # answered in `rejected` (200), not by refusing the whole batch.
    messages = serializers.ListField(
        child=serializers.JSONField(),
        max_length=1000,
        help_text=(
            "Up to 1000 items, each a raw relayed frame `{device_id, received_at, frame}` or a normalized reading "
            "`{device_id, channel, ts, apower_w, voltage_v, current_a, energy_total_wh, idempotency_key?}`."
        ),
    )


class RejectedItemSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    error = serializers.CharField()


class BatchResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Readings processed by the pipeline (a raw frame may hold several).")
    duplicates = serializers.IntegerField(help_text="Readings not after their channel's last processed one.")
    refused = serializers.IntegerField(help_text="Readings of disabled channels.")
    rejected = RejectedItemSerializer(many=True)
