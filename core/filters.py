"""Query-string filters stricter than django-filter's defaults: a value the API cannot use as given is a
400, never silently ignored and never handed to the database to fail there."""

from __future__ import annotations

import datetime as dt

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField


class StrictBooleanField(forms.Field):
    """'true' or 'false'; anything else is a 400 (the lenient default would silently ignore `available=no`)."""

    widget = forms.TextInput

    def to_python(self, value):
        if value in self.empty_values:
            return None
        parsed = {"true": True, "false": False}.get(str(value).lower())
        if parsed is None:
            raise forms.ValidationError("Use true or false.", code="invalid")
        return parsed


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class UtcDateTimeField(IsoDateTimeField):
    """An ISO 8601 instant, handed to the database in UTC. Python accepts offsets up to ±23:59 and
    PostgreSQL only to ±15:59 (`updated_since=0799-01-28T16:39:54+19:31` was a 500); an instant that
    is no date in UTC (before year 1, after 9999) is a 400."""

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(dt.UTC)
        except OverflowError:
            raise forms.ValidationError("Out of range.", code="invalid") from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField
