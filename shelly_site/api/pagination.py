"""Cursor pagination for growing tables: a page never shifts when rows are added."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination

from shelly_site.api.filters import parse_whole_number, time_in_range

INVALID_CURSOR = {"cursor": ["Invalid cursor."]}


class ApiCursorPagination(CursorPagination):
    """Base for every paginated list. Subclass and set `ordering` (unique, indexed)."""

    page_size = 500
    page_size_query_param = "page_size"
    max_page_size = 5000
    ordering = "-id"
    model = None

    def get_page_size(self, request):
        """`page_size` outside 1…max_page_size or not an integer is a 400 (DRF silently used the default)."""
        raw = request.query_params.get(self.page_size_query_param, "")
        if raw == "":
            return self.page_size
        try:
            size = parse_whole_number(raw)
        except ValueError:
            size = 0
        if not 1 <= size <= self.max_page_size:
            message = f"A whole number between 1 and {self.max_page_size}."
            raise ValidationError({self.page_size_query_param: [message]})
        return size

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
            # An empty value means the default (and the first page, for the cursor).
            parameter["allowEmptyValue"] = True
        return parameters

    def paginate_queryset(self, queryset, request, view=None):
        self.model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request):
        """A cursor the server did not make is a 400 (DRF answers 404), and so is a forged position."""
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise ValidationError(INVALID_CURSOR) from None
        if cursor is not None and cursor.position is not None and self.model is not None:
            self._check_position(cursor.position)
        return cursor

    def _check_position(self, position: str) -> None:
        # The position is compared with the first ordering field in SQL: a
        # value of another type or out of range would fail in the database.
        ordering = self.ordering if isinstance(self.ordering, list | tuple) else [self.ordering]
        field = self.model._meta.get_field(ordering[0].lstrip("-"))
        try:
            value = field.to_python(position)
            if isinstance(field, models.DateTimeField):
                if value is None or value.tzinfo is None:
                    raise ValueError("naive")
                time_in_range(value)
            elif isinstance(field, models.IntegerField | models.AutoField) and not 0 <= value < 2**63:
                raise ValueError("out of range")
        except (DjangoValidationError, ValueError, TypeError, OverflowError):
            raise ValidationError(INVALID_CURSOR) from None
