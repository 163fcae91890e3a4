"""Forms of the Rules and Promotions pages. They only shape the browser's input (JSON textareas, one id per
line, checkboxes); recs.rules validates it, the same way as for the API, and its field errors are shown
on the form."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from recs import rules
from recs.models import Rule
from recs.models.rules import ENDPOINTS
from recs.rules.predicates import MAX_IN_VALUES

MAX_JSON_CHARS = 64 * 1024

ENDPOINT_CHOICES = [
    ("recommendations", "Recommendations for a customer"),
    ("similar", "Similar products"),
    ("popular", "Popular products"),
]
KIND_EXAMPLES = {
    Rule.Kind.INCLUDE_CATEGORIES: {"categories": ["Shoes", "Bags"]},
    Rule.Kind.EXCLUDE_CATEGORIES: {"categories": ["Gift cards"]},
    Rule.Kind.PRICE_RANGE: {"min": 10, "max": 200},
    Rule.Kind.ATTRIBUTE: {
        "mode": "exclude", "conditions": [{"field": "attributes.adult", "op": "eq", "value": True}],
    },
    Rule.Kind.EXCLUDE_PRODUCTS: {"product_ids": ["sku-123", "sku-456"]},
}
KIND_HELP = {
    Rule.Kind.INCLUDE_CATEGORIES: "Recommend only products in one of these categories.",
    Rule.Kind.EXCLUDE_CATEGORIES: "Never recommend products in these categories.",
    Rule.Kind.PRICE_RANGE: "Recommend only products priced within min and max (either may be null).",
    Rule.Kind.ATTRIBUTE: "Keep (include) or drop (exclude) the products matching all the conditions.",
    Rule.Kind.EXCLUDE_PRODUCTS: "Never recommend these products (your product ids).",
}
CONDITIONS_EXAMPLE = [
    {"field": "brand", "op": "eq", "value": "Acme"},
    {"field": "price", "op": "lt", "value": 50},
]


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


class JSONTextField(forms.CharField):
    """A JSON value edited as text; shown indented."""

    def __init__(self, *, empty_value: Any = None, rows: int = 6, **kwargs):
        self.json_empty = empty_value
        kwargs.setdefault("max_length", MAX_JSON_CHARS)
        super().__init__(
            widget=forms.Textarea(attrs={"rows": rows, "class": "code", "spellcheck": "false"}), strip=True, **kwargs
        )

    def prepare_value(self, value: Any) -> str:
        if value is None or isinstance(value, str):
            return value or ""
        return pretty_json(value)

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value)
        if not text:
            return self.json_empty
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).", code="invalid_json"
            ) from None


class LinesField(forms.CharField):
    """A list of ids, one per line (commas also separate)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", MAX_JSON_CHARS)
        super().__init__(widget=forms.Textarea(attrs={"rows": 4, "class": "code", "spellcheck": "false"}), **kwargs)

    def prepare_value(self, value: Any) -> str:
        return "\n".join(value) if isinstance(value, list) else (value or "")

    def to_python(self, value: Any) -> list[str]:
        text = super().to_python(value) or ""
        items = [part.strip() for line in text.splitlines() for part in line.split(",")]
        items = [item for item in items if item]
        if len(items) > MAX_IN_VALUES:
            raise ValidationError(f"At most {MAX_IN_VALUES} ids.")
        return items


class _DomainForm(forms.Form):
    """A form whose whole input is validated by a recs.rules validator: `domain_data` is its result."""

    validate: Callable[[dict], dict]
    # Domain field -> form field, where they differ (errors are shown on the form field).
    error_fields: dict[str, str] = {}

    def __init__(self, *args, read_only: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.domain_data: dict | None = None
        if read_only:
            for field in self.fields.values():
                field.disabled = True

    def to_domain(self, cleaned: dict) -> dict:
        return dict(cleaned)

    def show_domain_errors(self, exc: ValidationError) -> None:
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        for name, messages in errors.items():
            field = self.error_fields.get(name, name)
            target = field if field in self.fields else None
            for message in messages:
                # An error of no form field names its field unless it is about the whole object.
                shown = message if target or name == "non_field_errors" else f"{name}: {message}"
                self.add_error(target, shown)

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned  # the domain validator needs every field parsed
        try:
            self.domain_data = type(self).validate(self.to_domain(cleaned))
        except ValidationError as exc:
            self.show_domain_errors(exc)
        return cleaned


def _endpoints_field() -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        label="Applies to", choices=ENDPOINT_CHOICES, widget=forms.CheckboxSelectMultiple,
        initial=list(ENDPOINTS), error_messages={"required": "Choose at least one."},
    )


def _name_field(example: str) -> forms.CharField:
    return forms.CharField(max_length=100, widget=forms.TextInput(attrs={"placeholder": f"e.g. {example}"}))


