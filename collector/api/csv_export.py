"""Streamed CSV: rows are read from the database in chunks and written as they go.

A year of `every` rows is millions of lines; `stream_csv` keeps memory flat by
pulling them with `.iterator(chunk_size=...)` and sending a block of lines at
a time. Under ASGI (daphne, uvicorn) Django collects a *synchronous* streaming
iterator into one list before sending it, so there the blocks are handed out
by an async generator that pulls each block in the request's DB thread.
"""

import csv
import itertools
from collections.abc import Iterable

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse

CHUNK_SIZE = 2000
POWER_LOG_HEADER = ("timestamp_iso", "device_id", "channel", "apower_W", "voltage_V", "current_A", "energy_total_Wh")


class _Line:
    """File-like that hands back what csv.writer writes, so each row becomes one chunk."""

    def write(self, value):
        return value


def _blocks(header, rows):
    writer = csv.writer(_Line(), lineterminator="\n")
    yield writer.writerow(header)
    rows = iter(rows)
    while block := list(itertools.islice(rows, CHUNK_SIZE)):
        yield "".join(writer.writerow(row) for row in block)


async def _async_blocks(blocks):
    # thread_sensitive: every block is read in the thread that holds the
    # request's database connection (and its open cursor).
    next_block = sync_to_async(lambda: next(blocks, None), thread_sensitive=True)
    while (block := await next_block()) is not None:
        yield block


def stream_csv(request, header: Iterable[str], rows: Iterable[Iterable], *, filename: str) -> StreamingHttpResponse:
    blocks = _blocks(header, rows)
    if isinstance(getattr(request, "_request", request), ASGIRequest):
        blocks = _async_blocks(blocks)
    response = StreamingHttpResponse(blocks, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _number(value):
    return "" if value is None else repr(float(value))


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
        yield (ts.isoformat(), device_id, key, _number(power), _number(voltage), _number(current), _number(energy))


def power_log_csv(request, queryset, *, filename="power_logs.csv") -> StreamingHttpResponse:
    return stream_csv(request, POWER_LOG_HEADER, power_log_rows(queryset), filename=filename)
