"""Query-string filters of the list endpoints (django-filter)."""

from datetime import UTC

import django_filters
from django import forms

from collector.models import Channel, PowerLog

DB_ID_MAX = 2**63 - 1


class IdFilter(django_filters.NumberFilter):
    """A primary key: an integer in the database's range (no decimals, no overflow)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", DB_ID_MAX)
        super().__init__(*args, **kwargs)


class UtcIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    def to_python(self, value):
        parsed = super().to_python(value)
        # Python allows UTC offsets up to ±24 h, PostgreSQL only ±15:59: a
        # query with "+19:52" would fail in the database instead of matching.
        return parsed.astimezone(UTC) if parsed is not None else None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO-8601 time bound, normalised to UTC before it reaches the database."""

    field_class = UtcIsoDateTimeField


class PowerLogFilter(django_filters.FilterSet):
    device = django_filters.CharFilter(field_name="device__device_id", help_text="Shelly device id.")
    channel = IdFilter(field_name="channel_id", help_text="Channel id.")
    channel_key = django_filters.CharFilter(field_name="channel__key", help_text="Channel key, e.g. switch:0.")
    reason = django_filters.ChoiceFilter(choices=PowerLog.Reason.choices)

    class Meta:
        model = PowerLog
        fields = ["device", "channel", "channel_key", "reason"]


# `from` is a Python keyword, so the time-range filters are added by name.
PowerLogFilter.base_filters["from"] = UtcIsoDateTimeFilter(
    field_name="timestamp", lookup_expr="gte", help_text="Rows at or after this time (ISO-8601)."
)
PowerLogFilter.base_filters["to"] = UtcIsoDateTimeFilter(
    field_name="timestamp", lookup_expr="lt", help_text="Rows before this time (ISO-8601)."
)


class ChannelFilter(django_filters.FilterSet):
    device = django_filters.CharFilter(field_name="device__device_id", help_text="Shelly device id.")

    class Meta:
        model = Channel
        fields = ["device", "key", "enabled", "policy"]
