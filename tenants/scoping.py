"""Tenant-owned models: querysets exist only for one tenant.

`Model.objects.all()` on a tenant-owned model returns nothing; code must say which tenant it acts for
(`Model.objects.for_tenant(tenant)`). Cross-tenant access is spelled `dangerously_all_tenants()` so it
stands out in review.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from tenants.models import Tenant


def tenant_id_of(tenant: Tenant | int) -> int:
    if isinstance(tenant, Tenant):
        return tenant.pk
    if isinstance(tenant, int) and not isinstance(tenant, bool):
        return tenant
    raise TypeError(f"expected a Tenant or tenant id, got {type(tenant).__name__}")


class TenantManager(models.Manager):
    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().none()

    def for_tenant(self, tenant: Tenant | int) -> models.QuerySet:
        return super().get_queryset().filter(tenant_id=tenant_id_of(tenant))

    def dangerously_all_tenants(self) -> models.QuerySet:
        return super().get_queryset()

    def bulk_update(self, objs, fields, batch_size=None):
        # On the empty default queryset it would match no row and silently update nothing.
        raise TypeError("bulk_update needs a tenant: use Model.objects.for_tenant(tenant).bulk_update(...)")


class TenantOwnedModel(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)

    objects: Any = TenantManager()
    dangerously_unscoped = models.Manager()

    class Meta:
        abstract = True
        # Forward relations and deletion cascades go through the base manager, which must see rows.
        base_manager_name = "dangerously_unscoped"
