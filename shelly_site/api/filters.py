"""Query-string filter building blocks every app's list endpoints share (django-filter)."""

import re
from datetime import UTC, datetime

import django_filters
from django import forms
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

DB_ID_MAX = 2**63 - 1
ID_SCHEMA = {"type": "integer", "format": "int64", "minimum": 1, "maximum": DB_ID_MAX}
# Times a query may name: wide enough for any real range, narrow enough that
# the range arithmetic around it (a day before, a bucket after, a time zone)
# never leaves Python's datetime range (year 1 to 9999).
TIME_MIN = datetime(1970, 1, 1, tzinfo=UTC)
TIME_MAX = datetime(9000, 1, 1, tzinfo=UTC)
TIME_RANGE_MESSAGE = "Out of range: use a time between 1970-01-01 and 9000-01-01."
# What the schema says of such a time: JSON Schema has no minimum for a
# date-time, so the year range is a pattern (years 1970 to 8999).
TIME_SCHEMA = {"type": "string", "format": "date-time", "pattern": "^(19[7-9][0-9]|[2-8][0-9]{3})-"}


def time_in_range(value: datetime) -> datetime:
    """An aware time in UTC within [TIME_MIN, TIME_MAX], else forms.ValidationError."""
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        raise forms.ValidationError(TIME_RANGE_MESSAGE, code="out_of_range") from None
    if not TIME_MIN <= value <= TIME_MAX:
        raise forms.ValidationError(TIME_RANGE_MESSAGE, code="out_of_range")
    return value


# What the schema calls an integer, written in a query string: Django and DRF
# also take "90.0", " 90", "+90" and "9_0" (Python's int()), which a client
# relying on the schema would not expect to match channel 90.
WHOLE_NUMBER = re.compile(r"-?[0-9]+")
WHOLE_NUMBER_MESSAGE = "Enter a whole number."


def parse_whole_number(value) -> int:
    """The int a query value spells in plain digits, else ValueError."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and WHOLE_NUMBER.fullmatch(value):
        return int(value)
    raise ValueError(f"not a whole number: {value!r}")


class WholeNumberFormField(forms.IntegerField):
    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return parse_whole_number(value)
        except ValueError:
            raise forms.ValidationError(WHOLE_NUMBER_MESSAGE, code="invalid") from None


class WholeNumberField(serializers.IntegerField):
    """DRF's IntegerField without its leniency: digits only."""

    def to_internal_value(self, data):
        try:
            value = parse_whole_number(data)
        except ValueError:
            raise serializers.ValidationError(WHOLE_NUMBER_MESSAGE, code="invalid") from None
        return super().to_internal_value(value)


# The schema states the range the form field enforces (drf-spectacular would
# say only "integer", and a client sending 0 would get a 400 it was not told of).
@extend_schema_field(ID_SCHEMA)
class IdFilter(django_filters.NumberFilter):
    """A primary key: an integer in the database's range (no decimals, no overflow)."""

    field_class = WholeNumberFormField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", DB_ID_MAX)
        super().__init__(*args, **kwargs)


class UtcIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    def to_python(self, value):
        parsed = super().to_python(value)
        # Python allows UTC offsets up to ±24 h, PostgreSQL only ±15:59: a
        # query with "+19:52" would fail in the database instead of matching.
        return time_in_range(parsed) if parsed is not None else None


@extend_schema_field(TIME_SCHEMA)
class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO-8601 time bound, normalised to UTC before it reaches the database."""

    field_class = UtcIsoDateTimeField


class StrictNullBooleanField(forms.NullBooleanField):
    """`true`/`false` (or `1`/`0`); anything else is an error, not "no filter" as Django's field reads it."""

    def to_python(self, value):
        if value in (None, ""):
            return None
        if value in (True, "true", "True", "1"):
            return True
        if value in (False, "false", "False", "0"):
            return False
        raise forms.ValidationError("Use true or false.", code="invalid")

    # The raw text reaches to_python: Django's select widget turns unknown values into None first.
    widget = forms.TextInput

    def validate(self, value):
        pass


class BooleanFilter(django_filters.BooleanFilter):
    field_class = StrictNullBooleanField
