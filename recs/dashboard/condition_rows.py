"""Product conditions as form rows (field, attribute key, operator, value) instead of hand-written JSON.

The rows only build the JSON list of recs/rules/predicates.py (`{"field", "op", "value"}`); whether a
condition is valid is that module's decision, shown on the form. What the rows decide is the JSON type of
a typed value, since attributes compare by type (serving/rules.py: 1 is neither "1" nor true):

* price and stock, and every <, ≤, >, ≥: a number when the text is one;
* attributes: a number, or true/false, when the text is one; in double quotes, always text ("42");
* brand, category, tags and title: always text;
* "is one of" / "is none of": a comma-separated list of such values (a value with a comma in quotes).

Stored conditions are written back the same way, so editing a condition changes nothing unless typed.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.template.loader import render_to_string

from recs.rules.predicates import ATTRIBUTE_PREFIX, LIST_OPS, MAX_CONDITIONS, NUMERIC_FIELDS, NUMERIC_OPS, OPS

ATTRIBUTE = "attributes"  # the field choice whose key is typed beside it
FIELD_CHOICES = [
    ("", "Choose…"), ("brand", "Brand"), ("category", "Category"), ("tags", "Tag"), ("title", "Title"),
    ("price", "Price"), ("stock", "Stock"), (ATTRIBUTE, "Attribute…"),
]
OP_LABELS = {
    "eq": "is", "ne": "is not", "in": "is one of", "not_in": "is none of", "lt": "is below", "lte": "is at most",
    "gt": "is above", "gte": "is at least", "contains": "contains",
}
OP_CHOICES = [(op, OP_LABELS[op]) for op in OPS]
PARTS = ("field", "key", "op", "value")
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_ITEM = re.compile(r'\s*("(?:[^"\\]|\\.)*"|[^,]*?)\s*(?:,|$)')
_PART_NAMES = {"field": "field", "op": "operator", "value": "value"}
_CONDITION_ERROR = re.compile(r"^conditions\[(\d+)\](?:\.(field|op|value))?(?:\[(\d+)\])?: ")


class Rows(list):
    """The rows as the browser sent them (dicts of PARTS, strings), before they are conditions."""


def _number(text: str) -> int | float | None:
    if not _NUMBER.fullmatch(text):
        return None
    return float(text) if any(c in text for c in ".eE") else int(text)


def parse_value(text: str, field: str, op: str) -> Any:
    """One typed value as JSON (see the module's docstring). A text that is no number where one is needed
    stays text, for the validator to refuse with its own words."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    is_attribute = field.startswith(ATTRIBUTE_PREFIX)
    if field in NUMERIC_FIELDS or op in NUMERIC_OPS or is_attribute:
        number = _number(text)
        if number is not None:
            return number
    if is_attribute and text in ("true", "false"):
        return text == "true"
    return text


def split_values(text: str) -> list[str]:
    """'a, "b, c", d' -> ['a', '"b, c"', 'd'] (quotes kept for parse_value); empty items dropped."""
    items = []
    position = 0
    while position < len(text):
        match = _ITEM.match(text, position)
        items.append(match.group(1))
        position = match.end() if match.end() > position else position + 1
    return [item for item in items if item]


def format_value(value: Any, field: str, *, in_list: bool = False) -> str:
    """A stored value as typed, so that parse_value reads it back as the same JSON value."""
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    text = str(value)
    reads_back = parse_value(text, field, "eq") == text and text == text.strip()
    if not reads_back or text.startswith('"') or (in_list and ("," in text or text == "")):
        return json.dumps(text, ensure_ascii=False)
    return text


def row_of(condition: Any) -> dict[str, str]:
    """A stored condition as a row; a malformed one (only the API could have stored it) as best it can."""
    if not isinstance(condition, dict):
        return {"field": "", "key": "", "op": "eq", "value": json.dumps(condition, ensure_ascii=False)}
    field, op, value = str(condition.get("field", "")), str(condition.get("op", "eq")), condition.get("value")
    key = ""
    if field.startswith(ATTRIBUTE_PREFIX):
        field, key = ATTRIBUTE, field[len(ATTRIBUTE_PREFIX):]
    stored_field = f"{ATTRIBUTE_PREFIX}{key}" if field == ATTRIBUTE else field
    if isinstance(value, list):
        text = ", ".join(format_value(item, stored_field, in_list=True) for item in value)
    else:
        text = "" if value is None else format_value(value, stored_field)
    return {"field": field, "key": key, "op": op, "value": text}


def condition_of(row: dict[str, str]) -> dict[str, Any]:
    """A row as the JSON condition it means (whatever was typed: the validator judges it)."""
    field = row["field"]
    if field == ATTRIBUTE or (not field and row["key"].strip()):  # a typed key names an attribute
        field = f"{ATTRIBUTE_PREFIX}{row['key'].strip()}"
    op = row["op"]
    if op in LIST_OPS:
        value: Any = [parse_value(item, field, op) for item in split_values(row["value"])]
    else:
        value = parse_value(row["value"], field, op)
    return {"field": field, "op": op, "value": value}


def readable_error(message: str) -> str:
    """'conditions[1].value: price lt needs a number' -> 'Condition 2, value: price lt needs a number'."""
    match = _CONDITION_ERROR.match(message)
    if match is None:
        return message
    index, part, item = match.groups()
    where = f"Condition {int(index) + 1}"
    if part:
        where += f", {_PART_NAMES[part]}"
    if item is not None:
        where += f" {int(item) + 1}"
    return f"{where}: {message[match.end():]}"


class ConditionRowsWidget(forms.Widget):
    """Rows named `<name>-<i>-<part>`; the page's script adds and removes rows (at most MAX_CONDITIONS),
    and without it one blank row follows the filled ones."""

    template_name = "dashboard/_condition_rows.html"

    def __init__(self, attrs=None):
        super().__init__(attrs)
        self.attribute_keys: list[str] = []

    def value_from_datadict(self, data, files, name) -> Rows:
        rows = Rows()
        # One index past the limit is read, so that the validator (not this widget) refuses a 21st condition.
        for i in range(MAX_CONDITIONS + 1):
            row = {part: str(data.get(f"{name}-{i}-{part}", ""))[:10_000] for part in PARTS}
            if row["field"] or row["key"].strip() or row["value"].strip():
                rows.append(row)
        return rows

    def value_omitted_from_data(self, data, files, name) -> bool:
        return not any(key.startswith(f"{name}-") for key in data)

    def render(self, name, value, attrs=None, renderer=None) -> str:
        rows = list(value or [])
        attrs = self.build_attrs(self.attrs, attrs)
        disabled = bool(attrs.get("disabled"))
        if not disabled and len(rows) < MAX_CONDITIONS:
            rows.append({"field": "", "key": "", "op": "eq", "value": ""})
        return render_to_string(self.template_name, {
            "name": name, "id": attrs.get("id", name), "rows": rows, "disabled": disabled,
            "field_choices": FIELD_CHOICES, "op_choices": OP_CHOICES, "attribute": ATTRIBUTE,
            "attribute_keys": self.attribute_keys, "max_rows": MAX_CONDITIONS,
        })


class ConditionsField(forms.Field):
    """A list of conditions edited as rows; cleans to the JSON list, which the domain validator judges."""

    widget = ConditionRowsWidget

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)  # an empty list is the validator's call (boosts need one)
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> list[dict[str, str]]:
        if isinstance(value, Rows):
            return list(value)
        return [row_of(condition) for condition in value] if isinstance(value, list) else []

    def to_python(self, value: Any) -> list[dict[str, Any]]:
        if isinstance(value, Rows):
            return [condition_of(row) for row in value]
        return value if isinstance(value, list) else []