class RuleForm(_DomainForm):
    validate = staticmethod(rules.validate_rule)

    name = _name_field("No gift cards")
    kind = forms.ChoiceField(label="Kind", choices=Rule.Kind.choices)
    params = JSONTextField(
        label="Parameters (JSON)", rows=7, help_text="The examples on the right show the parameters of each kind."
    )
    endpoints = _endpoints_field()
    enabled = forms.BooleanField(label="Enabled", required=False, initial=True)

    def kind_examples(self) -> list[tuple[str, str, str]]:
        return [(kind.label, KIND_HELP[kind], pretty_json(KIND_EXAMPLES[kind])) for kind in Rule.Kind]


class PromotionForm(_DomainForm):
    validate = staticmethod(rules.validate_promotion)

    name = _name_field("Winter collection")
    product_ids = LinesField(label="Product ids", required=False, help_text="Your product ids, one per line.")
    conditions = JSONTextField(
        label="Conditions (JSON)", required=False, empty_value=[], rows=5,
        help_text="Optional: also promote every product matching all these conditions.",
    )
    threshold = forms.FloatField(
        label="Score threshold", min_value=0, max_value=1, initial=0.0,
        widget=forms.NumberInput(attrs={"step": "0.01"}),
        help_text="A promoted product goes first only if its ranking score reaches this (0: always).",
    )
    starts_at = forms.DateTimeField(
        label="Starts (UTC)", required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"},
                                                                        format="%Y-%m-%dT%H:%M"),
    )
    ends_at = forms.DateTimeField(
        label="Ends (UTC)", required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"},
                                                                      format="%Y-%m-%dT%H:%M"),
    )
    enabled = forms.BooleanField(label="Enabled", required=False, initial=True)


class BoostForm(_DomainForm):
    validate = staticmethod(rules.validate_boost)

    name = _name_field("Lift our own brand")
    conditions = JSONTextField(label="Conditions (JSON)", rows=6, help_text="Products matching all of these.")
    factor = forms.FloatField(
        label="Factor", min_value=0.01, max_value=10, widget=forms.NumberInput(attrs={"step": "0.05"}),
        help_text="Multiplies the score: above 1 lifts, below 1 buries (at most 10).",
    )
    endpoints = _endpoints_field()
    enabled = forms.BooleanField(label="Enabled", required=False, initial=True)


class SettingsForm(_DomainForm):
    validate = staticmethod(rules.validate_settings)
    error_fields = {"exclude_consumed_days": "consumed_days"}

    CONSUMED_CHOICES = [
        ("always", "Never recommend what the customer already had"),
        ("days", "Skip what they had in the last N days"),
        ("never", "Recommend it again"),
    ]

    exclude_out_of_stock = forms.BooleanField(label="Leave out products that are out of stock", required=False)
    consumed_event_types = forms.MultipleChoiceField(
        label="A customer has had a product when they", required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Views and carts are interest, not consumption.",
    )
    consumed = forms.ChoiceField(label="Products they already had", choices=CONSUMED_CHOICES)
    consumed_days = forms.IntegerField(
        label="Days", required=False, min_value=1, max_value=3650,
        widget=forms.NumberInput(attrs={"placeholder": "30"}),
    )
    max_per_category = forms.IntegerField(
        label="At most per category", required=False, min_value=1, max_value=100,
        widget=forms.NumberInput(attrs={"placeholder": "No limit"}),
        help_text="Diversity: how many products of one category an answer may hold (blank: no limit).",
    )

    def __init__(self, *args, event_types: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["consumed_event_types"].choices = [(name, name.replace("_", " ")) for name in event_types]

    @classmethod
    def initial_from(cls, values: dict) -> dict:
        days = values["exclude_consumed_days"]
        consumed = "always" if days is None else "never" if days == 0 else "days"
        return {
            "exclude_out_of_stock": values["exclude_out_of_stock"],
            "consumed_event_types": values["consumed_event_types"], "consumed": consumed,
            "consumed_days": days or None, "max_per_category": values["max_per_category"],
        }

    def clean(self):
        cleaned = self.cleaned_data
        days_missing = not cleaned.get("consumed_days") and "consumed_days" not in self.errors
        if cleaned.get("consumed") == "days" and days_missing:
            self.add_error("consumed_days", "How many days?")
        return super().clean()

    def to_domain(self, cleaned: dict) -> dict:
        consumed = cleaned["consumed"]
        days = None if consumed == "always" else 0 if consumed == "never" else cleaned["consumed_days"]
        return {
            "exclude_out_of_stock": cleaned["exclude_out_of_stock"],
            "consumed_event_types": cleaned["consumed_event_types"], "exclude_consumed_days": days,
            "max_per_category": cleaned["max_per_category"],
        }
