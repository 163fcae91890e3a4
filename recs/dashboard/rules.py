"""The Rules page (filter rules, boosts, recommendation settings) and the Promotions page.

Everyone in the shop sees them; only owners change them (as with API keys). Writes go through recs.rules,
which validates like the API does and bumps the rules generation, so serving applies a change at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from core.dashboard.pages import render_page
from recs import rules
from recs.dashboard import preview
from recs.dashboard.rules_forms import BoostForm, PromotionForm, RuleForm, SettingsForm, _DomainForm
from recs.ingest.event_types import event_weights
from recs.models import Boost, Promotion, Rule
from tenants.dashboard.shop import require_owner, shop_view

_OPS = {"eq": "=", "ne": "≠", "in": "in", "not_in": "not in", "lt": "<", "lte": "≤", "gt": ">", "gte": "≥",
        "contains": "contains"}
MAX_SHOWN_VALUES = 5


def _values(value: Any) -> str:
    if isinstance(value, list):
        shown = ", ".join(str(v) for v in value[:MAX_SHOWN_VALUES])
        return shown + (f" +{len(value) - MAX_SHOWN_VALUES} more" if len(value) > MAX_SHOWN_VALUES else "")
    return str(value)


def describe_conditions(conditions: list[dict]) -> str:
    """'brand = Acme and price < 50': a stored predicate in words."""
    return " and ".join(f"{c['field']} {_OPS.get(c['op'], c['op'])} {_values(c['value'])}" for c in conditions)


def describe_rule(rule: Rule) -> str:
    params = rule.params or {}
    if rule.kind in (Rule.Kind.INCLUDE_CATEGORIES, Rule.Kind.EXCLUDE_CATEGORIES):
        return f"Category in {_values(params.get('categories', []))}"
    if rule.kind == Rule.Kind.PRICE_RANGE:
        low, high = params.get("min"), params.get("max")
        if low is not None and high is not None:
            return f"Price from {low:g} to {high:g}"
        return f"Price ≥ {low:g}" if low is not None else f"Price ≤ {high:g}"
    if rule.kind == Rule.Kind.ATTRIBUTE:
        verb = "Only" if params.get("mode") == "include" else "Not"
        return f"{verb}: {describe_conditions(params.get('conditions', []))}"
    ids = params.get("product_ids", [])
    return f"{len(ids)} product{'s' if len(ids) != 1 else ''}: {_values(ids)}"


def promotion_status(promotion: Promotion, now) -> tuple[str, str]:
    """(label, badge colour) of a promotion right now."""
    if not promotion.enabled:
        return "Disabled", ""
    if promotion.starts_at and now < promotion.starts_at:
        return "Scheduled", "blue"
    if promotion.ends_at and now >= promotion.ends_at:
        return "Ended", ""
    return "Live", "green"


@dataclass(frozen=True)
class _Resource:
    """One kind of editable row: its model, form, domain functions and where its list lives."""

    key: str
    singular: str
    model: type
    form: type[_DomainForm]
    create: Callable[[int, dict], Any]
    update: Callable[[Any, dict], Any]
    delete: Callable[[Any], None]
    section: str
    list_url: str
    anchor: str


RESOURCES = {
    "rule": _Resource("rule", "rule", Rule, RuleForm, rules.create_rule, rules.update_rule, rules.delete_rule,
                      "rules", "dashboard:rules", "#rules"),
    "boost": _Resource("boost", "boost", Boost, BoostForm, rules.create_boost, rules.update_boost,
                       rules.delete_boost, "rules", "dashboard:rules", "#boosts"),
    "promotion": _Resource("promotion", "promotion", Promotion, PromotionForm, rules.create_promotion,
                           rules.update_promotion, rules.delete_promotion, "promotions", "dashboard:promotions",
                           "#promotions"),
}


def _settings_form(request: HttpRequest, *args, **kwargs) -> SettingsForm:
    return SettingsForm(*args, event_types=sorted(event_weights(request.shop.tenant.pk)), **kwargs)


def _settings_context(request: HttpRequest, form: SettingsForm | None = None) -> dict:
    values = rules.current_values(rules.settings_for(request.shop.tenant.pk))
    if form is None:
        form = _settings_form(request, initial=SettingsForm.initial_from(values), read_only=not request.shop.is_owner)
    return {"settings_form": form, "settings": values}


def _rules_page(request: HttpRequest, settings_form: SettingsForm | None = None, status: int = 200) -> HttpResponse:
    tenant_id = request.shop.tenant.pk
    rule_rows = [(rule, describe_rule(rule)) for rule in Rule.objects.for_tenant(tenant_id).order_by("-id")]
    boost_rows = [
        (boost, describe_conditions(boost.conditions), f"{boost.factor:g}")
        for boost in Boost.objects.for_tenant(tenant_id).order_by("-id")
    ]
    response = render_page(request, "dashboard/rules.html", "rules", {
        "rule_rows": rule_rows, "boost_rows": boost_rows, **_settings_context(request, settings_form),
        **_preview_context(request, "dashboard:rules"),
    })
    response.status_code = status
    return response


def _preview_context(request: HttpRequest, url_name: str) -> dict:
    """The preview panel: the customer typed into it (?preview=), else the one previewed last, whose
    answer before this page's change the panel marks against."""
    return {"panel": preview.panel(request.session, request.shop.tenant.pk, request.GET.get("preview")),
            "here": reverse(url_name)}


