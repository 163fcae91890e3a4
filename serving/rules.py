"""The tenant's rules, promotions and boosts compiled into vectorised masks over a CandidateTable.

Compiled once per tenant and rules generation (serving.cache.rules_generation, bumped by every rule
write) and kept per process; a request only evaluates masks, never parses JSON or reads rule rows.

Semantics of a condition (the grammar is recs/rules/predicates.py):
* strings (brand, title, attributes): exact, case-sensitive equality for eq/ne/in/not_in; `contains` on
  title is a case-insensitive substring test.
* category (any element of category_path) and tags: eq/in/contains mean "the list holds one of the
  values", ne/not_in "holds none of them".
* numbers (price, stock, numeric attributes): a missing value (no price, stock not tracked, attribute
  absent or not a number) satisfies no eq/in/lt/lte/gt/gte and every ne/not_in.
* attributes compare by JSON type: 1 does not equal "1" nor true.
Rule kinds: include/exclude_categories match any element of category_path; price_range keeps products
with a price inside [min, max] (a product without a price is removed); attribute include/exclude keeps
the products that match / do not match the predicate; exclude_products removes shop ids.
A promotion selects products by its ids or its predicate (either one is enough).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from serving.catalog import STR, CandidateTable

log = logging.getLogger(__name__)

Mask = Callable[[CandidateTable], np.ndarray]
ENDPOINTS = ("recommendations", "similar", "popular")
# A process re-reads the rules at least this often even if the generation key is unreadable (Redis down).
LOCAL_MAX_AGE_SECONDS = 60.0


# --- plain specs (what the recs rows hold) -------------------------------------------------------------


@dataclass(frozen=True)
class RuleSpec:
    id: int | None
    name: str
    kind: str
    params: dict
    endpoints: tuple[str, ...] = ENDPOINTS


@dataclass(frozen=True)
class PromotionSpec:
    id: int | None
    name: str
    product_ids: tuple[str, ...] = ()
    conditions: tuple = ()
    threshold: float = 0.0
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None


@dataclass(frozen=True)
class BoostSpec:
    id: int | None
    name: str
    conditions: tuple
    factor: float
    endpoints: tuple[str, ...] = ENDPOINTS


@dataclass(frozen=True)
class SettingsSpec:
    exclude_out_of_stock: bool = True
    consumed_event_types: tuple[str, ...] = ("purchase", "rating")
    exclude_consumed_days: int | None = None  # None: ever consumed; 0: never excluded
    max_per_category: int | None = None


# --- compiled forms ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledRule:
    id: int | None
    name: str
    kind: str
    endpoints: frozenset[str]
    keep: Mask  # True: the candidate passes


@dataclass(frozen=True)
class CompiledPromotion:
    id: int | None
    name: str
    threshold: float
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None
    selects: Mask
    product_ids: tuple[str, ...] = ()
    # Product pks of `product_ids` (resolved when compiled from the tenant's rows): retrieval adds them to
    # the candidates, so a listed product is scored (and can reach its threshold) even when the customer's
    # embedding alone would not retrieve it.
    product_pks: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def active(self, now: dt.datetime) -> bool:
        return (self.starts_at is None or self.starts_at <= now) and (self.ends_at is None or now < self.ends_at)


@dataclass(frozen=True)
class CompiledBoost:
    id: int | None
    name: str
    factor: float
    endpoints: frozenset[str]
    selects: Mask


@dataclass(frozen=True)
class CompiledRules:
    generation: int = 0
    rules: tuple[CompiledRule, ...] = ()
    promotions: tuple[CompiledPromotion, ...] = ()
    boosts: tuple[CompiledBoost, ...] = ()
    settings: SettingsSpec = field(default_factory=SettingsSpec)
    attribute_keys: tuple[str, ...] = ()  # the attributes the masks read (the candidate query extracts them)

    def rules_for(self, endpoint: str) -> tuple[CompiledRule, ...]:
        return tuple(r for r in self.rules if endpoint in r.endpoints)

    def boosts_for(self, endpoint: str) -> tuple[CompiledBoost, ...]:
        return tuple(b for b in self.boosts if endpoint in b.endpoints)

    def active_promotions(self, now: dt.datetime) -> tuple[CompiledPromotion, ...]:
        return tuple(p for p in self.promotions if p.active(now))

    def promoted_pks(self, now: dt.datetime) -> np.ndarray:
        """Product pks listed by the active promotions."""
        pks = [p.product_pks for p in self.active_promotions(now)]
        return np.unique(np.concatenate(pks)) if pks else np.zeros(0, dtype=np.int64)

    def seconds_until_change(self, now: dt.datetime) -> float | None:
        """Until the next promotion start or end (None: no upcoming one): caps the answer cache TTL."""
        upcoming = [t for p in self.promotions for t in (p.starts_at, p.ends_at) if t is not None and t > now]
        return min(upcoming).timestamp() - now.timestamp() if upcoming else None


# --- conditions -> masks ----------------------------------------------------------------------------------


def _field(cond: Any, key: str) -> Any:
    return cond[key] if isinstance(cond, dict) else getattr(cond, key)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _values(op: str, value: Any) -> list:
    return list(value) if op in ("in", "not_in") else [value]


def _negated(op: str) -> bool:
    return op in ("ne", "not_in")


def _numeric(col: np.ndarray, op: str, value: Any) -> np.ndarray:
    """NaN (missing) fails every comparison; the caller negates for ne/not_in."""
    if op in ("lt", "lte", "gt", "gte"):
        if not _is_number(value):
            return np.zeros(len(col), dtype=bool)
        v = float(value)
        with np.errstate(invalid="ignore"):
            return {"lt": col < v, "lte": col <= v, "gt": col > v, "gte": col >= v}[op]
    numbers = [float(v) for v in _values(op, value) if _is_number(v)]
    return np.isin(col, np.array(numbers, dtype=np.float64))


def _strings(col: np.ndarray, op: str, value: Any) -> np.ndarray:
    if op == "contains":
        return np.strings.find(np.strings.lower(col), str(value).lower()) >= 0
    wanted = [v for v in _values(op, value) if isinstance(v, str)]
    return np.isin(col, np.array(wanted, dtype=STR))


def _attribute(table: CandidateTable, key: str, op: str, value: Any) -> np.ndarray:
    col = table.attributes[key]
    if op in ("lt", "lte", "gt", "gte"):
        return _numeric(col.number, op, value)
    values = _values(op, value)
    out = np.zeros(len(table), dtype=bool)
    bools = [v for v in values if isinstance(v, bool)]
    numbers = [v for v in values if _is_number(v)]
    strings = [v for v in values if isinstance(v, str)]
    for b in bools:
        out |= col.is_bool & (col.boolean == b)
    if numbers:
        out |= np.isin(col.number, np.array(numbers, dtype=np.float64))
    if strings:
        out |= col.is_string & np.isin(col.string, np.array(strings, dtype=STR))
    return out


def compile_condition(cond: Any) -> Mask:
    """One condition -> a function of the table giving the rows where it holds."""
    field_name, op, value = _field(cond, "field"), _field(cond, "op"), _field(cond, "value")
    negate = _negated(op)

    if field_name in ("category", "tags"):
        def positive(t: CandidateTable) -> np.ndarray:
            lists = t.categories if field_name == "category" else t.tags
            return t.has_any(lists, [str(v) for v in _values(op, value)])
    elif field_name in ("price", "stock"):
        def positive(t: CandidateTable) -> np.ndarray:
            return _numeric(getattr(t, field_name), op, value)
    elif field_name in ("brand", "title"):
        def positive(t: CandidateTable) -> np.ndarray:
            return _strings(getattr(t, field_name), op, value)
    elif field_name.startswith("attributes."):
        key = field_name[len("attributes."):]

        def positive(t: CandidateTable) -> np.ndarray:
            return _attribute(t, key, op, value)
    else:
        raise ValueError(f"unknown field {field_name!r}")

    if negate:
        return lambda t: ~positive(t)
    return positive


def compile_predicate(conditions: Iterable[Any]) -> Mask | None:
    """All conditions must hold; None for an empty predicate (selects nothing by itself)."""
    masks = [compile_condition(c) for c in conditions]
    if not masks:
        return None

    def all_hold(t: CandidateTable) -> np.ndarray:
        out = np.ones(len(t), dtype=bool)
        for m in masks:
            out &= m(t)
        return out

    return all_hold


def attribute_keys(conditions: Iterable[Any]) -> set[str]:
    return {f[len("attributes."):] for f in (_field(c, "field") for c in conditions) if f.startswith("attributes.")}


def _compile_rule(spec: RuleSpec) -> tuple[CompiledRule, set[str]]:
    params, keys = spec.params, set()
    if spec.kind in ("include_categories", "exclude_categories"):
        wanted = [str(c) for c in params.get("categories", [])]

        def member(t: CandidateTable) -> np.ndarray:
            return t.has_any(t.categories, wanted)

        keep = member if spec.kind == "include_categories" else (lambda t: ~member(t))
    elif spec.kind == "price_range":
        low, high = params.get("min"), params.get("max")

        def keep(t: CandidateTable) -> np.ndarray:
            out = ~np.isnan(t.price)
            with np.errstate(invalid="ignore"):
                if low is not None:
                    out &= t.price >= float(low)
                if high is not None:
                    out &= t.price <= float(high)
            return out
    elif spec.kind == "attribute":
        conditions = list(params.get("conditions", []))
        predicate = compile_predicate(conditions)
        if predicate is None:
            raise ValueError("attribute rule without conditions")
        keys = attribute_keys(conditions)
        keep = predicate if params.get("mode", "include") == "include" else (lambda t: ~predicate(t))
    elif spec.kind == "exclude_products":
        ids = np.array([str(i) for i in params.get("product_ids", [])], dtype=STR)

        def keep(t: CandidateTable) -> np.ndarray:
            return ~np.isin(t.external_id, ids)
    else:
        raise ValueError(f"unknown rule kind {spec.kind!r}")
    return CompiledRule(spec.id, spec.name, spec.kind, frozenset(spec.endpoints), keep), keys


def _compile_promotion(spec: PromotionSpec) -> tuple[CompiledPromotion, set[str]]:
    ids = np.array([str(i) for i in spec.product_ids], dtype=STR)
    predicate = compile_predicate(spec.conditions)

    def selects(t: CandidateTable) -> np.ndarray:
        out = np.isin(t.external_id, ids) if len(ids) else np.zeros(len(t), dtype=bool)
        if predicate is not None:
            out |= predicate(t)
        return out

    promotion = CompiledPromotion(spec.id, spec.name, float(spec.threshold), spec.starts_at, spec.ends_at, selects,
                                  tuple(str(i) for i in spec.product_ids))
    return promotion, attribute_keys(spec.conditions)


def _compile_boost(spec: BoostSpec) -> tuple[CompiledBoost, set[str]]:
    predicate = compile_predicate(spec.conditions)
    if predicate is None:
        raise ValueError("boost without conditions")
    return (CompiledBoost(spec.id, spec.name, float(spec.factor), frozenset(spec.endpoints), predicate),
            attribute_keys(spec.conditions))


def compile_rules(
    rules: Sequence[RuleSpec] = (),
    promotions: Sequence[PromotionSpec] = (),
    boosts: Sequence[BoostSpec] = (),
    settings: SettingsSpec | None = None,
    *,
    generation: int = 0,
) -> CompiledRules:
    """Compile specs; a spec that cannot compile (a row that slipped past validation) is logged and
    skipped rather than failing every request of the tenant."""
    keys: set[str] = set()
    out: dict[str, list] = {"rules": [], "promotions": [], "boosts": []}
    for kind, specs, compile_one in (
        ("rules", rules, _compile_rule), ("promotions", promotions, _compile_promotion),
        ("boosts", boosts, _compile_boost),
    ):
        for spec in specs:
            try:
                compiled, used = compile_one(spec)
            except (ValueError, TypeError, KeyError):
                log.exception("skipping %s %s (%s): cannot compile", kind, spec.id, spec.name)
                continue
            out[kind].append(compiled)
            keys |= used
    return CompiledRules(
        generation=generation, rules=tuple(out["rules"]), promotions=tuple(out["promotions"]),
        boosts=tuple(out["boosts"]), settings=settings or SettingsSpec(), attribute_keys=tuple(sorted(keys)),
    )


# --- loading from the tenant's rows ---------------------------------------------------------------------


def _conditions(raw: Any) -> tuple:
    from recs.rules.predicates import parse_conditions

    return tuple(parse_conditions(raw or [], allow_empty=True))


def load_specs(tenant_id: int) -> tuple[list[RuleSpec], list[PromotionSpec], list[BoostSpec], SettingsSpec]:
    """The tenant's enabled rules, promotions and boosts, and its settings (defaults without a row)."""
    from recs.models import Boost, Promotion, RecommendationSettings, Rule

    rules, promotions, boosts = [], [], []
    for r in Rule.objects.for_tenant(tenant_id).filter(enabled=True).order_by("pk"):
        params = dict(r.params or {})
        if r.kind == "attribute":
            try:
                params["conditions"] = _conditions(params.get("conditions"))
            except Exception:
                log.exception("skipping rule %s: invalid conditions", r.pk)
                continue
        rules.append(RuleSpec(r.pk, r.name, r.kind, params, tuple(r.endpoints or ())))
    for p in Promotion.objects.for_tenant(tenant_id).filter(enabled=True).order_by("pk"):
        try:
            conditions = _conditions(p.conditions)
        except Exception:
            log.exception("skipping promotion %s: invalid conditions", p.pk)
            continue
        promotions.append(PromotionSpec(p.pk, p.name, tuple(p.product_ids or ()), conditions, p.threshold,
                                        p.starts_at, p.ends_at))
    for b in Boost.objects.for_tenant(tenant_id).filter(enabled=True).order_by("pk"):
        try:
            conditions = _conditions(b.conditions)
        except Exception:
            log.exception("skipping boost %s: invalid conditions", b.pk)
            continue
        boosts.append(BoostSpec(b.pk, b.name, conditions, b.factor, tuple(b.endpoints or ())))
    row = RecommendationSettings.objects.for_tenant(tenant_id).first()  # read only: no create on serving
    settings = SettingsSpec(
        row.exclude_out_of_stock, tuple(row.consumed_event_types), row.exclude_consumed_days, row.max_per_category
    ) if row else SettingsSpec()
    return rules, promotions, boosts, settings


