"""Attributed outcomes per (variant, endpoint): the sufficient statistics of the experiments package.

For a shop and a window of serving time, one SQL statement groups the served answers by randomisation
unit (the customer, else the session, else the answer itself), joins each answer's attributed feedback,
and sums per (variant, endpoint) over the units: of each measure its sum, its sum of squares and its
cross-products with the unit's answers and impressions (the delta method's denominators). Nothing is
scanned in Python; the database returns one row per (variant, endpoint).

Attribution: an event counts for an answer when it carries the answer's recommendation_id, belongs to the
same shop and names one of the answer's items. Per answer, impressions, clicks and add-to-carts count
distinct products (a repeated click counts once); purchases count events, and revenue sums their `value`,
else `price` x `quantity` (1 when absent). An answer's feedback counts whenever it arrived: the window
selects answers by the time they were served.

CUPED's covariate (conversion): with a `pre_period`, each unit's conversion over the answers served to it in
the `pre_period` before `since`, counting only purchases made before `since`, so that nothing the experiment
changed enters it; a unit without answers then has 0.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from django.db import connection

from experiments.metrics import CLICK_THROUGH, CONVERSION, EMPTY_ANSWERS, REVENUE_PER_1000
from experiments.stats import VariantStats
from tenants.context import tenant_context

# Per unit: answers served, answers without items, and the attributed feedback. `conversions` is 1 when
# the unit bought after a recommendation, else 0.
MEASURES = ("answers", "empty_answers", "impressions", "clicks", "add_to_carts", "purchases", "conversions",
            "revenue")

# Vendor-specific pieces: membership of a product id in the answer's items, an empty item list.
_POSTGRES = {"member": "a.items ? p.external_id", "empty": "jsonb_array_length(a.items) = 0"}
_SQLITE = {
    "member": "EXISTS (SELECT 1 FROM json_each(a.items) AS j WHERE j.value = p.external_id)",
    "empty": "json_array_length(a.items) = 0",
}

# MATERIALIZED: each part is computed once. Inlined, the planner (which sees a freshly written table as
# holding one row) evaluated the feedback of every answer again for each answer: 33 s for 150 answers.
_SQL = """
WITH answers AS MATERIALIZED (
    SELECT a.recommendation_id, a.variant, a.endpoint, a.items,
           CASE WHEN a.customer_external_id <> '' THEN 'c:' || a.customer_external_id
                WHEN a.session_id <> '' THEN 's:' || a.session_id
                ELSE 'a:' || CAST(a.recommendation_id AS text) END AS unit,
           CASE WHEN {empty} THEN 1 ELSE 0 END AS empty,
           CASE WHEN a.served_at < %(since)s THEN 1 ELSE 0 END AS pre
    FROM recs_servedanswer a
    WHERE a.tenant_id = %(tenant)s AND a.served_at >= %(pre_since)s AND a.served_at < %(until)s
),
feedback AS MATERIALIZED (
    SELECT a.recommendation_id,
           count(DISTINCT CASE WHEN e.event_type = 'impression' THEN e.product_id END) AS impressions,
           count(DISTINCT CASE WHEN e.event_type = 'click' THEN e.product_id END) AS clicks,
           count(DISTINCT CASE WHEN e.event_type = 'add_to_cart' THEN e.product_id END) AS add_to_carts,
           sum(CASE WHEN e.event_type = 'purchase' THEN 1 ELSE 0 END) AS purchases,
           sum(CASE WHEN e.event_type = 'purchase'
                    THEN coalesce(e.value, CAST(e.price AS double precision) * coalesce(e.quantity, 1), 0)
                    ELSE 0 END) AS revenue
    FROM answers a
    JOIN recs_event e ON e.tenant_id = %(tenant)s AND e.recommendation_id = a.recommendation_id
    JOIN recs_product p ON p.tenant_id = %(tenant)s AND p.id = e.product_id
    WHERE {member} AND (a.pre = 0 OR e.ts < %(since)s)
    GROUP BY a.recommendation_id
),
units AS (
    SELECT a.variant, a.endpoint, a.unit,
           count(*) AS answers,
           sum(a.empty) AS empty_answers,
           coalesce(sum(f.impressions), 0) AS impressions,
           coalesce(sum(f.clicks), 0) AS clicks,
           coalesce(sum(f.add_to_carts), 0) AS add_to_carts,
           coalesce(sum(f.purchases), 0) AS purchases,
           max(CASE WHEN f.purchases > 0 THEN 1 ELSE 0 END) AS conversions,
           coalesce(sum(f.revenue), 0) AS revenue
    FROM answers a LEFT JOIN feedback f ON f.recommendation_id = a.recommendation_id
    WHERE a.pre = 0
    GROUP BY a.variant, a.endpoint, a.unit
),
pre_units AS (
    SELECT a.unit, max(CASE WHEN f.purchases > 0 THEN 1 ELSE 0 END) AS pre_conversions
    FROM answers a LEFT JOIN feedback f ON f.recommendation_id = a.recommendation_id
    WHERE a.pre = 1
    GROUP BY a.unit
),
covariates AS (
    SELECT u.*, CAST(coalesce(c.pre_conversions, 0) AS double precision) AS pre_conversions
    FROM units u LEFT JOIN pre_units c ON c.unit = u.unit
)
SELECT variant, endpoint, count(*), {sums},
       sum(pre_conversions), sum(pre_conversions * pre_conversions), sum(pre_conversions * conversions)
