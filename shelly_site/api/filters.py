"""Query-string filter building blocks every app's list endpoints share (django-filter)."""

from datetime import UTC

import django_filters
from django import forms

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