def _with_product_pks(tenant_id: int, compiled: CompiledRules) -> CompiledRules:
    """Resolve the promotions' listed shop ids to product pks (one query)."""
    from recs.models import Product

    wanted = {i for p in compiled.promotions for i in p.product_ids}
    if not wanted:
        return compiled
    pks = dict(Product.objects.for_tenant(tenant_id).filter(external_id__in=wanted).values_list("external_id", "pk"))
    promotions = tuple(
        replace(p, product_pks=np.array([pks[i] for i in p.product_ids if i in pks], dtype=np.int64))
        for p in compiled.promotions
    )
    return replace(compiled, promotions=promotions)


_compiled: dict[int, tuple[int, float, CompiledRules]] = {}
_lock = threading.Lock()


def compiled_rules(tenant_id: int) -> CompiledRules:
    """The tenant's compiled rules, recompiled when its rules generation changes (or, as a safety net
    when the generation cannot be read, after LOCAL_MAX_AGE_SECONDS)."""
    from serving.cache import rules_generation

    generation = rules_generation(tenant_id)
    now = time.monotonic()
    cached = _compiled.get(tenant_id)
    if cached is not None and cached[0] == generation and now - cached[1] < LOCAL_MAX_AGE_SECONDS:
        return cached[2]
    compiled = _with_product_pks(tenant_id, compile_rules(*load_specs(tenant_id), generation=generation))
    with _lock:
        _compiled[tenant_id] = (generation, now, compiled)
    return compiled


def clear() -> None:
    """Forget every compiled rule set (tests)."""
    _compiled.clear()
