"""The one tenant base viewset. It alone builds querysets and fetches objects.

Subclasses refine the tenant's queryset in `safely_get_queryset(queryset)`; they cannot override
`get_queryset`/`get_object` (a TypeError at import time says so), so no endpoint can forget the tenant.
The escape hatch, for the rare view that must see across tenants, is `dangerously_get_queryset`.

List actions refuse query parameters they do not read (a 400 naming those they do): a misspelt filter
must not silently answer every row. A view that validates its whole query string itself
(`core.query.parse_query`) sets `checks_own_query`; one that reads a parameter beyond its filters and
pagination names it in `extra_query_params`.
"""

from __future__ import annotations

from django.db import models
from rest_framework import viewsets
from rest_framework.exceptions import NotFound

from core.filters import list_parameters, refuse_unknown_parameters
from tenants.context import tenant_context
from tenants.models import ApiKey


class TenantScopedMixin:
    model: type[models.Model]
    required_scope: str | None = None
    extra_query_params: tuple[str, ...] = ()
    checks_own_query: bool = False
    _guarded = ("get_queryset", "get_object")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in cls._guarded:
            if name in cls.__dict__:
                raise TypeError(
                    f"{cls.__name__} must not override {name}(); refine safely_get_queryset() instead "
                    "or, for a reviewed cross-tenant view, override dangerously_get_queryset()."
                )

    @property
    def tenant_id(self) -> int:
        key = self.request.auth
        assert isinstance(key, ApiKey), "tenant views run only after API-key authentication"
        return key.tenant_id

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if any("\x00" in str(value) for value in kwargs.values()):
            # No stored id holds a NUL (validation refuses them) and PostgreSQL cannot even compare one.
            raise NotFound()
        if self.action == "list" and not self.checks_own_query:
            refuse_unknown_parameters(request.query_params, list_parameters(self))
        self._tenant_scope = tenant_context(self.tenant_id)
        self._tenant_scope.__enter__()

    def dispatch(self, request, *args, **kwargs):
        # `finally`, not finalize_response: an unhandled error (a 500) skips finalize_response and would
        # leave this tenant's row-level-security setting on the pooled connection.
        try:
            return super().dispatch(request, *args, **kwargs)
        finally:
            scope = getattr(self, "_tenant_scope", None)
            if scope is not None:
                self._tenant_scope = None
                scope.__exit__(None, None, None)

    def safely_get_queryset(self, queryset: models.QuerySet) -> models.QuerySet:
        return queryset

    def dangerously_get_queryset(self) -> models.QuerySet | None:
        return None

    def get_queryset(self) -> models.QuerySet:
        if getattr(self, "swagger_fake_view", False):
            # drf-spectacular inspects views without a request key; it only needs the model.
            return self.model.objects.none()
        queryset = self.dangerously_get_queryset()
        if queryset is None:
            queryset = self.safely_get_queryset(self.model.objects.for_tenant(self.tenant_id))
        return queryset

    def get_object(self):
        return super().get_object()


class TenantViewSet(TenantScopedMixin, viewsets.GenericViewSet):
    pass
