"""/api/v1 endpoints of configs: cycles with impact, impact totals, config versions, tariffs, pump models."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from collector.models import Channel
from configs import selectors
from configs.models import EmissionFactorSet, PumpModel, Tariff
from configs.serializers import (
    ConfigVersionSerializer,
    CycleSerializer,
    EmissionFactorSetSerializer,
    ImpactSummarySerializer,
    NewConfigVersionSerializer,
    PumpModelSerializer,
    TariffSerializer,
)
from configs.services import ConfigVersionError, open_new_config_version
from shelly_site.api import csv_export
from shelly_site.api.csv_export import FORMAT_PARAMETER, CSVExportMixin
from shelly_site.api.filters import DB_ID_MAX, ID_SCHEMA, TIME_SCHEMA, WholeNumberField, time_in_range
from shelly_site.api.pagination import ApiCursorPagination
from shelly_site.api.permissions import ApiWriteAccess

CYCLE_CSV_HEADER = (
    "id",
    "channel",
    "device_id",
    "started_at",
    "ended_at",
    "duration_s",
    "energy_wh",
    "energy_method",
    "avg_power_W",
    "peak_power_W",
    "is_noise",
    *selectors.IMPACT_SUMS,
    "currency",
)


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class CycleQuerySerializer(serializers.Serializer):
    channel = WholeNumberField(required=False, min_value=1, max_value=DB_ID_MAX)
    include_noise = serializers.BooleanField(required=False, default=False)

    def to_internal_value(self, data):
        # A value given twice is refused: the schema says one number, and
        # taking the last one silently would hide a client's mistake.
        if hasattr(data, "getlist"):
            repeated = {name: ["Give this parameter once."] for name in data if len(data.getlist(name)) > 1}
            if repeated:
                raise serializers.ValidationError(repeated)
        # DRF reads an empty form value as "not given" (the default): the
        # schema says a value, so `period=` is an error like `period=x`.
        ours = {*self.fields, "from", "to"}
        blank = {name: ["Give a value or leave the parameter out."] for name in ours if data.get(name) == ""}
        if blank:
            raise serializers.ValidationError(blank)
        values = super().to_internal_value(data)
        for name in ("from", "to"):
            raw = data.get(name)
            if raw is not None:  # an empty value is an error too, as the schema says
                try:
                    values[name] = time_in_range(serializers.DateTimeField().to_internal_value(raw))
                except serializers.ValidationError as error:
                    raise serializers.ValidationError({name: error.detail}) from None
                except DjangoValidationError as error:
                    raise serializers.ValidationError({name: error.messages}) from None
        return values


class CycleListQuerySerializer(CycleQuerySerializer):
    min_duration_s = serializers.FloatField(required=False, min_value=0, max_value=10 * 365 * 86400)


class ImpactQuerySerializer(CycleQuerySerializer):
    period = serializers.ChoiceField(["day", "week", "month", "year"], default="day")


RANGE_PARAMETERS = [
    OpenApiParameter("channel", ID_SCHEMA, description="Channel id."),
    OpenApiParameter("from", TIME_SCHEMA, description="Cycles started at or after (ISO-8601)."),
    OpenApiParameter("to", TIME_SCHEMA, description="Cycles started before (ISO-8601)."),
    OpenApiParameter("include_noise", OpenApiTypes.BOOL, description="Include cycles shorter than min_cycle."),
]
CYCLE_PARAMETERS = [
    *RANGE_PARAMETERS,
    OpenApiParameter(
        "min_duration_s", OpenApiTypes.NUMBER, description="Only closed cycles at least this long (running ones stay)."
    ),
]


class CyclePagination(ApiCursorPagination):
    # Each cycle carries its impact parts: 100 a page keeps a page well under
    # 300 ms; `page_size` goes up to the API's maximum.
    page_size = 100
    ordering = ("-started_at", "id")


@extend_schema_view(list=extend_schema(parameters=[*CYCLE_PARAMETERS, FORMAT_PARAMETER]))
class CycleViewSet(CSVExportMixin, viewsets.ReadOnlyModelViewSet):
    """Pump cycles, newest first, with impact and cost inline (totals and one part per config version)."""

    serializer_class = CycleSerializer
    pagination_class = CyclePagination
    filter_backends = []

    def query(self):
        query = CycleListQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return query.validated_data

    def get_queryset(self):
        if self.action != "list":
            return selectors.cycles(include_noise=True)
        q = self.query()
        return selectors.cycles(
            channel_id=q.get("channel"),
            start=q.get("from"),
            end=q.get("to"),
            include_noise=q["include_noise"],
            min_duration_s=q.get("min_duration_s"),
        )

    def list(self, request, *args, **kwargs):
        if self.wants_csv(request):
            cycles = self.get_queryset().order_by("started_at", "id")
            return csv_export.stream_csv(request, CYCLE_CSV_HEADER, _cycle_csv_rows(cycles), filename="cycles.csv")
        return super().list(request, *args, **kwargs)


def _cycle_csv_rows(cycles):
    for cycle in cycles.iterator(chunk_size=csv_export.CHUNK_SIZE):
        totals = selectors.impact_totals(list(cycle.impacts.all())) if cycle.ended_at else {}
        yield (
            cycle.pk,
            cycle.channel_id,
            cycle.channel.device.device_id,
            cycle.started_at.isoformat(),
            cycle.ended_at.isoformat() if cycle.ended_at else "",
            cycle.duration_s,
            _blank(cycle.energy_wh),
            cycle.energy_method,
            _blank(cycle.avg_power_w),
            _blank(cycle.peak_power_w),
            int(cycle.is_noise),
            *(_blank(totals.get(name)) for name in selectors.IMPACT_SUMS),
            totals.get("currency", ""),
        )


def _blank(value):
    return "" if value is None else value


class ImpactView(APIView):
    """Impact and cost totals per channel and per local day, week, month or year."""

    @extend_schema(
        parameters=[
            OpenApiParameter("period", OpenApiTypes.STR, enum=["day", "week", "month", "year"], description="Bucket."),
            *RANGE_PARAMETERS,
        ],
        responses=ImpactSummarySerializer,
    )
    def get(self, request):
        query = ImpactQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        results = selectors.impact_by_period(
            period=q["period"],
            channel_id=q.get("channel"),
            start=q.get("from"),
            end=q.get("to"),
            include_noise=q["include_noise"],
        )
        payload = {"period": q["period"], "timezone": settings.TIME_ZONE, "results": results}
        return Response(ImpactSummarySerializer(payload).data)


class ChannelConfigVersionsView(APIView):
    """A channel's config history (newest first); POST opens a new version (needs write permission)."""

    permission_classes = [ApiWriteAccess]

    @extend_schema(responses=ConfigVersionSerializer(many=True))
    def get(self, request, channel_id):
        channel = get_object_or_404(Channel, pk=channel_id)
        versions = channel.config_versions.select_related("created_by").order_by("-effective_from")
        return Response(ConfigVersionSerializer(versions, many=True).data)

    @extend_schema(
        request=NewConfigVersionSerializer,
        responses={
            201: ConfigVersionSerializer,
            409: OpenApiResponse(description="Overlaps or races another version of the channel."),
        },
    )
    def post(self, request, channel_id):
        channel = get_object_or_404(Channel, pk=channel_id)
        body = NewConfigVersionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        # A token acts as its user when it has one (request.user is then a stand-in, not a User).
        user = request.user if isinstance(request.user, get_user_model()) else getattr(request.auth, "user", None)
        try:
            version = open_new_config_version(channel=channel, created_by=user, **body.validated_data)
        except ConfigVersionError as error:
            raise Conflict(" ".join(error.messages)) from None
        return Response(ConfigVersionSerializer(version).data, status=status.HTTP_201_CREATED)


class TariffViewSet(viewsets.ReadOnlyModelViewSet):
    """Tariffs with their rules (periods in the site time zone)."""

    queryset = Tariff.objects.all()
    serializer_class = TariffSerializer
    pagination_class = None


class PumpModelViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = PumpModel.objects.all()
    serializer_class = PumpModelSerializer
    pagination_class = None


class EmissionFactorSetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Emission factor sets, each value with its source."""

    queryset = EmissionFactorSet.objects.all()
    serializer_class = EmissionFactorSetSerializer
    pagination_class = None
