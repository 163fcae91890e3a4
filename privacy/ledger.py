"""The privacy budget ledger: per contributing shop and window, epsilon and delta budgeted, spent, remaining.

A shop's customers pay for every release the shop contributes to. A charge that would take a window past its
budget is refused whole: the shop's contribution is left out of that release and the refusal is written in
the ledger. Nothing is ever released with less noise to make it fit. Charges add up (basic composition):
exact for the pure-epsilon Laplace releases made here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

from privacy.models import BudgetWindow

# Float sums of charges like 0.1 must not refuse the last one of a budget they exactly fill.
_TOLERANCE = 1e-9


def window_of(at: datetime) -> str:
    """The budget window of a moment: its calendar month in UTC."""
    return at.astimezone(UTC).strftime("%Y-%m")


def budget_for(tenant_id: int, window: str, *, for_update: bool = False) -> BudgetWindow:
    """The shop's budget row of `window`, made with the configured budget on first use."""
    rows = BudgetWindow.objects.for_tenant(tenant_id)
    if for_update:
        rows = rows.select_for_update()
    budget = rows.filter(window=window).first()
    if budget is None:
        budget, _ = BudgetWindow.objects.for_tenant(tenant_id).get_or_create(
            tenant_id=tenant_id, window=window,
            defaults={"epsilon_budget": settings.RECSVC_PRIVACY_EPSILON_PER_WINDOW,
                      "delta_budget": settings.RECSVC_PRIVACY_DELTA_PER_WINDOW},
        )
        if for_update:
            budget = rows.get(pk=budget.pk)
    return budget


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


def can_spend(budget: BudgetWindow, epsilon: float, delta: float) -> Decision:
    if budget.epsilon_spent + epsilon > budget.epsilon_budget + _TOLERANCE:
        return Decision(False, f"epsilon {epsilon:g} would exceed the window's remaining {budget.epsilon_remaining:g}")
    if budget.delta_spent + delta > budget.delta_budget + _TOLERANCE * 1e-6:
        return Decision(False, f"delta {delta:g} would exceed the window's remaining {budget.delta_remaining:g}")
    return Decision(True)


def spend(budget: BudgetWindow, epsilon: float, delta: float) -> None:
    """Record the spending on a row locked by the caller (budget_for(..., for_update=True))."""
    budget.epsilon_spent += epsilon
    budget.delta_spent += delta
    budget.save(update_fields=["epsilon_spent", "delta_spent"])
