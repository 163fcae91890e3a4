"""Customers and products, each with the history of its attributes (validity intervals).

The current row answers the API and serving; the `*Version` rows let training join an attribute as it
was at any past moment (`valid_from <= t < valid_to`, `valid_to` NULL for the current version).
"""

from __future__ import annotations

from django.db import models

from tenants.scoping import TenantOwnedModel

PRODUCT_TRACKED_FIELDS = (
    "title", "description", "category_path", "brand", "price", "currency", "stock", "available", "tags",
    "attributes", "deleted",
)
CUSTOMER_TRACKED_FIELDS = ("attributes",)


class Customer(TenantOwnedModel):
    external_id = models.CharField(max_length=128)
    attributes = models.JSONField(default=dict, blank=True)
    # Created from an event that named an id the shop had not sent yet.
    is_placeholder = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The shop's own modification time; an older update arriving late is ignored.
    source_updated_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantOwnedModel.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant", "external_id"], name="uniq_customer_ext")]


class Product(TenantOwnedModel):
    external_id = models.CharField(max_length=128)
    title = models.CharField(max_length=500)
    description = models.TextField(blank=True, default="")
    category_path = models.JSONField(default=list, blank=True)
    brand = models.CharField(max_length=200, blank=True, default="")
    price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True, default="")
    stock = models.IntegerField(null=True, blank=True, help_text="null: stock not tracked")
    available = models.BooleanField(default=True)
    tags = models.JSONField(default=list, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    # Deleted products stay as rows so that past events and attribute history keep their meaning.
    deleted = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    source_updated_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantOwnedModel.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant", "external_id"], name="uniq_product_ext")]
        indexes = [models.Index(fields=["tenant", "deleted", "id"], name="product_live_idx")]

    @property
    def in_stock(self) -> bool:
        return self.available and not self.deleted and (self.stock is None or self.stock > 0)


class ProductVersion(TenantOwnedModel):
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+")
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField(null=True, blank=True)
    snapshot = models.JSONField()

    class Meta(TenantOwnedModel.Meta):
        indexes = [models.Index(fields=["tenant", "product", "valid_from"], name="product_version_idx")]


class CustomerVersion(TenantOwnedModel):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField(null=True, blank=True)
    snapshot = models.JSONField()

    class Meta(TenantOwnedModel.Meta):
        indexes = [models.Index(fields=["tenant", "customer", "valid_from"], name="customer_version_idx")]
