"""Validation and persistence of a tenant's rules, promotions, boosts and recommendation settings.

The API and the dashboard both go through these functions, so a row that reaches the database (and
serving/rules.py) has passed the same checks whichever way it came. Validators take the whole object
(an update is merged with the stored row first, so a change cannot leave it inconsistent) and raise
`django.core.exceptions.ValidationError` with a message per field. Every write bumps the tenant's rules
generation after commit, which makes cached recommendation answers computed under the old rules
unreachable at once.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils.dateparse import parse_datetime

from recs.ingest.event_types import event_weights
from recs.models import Boost, Promotion, RecommendationSettings, Rule
from recs.models.rules import ENDPOINTS
from recs.rules.predicates import MAX_IN_VALUES, MAX_STRING, normalise_conditions
from serving.cache import bump_rules_generation
from tenants.scoping import tenant_id_of

MAX_NAME = 100
MAX_PRODUCT_ID = 128  # Product.external_id
MAX_FACTOR = 10.0
MAX_CONSUMED_DAYS = 3650
MAX_CONSUMED_TYPES = 20
MAX_PER_CATEGORY = 100
# Per tenant and model: serving compiles every enabled row on each rules generation.
MAX_ROWS_PER_TENANT = 500

RULE_FIELDS = ("name", "kind", "params", "endpoints", "enabled")
PROMOTION_FIELDS = ("name", "product_ids", "conditions", "threshold", "starts_at", "ends_at", "enabled")
BOOST_FIELDS = ("name", "conditions", "factor", "endpoints", "enabled")
SETTINGS_FIELDS = ("exclude_out_of_stock", "consumed_event_types", "exclude_consumed_days", "max_per_category")


class _Errors:
    """Collects one message per field, so a form or an API answer shows every problem at once."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def check(self, field: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except ValidationError as exc:
            self.errors.setdefault(field, []).extend(exc.messages)
        except (TypeError, ValueError) as exc:
            self.errors.setdefault(field, []).append(str(exc))
        return None

    def add(self, field: str, message: str) -> None:
        self.errors.setdefault(field, []).append(message)

    def raise_if_any(self) -> None:
        if self.errors:
            raise ValidationError(self.errors)


def _invalid(message: str) -> ValidationError:
    return ValidationError(message, code="invalid")


# --- field validators ---------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid("A name is required.")
    value = value.strip()
    if len(value) > MAX_NAME:
        raise _invalid(f"At most {MAX_NAME} characters.")
    if "\x00" in value:
        raise _invalid("NUL characters are not allowed.")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _invalid("Must be true or false.")
    return value


def validate_endpoints(value: Any) -> list[str]:
    """A non-empty subset of recommendations/similar/popular, in canonical order."""
    if not isinstance(value, list) or not value:
        raise _invalid(f"A non-empty list of: {', '.join(ENDPOINTS)}.")
    unknown = [v for v in value if v not in ENDPOINTS]
    if unknown:
        raise _invalid(f"Unknown endpoint {str(unknown[0])[:64]!r} (allowed: {', '.join(ENDPOINTS)}).")
    return [e for e in ENDPOINTS if e in value]


def _strings(value: Any, what: str, *, max_len: int, allow_empty: bool = False) -> list[str]:
    if not isinstance(value, list):
        raise _invalid(f"{what}: must be a list of strings.")
    if not value and not allow_empty:
        raise _invalid(f"{what}: at least one is required.")
    if len(value) > MAX_IN_VALUES:
        raise _invalid(f"{what}: at most {MAX_IN_VALUES}.")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise _invalid(f"{what}[{i}]: must be a non-empty string.")
        if len(item) > max_len:
            raise _invalid(f"{what}[{i}]: at most {max_len} characters.")
        if "\x00" in item:
            raise _invalid(f"{what}[{i}]: NUL characters are not allowed.")
    return list(dict.fromkeys(value))


