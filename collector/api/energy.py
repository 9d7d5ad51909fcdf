"""/api/v1 energy endpoints: stored EMData intervals and per-period summaries with cost."""

import django_filters
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, serializers, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from collector import energy
from collector.models import Device, EnergyInterval
from shelly_site.api import csv_export
from shelly_site.api.csv_export import FORMAT_PARAMETER, CSVExportMixin
from shelly_site.api.filters import DB_ID_MAX, IdFilter, UtcIsoDateTimeFilter
from shelly_site.api.pagination import ApiCursorPagination

ENERGY_INTERVAL_CSV_HEADER = (
    "start_iso",
    "end_iso",
    "device_id",
    "channel",
    "energy_Wh",
    "returned_energy_Wh",
    "avg_power_W",
)


class EnergyIntervalSerializer(serializers.ModelSerializer):
    device = serializers.CharField(source="device.device_id")
    channel_key = serializers.CharField(source="channel.key")

    class Meta:
        model = EnergyInterval
        fields = [
            "id",
            "device",
            "channel",
            "channel_key",
            "start",
            "end",
            "energy_wh",
            "returned_energy_wh",
            "avg_power_w",
            "meta",
        ]


class EnergyIntervalFilter(django_filters.FilterSet):
    device = django_filters.CharFilter(field_name="device__device_id", help_text="Shelly device id.")
    channel = IdFilter(field_name="channel_id", help_text="Channel id.")
    channel_key = django_filters.CharFilter(field_name="channel__key", help_text="Channel key, e.g. em:0:total.")

    class Meta:
        model = EnergyInterval
        fields = ["device", "channel", "channel_key"]


EnergyIntervalFilter.base_filters["from"] = UtcIsoDateTimeFilter(
    field_name="start", lookup_expr="gte", help_text="Intervals starting at or after this time (ISO-8601)."
)
EnergyIntervalFilter.base_filters["to"] = UtcIsoDateTimeFilter(
    field_name="start", lookup_expr="lt", help_text="Intervals starting before this time (ISO-8601)."
)


class EnergyIntervalPagination(ApiCursorPagination):
    ordering = ("start", "id")


def _csv_rows(queryset):
    number = csv_export.csv_number
    for row in queryset.values_list(
        "start", "end", "device__device_id", "channel__key", "energy_wh", "returned_energy_wh", "avg_power_w"
    ).iterator(chunk_size=csv_export.CHUNK_SIZE):
        start, end, device_id, key, energy_wh, returned_wh, avg_w = row
        yield (
            start.isoformat(),
            end.isoformat(),
            device_id,
            key,
            number(energy_wh),
            number(returned_wh),
            number(avg_w),
        )


@extend_schema_view(list=extend_schema(parameters=[FORMAT_PARAMETER]))
class EnergyIntervalViewSet(CSVExportMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Energy intervals read from the meters' EMData (1-minute records; per phase and total)."""

    serializer_class = EnergyIntervalSerializer
    filterset_class = EnergyIntervalFilter
    pagination_class = EnergyIntervalPagination

    def get_queryset(self):
        return energy.energy_intervals()

    def list(self, request, *args, **kwargs):
        if self.wants_csv(request):
            rows = self.filter_queryset(self.get_queryset())
            return csv_export.stream_csv(
                request, ENERGY_INTERVAL_CSV_HEADER, _csv_rows(rows), filename="energy_intervals.csv"
            )
        return super().list(request, *args, **kwargs)


DEVICE_HELP = "The device: its Shelly id (e.g. shellypro3em-a8032ab12345) or its numeric id (`id` in /api/v1/devices/)."


class EnergySummaryQuerySerializer(serializers.Serializer):
    device = serializers.CharField(max_length=100, help_text=DEVICE_HELP)
    period = serializers.ChoiceField(choices=energy.PERIODS, default="day")
    date = serializers.DateField(required=False, help_text="A day inside the period (site time zone); default today.")


def device_by_either_id(value: str) -> Device:
    """The device with this Shelly id, else (digits only) with this numeric id; 404 when neither exists."""
    device = Device.objects.filter(device_id=value).first()
    if device is None and value.isdigit() and int(value) <= DB_ID_MAX:
        device = Device.objects.filter(pk=int(value)).first()
    if device is None:
        raise exceptions.NotFound(f"No device with the Shelly id or numeric id {value!r}.")
    return device


class EnergySummaryView(APIView):
    """kWh per phase and in total over a local day, week or month; cost per tariff period when tariffs exist."""

    @extend_schema(
        parameters=[
            OpenApiParameter("device", OpenApiTypes.STR, required=True, description=DEVICE_HELP),
            OpenApiParameter("period", OpenApiTypes.STR, enum=list(energy.PERIODS), description="Default day."),
            OpenApiParameter("date", OpenApiTypes.DATE, description="A day inside the period; default today."),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request):
        query = EnergySummaryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        device = device_by_either_id(query.validated_data["device"])
        day = query.validated_data.get("date") or timezone.localdate()
        return Response(energy.energy_summary(device=device, period=query.validated_data["period"], day=day))
