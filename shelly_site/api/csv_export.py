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
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

CHUNK_SIZE = 2000


class _Line:
    """File-like that hands back what csv.writer writes, so each row becomes one chunk."""

    def write(self, value):
        return value


# A spreadsheet runs a cell starting with one of these as a formula; a device
# id or a channel name is device- or user-supplied text (formula injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def safe_cell(value):
    """Text a spreadsheet would run as a formula is prefixed with `'`; numbers (-1.5) stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _is_number(value):
        return "'" + value
    return value


def _blocks(header, rows):
    writer = csv.writer(_Line(), lineterminator="\n")
    yield writer.writerow(header)
    rows = iter(rows)
    while block := list(itertools.islice(rows, CHUNK_SIZE)):
        yield "".join(writer.writerow([safe_cell(cell) for cell in row]) for row in block)


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


def csv_number(value) -> str:
    """A float cell: empty for a missing value, full precision otherwise."""
    return "" if value is None else repr(float(value))


FORMAT_PARAMETER = OpenApiParameter(
    "format", OpenApiTypes.STR, enum=["json", "csv"], description="`csv`: stream every matching row as CSV."
)


class CSVRenderer(BaseRenderer):
    """Declares `?format=csv`; the CSV itself is streamed by the view, never rendered from `data`."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        raise NotImplementedError("CSV is streamed by the view")


class CSVExportMixin:
    """Adds `?format=csv` to a list view.

    Only the list streams CSV; any other answer of the view (an error, OPTIONS,
    a detail) is rendered as JSON.
    """

    def get_renderers(self):
        return [*super().get_renderers(), CSVRenderer()]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if self.wants_csv(request) and getattr(self, "paginator", None) is not None:
            # The CSV is one stream, not pages, but a malformed page_size is a 400 as it is in JSON.
            self.paginator.get_page_size(request)

    def wants_csv(self, request) -> bool:
        return getattr(request, "accepted_renderer", None) is not None and request.accepted_renderer.format == "csv"

    def finalize_response(self, request, response, *args, **kwargs):
        if isinstance(response, Response) and self.wants_csv(request):
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)
