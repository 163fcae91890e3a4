"""Experiments made through the domain functions, as the API and the dashboard make them."""

from __future__ import annotations

from experiments import lifecycle
from experiments.models import Experiment
from tenants.context import tenant_context


def make_experiment(tenant_id: int, name: str = "ranker test", *, variants: list[dict] | None = None,
                    start: bool = False, **fields) -> Experiment:
    data = {"name": name, "goal": "revenue_per_1000", "secondary": ["click_through"],
            "guardrails": [{"metric": "empty_answers", "margin": 0.05}],
            "variants": variants or [{"name": "control", "weight": 1, "config": {}},
                                     {"name": "treatment", "weight": 1, "config": {"ranker": False}}],
            **fields}
    with tenant_context(tenant_id):
        experiment = lifecycle.create_experiment(tenant_id, data)
        if start:
            experiment = lifecycle.start(experiment)
    return experiment
