"""Dashboard pages: they check input and permissions, call domain functions and render.

Data access runs inside `shop_view`, i.e. inside the current shop's tenant context; every view renders
eagerly so that templates evaluate querysets while that context is active.
"""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import slugify
from django.views.decorators.http import require_http_methods, require_POST

from recs.dashboard import charts, queries, stats
from recs.dashboard.forms import ApiKeyForm, ShopNameForm, SignUpForm, SwitchShopForm
from recs.dashboard.nav import SECTIONS, all_icons, section_url
from recs.dashboard.shop import choose_shop, require_owner, shop_view
from tenants.api_keys import create_api_key, revoke_api_key
from tenants.models import ApiKey, Tenant
from tenants.services import SignupError, sign_up_tenant, tenants_of

PAGE_SIZE = 25
EVENTS_PAGE_SIZE = 50


def _page(request: HttpRequest, template: str, section: str, context: dict | None = None) -> HttpResponse:
    """Render a page of the signed-in layout (sidebar, shop switcher, user menu)."""
    base = {
        "shop": request.shop,
        "sections": SECTIONS,
        "section": section,
        "next_url": section_url(section),
        "icons": all_icons(),
    }
    return render(request, template, {**base, **(context or {})})


def _paginate(request: HttpRequest, queryset, per_page: int = PAGE_SIZE):
    return Paginator(queryset, per_page).get_page(request.GET.get("page"))


def _query_without_page(request: HttpRequest) -> str:
    params = request.GET.copy()
    params.pop("page", None)
    return params.urlencode()


# --- Overview ---------------------------------------------------------------------------------------


@shop_view
def home(request: HttpRequest) -> HttpResponse:
    numbers = stats.overview(request.shop.tenant.pk)
    chart = charts.bar_chart(
        [f"{day:%b} {day.day}" for day, _ in numbers.per_day],
        [count for _, count in numbers.per_day],
        title=f"Events per day, last {len(numbers.per_day)} days",
        width=1000,
        height=250,
        integer=True,
        empty_text="No events in this period yet",
    )
    mix = [(kind, n, round(100 * n / numbers.events_recent)) for kind, n in numbers.mix]
    recent_imports = list(queries.import_jobs(request.shop.tenant.pk)[:4])
    return _page(
        request,
        "dashboard/home.html",
        "home",
        {"numbers": numbers, "chart": chart, "mix": mix, "recent_imports": recent_imports},
    )


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
            response = _page(request, "dashboard/key_created.html", "keys", {"key": key, "raw_key": raw})
            add_never_cache_headers(response)  # no-cache, no-store, must-revalidate, private
            return response
    else:
        form = ApiKeyForm()
    return _page(request, "dashboard/keys.html", "keys", {"form": form, "keys": list(_keys_of(tenant))})


@shop_view
@require_http_methods(["GET", "POST"])
def revoke_key(request: HttpRequest, key_id: int) -> HttpResponse:
    require_owner(request)
    key = get_object_or_404(ApiKey, pk=key_id, tenant=request.shop.tenant)
    if request.method == "POST":
        revoke_api_key(key)
        return redirect("dashboard:keys")
    return _page(request, "dashboard/key_revoke.html", "keys", {"key": key})


# --- Data -------------------------------------------------------------------------------------------


@shop_view
def products(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "").strip()[:200]
    stock = request.GET.get("stock", "")
    if stock not in dict(queries.StockFilter.CHOICES):
        stock = queries.StockFilter.ANY
    page = _paginate(request, queries.products(request.shop.tenant.pk, q=q, stock=stock))
    return _page(
        request,
        "dashboard/products.html",
        "products",
        {"page": page, "q": q, "stock": stock, "stock_choices": queries.StockFilter.CHOICES,
         "query": _query_without_page(request)},
    )


def _first_attributes(attributes, limit: int = 4) -> list[tuple[str, object]]:
    return list(attributes.items())[:limit] if isinstance(attributes, dict) else []


@shop_view
def customers(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "").strip()[:200]
    tenant_id = request.shop.tenant.pk
    page = _paginate(request, queries.customers(tenant_id, q=q))
    activity = queries.customer_activity(tenant_id, [c.pk for c in page])
    rows = [(c, activity.get(c.pk), _first_attributes(c.attributes)) for c in page]
    return _page(
        request,
        "dashboard/customers.html",
        "customers",
        {"page": page, "rows": rows, "q": q, "query": _query_without_page(request)},
    )


@shop_view
def events(request: HttpRequest) -> HttpResponse:
    tenant_id = request.shop.tenant.pk
    types = queries.event_type_names(tenant_id)
    event_type = request.GET.get("type", "")
    if event_type not in types:
        event_type = ""
    before_raw = request.GET.get("before", "")
    before = queries.Cursor.decode(before_raw) if before_raw else None
    rows, next_cursor = queries.recent_events(
        tenant_id, event_type=event_type, before=before, limit=EVENTS_PAGE_SIZE
    )
    return _page(
        request,
        "dashboard/events.html",
        "events",
        {"rows": rows, "types": types, "event_type": event_type, "is_first_page": before is None,
         "next_cursor": next_cursor.encode() if next_cursor else ""},
    )


@shop_view
def imports(request: HttpRequest) -> HttpResponse:
    page = _paginate(request, queries.import_jobs(request.shop.tenant.pk))
    return _page(request, "dashboard/imports.html", "imports", {"page": page, "query": ""})
