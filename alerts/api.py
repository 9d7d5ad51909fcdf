"""/api/v1 endpoints of the alerts app: rules (read; write with permission) and events (filters, cursor pages)."""

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers, viewsets

from alerts.models import AlertEvent, AlertRule, Delivery, Kind, Notifier
from shelly_site.api.filters import BooleanFilter, IdFilter, UtcIsoDateTimeFilter
from shelly_site.api.pagination import ApiCursorPagination
from shelly_site.api.permissions import ApiWriteAccess


class AlertRuleSerializer(serializers.ModelSerializer):
    notifiers = serializers.PrimaryKeyRelatedField(many=True, queryset=Notifier.objects.all(), required=False)
    active = serializers.SerializerMethodField()

    class Meta:
        model = AlertRule
        fields = [
            "id",
            "name",
            "slug",
            "kind",
            "enabled",
            "channel",
            "device",
            "threshold",
            "clear_threshold",
            "sustain_s",
            "min_firing_s",
            "cooldown_s",
            "windows",
            "evaluate_past",
            "notifiers",
            "active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def get_active(self, rule) -> bool:
        return any(state.active for state in rule.states.all())

    def validate(self, attrs):
        # The model's own rules (windows, hysteresis direction, one target): one place for admin and API.
        values = {k: v for k, v in attrs.items() if k != "notifiers"}
        instance = AlertRule(**{**self._current(), **values})
        try:
            instance.clean()
        except DjangoValidationError as error:
            detail = error.message_dict if hasattr(error, "error_dict") else error.messages
            raise serializers.ValidationError(detail) from None
        return attrs

    def _current(self):
        if self.instance is None:
            return {}
        names = [f.name for f in AlertRule._meta.concrete_fields if f.name not in ("id", "created_at", "updated_at")]
        return {name: getattr(self.instance, name) for name in names}


class DeliverySerializer(serializers.ModelSerializer):
    notifier = serializers.CharField(source="notifier.name")
    notifier_kind = serializers.CharField(source="notifier.kind")

    class Meta:
        model = Delivery
        fields = ["notifier", "notifier_kind", "step", "status", "attempts", "status_code", "detail", "finished_at"]


class AlertEventSerializer(serializers.ModelSerializer):
    rule_slug = serializers.CharField(source="rule.slug")
    kind = serializers.CharField(source="rule.kind")
    deliveries = DeliverySerializer(many=True, read_only=True)

    class Meta:
        model = AlertEvent
        fields = ["id", "ts", "rule", "rule_slug", "kind", "action", "channel", "device", "value", "details"]
        fields += ["notified", "deliveries"]


class AlertRuleViewSet(viewsets.ModelViewSet):
    """Alert rules (§8). Reading for every API reader; writing needs a write token or a superuser."""

    serializer_class = AlertRuleSerializer
    permission_classes = [ApiWriteAccess]
    pagination_class = None  # tens of rules, not thousands
    filter_backends = []
    queryset = AlertRule.objects.prefetch_related("notifiers", "states").order_by("id")


class AlertEventFilter(django_filters.FilterSet):
    rule = IdFilter(field_name="rule_id")
    channel = IdFilter(field_name="channel_id")
    kind = django_filters.ChoiceFilter(field_name="rule__kind", choices=Kind.choices)
    action = django_filters.ChoiceFilter(choices=AlertEvent.Action.choices)
    notified = BooleanFilter()
    start = UtcIsoDateTimeFilter(field_name="ts", lookup_expr="gte", label="from")
    end = UtcIsoDateTimeFilter(field_name="ts", lookup_expr="lt", label="to")

    class Meta:
        model = AlertEvent
        fields = []

    def __init__(self, data=None, *args, **kwargs):
        # `from` and `to` in the query string, like every range of this API.
        if data is not None:
            data = data.copy()
            for public, name in (("from", "start"), ("to", "end")):
                if public in data:
                    data[name] = data.pop(public)[-1] if hasattr(data, "getlist") else data.pop(public)
        super().__init__(data, *args, **kwargs)


class AlertEventPagination(ApiCursorPagination):
    page_size = 100
    ordering = ("-ts", "-id")


class AlertEventViewSet(viewsets.ReadOnlyModelViewSet):
    """Fired and cleared alerts, newest first, with each notifier's delivery result."""

    serializer_class = AlertEventSerializer
    filterset_class = AlertEventFilter
    pagination_class = AlertEventPagination
    queryset = AlertEvent.objects.select_related("rule").prefetch_related("deliveries__notifier")