FROM covariates
GROUP BY variant, endpoint
ORDER BY variant, endpoint
"""

# Per measure m: sum(m), sum(m^2), sum(m * answers), sum(m * impressions); as float8, so that large counts
# never overflow an integer sum.
_SUMS = ", ".join(
    f"sum(CAST({m} AS double precision)), sum(CAST({m} AS double precision) * {m}), "
    f"sum(CAST({m} AS double precision) * answers), sum(CAST({m} AS double precision) * impressions)"
    for m in MEASURES
)


@dataclass(frozen=True)
class AttributedSums:
    """Sums over the randomisation units of one (variant, endpoint)."""

    variant: str
    endpoint: str
    units: int
    sums: dict[str, float]
    squares: dict[str, float]
    times_answers: dict[str, float]  # sum over units of measure x answers
    times_impressions: dict[str, float]  # sum over units of measure x impressions
    # CUPED's covariate of conversion: sum over units of x, x^2 and x * conversions (0 without a pre-period).
    pre_conversions: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def variant_stats(self, numerator: str, denominator: str | None = None) -> VariantStats:
        """The experiments package's statistics of a mean metric (`numerator` per unit) or of a ratio metric
        (`numerator` / `denominator`, which must be answers or impressions)."""
        if denominator is None:
            return VariantStats(n=float(self.units), sum_y=self.sums[numerator], sum_y2=self.squares[numerator])
        cross = {"answers": self.times_answers, "impressions": self.times_impressions}[denominator]
        return VariantStats(
            n=float(self.units), sum_y=self.sums[numerator], sum_y2=self.squares[numerator],
            sum_d=self.sums[denominator], sum_d2=self.squares[denominator], sum_yd=cross[numerator],
        )

    def metric_stats(self) -> dict[str, VariantStats]:
        """The issue's metrics by the experiments package's keys; conversion with its CUPED covariate."""
        sum_x, sum_x2, sum_xy = self.pre_conversions
        return {
            CLICK_THROUGH.key: self.variant_stats("clicks", "impressions"),
            CONVERSION.key: replace(self.variant_stats("conversions"), sum_x=sum_x, sum_x2=sum_x2, sum_xy=sum_xy),
            REVENUE_PER_1000.key: self.variant_stats("revenue", "answers"),
            EMPTY_ANSWERS.key: self.variant_stats("empty_answers", "answers"),
        }


def attributed_sums(tenant_id: int, since: dt.datetime, until: dt.datetime,
                    pre_period: dt.timedelta | None = None) -> dict[tuple[str, str], AttributedSums]:
    """Per (variant, endpoint), the sums of the shop's answers served in [since, until) and their
    attributed feedback; with `pre_period`, each unit's conversion in that time before `since` beside them."""
    parts = _POSTGRES if connection.vendor == "postgresql" else _SQLITE
    sql = _SQL.format(sums=_SUMS, **parts)
    adapt = connection.ops.adapt_datetimefield_value
    params = {"tenant": tenant_id, "since": adapt(since), "until": adapt(until),
              "pre_since": adapt(since - (pre_period or dt.timedelta(0)))}
    with tenant_context(tenant_id), connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    out: dict[tuple[str, str], AttributedSums] = {}
    for variant, endpoint, units, *values in rows:
        by_measure = {m: [float(v or 0.0) for v in values[4 * i:4 * i + 4]] for i, m in enumerate(MEASURES)}
        sum_x, sum_x2, sum_xy = (float(v or 0.0) for v in values[4 * len(MEASURES):])
        out[(variant, endpoint)] = AttributedSums(
            variant=variant, endpoint=endpoint, units=int(units),
            sums={m: v[0] for m, v in by_measure.items()}, squares={m: v[1] for m, v in by_measure.items()},
            times_answers={m: v[2] for m, v in by_measure.items()},
            times_impressions={m: v[3] for m, v in by_measure.items()},
            pre_conversions=(sum_x, sum_x2, sum_xy),
        )
    return out
