"""The dashboard's pages of the tenancy: signing up, creating and switching shops, API keys.

They check input and permissions, call tenants' domain functions and render.
"""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import slugify
from django.views.decorators.http import require_http_methods, require_POST

from core.dashboard.pages import render_page
from tenants.api_keys import create_api_key, revoke_api_key
from tenants.dashboard.forms import ApiKeyForm, ShopNameForm, SignUpForm, SwitchShopForm
from tenants.dashboard.shop import choose_shop, require_owner, shop_view
from tenants.models import ApiKey, Tenant
from tenants.services import SignupError, sign_up_tenant, tenants_of

# --- Shops ------------------------------------------------------------------------------------------


@require_POST
@login_required
def switch_shop(request: HttpRequest) -> HttpResponse:
    form = SwitchShopForm(request.POST)
    if not form.is_valid():
        raise Http404("No such shop.")
    choose_shop(request, form.cleaned_data["shop"])
    target = form.cleaned_data["next"]
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=False):
        target = "dashboard:home"
    return redirect(target or "dashboard:home")


def _unique_slug(name: str) -> str | None:
    """None lets sign_up_tenant derive the slug from the name; a taken one gets a random suffix."""
    base = slugify(name)[:56]
    if base and Tenant.objects.filter(slug=base).exists():
        return f"{base}-{secrets.token_hex(3)}"
    return None


class _AccountTaken(Exception):
    pass


def _create_shop(form, *, email: str, password: str | None, new_account: bool) -> Tenant | None:
    name = form.cleaned_data["shop_name"]
    started = timezone.now()
    try:
        with transaction.atomic():
            tenant = sign_up_tenant(name=name, slug=_unique_slug(name), owner_email=email, owner_password=password)
            # sign_up_tenant attaches an existing account; a public sign-up must never do that (an account
            # created concurrently under the same email would otherwise get this shop and this session).
            if new_account and get_user_model().objects.get(username=email).date_joined < started:
                raise _AccountTaken
            return tenant
    except _AccountTaken:
        form.add_error("email", "An account with this email already exists. Log in to add a shop.")
    except SignupError as exc:
        form.add_error("shop_name", str(exc))
    except IntegrityError:  # a concurrent sign-up took the slug or the email first
        form.add_error(None, "That did not go through; please try again.")
    return None


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("dashboard:shop_new")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"]
        tenant = _create_shop(form, email=email, password=form.cleaned_data["password"], new_account=True)
        if tenant is not None:
            login(request, get_user_model().objects.get(username=email))
            choose_shop(request, tenant.pk)
            return redirect("dashboard:home")
    return render(request, "registration/signup.html", {"form": form})


@login_required
@require_http_methods(["GET", "POST"])
def shop_new(request: HttpRequest) -> HttpResponse:
    """A signed-in user creates another shop, of which they become the owner."""
    form = ShopNameForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        tenant = _create_shop(form, email=request.user.get_username(), password=None, new_account=False)
        if tenant is not None:
            choose_shop(request, tenant.pk)
            return redirect("dashboard:home")
    return render(request, "dashboard/shop_new.html", {"form": form, "has_shops": bool(tenants_of(request.user))})


# --- API keys ---------------------------------------------------------------------------------------


def _keys_of(tenant: Tenant):
    # ApiKey is not row-level secured (it is looked up before a tenant is known): filter explicitly.
    return ApiKey.objects.filter(tenant=tenant).select_related("created_by").order_by("revoked_at", "-created_at")


@shop_view
@require_http_methods(["GET", "POST"])
def api_keys(request: HttpRequest) -> HttpResponse:
    tenant = request.shop.tenant
    if request.method == "POST":
        require_owner(request)
        form = ApiKeyForm(request.POST)
        if form.is_valid():
            key, raw = create_api_key(
                tenant, name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"], created_by=request.user
            )
            # The plaintext goes straight into this response and nowhere else (not the session, not a
            # redirect): it cannot be shown twice, and no browser or proxy cache may keep the page.
            response = render_page(request, "dashboard/key_created.html", "keys", {"key": key, "raw_key": raw})
            add_never_cache_headers(response)  # no-cache, no-store, must-revalidate, private
            return response
    else:
        form = ApiKeyForm()
    return render_page(request, "dashboard/keys.html", "keys", {"form": form, "keys": list(_keys_of(tenant))})


@shop_view
@require_http_methods(["GET", "POST"])
def revoke_key(request: HttpRequest, key_id: int) -> HttpResponse:
    require_owner(request)
    key = get_object_or_404(ApiKey, pk=key_id, tenant=request.shop.tenant)
    if request.method == "POST":
        revoke_api_key(key)
        return redirect("dashboard:keys")
    return render_page(request, "dashboard/key_revoke.html", "keys", {"key": key})
