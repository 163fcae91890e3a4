"""Tenant sign-up and membership: plain domain functions used by the CLI, the dashboard and tests."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.text import slugify

from tenants.api_keys import forget_cached_keys
from tenants.models import Membership, Tenant


class SignupError(ValueError):
    pass


@transaction.atomic
def sign_up_tenant(*, name: str, owner_email: str, owner_password: str | None, slug: str | None = None) -> Tenant:
    """Create a shop and its owner (or attach an existing user as owner)."""
    slug = slugify(slug or name)[:63]
    if not slug:
        raise SignupError("The shop name must contain letters or digits.")
    if Tenant.objects.filter(slug=slug).exists():
        raise SignupError(f"A shop with the slug '{slug}' already exists.")
    User = get_user_model()
    user = User.objects.filter(username=owner_email).first()
    if user is None:
        user = User(username=owner_email, email=owner_email)
        if owner_password:
            user.set_password(owner_password)
        else:
            user.set_unusable_password()
        user.save()
    tenant = Tenant.objects.create(name=name, slug=slug)
    Membership.objects.create(tenant=tenant, user=user, role=Membership.Role.OWNER)
    return tenant


def deactivate_tenant(tenant: Tenant) -> None:
    """Switch a shop off: its API keys stop working on the next request (not when their cache expires)."""
    Tenant.objects.filter(pk=tenant.pk).update(is_active=False)
    tenant.is_active = False
    forget_cached_keys(tenant)


def tenants_of(user) -> list[Tenant]:
    if not user.is_authenticated:
        return []
    return list(Tenant.objects.filter(memberships__user=user, is_active=True).order_by("name"))


def role_of(user, tenant: Tenant) -> str | None:
    membership = Membership.objects.filter(tenant=tenant, user=user).only("role").first()
    return membership.role if membership else None
