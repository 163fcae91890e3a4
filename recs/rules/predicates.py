"""Product predicates: the condition lists that attribute rules, promotions and boosts select products by.

A predicate is a JSON list of 1..20 conditions that must all hold, each `{"field", "op", "value"}`.
This module only validates and normalises them; serving/rules.py compiles the same `Condition`s into
vectorised masks over the catalog, so the grammar here is the contract between the two.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

MAX_CONDITIONS = 20
MAX_IN_VALUES = 1000
MAX_STRING = 200

SCALAR_FIELDS = ("brand", "category", "tags", "price", "stock", "title")
ATTRIBUTE_PREFIX = "attributes."
ATTRIBUTE_KEY_RE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")

OPS = ("eq", "ne", "in", "not_in", "lt", "lte", "gt", "gte", "contains")
NUMERIC_OPS = frozenset({"lt", "lte", "gt", "gte"})
LIST_OPS = frozenset({"in", "not_in"})
# Fields that may be compared with lt/lte/gt/gte. Attributes are free-form, so a numeric comparison on
# them simply fails for products whose value is not a number.
NUMERIC_FIELDS = frozenset({"price", "stock"})
# "contains": substring for title, membership for the list-valued category (category_path) and tags.
CONTAINS_FIELDS = frozenset({"title", "category", "tags"})
CONDITION_KEYS = frozenset({"field", "op", "value"})


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any

    @property
    def attribute_key(self) -> str | None:
        """The attributes JSON key for an `attributes.<key>` field, else None."""
        return self.field[len(ATTRIBUTE_PREFIX):] if self.field.startswith(ATTRIBUTE_PREFIX) else None

    def as_dict(self) -> dict[str, Any]:
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"field": self.field, "op": self.op, "value": value}


def _fail(where: str, message: str) -> ValidationError:
    return ValidationError(f"{where}: {message}", code="invalid")


def _check_scalar(value: Any, where: str) -> str | int | float | bool:
    # bool is an int subclass in Python; it is accepted as itself (attribute flags) before numbers.
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > 2**53:
            raise _fail(where, "number is too large")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(where, "number must be finite")
        return value
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise _fail(where, f"string is longer than {MAX_STRING} characters")
        if "\x00" in value:
            # PostgreSQL jsonb cannot store NUL.
            raise _fail(where, "NUL characters are not allowed")
        return value
    raise _fail(where, "must be a string, a finite number or a boolean")


def _check_field(field: Any, where: str) -> str:
    if not isinstance(field, str):
        raise _fail(f"{where}.field", "must be a string")
    if field in SCALAR_FIELDS:
        return field
    if field.startswith(ATTRIBUTE_PREFIX):
        if ATTRIBUTE_KEY_RE.match(field[len(ATTRIBUTE_PREFIX):]):
            return field
        raise _fail(f"{where}.field", "attribute key must be 1-64 letters, digits, '_' or '-'")
    allowed = ", ".join(SCALAR_FIELDS)
    raise _fail(f"{where}.field", f"unknown field {field[:64]!r} (allowed: {allowed}, attributes.<key>)")


def parse_condition(obj: Any, index: int = 0) -> Condition:
    where = f"conditions[{index}]"
    if not isinstance(obj, dict):
        raise _fail(where, 'must be an object {"field", "op", "value"}')
    unknown = sorted(str(k) for k in set(obj) - CONDITION_KEYS)
    if unknown:
        raise _fail(where, f"unknown key(s): {', '.join(k[:64] for k in unknown)}")
    missing = sorted(CONDITION_KEYS - set(obj))
    if missing:
        raise _fail(where, f"missing key(s): {', '.join(missing)}")
    field = _check_field(obj["field"], where)
    op = obj["op"]
    if not isinstance(op, str) or op not in OPS:
        raise _fail(f"{where}.op", f"unknown operator (allowed: {', '.join(OPS)})")
    is_attribute = field.startswith(ATTRIBUTE_PREFIX)
    if op in NUMERIC_OPS and not (field in NUMERIC_FIELDS or is_attribute):
        raise _fail(f"{where}.op", f"{op!r} applies only to price, stock and attributes.<key>")
    if op == "contains" and field not in CONTAINS_FIELDS:
        raise _fail(f"{where}.op", "'contains' applies only to title, category and tags")

    value = obj["value"]
    vwhere = f"{where}.value"
    if op in LIST_OPS:
        if not isinstance(value, list) or not value:
            raise _fail(vwhere, f"{op!r} needs a non-empty list")
        if len(value) > MAX_IN_VALUES:
            raise _fail(vwhere, f"at most {MAX_IN_VALUES} values")
        items = [_check_scalar(v, f"{vwhere}[{i}]") for i, v in enumerate(value)]
        if field in NUMERIC_FIELDS:
            for i, item in enumerate(items):
                if isinstance(item, bool) or not isinstance(item, int | float):
                    raise _fail(f"{vwhere}[{i}]", f"{field} values must be numbers")
        # A tuple keeps the frozen dataclass hashable; duplicates carry no meaning. Keyed by type too:
        # True == 1 in Python, but not in a product's attributes.
        unique = {(type(item), item): item for item in items}
        return Condition(field, op, tuple(unique.values()))

    value = _check_scalar(value, vwhere)
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if (op in NUMERIC_OPS or field in NUMERIC_FIELDS) and not is_number:
        raise _fail(vwhere, f"{field} {op} needs a number")
    if op == "contains" and not isinstance(value, str):
        raise _fail(vwhere, "'contains' needs a string")
    return Condition(field, op, value)


def parse_conditions(obj: Any, *, allow_empty: bool = False) -> list[Condition]:
    """Validate a predicate (JSON list of conditions, all must hold). Raises ValidationError naming the
    bad condition's index and key."""
    if not isinstance(obj, list):
        raise ValidationError("conditions: must be a list of conditions", code="invalid")
    if not obj and not allow_empty:
        raise ValidationError("conditions: at least one condition is required", code="invalid")
    if len(obj) > MAX_CONDITIONS:
        raise ValidationError(f"conditions: at most {MAX_CONDITIONS} conditions", code="invalid")
    return [parse_condition(item, i) for i, item in enumerate(obj)]


def normalise_conditions(obj: Any, *, allow_empty: bool = False) -> list[dict[str, Any]]:
    """The stored (JSON) form of a validated predicate."""
    return [c.as_dict() for c in parse_conditions(obj, allow_empty=allow_empty)]
