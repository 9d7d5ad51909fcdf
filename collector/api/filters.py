"""Query-string filters of the collector's list endpoints (django-filter)."""

import django_filters

from collector.models import Channel, PowerLog
from shelly_site.api.filters import BooleanFilter, IdFilter, UtcIsoDateTimeFilter


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
    # Declared: the one Meta.fields would make reads `enabled=maybe` as no filter.
    enabled = BooleanFilter()

    class Meta:
        model = Channel
        fields = ["device", "key", "enabled", "policy"]