@shop_view
def rules_page(request: HttpRequest) -> HttpResponse:
    return _rules_page(request)


@shop_view
@require_POST
def settings_update(request: HttpRequest) -> HttpResponse:
    require_owner(request)
    form = _settings_form(request, request.POST)
    if form.is_valid():
        try:
            rules.update_settings(request.shop.tenant.pk, form.domain_data)
        except ValidationError as exc:
            form.show_domain_errors(exc)
        else:
            messages.success(request, "Recommendation settings saved.")
            return redirect("dashboard:rules")
    return _rules_page(request, settings_form=form, status=400)


@shop_view
def promotions_page(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    rows = []
    for promotion in Promotion.objects.for_tenant(request.shop.tenant.pk).order_by("-id"):
        label, colour = promotion_status(promotion, now)
        rows.append((promotion, describe_conditions(promotion.conditions), label, colour))
    return render_page(request, "dashboard/promotions.html", "promotions",
                       {"rows": rows, **_preview_context(request, "dashboard:promotions")})


def _get(resource: _Resource, request: HttpRequest, pk: int):
    obj = resource.model.objects.for_tenant(request.shop.tenant.pk).filter(pk=pk).first()
    if obj is None:
        raise Http404(f"No such {resource.singular}.")
    return obj


def _edit(request: HttpRequest, resource: _Resource, pk: int | None) -> HttpResponse:
    obj = _get(resource, request, pk) if pk is not None else None
    if request.method == "POST" or obj is None:
        require_owner(request)  # members may look at an existing row, never create or change one
    form_class = resource.form
    tenant_id = request.shop.tenant.pk
    status = 200
    if request.method == "POST":
        form = form_class(request.POST, tenant_id=tenant_id)
        if form.is_valid():
            try:
                if obj is None:
                    obj = resource.create(tenant_id, form.domain_data)
                    verb = "created"
                else:
                    resource.update(obj, form.domain_data)
                    verb = "saved"
            except ValidationError as exc:
                form.show_domain_errors(exc)
            else:
                messages.success(request, f"{resource.singular.capitalize()} “{obj.name}” {verb}.")
                return redirect(resource.list_url)
        status = 400
    elif obj is not None:
        form = form_class(initial=form_class.initial_from(rules.current_values(obj)), tenant_id=tenant_id,
                          read_only=not request.shop.is_owner)
    else:
        form = form_class(tenant_id=tenant_id)
    response = render_page(request, "dashboard/rule_form.html", resource.section, {
        "form": form, "obj": obj, "resource": resource,
    })
    response.status_code = status
    return response


def _delete(request: HttpRequest, resource: _Resource, pk: int) -> HttpResponse:
    require_owner(request)
    obj = _get(resource, request, pk)
    if request.method == "POST":
        resource.delete(obj)
        messages.success(request, f"{resource.singular.capitalize()} “{obj.name}” deleted.")
        return redirect(resource.list_url)
    return render_page(request, "dashboard/rule_delete.html", resource.section, {"obj": obj, "resource": resource})


@shop_view
@require_http_methods(["GET", "POST"])
def edit(request: HttpRequest, kind: str, pk: int | None = None) -> HttpResponse:
    return _edit(request, RESOURCES[kind], pk)


@shop_view
@require_http_methods(["GET", "POST"])
def delete(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    return _delete(request, RESOURCES[kind], pk)
