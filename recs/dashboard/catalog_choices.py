"""What the rule forms offer to pick from: the shop's categories and attribute keys, most used first.

One aggregate over the shop's live products each (the database unnests the JSON; nothing is loaded
row by row). The caller acts for the tenant (row-level security also holds these statements to it).
"""

from __future__ import annotations

from django.db import connection

from recs.models import Product

MAX_CATEGORIES = 300
MAX_ATTRIBUTE_KEYS = 100

# Per database: the rows of one product's JSON (FROM) and the column holding each value.
_CATEGORIES = {
    "postgresql": ("jsonb_array_elements_text(CASE jsonb_typeof(p.category_path) WHEN 'array' "
                   "THEN p.category_path ELSE '[]'::jsonb END) AS e(value)", "e.value"),
    "sqlite": ("json_each(CASE json_type(p.category_path) WHEN 'array' THEN p.category_path ELSE '[]' END) AS e",
               "e.value"),
}
_ATTRIBUTE_KEYS = {
    "postgresql": ("jsonb_object_keys(CASE jsonb_typeof(p.attributes) WHEN 'object' "
                   "THEN p.attributes ELSE '{}'::jsonb END) AS e(value)", "e.value"),
    "sqlite": ("json_each(CASE json_type(p.attributes) WHEN 'object' THEN p.attributes ELSE '{}' END) AS e",
               "e.key"),
}
_SQL = """
SELECT {column}, count(*) AS n FROM {table} AS p, {unnest}
WHERE p.tenant_id = %s AND NOT p.deleted AND {column} <> ''
GROUP BY {column} ORDER BY n DESC, {column} LIMIT %s
"""


def _counts(unnest: dict[str, tuple[str, str]], tenant_id: int, limit: int) -> list[tuple[str, int]]:
    from_clause, column = unnest[connection.vendor]
    sql = _SQL.format(table=Product._meta.db_table, unnest=from_clause, column=column)
    with connection.cursor() as cursor:
        cursor.execute(sql, [tenant_id, limit])
        return [(str(value), int(n)) for value, n in cursor.fetchall()]


def categories(tenant_id: int, limit: int = MAX_CATEGORIES) -> list[tuple[str, int]]:
    """(category, live products in it): every element of a category path counts, as rules match any."""
    return _counts(_CATEGORIES, tenant_id, limit)


def attribute_keys(tenant_id: int, limit: int = MAX_ATTRIBUTE_KEYS) -> list[str]:
    return [key for key, _ in _counts(_ATTRIBUTE_KEYS, tenant_id, limit)]
