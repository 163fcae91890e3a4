"""Forms of the Rules and Promotions pages. They only shape the browser's input into the JSON the API takes
(category checkboxes, price inputs, condition rows, one id per line); recs.rules validates it, the same way
as for the API, and its field errors are shown on the form."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.boundfield import BoundField

from recs import rules
from recs.dashboard import catalog_choices
from recs.dashboard.condition_rows import ConditionsField, readable_error
from recs.models import Rule
from recs.models.rules import ENDPOINTS
from recs.rules.predicates import MAX_IN_VALUES

MAX_LINES_CHARS = 64 * 1024

ENDPOINT_CHOICES = [
    ("recommendations", "Recommendations for a customer"),
    ("similar", "Similar products"),
    ("popular", "Popular products"),
]
KIND_HELP = {
    Rule.Kind.INCLUDE_CATEGORIES: "Recommend only products in one of the chosen categories.",
    Rule.Kind.EXCLUDE_CATEGORIES: "Never recommend products in the chosen categories.",
    Rule.Kind.PRICE_RANGE: "Recommend only products priced from the lowest to the highest price (either may be "
                           "left blank). A product without a price is left out.",
    Rule.Kind.ATTRIBUTE: "Keep only, or leave out, the products that match all the conditions.",
    Rule.Kind.EXCLUDE_PRODUCTS: "Never recommend these products (your product ids).",
}
# Which form fields hold each rule kind's parameters (the other kinds' fields are ignored).
KIND_FIELDS = {
    Rule.Kind.INCLUDE_CATEGORIES: ("categories", "other_categories"),
    Rule.Kind.EXCLUDE_CATEGORIES: ("categories", "other_categories"),
    Rule.Kind.PRICE_RANGE: ("price_min", "price_max"),
    Rule.Kind.ATTRIBUTE: ("mode", "conditions"),
    Rule.Kind.EXCLUDE_PRODUCTS: ("product_ids",),
}


class LinesField(forms.CharField):
    """A list of ids, one per line (commas also separate)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", MAX_LINES_CHARS)
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


@dataclass(frozen=True)
class Section:
    """A group of the form's fields; `kinds` (space-separated) names the rule kinds it is for, if not all."""

    title: str
    fields: list[BoundField]
    kinds: str = ""
    row: bool = False  # side by side (two short inputs)