def _exact_keys(params: dict, required: set[str], optional: frozenset[str] = frozenset()) -> None:
    unknown = sorted(str(k)[:64] for k in set(params) - required - optional)
    if unknown:
        raise _invalid(f"Unknown key(s): {', '.join(unknown)}.")
    missing = sorted(required - set(params))
    if missing:
        raise _invalid(f"Missing key(s): {', '.join(missing)}.")


def validate_rule_params(kind: str, params: Any) -> dict:
    """The normalised params of a rule of `kind`; raises ValidationError with a clear message."""
    if kind not in Rule.Kind.values:
        raise _invalid(f"Unknown rule kind {str(kind)[:64]!r} (allowed: {', '.join(Rule.Kind.values)}).")
    if not isinstance(params, dict):
        raise _invalid("params must be an object.")
    if kind in (Rule.Kind.INCLUDE_CATEGORIES, Rule.Kind.EXCLUDE_CATEGORIES):
        _exact_keys(params, {"categories"})
        return {"categories": _strings(params["categories"], "categories", max_len=MAX_STRING)}
    if kind == Rule.Kind.PRICE_RANGE:
        _exact_keys(params, set(), frozenset({"min", "max"}))
        bounds = {}
        for key in ("min", "max"):
            value = params.get(key)
            if value is not None and (not _is_number(value) or value < 0):
                raise _invalid(f"{key}: must be a non-negative number or null.")
            bounds[key] = value
        if bounds["min"] is None and bounds["max"] is None:
            raise _invalid("Give min, max or both.")
        if bounds["min"] is not None and bounds["max"] is not None and bounds["min"] > bounds["max"]:
            raise _invalid("min must not be greater than max.")
        return bounds
    if kind == Rule.Kind.ATTRIBUTE:
        _exact_keys(params, {"mode", "conditions"})
        if params["mode"] not in ("include", "exclude"):
            raise _invalid("mode: must be 'include' or 'exclude'.")
        return {"mode": params["mode"], "conditions": normalise_conditions(params["conditions"])}
    # exclude_products
    _exact_keys(params, {"product_ids"})
    return {"product_ids": _strings(params["product_ids"], "product_ids", max_len=MAX_PRODUCT_ID)}


def _threshold(value: Any) -> float:
    if not _is_number(value) or not 0.0 <= value <= 1.0:
        raise _invalid("Must be a number between 0 and 1.")
    return float(value)


def _factor(value: Any) -> float:
    if not _is_number(value) or not 0.0 < value <= MAX_FACTOR:
        raise _invalid(f"Must be a number greater than 0 and at most {MAX_FACTOR:g}.")
    if value == 1.0:
        raise _invalid("A factor of 1 changes nothing: use > 1 to lift or < 1 to bury.")
    return float(value)


def _datetime(value: Any) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is None:
            raise _invalid("Not an ISO 8601 date-time.")
        value = parsed
    if not isinstance(value, dt.datetime):
        raise _invalid("Must be a date-time or null.")
    if value.tzinfo is None:
        raise _invalid("Give a time zone (e.g. 2026-12-01T00:00:00Z).")
    return value


