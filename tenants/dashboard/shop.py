"""The shop a dashboard request acts for.

The chosen shop id lives in the session, but the session is only a preference: every request checks it
against the user's current memberships, so a removed member or a forged id never reaches another
shop's data. Views run inside `tenant_context`, so PostgreSQL row-level security scopes them as well.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect

from tenants.context import tenant_context
from tenants.models import Membership, Tenant
from tenants.services import role_of, tenants_of

SESSION_KEY = "dashboard_shop_id"


@dataclass(frozen=True)
class ShopAccess:
    tenant: Tenant
    role: str
    shops: list[Tenant]

    @property
    def is_owner(self) -> bool:
        return self.role == Membership.Role.OWNER


def resolve_shop(request: HttpRequest) -> ShopAccess | None:
    """The session's shop if the user is still a member of it, else their first shop (None: no shop)."""
    shops = tenants_of(request.user)
    wanted = request.session.get(SESSION_KEY)
    tenant = next((t for t in shops if t.pk == wanted), None)
    if tenant is None:
        if not shops:
            request.session.pop(SESSION_KEY, None)
            return None
        tenant = shops[0]
        request.session[SESSION_KEY] = tenant.pk
    role = role_of(request.user, tenant)
    if role is None:  # the membership went away between the two queries
        raise Http404("No such shop.")
    return ShopAccess(tenant=tenant, role=role, shops=shops)


def choose_shop(request: HttpRequest, tenant_id: int) -> Tenant:
    """Make `tenant_id` the session's shop; 404 unless the user is a member of it."""
    tenant = next((t for t in tenants_of(request.user) if t.pk == tenant_id), None)
    if tenant is None:
        raise Http404("No such shop.")
    request.session[SESSION_KEY] = tenant.pk
    return tenant


def require_owner(request: HttpRequest) -> None:
    if not request.shop.is_owner:
        raise PermissionDenied("Only the shop's owners can do this.")


def shop_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Login required; sets `request.shop` (ShopAccess) and runs the view inside the shop's tenant context.

    Views must render eagerly (`render`, not TemplateResponse) so that lazy querysets are evaluated
    while the tenant context is still active.
    """

    @login_required
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        access = resolve_shop(request)
        if access is None:
            return redirect("dashboard:shop_new")
        request.shop = access
        with tenant_context(access.tenant.pk):
            return view(request, *args, **kwargs)

    return wrapper
