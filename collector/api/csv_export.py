"""Power log rows as CSV, in the seed's column order (§5)."""

from django.http import StreamingHttpResponse

from shelly_site.api.csv_export import CHUNK_SIZE, csv_number, stream_csv

POWER_LOG_HEADER = ("timestamp_iso", "device_id", "channel", "apower_W", "voltage_V", "current_A", "energy_total_Wh")


def power_log_rows(queryset):
    """PowerLog rows in the seed's column order (values only, no model instances)."""
    columns = (
        "timestamp",
        "device__device_id",
        "channel__key",
        "apower_w",
        "voltage_v",
        "current_a",
        "energy_total_wh",
    )
    for ts, device_id, key, power, voltage, current, energy in queryset.values_list(*columns).iterator(
        chunk_size=CHUNK_SIZE
    ):
        numbers = (csv_number(value) for value in (power, voltage, current, energy))
        yield (ts.isoformat(), device_id, key, *numbers)


def power_log_csv(request, queryset, *, filename="power_logs.csv") -> StreamingHttpResponse:
    return stream_csv(request, POWER_LOG_HEADER, power_log_rows(queryset), filename=filename)
