"""The dashboard's pages of the tenancy: signing up (and confirming the address), creating and switching
shops, API keys.

They check input and permissions, call tenants' domain functions and render.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import slugify
from django.views.decorators.http import require_http_methods, require_POST

from core.dashboard.pages import render_page
from tenants.accounts import InvalidConfirmation, confirm_account, read_confirmation, register
from tenants.api_keys import create_api_key, revoke_api_key
from tenants.client_ip import client_ip
from tenants.dashboard.forms import ApiKeyForm, ShopNameForm, SignUpForm, SwitchShopForm
from tenants.dashboard.shop import choose_shop, require_owner, shop_view
from tenants.dashboard.signup_mail import send_signup_mail
from tenants.models import ApiKey, Tenant
from tenants.ratelimit import hit
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


def _create_shop(form, *, email: str) -> Tenant | None:
    """A shop owned by the account `email` (which exists); None with the reason on the form."""
    name = form.cleaned_data["shop_name"]
    try:
        with transaction.atomic():
            return sign_up_tenant(name=name, slug=_unique_slug(name), owner_email=email, owner_password=None)
    except SignupError as exc:
        form.add_error("shop_name", str(exc))
    except IntegrityError:  # a concurrent sign-up took the slug first
        form.add_error(None, "That did not go through; please try again.")
    return None


def _too_many(request: HttpRequest, template: str, context: dict, retry_after: float) -> HttpResponse:
    response = render(request, template, {**context, "throttled": True}, status=429)
    response["Retry-After"] = str(max(1, int(retry_after) + 1))
    return response


def login_locked_out(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """The answer to a login refused by django-axes (AXES_LOCKOUT_CALLABLE): 429, nothing was checked."""
    context = {"failure_limit": settings.AXES_FAILURE_LIMIT, "minutes": round(settings.AXES_COOLOFF_TIME * 60)}
    return _too_many(request, "registration/locked_out.html", context, settings.AXES_COOLOFF_TIME * 3600)


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """Open a pending account and mail its confirmation link. The answer is the same whether or not the
    address has an account (its owner is told by e-mail), and sign-ups per address are limited."""
    if request.user.is_authenticated:
        return redirect("dashboard:shop_new")
    if request.method == "POST":
        allowed, retry_after = hit(f"signup-ip:{client_ip(request)}", settings.RECSVC_SIGNUPS_PER_HOUR, window=3600)
        if not allowed:
            return _too_many(request, "registration/signup.html", {"form": SignUpForm()}, retry_after)
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"]
        outcome, user = register(email, form.cleaned_data["password"])
        send_signup_mail(request, outcome, email, user, form.cleaned_data["shop_name"])
        return render(request, "registration/signup_sent.html", {"email": email})
    return render(request, "registration/signup.html", {"form": form})


@require_http_methods(["GET", "POST"])
def signup_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """The link of the confirmation e-mail: a page with one button (mail scanners follow links with GET),
    whose POST activates the account and opens its shop."""
    try:
        pending = read_confirmation(token)
    except InvalidConfirmation as exc:
        return render(request, "registration/signup_confirm.html", {"error": str(exc)}, status=400)
    if request.method == "POST":
        try:
            with transaction.atomic():
                confirmed = confirm_account(token)
                name = confirmed.shop_name
                tenant = sign_up_tenant(
                    name=name, slug=_unique_slug(name), owner_email=confirmed.user.get_username(), owner_password=None
                )
        except InvalidConfirmation as exc:
            return render(request, "registration/signup_confirm.html", {"error": str(exc)}, status=400)
        except (SignupError, IntegrityError):  # a concurrent sign-up took the slug: nothing was changed
            return render(
                request,
                "registration/signup_confirm.html",
                {"pending": pending, "token": token, "retry": True},
                status=409,
            )
        messages.success(request, f"Your e-mail address is confirmed and {tenant.name} is ready. Log in to start.")
        return redirect("dashboard:login")
    return render(request, "registration/signup_confirm.html", {"pending": pending, "token": token})


@login_required
@require_http_methods(["GET", "POST"])
def shop_new(request: HttpRequest) -> HttpResponse:
    """A signed-in user creates another shop, of which they become the owner."""
    form = ShopNameForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        tenant = _create_shop(form, email=request.user.get_username())
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
                tenant, name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"], created_by=request.user,
                allowed_origins=form.cleaned_data["allowed_origins"],
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
