"""The tenant's steering of its recommendations: filter rules, promotions, boosts and settings.

Rows are validated by recs/rules (domain functions, used by the API and the dashboard alike) and
compiled by serving/rules.py into vectorised masks; every write bumps the tenant's rules generation in
the cache (serving.cache.bump_rules_generation) so cached answers never outlive a rule change.
"""

from __future__ import annotations

from django.db import models

from tenants.scoping import TenantOwnedModel

ENDPOINTS = ("recommendations", "similar", "popular")


def all_endpoints() -> list[str]:
    return list(ENDPOINTS)


class Rule(TenantOwnedModel):
    """A filter applied before ranking. `params` depends on `kind` (recs.rules.validate_rule_params)."""

    class Kind(models.TextChoices):
        INCLUDE_CATEGORIES = "include_categories", "Only these categories"
        EXCLUDE_CATEGORIES = "exclude_categories", "Exclude categories"
        PRICE_RANGE = "price_range", "Price range"
        ATTRIBUTE = "attribute", "Attribute conditions"
        EXCLUDE_PRODUCTS = "exclude_products", "Exclude products"

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    params = models.JSONField(default=dict)
    endpoints = models.JSONField(default=all_endpoints)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantOwnedModel.Meta):
        indexes = [models.Index(fields=["tenant", "enabled"], name="rule_enabled_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Promotion(TenantOwnedModel):
    """Products lifted to the top (score := 1.0) when their ranking score reaches `threshold`, selected by
    explicit shop ids and/or a predicate, optionally within a time window."""

    name = models.CharField(max_length=100)
    product_ids = models.JSONField(default=list, blank=True)
    conditions = models.JSONField(default=list, blank=True)
    threshold = models.FloatField(default=0.0)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantOwnedModel.Meta):
        indexes = [models.Index(fields=["tenant", "enabled"], name="promotion_enabled_idx")]
        # The second wall behind recs.rules validation.
        constraints = [
            models.CheckConstraint(
                condition=models.Q(threshold__gte=0.0, threshold__lte=1.0), name="promotion_threshold_range"
            ),
            models.CheckConstraint(
                condition=models.Q(starts_at__isnull=True) | models.Q(ends_at__isnull=True)
                | models.Q(ends_at__gt=models.F("starts_at")),
                name="promotion_window_order",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Boost(TenantOwnedModel):
    """Multiplies the score of matching products by `factor` (> 1 lifts, < 1 buries)."""

    name = models.CharField(max_length=100)
    conditions = models.JSONField(default=list)
    factor = models.FloatField()
    endpoints = models.JSONField(default=all_endpoints)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantOwnedModel.Meta):
        indexes = [models.Index(fields=["tenant", "enabled"], name="boost_enabled_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(factor__gt=0.0, factor__lte=10.0) & ~models.Q(factor=1.0),
                name="boost_factor_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name


def default_consumed_event_types() -> list[str]:
    return ["purchase", "rating"]


class RecommendationSettings(TenantOwnedModel):
    """One row per tenant (recs.rules.settings_for creates it with these defaults)."""

    exclude_out_of_stock = models.BooleanField(default=True)
    # Event types that mean "this customer has had the product" (bought it, rated it): such products are
    # never recommended back to them. Views and carts are not consumption ("recently viewed" is a different
    # widget).
    consumed_event_types = models.JSONField(default=default_consumed_event_types)
    # None: exclude everything the customer ever consumed; 0: never exclude; N: consumed in the last N days.
    exclude_consumed_days = models.PositiveIntegerField(null=True, blank=True)
    # Diversity cap: at most this many products of one category in one answer (None: no cap).
    max_per_category = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="uniq_recommendation_settings"),
            models.CheckConstraint(
                condition=models.Q(max_per_category__isnull=True)
                | models.Q(max_per_category__gte=1, max_per_category__lte=100),
                name="settings_max_per_category_range",
            ),
        ]
