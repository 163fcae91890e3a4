"""Query-string filters stricter than django-filter's defaults: a value the API cannot use as given is a
400, never silently ignored and never handed to the database to fail there; nor is a parameter a list
endpoint does not take (`refuse_unknown_parameters`, called by the tenant base viewset)."""

from __future__ import annotations

import datetime as dt

import django_filters
from django import forms
from django.http import QueryDict
from django_filters.fields import IsoDateTimeField
from rest_framework.exceptions import ValidationError
from rest_framework.settings import api_settings

from core.query import unknown_parameter


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


def list_parameters(view) -> list[str]:
    """The query parameters a list view reads, in the order they are documented: its filter backends'
    (a django-filter FilterSet's filters, with the suffixes of range widgets), its paginator's, then the
    names the view declares in `extra_query_params`."""
    names: list[str] = []
    for backend_class in getattr(view, "filter_backends", ()):
        backend = backend_class()
        if hasattr(backend, "get_filterset_class"):
            filterset_class = backend.get_filterset_class(view, view.get_queryset())
            for name, declared in (filterset_class.base_filters.items() if filterset_class else ()):
                suffixes = getattr(declared.field.widget, "suffixes", None)
                names.extend(f"{name}_{suffix}" if suffix else name for suffix in suffixes or ("",))
        elif hasattr(backend, "get_schema_operation_parameters"):
            names.extend(p["name"] for p in backend.get_schema_operation_parameters(view))
    paginator = getattr(view, "paginator", None)
    if paginator is not None:
        names.extend(p["name"] for p in paginator.get_schema_operation_parameters(view))
    names.extend(getattr(view, "extra_query_params", ()))
    return list(dict.fromkeys(names))


def refuse_unknown_parameters(params: QueryDict, accepted: list[str]) -> None:
    """A 400 problem naming each parameter not in `accepted` (DRF's `format` always is): a misspelt
    filter (`customer_id` for `customer`, `q` where there is no search) would otherwise be ignored and
    widen the answer to everything."""
    known = {*accepted, api_settings.URL_FORMAT_OVERRIDE}
    unknown = [name for name in params if name not in known]
    if unknown:
        message = unknown_parameter(accepted)
        raise ValidationError({name: [message] for name in unknown})