class _DomainForm(forms.Form):
    """A form whose whole input is validated by a recs.rules validator: `domain_data` is its result."""

    validate: Callable[[dict], dict]
    # Domain field -> form field, where they differ (errors are shown on the form field).
    error_fields: dict[str, str] = {}

    def __init__(self, *args, read_only: bool = False, tenant_id: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.domain_data: dict | None = None
        if "conditions" in self.fields and tenant_id is not None:
            self.fields["conditions"].widget.attribute_keys = catalog_choices.attribute_keys(tenant_id)
        if read_only:
            for field in self.fields.values():
                field.disabled = True

    @classmethod
    def initial_from(cls, values: dict) -> dict:
        """The form's initial data from a stored row's values (recs.rules.current_values)."""
        return dict(values)

    def sections(self) -> list[Section]:
        return [Section("", list(self))]

    def to_domain(self, cleaned: dict) -> dict:
        return dict(cleaned)

    def error_field(self, name: str) -> str:
        return self.error_fields.get(name, name)

    def show_domain_errors(self, exc: ValidationError) -> None:
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        for name, messages in errors.items():
            field = self.error_field(name)
            target = field if field in self.fields else None
            for message in messages:
                message = readable_error(message)
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


def _price_field(label: str, placeholder: str) -> forms.FloatField:
    # No bounds here: recs.rules says what a price may be.
    return forms.FloatField(label=label, required=False, widget=forms.NumberInput(
        attrs={"step": "0.01", "min": "0", "placeholder": placeholder, "inputmode": "decimal"}))


class AnyChoices(forms.MultipleChoiceField):
    """Checkboxes of the shop's categories that also take a category no product has (yet): a stored rule
    may name one, and whether a name is acceptable is recs.rules' decision."""

    def valid_value(self, value: str) -> bool:
        return True


class RuleForm(_DomainForm):
    validate = staticmethod(rules.validate_rule)

    name = _name_field("No gift cards")
    kind = forms.ChoiceField(label="What it does", choices=Rule.Kind.choices)
    categories = AnyChoices(
        label="Categories", required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Your products' categories, with how many live products each holds (any level of a category "
                  "path counts).",
    )
    other_categories = LinesField(
        label="Other categories", required=False, help_text="Not in the list: one per line, spelled as you send them.",
    )
    price_min = _price_field("Lowest price", "No minimum")
    price_max = _price_field("Highest price", "No maximum")
    mode = forms.ChoiceField(label="Products that match", initial="exclude", required=False, choices=[
        ("exclude", "Leave them out"), ("include", "Recommend only them"),
    ])
    conditions = ConditionsField(label="Conditions (all must hold)")
    product_ids = LinesField(label="Product ids", required=False, help_text="Your product ids, one per line.")
    endpoints = _endpoints_field()
    enabled = forms.BooleanField(label="Enabled", required=False, initial=True)

    def __init__(self, *args, tenant_id: int | None = None, **kwargs):
        super().__init__(*args, tenant_id=tenant_id, **kwargs)
        known = catalog_choices.categories(tenant_id) if tenant_id is not None else []
        choices = [(name, f"{name} · {n:,}") for name, n in known]
        # Categories the rule names (or the browser sent) that the shop's products do not list: shown checked.
        if self.is_bound:
            named = self.data.getlist("categories") if hasattr(self.data, "getlist") else []
        else:
            named = self.initial.get("categories") or []
        listed = {name for name, _ in known}
        choices += [(name, f"{name} · no live products") for name in dict.fromkeys(named) if name not in listed]
        self.fields["categories"].choices = choices

    @classmethod
    def initial_from(cls, values: dict) -> dict:
        params = values.get("params") or {}
        initial = {name: values[name] for name in ("name", "kind", "endpoints", "enabled") if name in values}
        initial.update({
            "categories": params.get("categories", []), "price_min": params.get("min"),
            "price_max": params.get("max"), "mode": params.get("mode", "exclude"),
            "conditions": params.get("conditions", []), "product_ids": params.get("product_ids", []),
        })
        return initial

    def sections(self) -> list[Section]:
        def fields(*names: str) -> list[BoundField]:
            return [self[name] for name in names]

        def kinds(*members: Rule.Kind) -> str:
            return " ".join(str(kind) for kind in members)

        categories = kinds(Rule.Kind.INCLUDE_CATEGORIES, Rule.Kind.EXCLUDE_CATEGORIES)
        return [
            Section("", fields("name", "kind")),
            Section("Categories", fields("categories", "other_categories"), categories),
            Section("Price range", fields("price_min", "price_max"), kinds(Rule.Kind.PRICE_RANGE), row=True),
            Section("Conditions", fields("mode", "conditions"), kinds(Rule.Kind.ATTRIBUTE)),
            Section("Products", fields("product_ids"), kinds(Rule.Kind.EXCLUDE_PRODUCTS)),
            Section("", fields("endpoints", "enabled")),
        ]

    def kind_help(self) -> list[tuple[str, str, str]]:
        return [(str(kind), kind.label, KIND_HELP[kind]) for kind in Rule.Kind]

    def error_field(self, name: str) -> str:
        kind = self.cleaned_data.get("kind")
        if name == "params" and kind in KIND_FIELDS:
            return KIND_FIELDS[kind][-1] if kind == Rule.Kind.ATTRIBUTE else KIND_FIELDS[kind][0]
        return super().error_field(name)

    def to_domain(self, cleaned: dict) -> dict:
        kind = cleaned["kind"]
        if kind in (Rule.Kind.INCLUDE_CATEGORIES, Rule.Kind.EXCLUDE_CATEGORIES):
            params: dict[str, Any] = {
                "categories": list(dict.fromkeys([*cleaned["categories"], *cleaned["other_categories"]]))
            }
        elif kind == Rule.Kind.PRICE_RANGE:
            params = {"min": _whole(cleaned["price_min"]), "max": _whole(cleaned["price_max"])}
        elif kind == Rule.Kind.ATTRIBUTE:
            params = {"mode": cleaned["mode"], "conditions": cleaned["conditions"]}
        else:
            params = {"product_ids": cleaned["product_ids"]}
        return {"name": cleaned["name"], "kind": kind, "params": params, "endpoints": cleaned["endpoints"],
                "enabled": cleaned["enabled"]}


def _whole(value: float | None) -> int | float | None:
    """20.0 typed as "20" is stored as 20, as the API would store it."""
    return int(value) if value is not None and value.is_integer() else value


class PromotionForm(_DomainForm):
    validate = staticmethod(rules.validate_promotion)

    name = _name_field("Winter collection")
    product_ids = LinesField(label="Product ids", required=False, help_text="Your product ids, one per line.")
    conditions = ConditionsField(
        label="And every product where (optional)", help_text="All the conditions of the rows must hold.",
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
    conditions = ConditionsField(label="Products where", help_text="All the conditions of the rows must hold.")
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
        ("always", "Never recommend them again"),
        ("days", "Skip them for some days"),
        ("never", "Recommend them again"),
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