def _optional_int(value: Any, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _invalid(f"Must be a whole number from {low} to {high}, or null.")
    return value


def _event_type_names(value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_CONSUMED_TYPES or not all(isinstance(v, str) for v in value):
        raise _invalid(f"A list of at most {MAX_CONSUMED_TYPES} event type names.")
    return sorted(set(value))


def _check_known_event_types(tenant_id: int, names: list[str]) -> None:
    known = event_weights(tenant_id)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValidationError({"consumed_event_types": [
            f"Unknown event type {unknown[0][:32]!r} (this shop has: {', '.join(sorted(known))})."
        ]})


# --- whole-object validators ----------------------------------------------------------------------------


def _require(data: dict, fields: tuple[str, ...], required: tuple[str, ...]) -> _Errors:
    errors = _Errors()
    unknown = sorted(str(k)[:64] for k in set(data) - set(fields))
    for name in unknown:
        errors.add(name, "Unknown field.")
    for name in required:
        if name not in data:
            errors.add(name, "This field is required.")
    return errors


def validate_rule(data: dict) -> dict:
    errors = _require(data, RULE_FIELDS, ("name", "kind", "params"))
    out: dict[str, Any] = {}
    if "name" in data:
        out["name"] = errors.check("name", lambda: _name(data["name"]))
    if "kind" in data:
        if data["kind"] in Rule.Kind.values:
            out["kind"] = data["kind"]
            if "params" in data:
                out["params"] = errors.check("params", lambda: validate_rule_params(data["kind"], data["params"]))
        else:
            errors.add("kind", f"Unknown rule kind (allowed: {', '.join(Rule.Kind.values)}).")
    out["endpoints"] = errors.check("endpoints", lambda: validate_endpoints(data.get("endpoints", list(ENDPOINTS))))
    out["enabled"] = errors.check("enabled", lambda: _bool(data.get("enabled", True)))
    errors.raise_if_any()
    return out


def validate_promotion(data: dict) -> dict:
    errors = _require(data, PROMOTION_FIELDS, ("name",))
    out: dict[str, Any] = {}
    if "name" in data:
        out["name"] = errors.check("name", lambda: _name(data["name"]))
    out["product_ids"] = errors.check(
        "product_ids",
        lambda: _strings(data.get("product_ids", []), "product_ids", max_len=MAX_PRODUCT_ID, allow_empty=True),
    )
    out["conditions"] = errors.check(
        "conditions", lambda: normalise_conditions(data.get("conditions", []), allow_empty=True)
    )
    if out["product_ids"] == [] and out["conditions"] == []:
        errors.add("non_field_errors", "Give product_ids, conditions or both: the promotion selects nothing.")
    out["threshold"] = errors.check("threshold", lambda: _threshold(data.get("threshold", 0.0)))
    out["starts_at"] = errors.check("starts_at", lambda: _datetime(data.get("starts_at")))
    out["ends_at"] = errors.check("ends_at", lambda: _datetime(data.get("ends_at")))
    if out["starts_at"] and out["ends_at"] and out["ends_at"] <= out["starts_at"]:
        errors.add("ends_at", "Must be after starts_at.")
    out["enabled"] = errors.check("enabled", lambda: _bool(data.get("enabled", True)))
    errors.raise_if_any()
    return out


def validate_boost(data: dict) -> dict:
    errors = _require(data, BOOST_FIELDS, ("name", "conditions", "factor"))
    out: dict[str, Any] = {}
    if "name" in data:
        out["name"] = errors.check("name", lambda: _name(data["name"]))
    if "conditions" in data:
        out["conditions"] = errors.check("conditions", lambda: normalise_conditions(data["conditions"]))
    if "factor" in data:
        out["factor"] = errors.check("factor", lambda: _factor(data["factor"]))
    out["endpoints"] = errors.check("endpoints", lambda: validate_endpoints(data.get("endpoints", list(ENDPOINTS))))
    out["enabled"] = errors.check("enabled", lambda: _bool(data.get("enabled", True)))
    errors.raise_if_any()
    return out


def validate_settings(data: dict) -> dict:
    errors = _require(data, SETTINGS_FIELDS, ())
    out: dict[str, Any] = {}
    out["exclude_out_of_stock"] = errors.check(
        "exclude_out_of_stock", lambda: _bool(data.get("exclude_out_of_stock", True))
    )
    out["consumed_event_types"] = errors.check(
        "consumed_event_types", lambda: _event_type_names(data.get("consumed_event_types", ["purchase", "rating"]))
    )
    out["exclude_consumed_days"] = errors.check(
        "exclude_consumed_days", lambda: _optional_int(data.get("exclude_consumed_days"), 0, MAX_CONSUMED_DAYS)
    )
    out["max_per_category"] = errors.check(
        "max_per_category", lambda: _optional_int(data.get("max_per_category"), 1, MAX_PER_CATEGORY)
    )
    errors.raise_if_any()
    return out


# --- persistence --------------------------------------------------------------------------------------

_SPECS: dict[type[models.Model], tuple[tuple[str, ...], Callable[[dict], dict]]] = {
    Rule: (RULE_FIELDS, validate_rule),
    Promotion: (PROMOTION_FIELDS, validate_promotion),
    Boost: (BOOST_FIELDS, validate_boost),
    RecommendationSettings: (SETTINGS_FIELDS, validate_settings),
}


def _rules_changed(tenant_id: int) -> None:
    transaction.on_commit(lambda: bump_rules_generation(tenant_id))


def _create(model: type[models.Model], tenant_id: int, data: dict) -> Any:
    _, validate = _SPECS[model]
    clean = validate(data)
    with transaction.atomic():
        if model.objects.for_tenant(tenant_id).count() >= MAX_ROWS_PER_TENANT:
            raise ValidationError(
                {"non_field_errors": [f"At most {MAX_ROWS_PER_TENANT} {model._meta.verbose_name_plural} per shop."]}
            )
        obj = model.objects.for_tenant(tenant_id).create(tenant_id=tenant_id, **clean)
        _rules_changed(tenant_id)
    return obj


def current_values(obj: models.Model) -> dict:
    """The stored fields of a rule, promotion, boost or settings row, in the validators' input form."""
    fields, _ = _SPECS[type(obj)]
    return {name: getattr(obj, name) for name in fields}


def _update(obj: Any, changes: dict) -> Any:
    """Apply `changes` (any subset of the fields; unknown ones are errors) to `obj`, validating the merged
    whole. Changing a rule's kind needs its params too (the old params belong to the old kind)."""
    _, validate = _SPECS[type(obj)]
    merged = {**current_values(obj), **changes}
    if isinstance(obj, Rule) and "kind" in changes and "params" not in changes and changes["kind"] != obj.kind:
        raise ValidationError({"params": ["Changing the kind needs new params."]})
    clean = validate(merged)
    for name, value in clean.items():
        setattr(obj, name, value)
    with transaction.atomic():
        obj.save(update_fields=[*clean, "updated_at"])
        _rules_changed(obj.tenant_id)
    return obj


def _delete(obj: Any) -> None:
    tenant_id = obj.tenant_id
    with transaction.atomic():
        obj.delete()
        _rules_changed(tenant_id)


def create_rule(tenant: Any, data: dict) -> Rule:
    return _create(Rule, tenant_id_of(tenant), data)


def update_rule(rule: Rule, changes: dict) -> Rule:
    return _update(rule, changes)


def delete_rule(rule: Rule) -> None:
    _delete(rule)


def create_promotion(tenant: Any, data: dict) -> Promotion:
    return _create(Promotion, tenant_id_of(tenant), data)


def update_promotion(promotion: Promotion, changes: dict) -> Promotion:
    return _update(promotion, changes)


def delete_promotion(promotion: Promotion) -> None:
    _delete(promotion)


def create_boost(tenant: Any, data: dict) -> Boost:
    return _create(Boost, tenant_id_of(tenant), data)


def update_boost(boost: Boost, changes: dict) -> Boost:
    return _update(boost, changes)


def delete_boost(boost: Boost) -> None:
    _delete(boost)


def settings_for(tenant: Any) -> RecommendationSettings:
    """The tenant's settings, created with the defaults on first use (caller acts for the tenant)."""
    tenant_id = tenant_id_of(tenant)
    obj, _ = RecommendationSettings.objects.for_tenant(tenant_id).get_or_create(tenant_id=tenant_id)
    return obj


def update_settings(tenant: Any, changes: dict) -> RecommendationSettings:
    with transaction.atomic():
        obj = settings_for(tenant)
        obj = _update(obj, changes)
        _check_known_event_types(obj.tenant_id, obj.consumed_event_types)  # rolls the update back
        return obj
