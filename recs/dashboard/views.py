"""Dashboard pages: they check input and permissions, call domain functions and render.

Data access runs inside `shop_view`, i.e. inside the current shop's tenant context; every view renders
eagerly so that templates evaluate querysets while that context is active.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse

from core.dashboard import charts
from core.dashboard.pages import render_page
from recs.dashboard import preview, queries, stats
from tenants.dashboard.shop import shop_view

PAGE_SIZE = 25
EVENTS_PAGE_SIZE = 50
CUSTOMER_EVENTS = 20  # the latest events on a customer's page


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
    return render_page(
        request,
        "dashboard/home.html",
        "home",
        {"numbers": numbers, "chart": chart, "mix": mix, "recent_imports": recent_imports},
    )


# --- Data -------------------------------------------------------------------------------------------


@shop_view
def products(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "").strip()[:200]
    stock = request.GET.get("stock", "")
    if stock not in dict(queries.StockFilter.CHOICES):
        stock = queries.StockFilter.ANY
    page = _paginate(request, queries.products(request.shop.tenant.pk, q=q, stock=stock))
    return render_page(
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
    activity = queries.customer_activity(tenant_id, page)
    rows = [(c, activity.get(c.pk), _first_attributes(c.attributes)) for c in page]
    return render_page(
        request,
        "dashboard/customers.html",
        "customers",
        {"page": page, "rows": rows, "q": q, "query": _query_without_page(request)},
    )


@shop_view
def customer_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A customer: their latest events and what they would be recommended now, explained."""
    tenant_id = request.shop.tenant.pk
    customer = queries.customer(tenant_id, pk)
    if customer is None:
        raise Http404("No such customer.")
    events, more = queries.recent_events(tenant_id, customer_pk=customer.pk, limit=CUSTOMER_EVENTS)
    return render_page(
        request,
        "dashboard/customer_detail.html",
        "customers",
        {"customer": customer, "activity": queries.customer_activity(tenant_id, [customer])[customer.pk],
         "attributes": _first_attributes(customer.attributes, limit=50), "events": events, "more_events": more,
         "preview": preview.customer_preview(tenant_id, customer.external_id)},
    )


@shop_view
def product_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A product: its row and the products similar to it now, explained."""
    tenant_id = request.shop.tenant.pk
    product = queries.product(tenant_id, pk)
    if product is None:
        raise Http404("No such product.")
    return render_page(
        request,
        "dashboard/product_detail.html",
        "products",
        {"product": product, "attributes": _first_attributes(product.attributes, limit=50),
         "preview": preview.similar_preview(tenant_id, product.pk)},
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
    return render_page(
        request,
        "dashboard/events.html",
        "events",
        {"rows": rows, "types": types, "event_type": event_type, "is_first_page": before is None,
         "next_cursor": next_cursor.encode() if next_cursor else ""},
    )
