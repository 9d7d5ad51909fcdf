"""/api/v1 views of the collector: parse the request, call a selector or service, present the result."""

import sys
from datetime import timedelta

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from collector import selectors
from collector.api import csv_export
from collector.api.filters import ChannelFilter, PowerLogFilter
from collector.api.ingest import MAX_BATCH_ITEMS, ingest_batch
from collector.api.serializers import (
    BatchRequestSerializer,
    BatchResultSerializer,
    ChannelSerializer,
    DeviceSerializer,
    PowerLogSerializer,
    SeriesQuerySerializer,
    SeriesSerializer,
)
from collector.models import Channel, Device
from collector.validation import InputRejected, decode_json
from dashboard.selectors import channels_with_state
from shelly_site.api.authentication import IngestKeyAuthentication
from shelly_site.api.csv_export import FORMAT_PARAMETER, CSVExportMixin
from shelly_site.api.errors import PayloadTooLarge
from shelly_site.api.pagination import ApiCursorPagination
from shelly_site.api.permissions import HasIngestKey
from shelly_site.api.throttling import IngestRateThrottle


class DeviceViewSet(viewsets.ReadOnlyModelViewSet):
    """Devices (Shelly meters and switches), looked up by their Shelly id."""

    queryset = Device.objects.all()
    serializer_class = DeviceSerializer
    pagination_class = None  # a site has tens of devices, not thousands
    lookup_field = "device_id"
    lookup_value_regex = r"[-\w.:@]+"


class ChannelViewSet(viewsets.ReadOnlyModelViewSet):
    """Channels with their running state and their last stored row."""

    serializer_class = ChannelSerializer
    filterset_class = ChannelFilter
    pagination_class = None

    def get_queryset(self):
        return channels_with_state()


class PowerLogPagination(ApiCursorPagination):
    # Time order for readers; id breaks ties between channels at the same
    # instant. DRF keys the cursor on the first field and counts an offset
    # through equal timestamps, so each row appears exactly once.
    ordering = ("timestamp", "id")


@extend_schema_view(list=extend_schema(parameters=[FORMAT_PARAMETER]))
class PowerLogViewSet(CSVExportMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Stored power log rows in time order, cursor-paginated (or all of them as CSV)."""

    serializer_class = PowerLogSerializer
    filterset_class = PowerLogFilter
    pagination_class = PowerLogPagination

    def get_queryset(self):
        return selectors.power_logs()

    def list(self, request, *args, **kwargs):
        if self.wants_csv(request):
            rows = self.filter_queryset(self.get_queryset()).order_by("timestamp", "id")
            return csv_export.power_log_csv(request, rows)
        return super().list(request, *args, **kwargs)


class SeriesView(APIView):
    """Power and current of one channel aggregated per time bucket (at most ~2000 points)."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "channel",
                {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
                required=True,
                description="Channel id.",
            ),
            OpenApiParameter("from", OpenApiTypes.DATETIME, description="Start (ISO-8601); default 24 h before `to`."),
            OpenApiParameter("to", OpenApiTypes.DATETIME, description="End, exclusive (ISO-8601); default now."),
            OpenApiParameter(
                "bucket",
                {"type": "integer", "minimum": 1, "maximum": 366 * 86400},
                description="Bucket in seconds; widened so the series stays ≤ 2000 points.",
            ),
        ],
        responses=SeriesSerializer,
    )
    def get(self, request):
        query = SeriesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        channel = get_object_or_404(Channel, pk=query.validated_data["channel"])
        end = query.validated_data.get("to") or timezone.now()
        start = query.validated_data.get("from") or end - timedelta(hours=24)
        if end <= start:
            raise serializers.ValidationError({"to": ["must be after from"]})
        series = selectors.power_series(
            channel_id=channel.pk, start=start, end=end, bucket_s=query.validated_data.get("bucket")
        )
        return Response(SeriesSerializer(series).data)


class BatchJSONParser(JSONParser):
    """JSON with a byte limit checked before anything is parsed.

    NaN and Infinity literals are let through as floats on purpose: the item
    that holds one is rejected alone instead of the whole batch.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.INGEST_BATCH_MAX_BYTES
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"Body of {declared} bytes is over the {limit} byte limit.")
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"Body is over the {limit} byte limit.")
        try:
            # Depth is judged per item (one deep item never rejects the others);
            # integers beyond float range become infinities the item checks refuse.
            return decode_json(raw, allow_constants=True, max_depth=sys.maxsize)
        except InputRejected as exc:
            raise ParseError(f"Malformed JSON: {exc}") from None


class BatchIngestView(APIView):
    """Queue relays push up to 1000 raw frames or normalized readings (§4.2)."""

    authentication_classes = [IngestKeyAuthentication]
    permission_classes = [HasIngestKey]
    throttle_classes = [IngestRateThrottle]
    parser_classes = [BatchJSONParser]

    @extend_schema(
        request=BatchRequestSerializer,
        responses=BatchResultSerializer,
        summary="Push a batch of readings",
        operation_id="ingest_batch",
    )
    def post(self, request):
        body = request.data
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list):
            raise serializers.ValidationError({"messages": ["expected a list of items"]})
        # Counted before a single item is looked at.
        if len(messages) > MAX_BATCH_ITEMS:
            raise PayloadTooLarge(f"{len(messages)} items; a batch holds at most {MAX_BATCH_ITEMS}.")
        return Response(ingest_batch(messages, token=request.auth).as_dict())
