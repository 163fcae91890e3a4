"""What the API and the dashboard page show a shop: its choice, its ledger and the releases' metadata.

Only this shop's own rows (its settings and ledger, under its tenant context) and the shared releases'
metadata; never another shop's ledger, contribution or name.
"""

from __future__ import annotations

from privacy.explanation import kind_label
from privacy.models import BudgetWindow, Charge, Release, SharedModel
from privacy.optin import settings_for

MAX_CHARGES = 50
MAX_RELEASES = 20


def ledger_rows(tenant_id: int) -> list[dict]:
    windows = BudgetWindow.objects.for_tenant(tenant_id).order_by("-window")
    charges = list(Charge.objects.for_tenant(tenant_id).order_by("-created_at", "-pk")[:MAX_CHARGES])
    rows = []
    for budget in windows:
        rows.append({
            "window": budget.window,
            "epsilon_budget": budget.epsilon_budget, "epsilon_spent": round(budget.epsilon_spent, 9),
            "epsilon_remaining": round(budget.epsilon_remaining, 9),
            "delta_budget": budget.delta_budget, "delta_spent": budget.delta_spent,
            "delta_remaining": budget.delta_remaining,
            "charges": [
                {"kind": c.kind, "label": kind_label(c.kind), "epsilon": c.epsilon, "delta": c.delta,
                 "refused": c.refused, "release_id": c.release_id, "at": c.created_at.isoformat()}
                for c in charges if c.budget_id == budget.pk
            ],
        })
    return rows


def releases_metadata() -> list[dict]:
    rows = Release.objects.order_by("-released_at", "-pk").defer("values")[:MAX_RELEASES]
    return [
        {"id": r.pk, "kind": r.kind, "label": kind_label(r.kind), "window": r.window, "mechanism": r.mechanism,
         "epsilon": r.epsilon, "delta": r.delta, "n_shops": r.n_shops, "poisoning_bound": r.poisoning_bound,
         "released_at": r.released_at.isoformat()}
        for r in rows
    ]


def shared_models_metadata() -> list[dict]:
    """The shared cold-start models' DP-SGD parameters and certified spending (never their weights)."""
    rows = SharedModel.objects.order_by("-trained_at", "-pk").defer("weights")[:MAX_RELEASES]
    return [
        {"id": r.pk, "label": kind_label("shared_model"), "window": r.window, "mechanism": r.mechanism,
         "epsilon": r.epsilon, "delta": r.delta, "noise_multiplier": r.noise_multiplier,
         "sample_rate": r.sample_rate, "steps": r.steps,
         "max_grad_norm": r.max_grad_norm, "max_items_per_customer": r.max_items_per_customer,
         "n_shops": r.n_shops, "trained_at": r.trained_at.isoformat()}
        for r in rows
    ]


def summary(tenant_id: int) -> dict:
    row = settings_for(tenant_id)
    return {
        "opted_in": row.opted_in,
        "opted_in_at": row.opted_in_at.isoformat() if row.opted_in_at else None,
        "opted_out_at": row.opted_out_at.isoformat() if row.opted_out_at else None,
        "privacy_unit": "end customer",
        "ledger": ledger_rows(tenant_id),
        # Releases are readable only by shops taking part.
        "releases": releases_metadata() if row.opted_in else [],
        "shared_models": shared_models_metadata() if row.opted_in else [],
    }
