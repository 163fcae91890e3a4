"""Plans, usage metering and Stripe billing.

- plans.py: the plans of settings.RECSVC_BILLING_PLANS as typed values (quotas per meter, Stripe prices).
- usage.py: `record(tenant_id, meter, n)` on the hot path (Redis counters), snapshots into PostgreSQL.
- quota.py: may this shop use one more unit of a meter? (free: hard limit; paid: overage; unpaid: limited).
- checkout.py: Stripe Checkout and Customer Portal sessions for the dashboard.
- webhooks.py + views.py: the signed Stripe webhook keeps each shop's plan and status in step.
- reporting.py + tasks.py: billable usage reported to Stripe meters exactly once (an outbox of meter events).

This package imports nothing of the project outside `tenants` and `config`-level settings; the API and the
dashboard (recs) call into it.
"""
