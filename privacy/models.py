"""Opt-in, the budget ledger and the released aggregates.

`PrivacySettings`, `BudgetWindow` and `Charge` are one shop's rows (row-level security, migration 0002).
`Release` is what the shops share: noisy aggregates only, no shop's name and no row of any shop.
"""

from __future__ import annotations

from django.db import models

from tenants.scoping import TenantOwnedModel


class PrivacySettings(TenantOwnedModel):
    """Whether the shop contributes to, and may read, the cross-shop aggregates."""

    opted_in = models.BooleanField(default=False)
    opted_in_at = models.DateTimeField(null=True, blank=True)
    opted_out_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantOwnedModel.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant"], name="one_privacy_settings_per_tenant")]


class BudgetWindow(TenantOwnedModel):
    """A shop's privacy budget for one window (a calendar month, UTC): what its customers may lose at most."""

    window = models.CharField(max_length=7, help_text="YYYY-MM (UTC)")
    epsilon_budget = models.FloatField()
    delta_budget = models.FloatField()
    epsilon_spent = models.FloatField(default=0.0)
    delta_spent = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantOwnedModel.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant", "window"], name="one_budget_per_tenant_window")]

    @property
    def epsilon_remaining(self) -> float:
        return max(0.0, self.epsilon_budget - self.epsilon_spent)

    @property
    def delta_remaining(self) -> float:
        return max(0.0, self.delta_budget - self.delta_spent)


class Release(models.Model):
    """One released aggregate, shared by the opted-in shops: per key, a noisy robust mean over the shops."""

    kind = models.CharField(max_length=32)
    window = models.CharField(max_length=7)
    mechanism = models.CharField(max_length=64)
    epsilon = models.FloatField()
    delta = models.FloatField()
    sensitivity = models.FloatField()
    noise_scale = models.FloatField()
    n_shops = models.PositiveIntegerField()
    trim = models.PositiveIntegerField()
    poisoning_bound = models.FloatField()
    values = models.JSONField(default=dict)
    released_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["kind", "-released_at"], name="privacy_release_recent_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.window} (epsilon {self.epsilon:g}, {self.n_shops} shops)"


class Charge(TenantOwnedModel):
    """One line of a shop's ledger: a release its customers paid for, or one refused for want of budget."""

    budget = models.ForeignKey(BudgetWindow, on_delete=models.CASCADE, related_name="+")
    release = models.ForeignKey(Release, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    kind = models.CharField(max_length=32)
    epsilon = models.FloatField()
    delta = models.FloatField()
    refused = models.BooleanField(default=False)
    created_at = models.DateTimeField()

    class Meta(TenantOwnedModel.Meta):
        indexes = [models.Index(fields=["tenant", "-created_at"], name="privacy_charge_recent_idx")]


class SharedModel(models.Model):
    """One trained shared cold-start model (privacy/shared_model.py), shared by the opted-in shops.

    Holds the DP-SGD run's parameters, what the accountant certifies, and the weights of one table of hashed
    content tokens: no shop's name, no product, no customer, no count of any shop."""

    window = models.CharField(max_length=7)
    mechanism = models.CharField(max_length=64)
    epsilon = models.FloatField()
    delta = models.FloatField()
    noise_multiplier = models.FloatField()
    sample_rate = models.FloatField()
    steps = models.PositiveIntegerField()
    max_grad_norm = models.FloatField()
    max_items_per_customer = models.PositiveIntegerField()
    n_shops = models.PositiveIntegerField()
    n_buckets = models.PositiveIntegerField()
    dim = models.PositiveIntegerField()
    weights = models.BinaryField(help_text="float32 n_buckets x dim, NumPy .npy bytes")
    trained_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["-trained_at"], name="privacy_shared_recent_idx")]

    def __str__(self) -> str:
        return f"shared model {self.window} (epsilon {self.epsilon:g}, {self.n_shops} shops)"
